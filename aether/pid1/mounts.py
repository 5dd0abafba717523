"""The filesystems PID 1 mounts at boot, and unmounting them at shutdown."""

import os

from .. import syscalls
from ..syscalls import MNT_DETACH, MS_NODEV, MS_NOEXEC, MS_NOSUID

# /proc shows a process only to its own uid and to root (hidepid=invisible: the others'
# /proc/<pid> do not even exist for it); aetherd, PID 1 and the console are root and keep
# the full view.  Machine-wide files (/proc/cmdline among them) stay readable: agents are
# kept from those by Landlock (aether/agent/confine.py), and local users are not.
PROC_OPTIONS = "hidepid=invisible"

# (source, target, fstype, flags, data, fatal, hint when it fails)
API_MOUNTS = (
    ("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, PROC_OPTIONS, True,
     "the kernel needs CONFIG_PROC_FS=y"),
    ("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, None, True,
     "the kernel needs CONFIG_SYSFS=y"),
    ("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", True,
     "the kernel needs CONFIG_DEVTMPFS=y"),
    ("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666", False,
     "the kernel needs CONFIG_UNIX98_PTYS=y"),
    ("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", False,
     "the kernel needs CONFIG_TMPFS=y"),
    ("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", False,
     "the kernel needs CONFIG_TMPFS=y"),
    ("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", False,
     "the kernel needs CONFIG_TMPFS=y"),
    ("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "nsdelegate", False,
     "the kernel needs CONFIG_CGROUPS=y"),
)

DEV_LINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
             ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"))


# Links planted in a shared or another principal's directory are not followed or made:
# a symlink in a sticky world-writable directory is followed only by its owner, and a
# hard link needs read-write access to its target (the kernel's defaults are off).
LINK_SYSCTLS = (("/proc/sys/fs/protected_symlinks", "1"), ("/proc/sys/fs/protected_hardlinks", "1"),
                ("/proc/sys/fs/protected_fifos", "1"), ("/proc/sys/fs/protected_regular", "1"))


def protect_links():
    for path, value in LINK_SYSCTLS:
        with open(path, "w") as f:
            f.write(value)


def mount(source, target, fstype, flags, data):
    os.makedirs(target, exist_ok=True)
    syscalls.mount(source, target, fstype, flags, data)


def dev_links():
    for target, link in DEV_LINKS:
        try:
            os.symlink(target, link)
        except FileExistsError:
            pass


def mounted():
    """Mount points in /proc/self/mounts order."""
    points = []
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 2:
                points.append(fields[1].replace("\\040", " "))
    return points


def unmount_all(log):
    """Unmount everything but / in reverse order; busy ones are detached."""
    for point in reversed(mounted()):
        if point == "/":
            continue
        try:
            syscalls.umount(point)
        except OSError:
            try:
                syscalls.umount(point, MNT_DETACH)
            except OSError as e:
                log.warning(f"could not unmount {point}: {e.strerror}")
