"""The data partition: find it and mount it at /var/lib/aether, or say loudly that there is none.

Everything the machine learns lives on an ext4 file system labelled
AETHER-DATA: the disk image's fourth partition, or any disk or partition so
labelled.  There is no blkid in the image; PID 1 looks at every block device
in /sys/class/block itself: the ext4 superblock (magic 0xEF53 at byte 0x438,
the 16-byte volume name at 0x478) and the GPT partition name the kernel
reports (PARTNAME in the device's uevent).

What can happen, each said on the console:

* found: the file system is mounted on /var/lib/aether (nodev, nosuid,
  noatime) and a boot counter there is incremented (``boot-count``);
* damaged: a partition is named AETHER-DATA but holds no ext4 superblock, or
  the labelled file system does not mount: the message names the device,
  what failed and how to repair it;
* missing: nothing is labelled or named AETHER-DATA.

In the last two cases /var/lib/aether is a tmpfs and NOTHING WILL SURVIVE A
REBOOT.  Never fatal: the boot goes on either way.

Booting from disk (``root=`` on the kernel command line), a data partition on
another, slower device (a second USB stick) may still be probing when PID 1
starts, so it looks again for up to WAIT_FROM_DISK seconds before it gives up.
Booting the initramfs alone (``make run``) it does not wait.

Lean (PID 1's boot path): errno, os and time only.
"""

import errno
import os
import time

from ..sysinfo import BOOT_COUNT, DATA_DIR, read_text   # the read side (read_boot_count) is shared

LABEL = "AETHER-DATA"
SYS_BLOCK = "/sys/class/block"

EXT4_MAGIC = b"\x53\xef"           # 0xEF53, little-endian, at byte 0x438
SUPERBLOCK = 1024                  # the superblock starts 1024 bytes into the device
MAGIC_AT = 0x438 - SUPERBLOCK
LABEL_AT = 0x478 - SUPERBLOCK
LABEL_LEN = 16

# Devices that never hold the data partition, and reading which can be slow or noisy.
SKIP_PREFIXES = ("loop", "ram", "zram", "sr", "fd", "nbd")
MIN_SECTORS = 128                  # 64 KiB: anything smaller holds no ext4

WAIT_FROM_DISK = 2.0               # seconds, only when booting from disk (root= given)
POLL = 0.1

MS_NOSUID, MS_NODEV, MS_NOATIME = 0x2, 0x4, 0x400
DATA_FLAGS = MS_NOSUID | MS_NODEV | MS_NOATIME
TMPFS_FLAGS = MS_NOSUID | MS_NODEV

REPAIR = ("To repair it, attach this disk to another Linux machine and run "
          "`e2fsck -f /dev/<that partition>` (add `-b 32768` when its superblock is gone: "
          "a backup copy); to start afresh, `mkfs.ext4 -L AETHER-DATA /dev/<that partition>` "
          "(erases what it held).")
HOW_TO_GET_ONE = ("Boot the disk image (make disk, make run-disk) to have one, or give any "
                  "disk an ext4 file system labelled AETHER-DATA (mkfs.ext4 -L AETHER-DATA).")


class Device:
    """One block device as PID 1 sees it: its name, GPT name, and the ext4 label on it."""

    __slots__ = ("name", "node", "partname", "ext4", "label", "error", "disk")

    def __init__(self, name, node, partname=None, ext4=False, label=None, error=None, disk=None):
        self.name, self.node, self.partname = name, node, partname
        self.ext4, self.label, self.error, self.disk = ext4, label, error, disk

    def __repr__(self):
        return (f"Device({self.name!r}, partname={self.partname!r}, ext4={self.ext4}, "
                f"label={self.label!r}, error={self.error!r})")


def _uevent(sys_dir):
    fields = {}
    for line in read_text(os.path.join(sys_dir, "uevent")).splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


def read_superblock(node):
    """(is ext4, label or None) of the device node; raises OSError if it cannot be read."""
    fd = os.open(node, os.O_RDONLY | os.O_CLOEXEC)
    try:
        block = os.pread(fd, SUPERBLOCK, SUPERBLOCK)
    finally:
        os.close(fd)
    if block[MAGIC_AT:MAGIC_AT + 2] != EXT4_MAGIC:
        return False, None
    label = block[LABEL_AT:LABEL_AT + LABEL_LEN].split(b"\0", 1)[0]
    return True, label.decode("utf-8", "replace") or None


def probe(name, sys_block=SYS_BLOCK, dev="/dev"):
    """A Device for /sys/class/block/<name>, or None when it cannot hold the data partition."""
    if name.startswith(SKIP_PREFIXES):
        return None
    sys_dir = os.path.join(sys_block, name)
    try:
        if int(read_text(os.path.join(sys_dir, "size"), "0")) < MIN_SECTORS:
            return None
    except ValueError:
        return None
    real = os.path.realpath(sys_dir)
    disk = os.path.basename(os.path.dirname(real)) if os.path.exists(
        os.path.join(sys_dir, "partition")) else name
    device = Device(name, os.path.join(dev, name), _uevent(sys_dir).get("PARTNAME"), disk=disk)
    try:
        device.ext4, device.label = read_superblock(device.node)
    except OSError as e:
        device.error = f"cannot read its superblock: {e.strerror or e}"
    return device


