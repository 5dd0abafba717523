"""Pure-Python dependencies of a package, resolved and vendored at pack time, on the host.

``requires = ["name==1.2.3", ...]`` in agent.toml is handed to pip (the host's, run as
``python -m pip``) with ``--only-binary=:all: --python-version 3.11 --target`` into a
scratch directory: only wheels, for the image's Python (Debian 12's 3.11), and nothing
is built.  Every wheel installed must be pure (``Root-Is-Purelib: true``) and hold no
compiled file (.so, .pyd, .dylib, .dll); a dependency with compiled parts is refused
with its name.  What pip leaves that ties the result to this host is dropped (``bin/``
scripts with this host's interpreter in their first line, ``direct_url.json`` with the
path a wheel came from).  The result goes into the archive as ``vendor/``; the package
directory itself is not changed.  The image never runs this module.
"""

import os
import subprocess
import sys
import tempfile

from . import format as fmt

PYTHON = "3.11"
COMPILED = (".so", ".pyd", ".dylib", ".dll")
PIP_SECONDS = 600


def pack_with_requires(directory, out_dir=None, find_links=None, no_index=False):
    """Pack directory (format.pack) with its requires vendored; returns (path, sha256)."""
    pm, _files = fmt.read_dir(directory)
    if not pm.requires:
        return fmt.pack(directory, out_dir)
    with tempfile.TemporaryDirectory(prefix="aether-vendor-") as target:
        install(pm.requires, target, find_links, no_index)
        return fmt.pack(directory, out_dir, vendored=fmt.collect(target))


def install(requires, target, find_links=None, no_index=False):
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-compile", "--only-binary=:all:", "--python-version", PYTHON, "--target", target]
    if find_links:
        cmd += ["--find-links", find_links]
    if no_index:
        cmd.append("--no-index")
    try:
        done = subprocess.run(cmd + ["--", *requires], capture_output=True, text=True, timeout=PIP_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise fmt.PackageError(f"pip could not be run for requires {requires}: {e}") from None
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise fmt.PackageError(f"requires {requires}: pip found no pure-Python wheel for Python {PYTHON} "
                               f"(only wheels are vendored, nothing is built): {tail[:600]}")
    _drop_host_paths(target)
    check_pure(target)


def _drop_host_paths(target):
    import shutil
    shutil.rmtree(os.path.join(target, "bin"), ignore_errors=True)
    for entry in os.listdir(target):
        if entry.endswith(".dist-info"):
            try:
                os.unlink(os.path.join(target, entry, "direct_url.json"))
            except FileNotFoundError:
                pass


def check_pure(target):
    """Refuse, naming it, any installed distribution that is not pure Python."""
    for entry in sorted(os.listdir(target)):
        if not entry.endswith(".dist-info"):
            continue
        dist = entry[:-len(".dist-info")]
        wheel = _read(os.path.join(target, entry, "WHEEL"))
        if "root-is-purelib: true" not in wheel.lower():
            raise fmt.PackageError(f"dependency {dist} has compiled parts (its wheel is not pure Python: "
                                   "Root-Is-Purelib is not true); the image runs pure Python only: "
                                   "drop it from requires or find a pure alternative")
        for line in _read(os.path.join(target, entry, "RECORD")).splitlines():
            path = line.split(",")[0]
            if path.endswith(COMPILED):
                raise fmt.PackageError(f"dependency {dist} has compiled parts ({path}); the image runs "
                                       "pure Python only: drop it from requires")
    for root, _dirs, files in os.walk(target):
        for name in files:
            if name.endswith(COMPILED):
                raise fmt.PackageError(f"a dependency has compiled parts: "
                                       f"{os.path.relpath(os.path.join(root, name), target)}; drop it from requires")


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(1 << 20)
    except OSError:
        return ""
