"""The disk image boots on legacy BIOS and UEFI, remembers across reboots, and copes without
its data partition.

Every test boots a fresh copy of out/images/disk.img (`make disk`) through the
firmware: SeaBIOS, or OVMF for UEFI.  The boot counter PID 1 keeps on the data
partition (the `data:` line of `status`) shows what survives a reboot.
"""

import json
import re
import sys
import time

import pytest

import harness
from harness import BOOT_TIMEOUT, COMMAND_TIMEOUT, SHUTDOWN_TIMEOUT
from aetherbuild import disklayout, paths, qemu

sys.path.insert(0, str(harness.REPO / "tests"))
import boardimage  # noqa: E402

# Firmware, GRUB (1 s menu) and a TCG boot; OVMF alone takes several seconds.
ONE_BOOT = 150
TWO_BOOTS = 240

DATA_LINE = re.compile(r"^/var/lib/aether \((?P<where>.*); boot (?P<boot>\d+)\)$")
IN_MEMORY = "NOTHING WILL SURVIVE A REBOOT"


def data_status(vm):
    """(where, boot number) from the `data:` line of `status`."""
    status = harness.fields(vm.command("status", COMMAND_TIMEOUT))
    m = DATA_LINE.match(status.get("data", ""))
    assert m, f"bad `data:` line: {status.get('data')!r}"
    return m["where"], int(m["boot"])


def assert_clean(vm):
    assert "Kernel panic" not in vm.output, f"the kernel panicked; see {vm.log_path}"
    assert "Traceback" not in vm.output, f"a Python traceback; see {vm.log_path}"


def poweroff(vm):
    vm.send_confirmed("poweroff")
    assert vm.wait_exit(SHUTDOWN_TIMEOUT) == 0


def booted_by(vm):
    """'uefi' when the kernel found EFI firmware (/sys/firmware/efi), else 'bios'.  Asked in
    the guest: GRUB boots the kernel `quiet`, so its log is not on the console."""
    listing = vm.command("list /sys/firmware", COMMAND_TIMEOUT)
    assert re.search(r"^acpi\s+directory", listing, re.M), f"no listing of /sys/firmware:\n{listing}"
    return "uefi" if re.search(r"^efi\s+directory", listing, re.M) else "bios"


def root_mount(vm):
    """The line of /proc/mounts for / (the guest's own view, whatever the console shows)."""
    mounts = vm.command("show /proc/mounts", COMMAND_TIMEOUT)
    return next((ln for ln in mounts.splitlines() if ln.split()[1:2] == ["/"]), None)


def data_offset():
    return disklayout.start(disklayout.by_role("data"))


# ---------------------------------------------------------------- boot and persistence


@pytest.mark.timeout(TWO_BOOTS)
def test_bios_boot_from_the_read_only_root_remembers_across_a_reboot(booter, disk_copy):
    vm = booter.boot(disk=disk_copy, firmware="bios", no_reboot=False)
    assert booted_by(vm) == "bios"
    root = root_mount(vm)
    assert root and root.split()[2] == "squashfs" and root.split()[3].split(",")[0] == "ro", \
        f"the root file system is not the read-only squashfs partition: {root}"
    where, boot = data_status(vm)
    assert (where, boot) == ("data partition /dev/vda4, ext4", 1)
    c = harness.abi_client(vm)                # remember something in the context store
    assert c.call("ctx.info")["durable"], "the context store is not on the data partition"
    memory = c.call("ctx.remember", text="the flashed disk remembers the blue door", tags=["persist"])
    c.close()
    out = vm.command("remember that the green key is under the mat", COMMAND_TIMEOUT)   # and through the shell
    assert "Remembered as memory" in out, out
    vm.send_confirmed("reboot")
    vm.expect(re.escape(harness.RESTART), SHUTDOWN_TIMEOUT)
    vm.wait_ready(BOOT_TIMEOUT)
    assert data_status(vm) == ("data partition /dev/vda4, ext4", 2), \
        "the boot counter did not survive the reboot"
    c = harness.abi_client(vm)                # ...and recall it after the reboot
    assert c.call("ctx.recall", memory_id=memory["id"])["text"] == "the flashed disk remembers the blue door"
    found = c.call("ctx.window", query="blue door", budget_tokens=200)["items"]
    assert found[0]["id"] == memory["id"], found       # the best match first (the shell's memory may follow)
    c.close()
    assert "the green key is under the mat" in vm.command("what do you know about the green key?",
                                                          COMMAND_TIMEOUT)
    # the shell's line history came back from the store: Up, Up recalls the line typed before the reboot
    start = vm.mark()
    for _ in range(8):
        vm.send_raw("\x1b[A")
        time.sleep(0.5)
        if "remember that the green key is under the mat" in vm.output_since(start):
            break
    assert "remember that the green key is under the mat" in vm.output_since(start), \
        "Up did not bring back the line typed before the reboot"
    vm.send_raw("\x15")                       # Ctrl-U: the line is redrawn empty
    vm.expect(re.escape(qemu.PROMPT) + r"\x1b\[K", COMMAND_TIMEOUT)
    vm.command("", COMMAND_TIMEOUT)
    poweroff(vm)
    assert_clean(vm)


