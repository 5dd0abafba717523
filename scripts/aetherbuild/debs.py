"""Debian binary packages: fetched with apt into the cache, verified, extracted.

The version of each package is apt's candidate.  ``apt-get download
--print-uris`` names the .deb and its sha256 from the signed package index;
a cached .deb with that name and hash is reused, anything else is downloaded
again and checked against the index.  The packages are unpacked with
``dpkg-deb -x`` into a staging tree that is then merged-/usr like a Debian 12
system, so image paths mean the same thing in the tree and in the image.
"""

import dataclasses
import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import hosttools, paths
from .log import BuildError, info, stage

# The packages the image is made from.  Only what the interpreter, the shipped
# stdlib and their shared libraries need ends up in the image (see elfdeps and
# stdlib); the rest of each package stays in the staging tree.
PACKAGES = (
    "python3.11-minimal",     # /usr/bin/python3.11 (libpython linked in)
    "libpython3.11-minimal",  # the start-up part of the stdlib (os, encodings, ...)
    "libpython3.11-stdlib",   # the rest of the stdlib and lib-dynload/*.so
    "libc6",                  # the loader, libc, libm
    "zlib1g",                 # libz: needed by python3.11 (zlib is built in)
    "libexpat1",              # libexpat: needed by python3.11 (pyexpat is built in)
    "libffi8",                # _ctypes
    "libsqlite3-0",           # _sqlite3
    "libbz2-1.0",             # _bz2
    "liblzma5",               # _lzma
    "libuuid1",               # _uuid
    # libmpdec3 is not in Debian 12: its python3.11 builds _decimal with the
    # bundled libmpdec, so _decimal needs only libc and libm.
)

# Top-level directories Debian 12 keeps under /usr; the image has them as symlinks.
MERGED_DIRS = ("bin", "sbin", "lib", "lib64")

# apt-get download --print-uris: 'URI' file size SHA256:hex
URI_LINE = re.compile(r"^'(?P<uri>[^']+)' (?P<file>\S+\.deb) (?P<size>\d+) "
                      r"SHA256:(?P<sha256>[0-9a-f]{64})$")


@dataclasses.dataclass(frozen=True)
class Deb:
    """One fetched package and the facts the manifest records about it."""

    name: str
    version: str
    arch: str
    sha256: str
    filename: str
    path: Path


def cache():
    return paths.cache_dir() / "debs"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _apt(args, cwd):
    """Run apt-get; on failure raise a BuildError that says how to fix it."""
    proc = subprocess.run(["apt-get", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode == 0:
        return proc.stdout
    err = proc.stderr.strip()
    missing = re.findall(r"Unable to locate package (\S+)", err)
    if missing:
        raise BuildError(f"apt does not know the package(s): {', '.join(missing)}",
                         hint="the apt package lists are missing or stale: run apt-get update")
    raise BuildError(f"apt-get {' '.join(args)} failed ({proc.returncode}):\n    {err}",
                     hint="check that the Debian mirror is reachable; then run apt-get update")


def candidates(packages):
    """{package: (filename, sha256)} of apt's candidate .deb for each package."""
    # In an empty directory: apt-get leaves out packages already in the cwd.
    with tempfile.TemporaryDirectory() as empty:
        out = _apt(["download", "--print-uris", *packages], cwd=empty)
    found = {}
    for line in out.splitlines():
        if m := URI_LINE.match(line.strip()):
            found[m["file"].split("_", 1)[0]] = (m["file"], m["sha256"])
    missing = sorted(set(packages) - set(found))
    if missing:
        raise BuildError(f"apt printed no download for: {', '.join(missing)}",
                         hint="is the package name right?  apt-cache policy <name>")
    return found


def _download(wanted):
    """Fetch {package: (filename, sha256)} into the cache, each checked against apt's index."""
    with tempfile.TemporaryDirectory(dir=cache()) as tmp:
        _apt(["-q", "download", *sorted(wanted)], cwd=tmp)
        for package, (filename, sha256) in sorted(wanted.items()):
            got = Path(tmp) / filename
            if not got.exists():
                raise BuildError(f"apt-get download {package} did not produce {filename}",
                                 hint="the package lists changed meanwhile: build again")
            if sha256_file(got) != sha256:
                raise BuildError(f"{filename} does not match the sha256 in apt's package index",
                                 hint="run apt-get update and build again")
            got.rename(cache() / filename)


def _control(path):
    """(name, version, architecture) from the .deb's control file."""
    fields = ("Package", "Version", "Architecture")
    show = "".join(f"${{{field}}}\n" for field in fields)
    proc = subprocess.run(["dpkg-deb", f"--showformat={show}", "--show", str(path)],
                          capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or len(lines) != len(fields):
        raise BuildError(f"cannot read the control fields of {path}: {proc.stderr.strip()}",
                         hint=f"delete {path} and build again")
    return lines


def _cached(filename, sha256):
    path = cache() / filename
    return path.exists() and sha256_file(path) == sha256


def fetch(packages=PACKAGES):
    """The candidate .deb of each package, from the cache or downloaded: list of Deb."""
    hosttools.require("apt-get", "dpkg-deb", "tar")  # dpkg-deb runs tar
    with stage(f"fetch {len(packages)} Debian packages with apt into {cache()}"):
        cache().mkdir(parents=True, exist_ok=True)
        wanted = candidates(packages)
        missing = {p: w for p, w in wanted.items() if not _cached(*w)}
        if missing:
            info(f"download {', '.join(f for f, _ in sorted(missing.values()))}")
            _download(missing)
        debs = []
        for filename, sha256 in sorted(wanted.values()):
            path = cache() / filename
            name, version, arch = _control(path)
            debs.append(Deb(name, version, arch, sha256, filename, path))
    return debs


def merge_usr(root):
    """Move /bin, /sbin, /lib, /lib64 into /usr and leave relative symlinks behind."""
    for name in MERGED_DIRS:
        top = root / name
        if top.is_symlink() or not top.exists():
            continue
        _merge_tree(top, root / "usr" / name)
        shutil.rmtree(top)
        top.symlink_to(f"usr/{name}")


def _merge_tree(src, dest):
    dest.mkdir(parents=True, exist_ok=True)
    for child in sorted(src.iterdir()):
        target = dest / child.name
        if child.is_dir() and not child.is_symlink():
            _merge_tree(child, target)
        elif target.exists() or target.is_symlink():
            raise BuildError(f"merged /usr: both {child} and {target} exist")
        else:
            child.rename(target)


def extract(debs, root):
    """Unpack ``debs`` into a fresh merged-/usr tree at ``root``."""
    with stage(f"extract {len(debs)} packages into {root}"):
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        for deb in debs:
            proc = subprocess.run(["dpkg-deb", "-x", str(deb.path), str(root)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise BuildError(f"dpkg-deb -x {deb.path} failed: {proc.stderr.strip()}",
                                 hint=f"delete {deb.path} and build again")
        merge_usr(root)
    return root
