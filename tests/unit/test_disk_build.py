"""The disk image build: reproducible, laid out as disklayout says, same tree as the initramfs.

Two disk builds from the two rootfs builds of tests/unit/conftest.py (different
work directories, same inputs) take a few seconds each; every test here shares
them.  The kernel is a stand-in file: the disk build only copies it.
"""

import hashlib
import json
import os
import stat
import subprocess

import pytest

from aetherbuild import disk, disklayout, grub, hosttools, manifest, rootfs, sparse
from aetherbuild.log import BuildError

KERNEL = b"\x7fnot-a-kernel\0" * 100_000


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(tool, *args):
    return subprocess.run([hosttools.which(tool), *map(str, args)], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture(scope="session")
def kernel(tmp_path_factory):
    path = tmp_path_factory.mktemp("kernel") / "bzImage"
    path.write_bytes(KERNEL)
    return path


@pytest.fixture(scope="session")
def disks(builds, kernel, build_epoch, tmp_path_factory):
    """Two disk builds: the trees of the two rootfs builds, the same kernel and epoch."""
    return [disk.build(b.archive.parent / "tree", kernel, tmp_path_factory.mktemp(f"disk{i}"),
                       build_epoch, rootfs.DEVICES)
            for i, b in enumerate(builds)]


def test_two_builds_give_identical_disk_images(disks):
    first, second = disks
    assert first.path != second.path
    assert sha256(first.path) == sha256(second.path), "disk.img differs between two builds"
    assert sha256(first.qcow2) == sha256(second.qcow2), "disk.qcow2 differs between two builds"
    assert first.ids == second.ids and first.partitions == second.partitions


def test_the_disk_is_sparse_and_sized_by_the_layout(disks):
    image = disks[0].path
    assert image.stat().st_size == disklayout.disk_size()
    assert sparse.allocated(image) < 64 * disklayout.MIB, "the raw image is not sparse"
    assert disks[0].qcow2.stat().st_size < 32 * disklayout.MIB


def test_partition_table_is_the_layout_with_derived_guids(disks):
    d = disks[0]
    table = disk.read_table(d.path)
    disk.check_table(table, d.ids)
    assert table["label"] == "gpt" and table["firstlba"] == disklayout.FIRST_LBA
    guids = [d.ids.disk_guid, *d.ids.partition_guids.values(), d.ids.ext4_uuid]
    assert len(set(guids)) == len(guids)
    assert d.cmdline.startswith(f"root=PARTUUID={d.ids.partuuid('root')} ro ")


def test_identifiers_follow_the_inputs():
    a, b = disklayout.derive(b"inputs-a"), disklayout.derive(b"inputs-b")
    assert a == disklayout.derive(b"inputs-a")
    assert a.disk_guid != b.disk_guid and a.fat_volume_id != b.fat_volume_id
    assert a.disk_guid[14] == "4", "derived GUIDs are marked as version-4 UUIDs"


def test_grub_boot_code_points_at_core_img(disks):
    raw = disks[0].path.read_bytes()[:disklayout.MIB + 1024]
    core_lba = disklayout.start(disklayout.by_role("bios")) // disklayout.SECTOR
    assert int.from_bytes(raw[grub.BOOT_KERNEL_SECTOR:grub.BOOT_KERNEL_SECTOR + 8], "little") \
        == core_lba
    core = raw[disklayout.MIB:]
    start = grub.DISKBOOT_LIST_START
    assert int.from_bytes(core[start:start + 8], "little") == core_lba + 1
    assert raw[510:512] == b"\x55\xaa" and raw[450] == 0xEE, "the protective MBR is gone"


def test_patching_refuses_an_unexpected_grub():
    with pytest.raises(BuildError, match="boot.img does not have the expected layout"):
        grub.patch_bios(bytes(512), bytes(1024), 2048)


def test_root_partition_holds_the_initramfs_tree(disks, image_members, tmp_path):
    root = disks[0].path.parent / "root.squashfs"
    listing = run("unsquashfs", "-lln", root)
    owners = {line.split()[1] for line in listing.splitlines()}
    assert owners == {"0/0"}, f"squashfs owners are not all root: {owners}"
    squashed = {}
    for line in listing.splitlines():
        fields = line.split()
        path = fields[-3] if fields[0][0] == "l" else fields[-1]
        squashed[path.removeprefix("squashfs-root").lstrip("/")] = fields[0]
    squashed.pop("")
    expected = {m.name: stat.filemode(m.mode) for m in image_members}
    assert squashed == expected, "squashfs and cpio disagree on paths, types or modes"
    out = tmp_path / "x"
    subprocess.run([hosttools.which("unsquashfs"), "-q", "-n", "-ignore-errors", "-d", str(out),
                    str(root)],
                   capture_output=True)
    for m in image_members:
        path = out / m.name
        if stat.S_ISREG(m.mode):
            assert path.read_bytes() == m.data, f"/{m.name} differs"
        elif stat.S_ISLNK(m.mode):
            assert os.readlink(path) == m.data.decode(), f"/{m.name} points elsewhere"


def test_esp_holds_grub_its_config_and_the_kernel(disks, kernel):
    d = disks[0]
    esp = d.path.parent / "esp.vfat"
    assert run("fsck.fat", "-n", esp)
    cfg = grub.config(d.ids.partuuid("root"))
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    for path, want in ((f"{grub.EFI_PREFIX}/grub.cfg", cfg.encode()),
                       (f"{grub.BIOS_CONFIG_DIR}/grub.cfg", cfg.encode()),
                       ("/bzImage", kernel.read_bytes())):
        got = subprocess.run([hosttools.which("mtype"), "-i", str(esp), f"::{path}"],
                             capture_output=True, env=env, check=True).stdout
        assert got == want, f"{path} on the ESP is not what the build put there"
    efi = subprocess.run([hosttools.which("mtype"), "-i", str(esp), "::/EFI/BOOT/BOOTX64.EFI"],
                         capture_output=True, env=env, check=True).stdout
    assert efi[:2] == b"MZ", "BOOTX64.EFI is not a PE image"


def test_data_partition_is_a_clean_empty_ext4_labelled_aether_data(disks):
    d = disks[0]
    data = d.path.parent / "data.ext4"
    run("e2fsck", "-fn", data)
    header = run("dumpe2fs", "-h", data)
    assert "Filesystem volume name:   AETHER-DATA" in header
    assert f"Filesystem UUID:          {d.ids.ext4_uuid}" in header
    assert f"Directory Hash Seed:      {d.ids.ext4_hash_seed}" in header
    with open(d.path, "rb") as f:
        f.seek(disklayout.start(disklayout.by_role("data")) + 0x478)
        assert f.read(16).rstrip(b"\0") == b"AETHER-DATA"


def test_manifest_records_the_disk(disks):
    d = disks[0]
    record = json.loads(json.dumps(manifest.disk(d, d.path.parent, {"fdisk": "x"})))
    assert record["image"]["sha256"] == sha256(d.path)
    assert record["qcow2"]["sha256"] == sha256(d.qcow2)
    assert [p["name"] for p in record["partitions"]] == [p.name for p in disklayout.PARTITIONS]
    root = record["partitions"][2]
    assert root["content_sha256"] == sha256(d.path.parent / "root.squashfs")
    assert root["uuid"] == d.ids.partuuid("root")
    esp_files = {f["path"] for f in record["partitions"][1]["files"]}
    assert esp_files == {"/EFI/BOOT/BOOTX64.EFI", "/EFI/BOOT/grub.cfg", "/boot/grub/grub.cfg",
                         "/bzImage"}
    assert {p["name"] for p in record["boot_packages"]} == set(grub.PACKAGES)
    assert record["boot"]["bios"]["modules"] == list(grub.MODULES_BIOS)


def test_a_root_too_big_for_its_partition_is_refused(tmp_path):
    big = tmp_path / "root.squashfs"
    with open(big, "wb") as f:
        f.truncate(disklayout.by_role("root").size + 1)
    with pytest.raises(BuildError, match="AETHER-ROOT partition holds"):
        disk._fits(big, disklayout.by_role("root"))
