"""GRUB, the disk image's boot loader on legacy BIOS (i386-pc) and UEFI (x86_64-efi).

Why GRUB: one boot loader and one grub.cfg (board/board/aether/grub.cfg) for
both kinds of firmware; its images are made with ``grub-mkimage`` from
Debian's packages without root or a block device; and it is what Buildroot
builds for x86 (BR2_TARGET_GRUB2 with the i386-pc and x86_64-efi targets), so
the board/ tree boots the same way.  Syslinux would need gptmbr.bin and its
installer, neither of which Buildroot provides, and syslinux.efi is the less
trodden path on real UEFI firmware; systemd-boot is UEFI-only and tied to
systemd in Buildroot.

The GRUB packages (grub-common for grub-mkimage, grub-pc-bin and
grub-efi-amd64-bin for the modules) are fetched and hash-checked like the
image's own packages, unpacked into the work directory, and listed in the
manifest; the unpacked grub-mkimage runs with the host's shared libraries
(those of Debian's grub-common).

Legacy BIOS on GPT: boot.img's first 440 bytes go in sector 0 and core.img in
the BIOS boot partition.  grub-bios-setup would tell boot.img where core.img
is and core.img's first sector (diskboot) where the rest of it is; it needs a
block device, so :func:`bios_images` makes those two writes itself.
"""

import subprocess
from pathlib import Path

from . import debs, disklayout, paths
from .log import BuildError, stage

PACKAGES = ("grub-common", "grub-pc-bin", "grub-efi-amd64-bin")

# Modules built into the images (nothing is loaded from disk later).  The board's
# defconfig sets BR2_TARGET_GRUB2_BUILTIN_MODULES_PC/_EFI to the same lists.
MODULES_BIOS = ("biosdisk", "part_gpt", "fat", "normal", "linux", "configfile", "echo",
                "test", "serial", "terminal")
MODULES_EFI = ("part_gpt", "fat", "normal", "linux", "configfile", "echo", "test",
               "serial", "terminal", "efi_gop")

# Where each image looks for grub.cfg.  UEFI: the directory BOOTX64.EFI was loaded
# from.  BIOS: /boot/grub on the ESP of the disk the BIOS booted ("(,gptN)").
EFI_PREFIX = "/EFI/BOOT"
BIOS_CONFIG_DIR = "/boot/grub"

# boot.img (grub-core/boot/i386/pc/boot.S): the 64-bit LBA of core.img's first
# sector; diskboot.img (diskboot.S): its block list, whose first entry's 64-bit
# start sector and 16-bit length sit at the end of the sector.
BOOT_KERNEL_SECTOR = 0x5C
DISKBOOT_LIST_START = 0x1F4
DISKBOOT_LIST_LEN = 0x1FC
CODE_BYTES = 440                   # boot code ahead of the MBR's disk signature and table

TEMPLATE = paths.REPO / "board" / "board" / "aether" / "grub.cfg"
ROOT_PLACEHOLDER = "@ROOT_PARTUUID@"


def fetch(work):
    """The GRUB packages, fetched and unpacked into ``work``: (list of debs.Deb, root)."""
    packages = debs.fetch(PACKAGES)
    return packages, debs.extract(packages, Path(work))


def bios_prefix():
    return f"(,gpt{disklayout.by_role('esp').number}){BIOS_CONFIG_DIR}"


def mkimage(root, target, prefix, modules, out):
    """Run the unpacked grub-mkimage for ``target`` (i386-pc, x86_64-efi)."""
    tool = root / "usr/bin/grub-mkimage"
    cmd = [str(tool), "-d", str(root / "usr/lib/grub" / target), "-O", target,
           "-o", str(out), "-p", prefix, *modules]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise BuildError(f"cannot run {tool}: {e}") from e
    if proc.returncode != 0:
        raise BuildError(f"grub-mkimage -O {target} failed ({proc.returncode}): "
                         f"{proc.stderr.strip()}",
                         hint="a missing shared library means the host lacks grub-common's "
                              "dependencies: apt-get install grub-common (or make deps)")
    return Path(out)


