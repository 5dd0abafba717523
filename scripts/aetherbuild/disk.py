"""out/images/disk.img: a GPT disk that boots on legacy BIOS and UEFI, and its qcow2 copy.

Made from the staged tree the initramfs is made from (so both hold the same
files), the kernel and Debian's GRUB, in disklayout's layout, without root,
loop devices or mounting anything:

1. the root file system (squashfs) and the GRUB packages;
2. every identifier, derived from a digest of those inputs and the epoch;
3. GRUB's images and grub.cfg (root=PARTUUID=<the root partition's GUID>);
4. the EFI system partition (FAT32) and the empty data partition (ext4);
5. the partition table (``sfdisk`` on the file), each partition copied in
   sparsely, GRUB's boot code in sector 0, and the table read back and checked.

``qemu-img convert`` then makes disk.qcow2 (compressed; deterministic too).
"""

import dataclasses
import hashlib
import json
import os
import subprocess
from pathlib import Path

from . import debs, disklayout, fsimages, grub, hosttools, sparse
from .disklayout import SECTOR
from .log import BuildError, info, stage

# Bump when the recipe changes in a way that changes the output (it is part of the seed).
RECIPE = "1"
# Files of board/ the disk is made with (the Buildroot tree's post-image.sh reads them too).
BOARD_FILES = (grub.TEMPLATE, fsimages.MKE2FS_CONF)


@dataclasses.dataclass(frozen=True)
class Disk:
    """A built disk image and what the manifest says about it."""

    path: Path
    qcow2: Path
    ids: disklayout.Ids
    cmdline: str
    partitions: tuple
    boot: dict
    boot_debs: tuple
    board_files: tuple = BOARD_FILES


def sha256(data):
    return hashlib.sha256(data).hexdigest()


sha256_file = debs.sha256_file


def seed(epoch, root_image, kernel, boot_debs):
    """The digest every identifier on the disk is derived from."""
    h = hashlib.sha256(f"aetheros-disk recipe={RECIPE} epoch={epoch}\n".encode())
    for part in disklayout.PARTITIONS:
        h.update(repr(dataclasses.astuple(part)).encode())
    h.update(f"root {sha256_file(root_image)}\nkernel {sha256_file(kernel)}\n".encode())
    for template in BOARD_FILES:
        h.update(f"{template.name} {sha256_file(template)}\n".encode())
    for deb in sorted(boot_debs, key=lambda d: d.name):
        h.update(f"deb {deb.name} {deb.version} {deb.sha256}\n".encode())
    return h.digest()


def _fits(image, part):
    size = Path(image).stat().st_size
    if size > part.size:
        raise BuildError(f"{Path(image).name} is {size:,} bytes; the {part.name} partition holds "
                         f"{part.size:,}",
                         hint=f"make the {part.role} partition bigger in "
                              "scripts/aetherbuild/disklayout.py")
    return size


def sfdisk_script(ids):
    lines = ["label: gpt", f"label-id: {ids.disk_guid.upper()}", "unit: sectors",
             f"first-lba: {disklayout.FIRST_LBA}", f"sector-size: {SECTOR}", ""]
    for part in disklayout.PARTITIONS:
        lines.append(f"start={disklayout.start(part) // SECTOR}, size={part.size // SECTOR}, "
                     f"type={part.type_guid.upper()}, uuid={ids.partuuid(part.role).upper()}, "
                     f'name="{part.name}"')
    return "\n".join(lines) + "\n"


