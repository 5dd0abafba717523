"""Host tools the build needs, each named with the Debian package that provides it."""

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
    "qemu-system-x86_64": "qemu-system-x86",
}


def require(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pkgs = sorted({PACKAGES.get(t, t) for t in missing})
        raise BuildError(
            f"missing host tool(s): {', '.join(missing)}",
            hint=f"apt-get install {' '.join(pkgs)}  (or run: make deps)",
        )
