"""The host's side of a deploy: pack a directory if need be, then upload it in chunks.

    upload(client, path)   -> package.commit's answer (path: a .aether file or a package directory)

Each chunk is at most the chunk_bytes package.begin answers with (base64 in a frame well
under the ABI's 1 MiB limit).  Used by ``aetherctl deploy``.
"""

import base64
import hashlib
import os
import tempfile

from . import format as fmt

COMMIT_TIMEOUT = 120.0          # seconds: the commit answers when the new version runs or failed


def archive_for(path, workdir):
    """A .aether file for path: path itself, or a fresh pack of the directory path into workdir."""
    if os.path.isdir(path):
        from . import vendor
        return vendor.pack_with_requires(path, workdir)[0]
    if not path.endswith(fmt.SUFFIX):
        raise fmt.PackageError(f"{path}: neither a package directory nor a {fmt.SUFFIX} file "
                               "(aetherctl pack DIR makes one)")
    return path


def upload(client, path, allow=()):
    with tempfile.TemporaryDirectory(prefix="aether-pack-") as workdir:
        archive = archive_for(path, workdir)
        with open(archive, "rb") as f:
            data = f.read()
    size, digest = len(data), hashlib.sha256(data).hexdigest()
    step = client.call("package.begin", size=size, sha256=digest)["chunk_bytes"]
    try:
        for offset in range(0, size, step):
            client.call("package.chunk", offset=offset,
                        data=base64.b64encode(data[offset:offset + step]).decode("ascii"))
    except BaseException:
        try:
            client.call("package.abort")
        except Exception:  # noqa: BLE001 - the first failure is the one to report
            pass
        raise
    old = client.sock.gettimeout()
    client.sock.settimeout(max(old or 0, COMMIT_TIMEOUT))
    try:
        return client.call("package.commit", **({"allow": sorted(set(allow))} if allow else {}))
    finally:
        client.sock.settimeout(old)
