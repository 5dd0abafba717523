"""The disk image's layout: one table shared by the build, the tests and board/.

A GPT disk of 512-byte sectors, every partition aligned to 1 MiB::

    #  GPT name      type                       size     contents
    1  AETHER-BIOS   BIOS boot partition        1 MiB    GRUB's core.img (i386-pc, legacy BIOS)
    2  AETHER-ESP    EFI system partition       64 MiB   FAT32: EFI/BOOT/BOOTX64.EFI (GRUB
                                                         x86_64-efi), grub.cfg twice, bzImage
    3  AETHER-ROOT   Linux root (x86-64)        256 MiB  squashfs of the image tree (read-only)
    4  AETHER-DATA   Linux filesystem data      256 MiB  ext4 labelled AETHER-DATA:
                                                         /var/lib/aether

Sector 0 holds GRUB's boot.img (its first 440 bytes) ahead of the protective
MBR's partition table; board/board/aether/genimage.cfg describes the same
partitions for Buildroot (tests/unit/test_buildroot.py compares the two).

Every identifier on the disk (GPT disk and partition GUIDs, the FAT volume
id, the ext4 UUID and directory hash seed) is derived from a digest of the
build's inputs by :func:`derive`, so two builds of the same inputs are
bit-identical and a different input gives different identifiers.
"""

import dataclasses
import hashlib
import uuid

SECTOR = 512
MIB = 1 << 20
FIRST_LBA = MIB // SECTOR          # the first partition starts at 1 MiB
TAIL_BYTES = MIB                   # after the last partition: the backup GPT, 1 MiB aligned

BIOS_BOOT = "21686148-6449-6e6f-744e-656564454649"
ESP = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
ROOT_X86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
LINUX_DATA = "0fc63daf-8483-4772-8e79-3d69d8477de4"

DATA_LABEL = "AETHER-DATA"         # ext4 volume label and GPT name; aether/pid1/datadisk.py looks for it
ESP_LABEL = "AETHER-ESP"           # FAT volume label (at most 11 characters)


@dataclasses.dataclass(frozen=True)
class Partition:
    """One GPT entry.  ``role`` names it in the code: bios, esp, root, data."""

    number: int
    role: str
    name: str
    type_guid: str
    size_mib: int

    @property
    def size(self):
        return self.size_mib * MIB


PARTITIONS = (
    Partition(1, "bios", "AETHER-BIOS", BIOS_BOOT, 1),
    Partition(2, "esp", "AETHER-ESP", ESP, 64),
    Partition(3, "root", "AETHER-ROOT", ROOT_X86_64, 256),
    Partition(4, "data", DATA_LABEL, LINUX_DATA, 256),
)


def by_role(role):
    for part in PARTITIONS:
        if part.role == role:
            return part
    raise KeyError(role)


def start(part):
    """Byte offset of ``part`` on the disk: the partitions follow each other from 1 MiB."""
    offset = FIRST_LBA * SECTOR
    for p in PARTITIONS:
        if p is part:
            return offset
        offset += p.size
    raise KeyError(part)


def disk_size():
    last = PARTITIONS[-1]
    return start(last) + last.size + TAIL_BYTES


@dataclasses.dataclass(frozen=True)
class Ids:
    """Every identifier written to the disk, derived from the inputs' digest."""

    disk_guid: str
    partition_guids: dict          # role -> GUID
    fat_volume_id: str             # 8 hex digits
    ext4_uuid: str
    ext4_hash_seed: str

    def partuuid(self, role):
        return self.partition_guids[role]


def _guid(seed, purpose):
    """A random-looking (version 4, RFC 4122 variant) UUID that depends only on seed and purpose."""
    digest = hashlib.sha256(seed + b"\0" + purpose.encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def derive(seed):
    """The disk's identifiers for ``seed`` (bytes: a digest of every input of the disk)."""
    fat = hashlib.sha256(seed + b"\0fat-volume-id").hexdigest()[:8]
    return Ids(disk_guid=_guid(seed, "disk"),
               partition_guids={p.role: _guid(seed, f"partition-{p.role}") for p in PARTITIONS},
               fat_volume_id=fat,
               ext4_uuid=_guid(seed, "ext4-uuid"),
               ext4_hash_seed=_guid(seed, "ext4-hash-seed"))
