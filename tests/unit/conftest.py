"""Fixtures of the image-build tests: aetherbuild on sys.path, a newc reader, built images.

The builds use a snapshot of aether/, init/ and rootfs/ taken once per test
session, so edits made while the tests run cannot make two builds differ.
The Debian packages come from the shared cache (apt fetches what is missing).
"""

import dataclasses
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from aetherbuild import cpio, debs, rootfs  # noqa: E402

EPOCH = 1700000000


@dataclasses.dataclass(frozen=True)
class Member:
    """One record of a newc archive, as read back."""

    name: str
    ino: int
    mode: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    rdevmajor: int
    rdevminor: int
    data: bytes


def parse_newc(data):
    """Every member of a newc archive up to TRAILER!!!; asserts the format as it goes."""
    members, pos = [], 0
    while True:
        assert data[pos:pos + 6] == b"070701", f"bad magic at offset {pos}"
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        ino, mode, uid, gid, nlink, mtime, size, _, _, rmaj, rmin, namesize, check = fields
        assert check == 0
        name_end = pos + 110 + namesize
        assert data[name_end - 1] == 0, "name is not NUL-terminated"
        name = data[pos + 110:name_end - 1].decode()
        start = name_end + (-name_end % 4)
        assert data[name_end:start] == b"\0" * (start - name_end)
        body = data[start:start + size]
        pos = start + size + (-(start + size) % 4)
        if name == "TRAILER!!!":
            assert pos == len(data), "bytes after the trailer"
            return members
        members.append(Member(name, ino, mode, uid, gid, nlink, mtime, rmaj, rmin, body))


def extract(members, dest):
    """Write the members under ``dest`` (device nodes are left out: no root needed)."""
    for m in members:
        path = dest / m.name
        if stat.S_ISDIR(m.mode):
            path.mkdir()
        elif stat.S_ISREG(m.mode):
            path.write_bytes(m.data)
            path.chmod(stat.S_IMODE(m.mode))
        elif stat.S_ISLNK(m.mode):
            path.symlink_to(m.data.decode())
    return dest


def run_in_image(root, *argv, loader=False):
    """Run an image program against the extracted image at ``root``, nothing of the host's.

    As root: chroot.  Otherwise, or with ``loader``: the image's own loader
    with only the image's library directory (and no ld.so.cache).
    """
    chroot = shutil.which("chroot")
    if os.geteuid() == 0 and chroot and not loader:
        cmd = [chroot, str(root), *argv]
    else:
        libdir = root / "usr/lib/x86_64-linux-gnu"
        cmd = [str(libdir / "ld-linux-x86-64.so.2"), "--inhibit-cache", "--library-path",
               str(libdir), str(root / argv[0].lstrip("/")), *argv[1:]]
    return subprocess.run(cmd, capture_output=True, text=True, env={}, timeout=120)


@pytest.fixture(scope="session")
def repo_snapshot(tmp_path_factory):
    """aether/, init/ and rootfs/ as they were when the session started."""
    snap = tmp_path_factory.mktemp("repo")
    for name in ("aether", "init", "rootfs"):
        shutil.copytree(REPO / name, snap / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return snap


@pytest.fixture(scope="session")
def debroot(tmp_path_factory):
    """The Debian packages unpacked into a merged-/usr staging tree."""
    return debs.extract(debs.fetch(), tmp_path_factory.mktemp("debroot") / "root")


@pytest.fixture(scope="session")
def build_epoch():
    """SOURCE_DATE_EPOCH of the test builds."""
    return EPOCH


@pytest.fixture(scope="session")
def builds(tmp_path_factory, repo_snapshot):
    """Two complete rootfs builds of the same inputs, in different work directories."""
    return [rootfs.build(tmp_path_factory.mktemp(f"build{i}") / "work", repo_snapshot,
                         EPOCH, "0123456789ab")
            for i in (1, 2)]


@pytest.fixture(scope="session")
def image_members(builds):
    return parse_newc(cpio.decompress(builds[0].archive))


@pytest.fixture(scope="session")
def image_root(tmp_path_factory, image_members):
    """The first build's initramfs, unpacked."""
    return extract(image_members, tmp_path_factory.mktemp("image"))


@pytest.fixture(scope="session")
def newc():
    """The newc reader: newc(bytes) -> [Member]."""
    return parse_newc


@pytest.fixture(scope="session")
def in_image():
    """in_image(root, *argv) runs a program of the unpacked image at root."""
    return run_in_image


@pytest.fixture
def closed_port():
    """A local TCP port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
