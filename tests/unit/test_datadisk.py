"""The data partition: found by its ext4 label, mounted, or a tmpfs with a clear message.

The block devices are a fake /sys/class/block and /dev in a temporary
directory (device nodes are plain files holding a superblock); one test reads
a real ext4 made by mkfs.ext4.
"""

import errno
import os
import shutil
import subprocess

import pytest

from aether import localstatus, sysinfo
from aether.pid1 import datadisk


def superblock(label=None, magic=True):
    """The first 2 KiB of a device: an ext4 superblock with ``label``, or none at all."""
    data = bytearray(2048)
    if magic:
        data[0x438:0x43A] = b"\x53\xef"
        data[0x478:0x478 + 16] = (label or "").encode().ljust(16, b"\0")
    return bytes(data)


class FakeBlock:
    """A /sys/class/block and /dev with disks and partitions."""

    def __init__(self, root):
        self.sys_block = root / "sys/class/block"
        self.devices = root / "sys/devices"
        self.dev = root / "dev"
        for d in (self.sys_block, self.devices, self.dev):
            d.mkdir(parents=True)

    def add(self, name, data=b"", disk=None, partname=None, sectors=1 << 20):
        real = self.devices / (disk or name) / name if disk else self.devices / name
        real.mkdir(parents=True)
        (real / "size").write_text(f"{sectors}\n")
        uevent = f"MAJOR=254\nMINOR=1\nDEVNAME={name}\nDEVTYPE={'partition' if disk else 'disk'}\n"
        if partname:
            uevent += f"PARTNAME={partname}\n"
        (real / "uevent").write_text(uevent)
        if disk:
            (real / "partition").write_text("1\n")
        (self.sys_block / name).symlink_to(real)
        (self.dev / name).write_bytes(data)

    def scan(self):
        return datadisk.scan(str(self.sys_block), str(self.dev))


class Log:
    def __init__(self):
        self.lines = []

    def __getattr__(self, level):
        return lambda msg: self.lines.append((level, msg))

    def text(self, level=None):
        return "\n".join(m for lv, m in self.lines if level in (None, lv))


class Mounts:
    def __init__(self, fail=None):
        self.calls, self.fail = [], fail

    def __call__(self, source, target, fstype, flags, data):
        if self.fail and fstype == "ext4":
            raise OSError(self.fail, os.strerror(self.fail))
        self.calls.append((source, target, fstype, flags, data))


@pytest.fixture
def block(tmp_path):
    return FakeBlock(tmp_path)


def attach(block, mount=None, root=None, data_dir="/var/lib/aether"):
    log, mount = Log(), mount or Mounts()
    persistent, node = datadisk.attach(log, mount, block.scan(), 0.0, root, data_dir)
    return persistent, node, log, mount


def test_the_labelled_partition_is_mounted_nodev_nosuid(block):
    block.add("vda", superblock(magic=False))
    block.add("vda3", superblock(magic=False), disk="vda", partname="AETHER-ROOT")
    block.add("vda4", superblock("AETHER-DATA"), disk="vda", partname="AETHER-DATA")
    persistent, node, log, mount = attach(block)
    assert persistent and node.endswith("/dev/vda4")
    (source, target, fstype, flags, data), = mount.calls
    assert (source, target, fstype, data) == (node, "/var/lib/aether", "ext4", None)
    assert flags & datadisk.MS_NODEV and flags & datadisk.MS_NOSUID
    assert "mounted on /var/lib/aether" in log.text("info")


def test_a_whole_disk_labelled_ext4_counts_too(block):
    block.add("vdb", superblock("AETHER-DATA"))
    assert attach(block)[1].endswith("/dev/vdb")


def test_missing_partition_gives_a_tmpfs_and_says_nothing_survives(block):
    block.add("vda", superblock(magic=False))
    block.add("vda1", superblock("something-else"), disk="vda")
    persistent, node, log, mount = attach(block)
    assert (persistent, node) == (False, None)
    assert mount.calls == [("tmpfs", "/var/lib/aether", "tmpfs", datadisk.TMPFS_FLAGS, "mode=0755")]
    said = log.text("warning")
    assert "no data partition" in said and "AETHER-DATA" in said
    assert "vda1 (ext4 'something-else')" in said, "the message lists what was looked at"
    assert "mkfs.ext4 -L AETHER-DATA" in said, "the message says how to get one"
    assert "NOTHING WILL SURVIVE A REBOOT" in said


def test_no_block_devices_at_all(block):
    persistent, _node, log, _mount = attach(block)
    assert not persistent and "this machine has no block devices" in log.text("warning")


def test_a_partition_named_aether_data_without_ext4_is_damaged(block):
    block.add("vda", superblock(magic=False))
    block.add("vda4", superblock(magic=False), disk="vda", partname="AETHER-DATA")
    persistent, _node, log, mount = attach(block)
    assert not persistent and mount.calls[0][2] == "tmpfs"
    error = log.text("error")
    assert "/dev/vda4 is named AETHER-DATA" in error and "no ext4 file system" in error
    assert "damaged" in error and "e2fsck" in error and "mkfs.ext4 -L AETHER-DATA" in error


def test_a_partition_named_aether_data_with_another_label_says_so(block):
    block.add("vda4", superblock("scratch"), disk="vda", partname="AETHER-DATA")
    persistent, _node, log, _mount = attach(block)
    assert not persistent
    assert "its ext4 file system has 'scratch', not AETHER-DATA" in log.text("error")
    assert "e2label" in log.text("error")


