"""scripts/build-image: the build's stages, ``kernel``, ``rootfs``, ``all`` or ``disk``.

Outputs go to out/images/ (bzImage, rootfs.cpio.lz4, manifest.json; the disk
stage adds disk.img and disk.qcow2 and the manifest's ``disk`` record), each
written to a temporary name and renamed, so a failed build never leaves a
half-written file under the real name.  The disk stage builds from what the
rootfs stage staged (out/build/rootfs/tree) and checks first that the tree and
bzImage are the ones manifest.json describes.  A BuildError ends the build
with ``error: <what>`` and a hint, exit status 1.
"""

import argparse
import errno
import json
import os
import shutil
import subprocess
import sys
import time

from . import disk, kernel, manifest, paths, rootfs, sparse
from .log import BuildError, info

# SOURCE_DATE_EPOCH when neither the environment nor git gives one
# (2024-01-01 00:00:00 UTC).
FALLBACK_EPOCH = 1704067200


def _git(*args):
    try:
        proc = subprocess.run(["git", "-C", str(paths.REPO), *args],
                              capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def source_date_epoch():
    """$SOURCE_DATE_EPOCH, else the last commit's time, else FALLBACK_EPOCH."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is not None:
        if not value.isdigit():
            raise BuildError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds",
                             hint="unset it, or set it to e.g. $(git log -1 --format=%ct)")
        return int(value)
    commit_time = _git("log", "-1", "--format=%ct")
    return int(commit_time) if commit_time else FALLBACK_EPOCH


def build_id():
    """The commit being built (12 hex digits, '-dirty' with local changes), or None."""
    return _git("describe", "--always", "--dirty", "--abbrev=12")


def publish(src, dest):
    """Copy ``src`` to ``dest`` atomically (temporary file in the same directory, rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def publish_sparse(src, dest):
    """Move ``src`` to ``dest`` keeping its holes (a sparse copy across file systems)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dest)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        sparse.copy(src, dest)


def publish_text(text, dest):
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, dest)


def build_kernel():
    """kernel.build() and out/images/bzImage; return the kernel's manifest record."""
    done = kernel.build()
    bzimage = paths.images_dir() / "bzImage"
    publish(done / "bzImage", bzimage)
    info(f"{bzimage}: {bzimage.stat().st_size:,} bytes")
    return manifest.kernel(bzimage, done)


def build_rootfs(kernel_record=None, agents=()):
    """out/images/rootfs.cpio.lz4 and manifest.json (``agents``: package directories baked in)."""
    images = paths.images_dir()
    epoch = source_date_epoch()
    image = rootfs.build(paths.out_dir() / "build" / "rootfs", paths.REPO, epoch, build_id(), agents)
    if kernel_record is None and (images / "bzImage").exists():
        kernel_record = manifest.kernel(images / "bzImage")
    publish(image.archive, images / image.archive.name)
    (images / "rootfs.cpio.zst").unlink(missing_ok=True)   # its name before lz4 (issue 14)
    publish_text(manifest.dumps(manifest.build(image, epoch, kernel_record)),
                 images / "manifest.json")
    info(f"{images}/{image.archive.name}: {image.uncompressed:,} bytes unpacked, "
         f"{image.compressed:,} compressed; manifest.json")
    for name in DISK_FILES:
        if (images / name).exists():
            (images / name).unlink()
            info(f"removed {images / name}: it was made from the previous build (make disk)")


DISK_FILES = ("disk.img", "disk.qcow2")
DISK_TOOLS = ("squashfs-tools", "dosfstools", "mtools", "e2fsprogs", "fdisk", "qemu-utils",
              "grub-common")


def _staged_inputs():
    """(manifest, tree, bzImage) of the last rootfs build, checked against each other."""
    images = paths.images_dir()
    tree = paths.out_dir() / "build" / "rootfs" / "tree"
    bzimage = images / "bzImage"
    path = images / "manifest.json"
    hint = "run: make image   (then make disk)"
    if not (path.exists() and tree.is_dir() and bzimage.exists()):
        raise BuildError(f"the disk is made from {tree}, {bzimage} and {path}; "
                         "some are missing", hint=hint)
    record = json.loads(path.read_text())
    if manifest.file_records(rootfs.entries(tree)) != record["files"]:
        raise BuildError(f"{tree} is not the tree {path} describes (changed since the "
                         "image was built)", hint=hint)
    if (record.get("kernel") or {}).get("sha256") != disk.sha256_file(bzimage):
        raise BuildError(f"{bzimage} is not the kernel {path} describes", hint=hint)
    return record, tree, bzimage


def build_disk():
    """out/images/disk.img and disk.qcow2, and the manifest's ``disk`` record."""
    record, tree, bzimage = _staged_inputs()
    images = paths.images_dir()
    for name in DISK_FILES:
        (images / name).unlink(missing_ok=True)
    epoch = record["source_date_epoch"]
    built = disk.build(tree, bzimage, paths.out_dir() / "build" / "disk", epoch, rootfs.DEVICES)
    publish_sparse(built.path, images / "disk.img")
    publish_sparse(built.qcow2, images / "disk.qcow2")
    record["disk"] = manifest.disk(built, images, manifest.host_tools(DISK_TOOLS))
    publish_text(manifest.dumps(record), images / "manifest.json")
    raw = images / "disk.img"
    info(f"{raw}: {raw.stat().st_size:,} bytes, {sparse.allocated(raw):,} allocated (sparse); "
         f"disk.qcow2: {(images / 'disk.qcow2').stat().st_size:,} bytes")


def run(target, agents=()):
    if target == "disk":
        return build_disk()
    record = build_kernel() if target in ("kernel", "all") else None
    if target in ("rootfs", "all"):
        build_rootfs(record, agents)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="build-image", description="Build the AetherOS kernel and initramfs into out/images/.")
    parser.add_argument("target", choices=("kernel", "rootfs", "all", "disk"),
                        help="kernel: bzImage; rootfs: rootfs.cpio.lz4 and manifest.json; "
                             "all: both; disk: disk.img and disk.qcow2 from what `all` built")
    parser.add_argument("--agents", default="",
                        help="agent package directories to bake in, separated by spaces "
                             "(make image AGENTS=\"dir1 dir2\"; docs/agents.md)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        run(args.target, args.agents.split())
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    info(f"build-image {args.target} done in {time.monotonic() - start:.1f}s")
    return 0
