"""The root filesystem: the staging tree of docs/interfaces.md and its archive.

The tree is built from selections, never by copying whole packages: the
interpreter, exactly the shared libraries elfdeps finds, the stdlib that
stdlib selects, the aether package, /init, the rootfs/ overlay (``*.j2``
files rendered with jinja2) and empty mount points.  Device nodes exist only
as archive entries, so the build needs no root.  Modes are normalised (0755 or
0644 by the executable bit, except a few directories), owners and times are
the archive's, so the archive depends on the inputs only.
"""

import dataclasses
import os
import shutil
from pathlib import Path

from . import cpio, debs, elfdeps, hosttools, stdlib, templates
from . import packages as agent_packages
from .log import BuildError, info, stage
from .templates import aether_version, render  # noqa: F401 - part of this module's interface

# Debian's merged /usr: the top-level names are symlinks into /usr.
USR_LINKS = {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64"}
MOUNT_POINTS = ("proc", "sys", "dev", "run", "tmp", "var/lib/aether", "root")
DIR_MODES = {"tmp": 0o1777, "root": 0o700}
# (path, major, minor, mode): what PID 1 needs before it mounts devtmpfs.
DEVICES = (
    ("dev/console", 5, 1, 0o600),
    ("dev/null", 1, 3, 0o666),
    ("dev/urandom", 1, 9, 0o666),
)

# The no-shell guard.  Executable directories may hold only the interpreter,
# and no file anywhere may carry a shell's or a multi-call binary's name.
BIN_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin")
ALLOWED_IN_BIN = {"python3.11", "python3"}
FORBIDDEN_NAMES = {
    "sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish",
    "busybox", "toybox", "coreutils",
    "ls", "cat", "cp", "mv", "rm", "ln", "mkdir", "chmod", "chown", "echo", "env",
    "mount", "umount", "ps", "kill", "login", "su", "sudo", "getty", "agetty",
}


@dataclasses.dataclass(frozen=True)
class Image:
    """One built initramfs and what the manifest says about it."""

    archive: Path
    debs: tuple
    entries: tuple
    uncompressed: int
    compressed: int
    modules: int


def _host(tree, image_path):
    return tree / image_path.lstrip("/")


def copy_path(src_root, tree, image_path):
    """Copy one file or symlink from ``src_root`` into ``tree``, same image path."""
    src = _host(src_root, image_path)
    dest = _host(tree, image_path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        target = os.readlink(src)
        if dest.is_symlink() and os.readlink(dest) == target:
            return
        dest.symlink_to(target)
    else:
        shutil.copyfile(src, dest)
        shutil.copymode(src, dest)


def _skeleton(tree):
    if tree.exists():
        shutil.rmtree(tree)
    for name, target in USR_LINKS.items():
        (tree / target).mkdir(parents=True, exist_ok=True)
        (tree / name).symlink_to(target)
    for mount_point in MOUNT_POINTS:
        (tree / mount_point).mkdir(parents=True, exist_ok=True)


def _interpreter(debroot, tree, selection):
    """python3.11, its python3 link and the closure of shared libraries it and the
    shipped extension modules need."""
    elves = [stdlib.PYTHON, *selection.extensions]
    with stage(f"shared-library closure of {len(elves)} ELF files (pyelftools)"):
        needed = elfdeps.closure(debroot, elves)
        for image_path in needed:
            copy_path(debroot, tree, image_path)
        (tree / "usr/bin/python3").symlink_to("python3.11")
    libs = sorted(Path(p).name for p in needed if p not in elves
                  and not _host(debroot, p).is_symlink())
    info(f"{len(libs)} shared libraries ship: {', '.join(libs)}")


def _init(repo, tree):
    src = repo / "init" / "init"
    if not src.is_file():
        raise BuildError(f"{src} is missing", hint="it is the PID 1 entry point: restore it")
    (tree / "init").write_bytes(src.read_bytes())
    (tree / "init").chmod(0o755)


def _overlay(repo, tree, context):
    """rootfs/ copied over the tree; ``name.j2`` files rendered to ``name``."""
    overlay = repo / "rootfs"
    for src in sorted(overlay.rglob("*")):
        rel = src.relative_to(overlay)
        dest = tree / rel
        if src.is_dir() and not src.is_symlink():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dest.symlink_to(os.readlink(src))
        elif src.suffix == templates.SUFFIX:
            templates.render_file(src, dest.with_suffix(""), context, label=f"rootfs/{rel}")
        else:
            shutil.copyfile(src, dest)
            shutil.copymode(src, dest)


def assemble(debroot, repo, tree, context):
    """Build the staging tree at ``tree``; return the stdlib Selection."""
    _skeleton(tree)
    selection = stdlib.select(debroot, repo, repo / "init" / "init")
    stdlib.install(selection, debroot, tree)
    stdlib.install_package(debroot, repo / stdlib.PACKAGE, tree)
    _interpreter(debroot, tree, selection)
    _init(repo, tree)
    with stage("rootfs/ overlay and templates"):
        _overlay(repo, tree, context)
    return selection


def _mode(rel, path):
    """The mode a tree path has in the image: 0755 or 0644 by the executable bit, DIR_MODES."""
    if path.is_dir():
        return DIR_MODES.get(rel, 0o755)
    return 0o755 if path.lstat().st_mode & 0o111 else 0o644


def normalize_modes(tree):
    """Give every directory and file in ``tree`` its image mode, so that an archive made
    from the tree by another tool (mksquashfs for the disk image) agrees with the cpio."""
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                path.chmod(_mode(path.relative_to(tree).as_posix(), path))


def _entry(tree, path):
    rel = path.relative_to(tree).as_posix()
    if path.is_symlink():
        return cpio.Entry(rel, cpio.SYMLINK, 0o777, target=os.readlink(path))
    if path.is_dir():
        return cpio.Entry(rel, cpio.DIR, _mode(rel, path))
    if path.is_file():
        return cpio.Entry(rel, cpio.FILE, _mode(rel, path), data=path.read_bytes())
    raise BuildError(f"{path}: only directories, files and symlinks may be in the tree")


def entries(tree):
    """Archive entries of every path under ``tree``, plus the device nodes."""
    found = []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            found.append(_entry(tree, Path(dirpath) / name))
    found += [cpio.Entry(path, cpio.CHAR, mode, major=major, minor=minor)
              for path, major, minor, mode in DEVICES]
    return sorted(found, key=cpio.sort_key)


def check_no_shell(image_entries):
    """The image must have no shell, coreutils or busybox: fail naming the culprit."""
    bad = []
    for entry in image_entries:
        parent, _, name = entry.path.rpartition("/")
        if entry.kind != cpio.DIR and name in FORBIDDEN_NAMES:
            bad.append(f"/{entry.path} (a shell or core utility's name)")
        elif parent in BIN_DIRS and name not in ALLOWED_IN_BIN:
            allowed = ", ".join(sorted(ALLOWED_IN_BIN))
            bad.append(f"/{entry.path} (only {allowed} may be in /{parent})")
    if bad:
        raise BuildError("the image must not contain a shell or core utilities:\n  "
                         + "\n  ".join(bad),
                         hint="remove them from rootfs/ or from what the build selects")


def build(work, repo, epoch, build_id=None, agents=()):
    """Fetch, select, assemble and archive: work/rootfs.cpio.lz4, described by an Image.
    ``agents``: package directories baked in (packages.py)."""
    hosttools.require("apt-get", "dpkg-deb", "tar", "lz4")
    work, repo = Path(work).resolve(), Path(repo).resolve()
    work.mkdir(parents=True, exist_ok=True)
    packages = debs.fetch()
    debroot = debs.extract(packages, work / "debroot")
    context = {"version": aether_version(repo), "build_id": build_id}
    selection = assemble(debroot, repo, work / "tree", context)
    agent_packages.bake(repo, work / "tree", agents)
    normalize_modes(work / "tree")
    image_entries = entries(work / "tree")
    check_no_shell(image_entries)
    raw = work / "rootfs.cpio"
    archive = work / ("rootfs.cpio" + cpio.SUFFIX)
    with stage(f"write the newc cpio ({len(image_entries)} entries, mtime {epoch})"):
        with open(raw, "wb") as out:
            uncompressed = cpio.write(image_entries, epoch, out)
    with stage(f"compress with lz4 -l -{cpio.LZ4_LEVEL}"):
        cpio.compress(raw, archive)
    compressed = archive.stat().st_size
    info(f"initramfs: {uncompressed:,} bytes, {compressed:,} compressed")
    return Image(archive, tuple(packages), tuple(image_entries), uncompressed, compressed,
                 selection.count)
