"""Run the Buildroot tree's post-image.sh outside Buildroot, on inputs the Debian build makes.

Buildroot cannot download its sources here, so its image stage is checked on
stand-ins: a BINARIES_DIR as Buildroot leaves it (bzImage, rootfs.squashfs,
grub.img, efi-part/EFI/BOOT/bootx64.efi) and a BUILD_DIR holding GRUB's
boot.img, all made from Debian's GRUB packages (GRUB 2.06, not Buildroot's
build of GRUB), and Debian's genimage.  With a Buildroot checkout (BUILDROOT_DIR)
post-image.sh runs from it and calls its support/scripts/genimage.sh;
without one, from a directory whose support/scripts/genimage.sh runs genimage
with the same arguments.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from aetherbuild import grub, hosttools  # noqa: E402

BOARD = REPO / "board" / "board" / "aether"
TOOLS = ("genimage", "mkfs.fat", "mcopy", "mkfs.ext4", "sfdisk")

# What support/scripts/genimage.sh does for post-image.sh, for runs without Buildroot.
GENIMAGE_STANDIN = """#!/bin/sh
set -e
[ "$1" = -c ] || { echo "usage: $0 -c CONFIG" >&2; exit 2; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
rm -rf "$BUILD_DIR/genimage.tmp"
genimage --rootpath "$root" --tmppath "$BUILD_DIR/genimage.tmp" \\
    --inputpath "$BINARIES_DIR" --outputpath "$BINARIES_DIR" --config "$2"
"""


def missing_tools():
    return [t for t in TOOLS if shutil.which(t, path=hosttools.search_path()) is None]


def buildroot_dir():
    value = os.environ.get("BUILDROOT_DIR")
    return Path(value) if value else None


def grub_inputs(work):
    """(core.img as grub-mkimage makes it, boot.img, BOOTX64.EFI) from Debian's GRUB."""
    work = Path(work)
    _debs, root = grub.fetch(work / "grub-root")
    core = grub.mkimage(root, "i386-pc", grub.bios_prefix(), grub.MODULES_BIOS, work / "grub.img")
    efi = grub.mkimage(root, "x86_64-efi", grub.EFI_PREFIX, grub.MODULES_EFI, work / "boot.efi")
    return core, root / "usr/lib/grub/i386-pc/boot.img", efi


def prepare(work, kernel, squashfs):
    """BINARIES_DIR and BUILD_DIR as Buildroot would leave them before post-image.sh."""
    work = Path(work)
    binaries, build = work / "images", work / "build"
    core, boot_img, efi = grub_inputs(work)
    (binaries / "efi-part/EFI/BOOT").mkdir(parents=True)
    shutil.copyfile(kernel, binaries / "bzImage")
    shutil.copyfile(squashfs, binaries / "rootfs.squashfs")
    shutil.copyfile(core, binaries / "grub.img")
    shutil.copyfile(efi, binaries / "efi-part/EFI/BOOT/bootx64.efi")
    grub_core = build / "grub2-2.06/build-i386-pc/grub-core"
    grub_core.mkdir(parents=True)
    shutil.copyfile(boot_img, grub_core / "boot.img")
    return binaries, build


def topdir(work):
    """Where post-image.sh runs: the Buildroot checkout, or a stand-in with genimage.sh."""
    if buildroot_dir():
        return buildroot_dir()
    top = Path(work) / "buildroot-standin"
    script = top / "support/scripts/genimage.sh"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(GENIMAGE_STANDIN)
    script.chmod(0o755)
    return top


def post_image(work, binaries, build, epoch):
    """Run board/board/aether/post-image.sh; return (disk.img, its output)."""
    config = Path(work) / "br2-config"
    config.write_text("")
    env = dict(os.environ, BINARIES_DIR=str(binaries), BUILD_DIR=str(build),
               BR2_CONFIG=str(config), HOST_DIR=str(Path(work) / "host"),
               BR2_EXTERNAL_AETHER_PATH=str(REPO / "board"), SOURCE_DATE_EPOCH=str(epoch),
               PATH=hosttools.search_path())
    proc = subprocess.run([str(BOARD / "post-image.sh"), str(binaries)], cwd=topdir(work),
                          env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"post-image.sh failed ({proc.returncode}):\n{output}")
    return binaries / "disk.img", output


def build(work, kernel, squashfs, epoch):
    """prepare() and post_image() in one: the disk.img Buildroot's image stage would make."""
    binaries, build_dir = prepare(work, kernel, squashfs)
    return post_image(work, binaries, build_dir, epoch)