def scan(sys_block=SYS_BLOCK, dev="/dev"):
    """Every block device that might hold the data partition, sorted by name."""
    try:
        names = sorted(os.listdir(sys_block))
    except OSError:
        return []
    return [d for d in (probe(n, sys_block, dev) for n in names) if d is not None]


def _ours(device):
    return device.label == LABEL or device.partname == LABEL


def find(scan_fn, wait, now=time.monotonic, sleep=time.sleep):
    """scan_fn() until a device labelled or named AETHER-DATA shows up, for up to ``wait`` s.

    Returns (the devices of the last scan, seconds waited)."""
    started = now()
    while True:
        devices = scan_fn()
        waited = now() - started
        if any(_ours(d) for d in devices) or waited >= wait:
            return devices, waited
        sleep(min(POLL, max(0.0, wait - waited)))


def choose(devices, root_disk=None):
    """(the device to mount or None, the other labelled ones, the damaged one or None).

    A file system labelled AETHER-DATA wins, on the root's disk first, then by
    name.  Without one, a partition merely *named* AETHER-DATA is damaged.
    """
    labelled = sorted((d for d in devices if d.label == LABEL),
                      key=lambda d: (d.disk != root_disk, d.name))
    if labelled:
        return labelled[0], labelled[1:], None
    named = [d for d in devices if d.partname == LABEL]
    return None, [], (named[0] if named else None)


def root_disk(sys_dev_block="/sys/dev/block"):
    """The name of the disk that holds /, or None (the initramfs is on no disk)."""
    st = os.stat("/")
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    if major == 0:
        return None
    path = os.path.realpath(os.path.join(sys_dev_block, f"{major}:{minor}"))
    parent = os.path.dirname(path)
    if os.path.exists(os.path.join(path, "partition")):
        return os.path.basename(parent)
    return os.path.basename(path)


def _describe(devices):
    return ", ".join(f"{d.name}" + (f" (ext4 {d.label!r})" if d.ext4 and d.label else
                                    " (ext4)" if d.ext4 else "") for d in devices)


def _why(error):
    name = errno.errorcode.get(error.errno)
    text = os.strerror(error.errno) if error.errno else str(error)
    return f"{text} ({name})" if name else text


def _damage(device):
    """What is wrong with a partition named AETHER-DATA that holds no file system so labelled."""
    named = f"data partition {device.node} is named {LABEL} in the partition table but"
    if device.ext4:
        label = repr(device.label) if device.label else "no label"
        return (f"{named} its ext4 file system has {label}, not {LABEL}. If it is the data "
                f"partition, label it (e2label {device.node} {LABEL} from another machine).")
    what = device.error or "holds no ext4 file system (no superblock magic at byte 0x438)"
    return f"{named} {what}: it is damaged or was never formatted. {REPAIR}"


def attach(log, mount, devices, waited=0.0, root=None, data_dir=DATA_DIR):
    """Mount the data partition, or a tmpfs; return (persistent, device node or None)."""
    chosen, others, damaged = choose(devices, root)
    for other in others:
        log.warning(f"data partition: {other.node} is labelled {LABEL} too; ignored "
                    f"(using {chosen.node}). Relabel one of them (e2label).")
    if chosen is not None:
        try:
            mount(chosen.node, data_dir, "ext4", DATA_FLAGS, None)
            log.info(f"data partition: {chosen.node} (ext4, label {LABEL}) mounted on {data_dir}")
            return True, chosen.node
        except OSError as e:
            log.error(f"data partition {chosen.node} (ext4, label {LABEL}) cannot be mounted on "
                      f"{data_dir}: {_why(e)}; the kernel's EXT4-fs lines above say why. {REPAIR}")
    elif damaged is not None:
        log.error(_damage(damaged))
    else:
        where = (f"on {_describe(devices)}" if devices
                 else "and this machine has no block devices (no disk attached)")
        looked = f" (looked for {waited:.1f} s)" if waited >= POLL else ""
        log.warning(f"no data partition: no ext4 file system labelled {LABEL} {where}{looked}. "
                    f"{HOW_TO_GET_ONE}")
    mount("tmpfs", data_dir, "tmpfs", TMPFS_FLAGS, "mode=0755")
    log.warning(f"{data_dir} is in memory (tmpfs); NOTHING WILL SURVIVE A REBOOT")
    return False, None


def booting_from_disk(cmdline_path="/proc/cmdline"):
    return any(word.startswith("root=") for word in read_text(cmdline_path).split())


def count_boot(data_dir=DATA_DIR, log=None):
    """Add one to data_dir/boot-count, atomically and durably; return the new count.

    Written to a new temporary file (O_CREAT | O_EXCL | O_NOFOLLOW: a link planted
    there is never followed), fsynced, renamed over the old one, and the directory
    fsynced: after a crash the file holds the old count or the new one.
    """
    path = os.path.join(data_dir, BOOT_COUNT)
    old = read_text(path)
    if old and not old.isdigit() and log is not None:
        log.warning(f"{path} held {old[:40]!r}, not a number; counting from 0")
    count = (int(old) if old.isdigit() else 0) + 1
    tmp = f"{path}.{os.getpid()}.{time.monotonic_ns()}.tmp"     # new: nothing planted is opened
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, f"{count}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    dfd = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return count
