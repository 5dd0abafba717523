"""Host tools the build needs, each named with the Debian package that provides it.

Tools are looked up on $PATH and then in /usr/sbin and /sbin, which are not on
an ordinary user's $PATH on Debian (mkfs.ext4, mkfs.fat, sfdisk live there and
need no root to work on plain files).
"""

import os
import shutil

from .log import BuildError

PACKAGES = {
    "apt-get": "apt",
    "dpkg-deb": "dpkg",
    "dpkg-query": "dpkg",
    "make": "make",
    "gcc": "gcc",
    "bc": "bc",
    "bison": "bison",
    "flex": "flex",
    "tar": "tar",
    "xz": "xz-utils",
    "zstd": "zstd",
    "lz4": "lz4",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "mksquashfs": "squashfs-tools",
    "mkfs.fat": "dosfstools",
    "mmd": "mtools",
    "mcopy": "mtools",
    "mkfs.ext4": "e2fsprogs",
    "sfdisk": "fdisk",
    "genimage": "genimage",
    "unsquashfs": "squashfs-tools",
    "fsck.fat": "dosfstools",
    "mtype": "mtools",
    "e2fsck": "e2fsprogs",
    "dumpe2fs": "e2fsprogs",
}


SBIN_DIRS = ("/usr/sbin", "/sbin")


def search_path():
    return os.pathsep.join([os.environ.get("PATH", os.defpath), *SBIN_DIRS])


def which(tool):
    """The full path of ``tool``; a BuildError naming its Debian package when it is missing."""
    found = shutil.which(tool, path=search_path())
    if found is None:
        require(tool)
    return found


def require(*tools):
    missing = [t for t in tools if shutil.which(t, path=search_path()) is None]
    if missing:
        pkgs = sorted({PACKAGES.get(t, t) for t in missing})
        raise BuildError(
            f"missing host tool(s): {', '.join(missing)}",
            hint=f"apt-get install {' '.join(pkgs)}  (or run: make deps)",
        )