@pytest.mark.timeout(TWO_BOOTS)
def test_uefi_boot_and_a_cold_boot_on_bios_recalls_it(booter, disk_copy):
    vm = booter.boot(disk=disk_copy, firmware="uefi")
    assert booted_by(vm) == "uefi", "the kernel did not see EFI firmware (OVMF)"
    assert data_status(vm) == ("data partition /dev/vda4, ext4", 1)
    poweroff(vm)
    assert_clean(vm)
    again = booter.boot(disk=disk_copy, firmware="bios")
    assert data_status(again) == ("data partition /dev/vda4, ext4", 2), \
        "what the UEFI boot stored was not there after a power-off"
    poweroff(again)


# ---------------------------------------------------------------- without a data partition


def corrupt(disk, offset, data):
    with open(disk, "r+b") as f:
        f.seek(offset)
        f.write(data)


def zero_superblock(disk):
    corrupt(disk, data_offset() + 1024, bytes(1024))


def bad_checksum(disk):
    # s_mnt_count (superblock offset 0x34): magic and label stay, the checksum no longer matches.
    corrupt(disk, data_offset() + 1024 + 0x34, b"\x99\x99")


@pytest.mark.timeout(ONE_BOOT)
@pytest.mark.parametrize("damage,said", [
    (zero_superblock, r"/dev/vda4 is named AETHER-DATA in the partition table but holds no "
                      r"ext4 file system"),
    (bad_checksum, r"data partition /dev/vda4 \(ext4, label AETHER-DATA\) cannot be mounted"),
], ids=["superblock-zeroed", "superblock-checksum"])
def test_damaged_data_partition_is_reported_and_memory_used(booter, disk_copy, damage, said):
    damage(disk_copy)
    vm = booter.boot(disk=disk_copy, firmware="bios")
    errors = [line for line in harness.init_lines(vm.output) if "ERROR:" in line]
    assert any(re.search(said, line) for line in errors), \
        f"no clear message about the damaged partition; PID 1 said: {errors}"
    assert any("e2fsck" in line for line in errors), "the message does not say how to repair it"
    assert IN_MEMORY in vm.output
    assert data_status(vm) == ("in memory: nothing survives a reboot", 1)
    assert_clean(vm)


@pytest.mark.timeout(ONE_BOOT)
def test_disk_without_a_data_partition_boots_after_a_short_wait(booter, disk_copy, tmp_path):
    part = disklayout.by_role("data")
    corrupt(disk_copy, disklayout.start(part), bytes(1 << 16))       # no ext4 left either
    harness.delete_partition(disk_copy, part.number)
    vm = booter.boot(disk=disk_copy, firmware="bios")
    said = [line for line in harness.init_lines(vm.output) if "no data partition" in line]
    assert said, "PID 1 did not say there is no data partition"
    assert "looked for 2.0 s" in said[0], f"booting from disk it should wait briefly: {said[0]}"
    assert IN_MEMORY in vm.output
    assert data_status(vm)[0] == "in memory: nothing survives a reboot"
    assert_clean(vm)


@pytest.mark.timeout(ONE_BOOT)
def test_initramfs_boot_says_no_data_partition_without_waiting(booter):
    vm = booter.boot()                       # make run: kernel and initramfs, no disk
    said = [line for line in harness.init_lines(vm.output) if "no data partition" in line]
    assert said and "this machine has no block devices" in said[0], said
    assert "looked for" not in said[0], "the initramfs boot waited for a data partition"
    assert IN_MEMORY in vm.output
    assert data_status(vm) == ("in memory: nothing survives a reboot", 1)


# ---------------------------------------------------------------- the Buildroot tree's image


def root_partition(image, dest):
    """The root file system's bytes, cut out of a built disk image (size from the manifest)."""
    record = json.loads((paths.images_dir() / "manifest.json").read_text())["disk"]
    root = next(p for p in record["partitions"] if p["name"] == "AETHER-ROOT")
    with open(image, "rb") as f:
        f.seek(root["start"])
        dest.write_bytes(f.read(root["content_bytes"]))
    return dest


@pytest.mark.timeout(ONE_BOOT)
def test_buildroot_post_image_disk_boots(booter, disk_image, tmp_path):
    """board/'s post-image.sh, given this build's kernel and root, makes a disk that boots."""
    missing = boardimage.missing_tools()
    if missing:
        pytest.skip(f"missing host tools {missing}: make deps installs them")
    squashfs = root_partition(disk_image, tmp_path / "rootfs.squashfs")
    image, _output = boardimage.build(tmp_path / "board", qemu.default_kernel(), squashfs,
                                      1700000000)
    vm = booter.boot(disk=image, firmware="bios")
    assert data_status(vm) == ("data partition /dev/vda4, ext4", 1)
    assert_clean(vm)