def _u64(data, offset):
    return int.from_bytes(data[offset:offset + 8], "little")


def patch_bios(boot_img, core_img, core_lba):
    """(boot code, core.img) for a core.img written at sector ``core_lba``.

    What grub-bios-setup does for a core.img in a BIOS boot partition: boot.img
    loads sector ``core_lba`` (diskboot), diskboot loads the sectors after it.
    """
    boot, core = bytearray(boot_img), bytearray(core_img)
    if len(boot) != 512 or _u64(boot, BOOT_KERNEL_SECTOR) != 1:
        raise BuildError("GRUB's boot.img does not have the expected layout "
                         f"(kernel sector at {BOOT_KERNEL_SECTOR:#x})",
                         hint="GRUB changed: check the offsets in scripts/aetherbuild/grub.py "
                              "against grub-core/boot/i386/pc/boot.S")
    sectors = int.from_bytes(core[DISKBOOT_LIST_LEN:DISKBOOT_LIST_LEN + 2], "little")
    if _u64(core, DISKBOOT_LIST_START) != 2 or (sectors + 1) * 512 < len(core):
        raise BuildError("GRUB's core.img does not start with the expected diskboot block list",
                         hint="GRUB changed: check the offsets in scripts/aetherbuild/grub.py "
                              "against grub-core/boot/i386/pc/diskboot.S")
    boot[BOOT_KERNEL_SECTOR:BOOT_KERNEL_SECTOR + 8] = core_lba.to_bytes(8, "little")
    core[DISKBOOT_LIST_START:DISKBOOT_LIST_START + 8] = (core_lba + 1).to_bytes(8, "little")
    return bytes(boot[:CODE_BYTES]), bytes(core)


def bios_images(root, work):
    """(boot code for sector 0, core.img for the BIOS boot partition)."""
    part = disklayout.by_role("bios")
    with stage(f"GRUB i386-pc core.img ({len(MODULES_BIOS)} modules, prefix {bios_prefix()})"):
        core = mkimage(root, "i386-pc", bios_prefix(), MODULES_BIOS, Path(work) / "core.img")
    data = core.read_bytes()
    if len(data) > part.size:
        raise BuildError(f"GRUB's core.img ({len(data):,} bytes) does not fit the "
                         f"{part.size_mib} MiB BIOS boot partition",
                         hint="fewer MODULES_BIOS, or a bigger partition in disklayout.py")
    boot_img = (root / "usr/lib/grub/i386-pc/boot.img").read_bytes()
    return patch_bios(boot_img, data, disklayout.start(part) // disklayout.SECTOR)


def efi_image(root, work):
    """BOOTX64.EFI: GRUB as an EFI application that reads grub.cfg beside itself."""
    with stage(f"GRUB x86_64-efi BOOTX64.EFI ({len(MODULES_EFI)} modules)"):
        return mkimage(root, "x86_64-efi", EFI_PREFIX, MODULES_EFI,
                       Path(work) / "BOOTX64.EFI").read_bytes()


def config(root_partuuid, template=TEMPLATE):
    """grub.cfg for a root partition GUID, from the board's template."""
    text = Path(template).read_text()
    if ROOT_PLACEHOLDER not in text:
        raise BuildError(f"{template} has no {ROOT_PLACEHOLDER}",
                         hint="the kernel's root=PARTUUID= must come from the disk build")
    return text.replace(ROOT_PLACEHOLDER, root_partuuid)


def kernel_cmdline(cfg):
    """The kernel command line of grub.cfg's first (default) entry."""
    for line in cfg.splitlines():
        words = line.split()
        if words[:1] == ["linux"]:
            return " ".join(words[2:])
    raise BuildError("grub.cfg has no `linux` line", hint=f"check {TEMPLATE}")