def read_table(path):
    """The partition table of a disk image file, as sfdisk --json reads it."""
    proc = subprocess.run([hosttools.which("sfdisk"), "--json", str(path)],
                          capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"))
    if proc.returncode != 0:
        raise BuildError(f"sfdisk cannot read the partition table of {path}: "
                         f"{proc.stderr.strip()}")
    return json.loads(proc.stdout)["partitiontable"]


def check_table(table, ids):
    """The table on the disk must be exactly the layout (sfdisk could round or reorder)."""
    want = [(disklayout.start(p) // SECTOR, p.size // SECTOR, p.type_guid,
             ids.partuuid(p.role), p.name) for p in disklayout.PARTITIONS]
    got = [(p["start"], p["size"], p["type"].lower(), p["uuid"].lower(), p.get("name"))
           for p in table["partitions"]]
    if table["id"].lower() != ids.disk_guid or got != want:
        raise BuildError(f"the partition table written is not the layout:\n    want {want}\n"
                         f"    got  {got}", hint="check sfdisk's version and options in disk.py")


def partition_table(path, ids):
    proc = subprocess.run([hosttools.which("sfdisk"), "--no-reread", "--no-tell-kernel", "-q",
                           str(path)], input=sfdisk_script(ids), capture_output=True, text=True,
                          env=dict(os.environ, LC_ALL="C"))
    if proc.returncode != 0:
        raise BuildError(f"sfdisk could not write the partition table: {proc.stderr.strip()}")


def _record(part, ids, content, image_bytes, image_sha256, **extra):
    return {"number": part.number, "name": part.name, "type": part.type_guid,
            "uuid": ids.partuuid(part.role), "start": disklayout.start(part), "size": part.size,
            "content": content, "content_bytes": image_bytes, "content_sha256": image_sha256,
            **extra}


def _write(fd, part, image):
    """Copy a partition image into its place; return (bytes, sha256) of the image."""
    size = _fits(image, part)
    sparse.copy_into(image, fd, disklayout.start(part))
    return size, sha256_file(image)


def assemble(path, ids, boot_code, core, images):
    """Write the table, then each partition, then the boot code, into a new sparse file."""
    path = Path(path)
    path.unlink(missing_ok=True)
    with open(path, "wb") as f:
        f.truncate(disklayout.disk_size())
    partition_table(path, ids)
    written = {}
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        bios = disklayout.by_role("bios")
        os.pwrite(fd, core, disklayout.start(bios))
        for role, image in images.items():
            written[role] = _write(fd, disklayout.by_role(role), image)
        # After sfdisk: a new label rewrites sector 0.  Only the code area; the
        # protective MBR's table stays sfdisk's.
        os.pwrite(fd, boot_code, 0)
    finally:
        os.close(fd)
    check_table(read_table(path), ids)
    return written


def qcow2(raw, out):
    """Compressed qcow2 of ``raw``, written in order (deterministic for the same input)."""
    out = Path(out)
    out.unlink(missing_ok=True)
    proc = subprocess.run([hosttools.which("qemu-img"), "convert", "-q", "-f", "raw",
                           "-O", "qcow2", "-c", "-o", "compression_type=zlib", str(raw), str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"qemu-img convert failed: {proc.stderr.strip()}")
    return out


@dataclasses.dataclass(frozen=True)
class Loader:
    """GRUB for this disk: boot code for sector 0, core.img, BOOTX64.EFI, grub.cfg."""

    boot_code: bytes
    core: bytes
    efi: bytes
    cfg: str

    def record(self):
        return {"bios": {"boot_code_sha256": sha256(self.boot_code),
                         "core_img_sha256": sha256(self.core), "prefix": grub.bios_prefix(),
                         "modules": list(grub.MODULES_BIOS)},
                "uefi": {"path": "/EFI/BOOT/BOOTX64.EFI", "sha256": sha256(self.efi),
                         "prefix": grub.EFI_PREFIX, "modules": list(grub.MODULES_EFI)},
                "grub_cfg_sha256": sha256(self.cfg.encode())}


def boot_loader(grub_root, work, ids):
    boot_code, core = grub.bios_images(grub_root, work)
    return Loader(boot_code, core, grub.efi_image(grub_root, work),
                  grub.config(ids.partuuid("root")))


def esp_files(kernel, loader):
    """What goes on the EFI system partition: {path: bytes}."""
    cfg = loader.cfg.encode()
    return {"/EFI/BOOT/BOOTX64.EFI": loader.efi, f"{grub.EFI_PREFIX}/grub.cfg": cfg,
            f"{grub.BIOS_CONFIG_DIR}/grub.cfg": cfg, "/bzImage": Path(kernel).read_bytes()}


def filesystems(work, epoch, ids, root, files):
    """{role: image file} of the partitions that hold file systems."""
    esp = disklayout.by_role("esp")
    with stage(f"EFI system partition: FAT32, {len(files)} files"):
        fat = fsimages.fat(work / "esp.vfat", esp.size, files, epoch, ids.fat_volume_id,
                           disklayout.ESP_LABEL, disklayout.start(esp) // SECTOR, work)
    with stage(f"data partition: empty ext4 labelled {disklayout.DATA_LABEL}"):
        data = fsimages.ext4(work / "data.ext4", disklayout.by_role("data").size,
                             disklayout.DATA_LABEL, ids.ext4_uuid, ids.ext4_hash_seed, epoch)
    return {"esp": fat, "root": root, "data": data}


def records(ids, loader, files, written):
    """The manifest's record of every partition."""
    role = disklayout.by_role
    return (
        _record(role("bios"), ids, "GRUB i386-pc core.img", len(loader.core),
                sha256(loader.core)),
        _record(role("esp"), ids, "vfat", *written["esp"], label=disklayout.ESP_LABEL,
                volume_id=ids.fat_volume_id,
                files=[{"path": p, "size": len(d), "sha256": sha256(d)}
                       for p, d in sorted(files.items())]),
        _record(role("root"), ids, "squashfs", *written["root"],
                compression=fsimages.SQUASHFS_COMPRESSION),
        _record(role("data"), ids, "ext4", *written["data"], label=disklayout.DATA_LABEL,
                fs_uuid=ids.ext4_uuid),
    )


def build(tree, kernel, work, epoch, devices):
    """Build work/disk.img and work/disk.qcow2 from the staged ``tree`` and ``kernel``."""
    hosttools.require("mksquashfs", "mkfs.fat", "mmd", "mcopy", "mkfs.ext4", "sfdisk", "qemu-img")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    with stage("root file system: squashfs of the staged tree"):
        root = fsimages.squashfs(tree, work / "root.squashfs", epoch, devices)
        _fits(root, disklayout.by_role("root"))
    boot_debs, grub_root = grub.fetch(work / "grub")
    ids = disklayout.derive(seed(epoch, root, kernel, boot_debs))
    info(f"disk {ids.disk_guid}, root partition {ids.partuuid('root')}")
    loader = boot_loader(grub_root, work, ids)
    files = esp_files(kernel, loader)
    images = filesystems(work, epoch, ids, root, files)
    with stage(f"disk image: GPT, {len(disklayout.PARTITIONS)} partitions, "
               f"{disklayout.disk_size() // disklayout.MIB} MiB"):
        written = assemble(work / "disk.img", ids, loader.boot_code, loader.core, images)
    with stage("disk.qcow2 (qemu-img convert, compressed)"):
        image_qcow2 = qcow2(work / "disk.img", work / "disk.qcow2")
    return Disk(work / "disk.img", image_qcow2, ids, grub.kernel_cmdline(loader.cfg),
                records(ids, loader, files, written), loader.record(), tuple(boot_debs))
