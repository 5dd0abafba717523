"""out/images/manifest.json: what the image is made of, byte for byte.

Every Debian package (name, version, architecture, sha256 and name of the
.deb), every initramfs entry (path, type, mode, and size and sha256, symlink
target or device numbers), the kernel (source package version, config key,
bzImage sha256 and size), SOURCE_DATE_EPOCH and the totals.  Keys are sorted
and nothing depends on the clock, so the file is as reproducible as the image.
"""

import hashlib
import json
from pathlib import Path

from . import cpio, paths

FORMAT = 1


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _file(entry):
    record = {"path": "/" + entry.path, "type": entry.kind, "mode": f"{entry.mode:04o}"}
    if entry.kind == cpio.FILE:
        record.update(size=len(entry.data), sha256=_sha256(entry.data))
    elif entry.kind == cpio.SYMLINK:
        record.update(target=entry.target)
    elif entry.kind == cpio.CHAR:
        record.update(major=entry.major, minor=entry.minor)
    return record


def _package(deb):
    return {"name": deb.name, "version": deb.version, "arch": deb.arch,
            "sha256": deb.sha256, "filename": deb.filename}


def _cache_entry(sha256):
    """The kernel cache directory whose bzImage has ``sha256``, if any."""
    root = paths.cache_dir() / "kernel"
    for candidate in sorted(root.glob("*/bzImage")):
        if _sha256(candidate.read_bytes()) == sha256:
            return candidate.parent
    return None


def kernel(bzimage, cache_entry=None):
    """The manifest's kernel record for ``bzimage``.

    ``cache_entry`` is kernel.build()'s directory; without it the kernel cache
    is searched for the same bzImage.  An unknown bzImage keeps its hash and
    size, with null source and config key.
    """
    data = Path(bzimage).read_bytes()
    digest = _sha256(data)
    entry = cache_entry or _cache_entry(digest)
    package = version = None
    if entry and (entry / "version").exists():
        # kernel.build() writes "<source package> <version>".
        package, _, version = (entry / "version").read_text().strip().partition(" ")
    return {"source_package": package, "source_version": version,
            "config_key": entry.name if entry else None, "sha256": digest, "size": len(data)}


def build(image, epoch, kernel_record=None):
    """The manifest of ``image`` (a rootfs.Image) as a dict."""
    files = [_file(e) for e in image.entries]
    return {
        "format": FORMAT,
        "source_date_epoch": epoch,
        "kernel": kernel_record,
        "packages": [_package(d) for d in sorted(image.debs, key=lambda d: d.name)],
        "files": files,
        "totals": {
            "entries": len(files),
            "file_bytes": sum(f.get("size", 0) for f in files if f["type"] == cpio.FILE),
            "stdlib_modules": image.modules,
            "uncompressed_bytes": image.uncompressed,
            "compressed_bytes": image.compressed,
        },
    }


def dumps(manifest):
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"