def test_a_file_system_that_does_not_mount_is_reported_with_the_errno(block):
    block.add("vda4", superblock("AETHER-DATA"), disk="vda", partname="AETHER-DATA")
    persistent, _node, log, mount = attach(block, Mounts(fail=errno.EBADMSG))
    assert not persistent and mount.calls[0][2] == "tmpfs"
    error = log.text("error")
    assert "/dev/vda4 (ext4, label AETHER-DATA) cannot be mounted" in error
    assert f"{os.strerror(errno.EBADMSG)} (EBADMSG)" in error and "e2fsck" in error


def test_the_root_disk_wins_and_the_other_is_named(block):
    block.add("sda1", superblock("AETHER-DATA"), disk="sda")
    block.add("vda4", superblock("AETHER-DATA"), disk="vda")
    persistent, node, log, _mount = attach(block, root="vda")
    assert persistent and node.endswith("/dev/vda4")
    assert "sda1 is labelled AETHER-DATA too" in log.text("warning")


def test_optical_loop_and_tiny_devices_are_not_read(block):
    for name in ("sr0", "loop0", "ram0", "fd0", "zram0"):
        block.add(name, superblock("AETHER-DATA"))
    block.add("vdc", superblock("AETHER-DATA"), sectors=8)
    assert block.scan() == []


def test_an_unreadable_device_is_reported_not_raised(block):
    block.add("vda4", superblock("AETHER-DATA"), disk="vda", partname="AETHER-DATA")
    (block.dev / "vda4").unlink()
    device, = block.scan()
    assert device.error.startswith("cannot read its superblock")
    persistent, _node, log, _mount = attach(block)
    assert not persistent and "cannot read its superblock" in log.text("error")


def test_find_waits_for_a_late_device_but_not_forever():
    clock = [0.0]
    devices = [[], [], [datadisk.Device("sdb1", "/dev/sdb1", label="AETHER-DATA", ext4=True)]]

    def scan():
        return devices.pop(0) if len(devices) > 1 else devices[0]

    def sleep(s):
        clock[0] += s

    found, waited = datadisk.find(scan, 2.0, lambda: clock[0], sleep)
    assert found[0].name == "sdb1" and waited == pytest.approx(0.2)
    found, waited = datadisk.find(list, 2.0, lambda: clock[0], sleep)
    assert found == [] and 2.0 <= waited < 2.0 + datadisk.POLL
    found, waited = datadisk.find(list, 0.0, lambda: clock[0], sleep)
    assert waited == 0.0, "booting the initramfs alone must not wait"


def test_booting_from_disk_is_read_from_the_command_line(tmp_path):
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("console=ttyS0 root=PARTUUID=1234 ro\n")
    assert datadisk.booting_from_disk(str(cmdline))
    cmdline.write_text("console=ttyS0 aether.root=x\n")
    assert not datadisk.booting_from_disk(str(cmdline))


def test_boot_counter_counts_atomically(tmp_path):
    assert sysinfo.read_boot_count(str(tmp_path)) == 0
    assert [datadisk.count_boot(str(tmp_path)) for _ in range(3)] == [1, 2, 3]
    assert (tmp_path / "boot-count").read_text() == "3\n"
    assert not (tmp_path / "boot-count.tmp").exists()
    assert sysinfo.read_boot_count(str(tmp_path)) == 3


def test_a_garbled_boot_counter_starts_again(tmp_path):
    (tmp_path / "boot-count").write_text("\x00\x00junk")
    log = Log()
    assert datadisk.count_boot(str(tmp_path), log) == 1
    assert "not a number" in log.text("warning")


def test_status_data_line():
    mounts = ("tmpfs /var/lib/aether tmpfs rw 0 0\n"
              "/dev/vda4 /var/lib/aether ext4 rw,nosuid,nodev,noatime 0 0\n")
    assert localstatus.data_line(mounts, 2) == \
        "/var/lib/aether (data partition /dev/vda4, ext4; boot 2)"
    assert localstatus.data_line("tmpfs /var/lib/aether tmpfs rw 0 0\n", 1) == \
        "/var/lib/aether (in memory: nothing survives a reboot; boot 1)"


@pytest.mark.skipif(shutil.which("mkfs.ext4", path="/usr/sbin:/sbin:" + os.environ["PATH"]) is None,
                    reason="mkfs.ext4 is not installed (apt-get install e2fsprogs)")
def test_reads_the_label_of_a_real_ext4(tmp_path):
    image = tmp_path / "data.ext4"
    mkfs = shutil.which("mkfs.ext4", path="/usr/sbin:/sbin:" + os.environ["PATH"])
    subprocess.run([mkfs, "-q", "-F", "-L", "AETHER-DATA", str(image), "4M"], check=True)
    assert datadisk.read_superblock(str(image)) == (True, "AETHER-DATA")
    subprocess.run([mkfs, "-q", "-F", str(image), "4M"], check=True)
    assert datadisk.read_superblock(str(image)) == (True, None)


def test_the_boot_counter_never_writes_through_a_planted_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    data = tmp_path / "data"
    data.mkdir()
    (data / "boot-count.tmp").symlink_to(victim)     # the old counter opened this name, O_TRUNC
    assert datadisk.count_boot(str(data)) == 1
    assert victim.read_text() == "keep me" and (data / "boot-count").read_text() == "1\n"
