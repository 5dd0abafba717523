"""Deterministic newc ("070701") cpio archives and their lz4 compression.

The archive depends only on the entries given: they are written sorted by path
(parents before children), with uid/gid 0, one fixed mtime, inode numbers
assigned in order and no host metadata.  The kernel unpacks it as the
initramfs, so every entry's parent directory must be in the archive too (the
kernel does not create missing parents).
"""

import dataclasses
import subprocess

from . import hosttools
from .log import BuildError

MAGIC = b"070701"
TRAILER = "TRAILER!!!"

DIR = "dir"
FILE = "file"
SYMLINK = "symlink"
CHAR = "char"

# st_mode file-type bits of each kind.
TYPE_BITS = {DIR: 0o040000, FILE: 0o100000, SYMLINK: 0o120000, CHAR: 0o020000}

# The initramfs is compressed with lz4 in its legacy format (``lz4 -l``), the only
# lz4 framing the kernel unpacks (lib/decompress_unlz4.c; CONFIG_RD_LZ4).  Under TCG
# the kernel inflates lz4 several times faster than zstd: boot to the prompt A/B,
# quiet, median of 4: zstd -19 2.20 s, gzip -9 1.99 s, lz4 -l 1.66 s, none 1.57 s
# (issue 14).  -12 is lz4's highest level: it costs build time only (a few seconds)
# and decompresses as fast as the lower ones.
LZ4_LEVEL = 12
SUFFIX = ".lz4"
LZ4_LEGACY_MAGIC = b"\x02\x21\x4c\x18"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One archive member.  ``path`` is relative to the archive root ("usr/bin")."""

    path: str
    kind: str
    mode: int
    data: bytes = b""
    target: str = ""
    major: int = 0
    minor: int = 0

    def payload(self):
        if self.kind == FILE:
            return self.data
        if self.kind == SYMLINK:
            return self.target.encode()
        return b""


def sort_key(entry):
    """Path components: a directory sorts before its contents, siblings by name."""
    return entry.path.split("/")


def check(entries):
    """Reject duplicate paths, absolute or dotted paths and missing parent directories."""
    dirs = set()
    seen = set()
    for entry in sorted(entries, key=sort_key):
        path = entry.path
        parts = path.split("/")
        if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise BuildError(f"cpio entry path {path!r} is not a clean relative path")
        if entry.kind not in TYPE_BITS:
            raise BuildError(f"cpio entry {path}: unknown kind {entry.kind!r}")
        if path in seen:
            raise BuildError(f"cpio entry {path} appears twice")
        parent = "/".join(parts[:-1])
        if parent and parent not in dirs:
            raise BuildError(f"cpio entry {path} has no entry for its directory {parent}",
                             hint="add the directory to the entries: the kernel will not "
                                  "create it")
        seen.add(path)
        if entry.kind == DIR:
            dirs.add(path)


def _header(ino, mode, nlink, mtime, size, rmajor, rminor, namesize):
    fields = (ino, mode, 0, 0, nlink, mtime, size, 0, 0, rmajor, rminor, namesize, 0)
    return MAGIC + b"".join(b"%08X" % f for f in fields)


def _pad(n):
    return b"\0" * (-n % 4)


def _record(ino, mode, nlink, mtime, name, payload, rmajor=0, rminor=0):
    encoded = name.encode() + b"\0"
    head = _header(ino, mode, nlink, mtime, len(payload), rmajor, rminor, len(encoded))
    head += encoded
    return head + _pad(len(head)) + payload + _pad(len(payload))


def write(entries, mtime, out):
    """Write ``entries`` as a newc archive to the binary file ``out``; return its size."""
    check(entries)
    size = 0
    for ino, entry in enumerate(sorted(entries, key=sort_key), start=1):
        mode = TYPE_BITS[entry.kind] | (entry.mode & 0o7777)
        nlink = 2 if entry.kind == DIR else 1
        size += out.write(_record(ino, mode, nlink, mtime, entry.path, entry.payload(),
                                  entry.major, entry.minor))
    size += out.write(_record(0, 0, 1, 0, TRAILER, b""))
    return size


def compress(src, dest):
    """lz4-compress the file ``src`` into ``dest`` (legacy frames: no name, time or size)."""
    hosttools.require("lz4")
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        # Through stdin/stdout: lz4 then records nothing about the input file.
        proc = subprocess.run(["lz4", "-l", f"-{LZ4_LEVEL}", "-q", "-c"],
                              stdin=fin, stdout=fout, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise BuildError(f"lz4 failed ({proc.returncode}): {proc.stderr.strip()}")


def decompress(path):
    """The bytes of the archive ``path`` compresses (for the tests and the bench)."""
    hosttools.require("lz4")
    proc = subprocess.run(["lz4", "-dc", str(path)], capture_output=True)
    if proc.returncode != 0:
        raise BuildError(f"lz4 could not decompress {path}: {proc.stderr.decode().strip()}",
                         hint="run: make image")
    return proc.stdout
