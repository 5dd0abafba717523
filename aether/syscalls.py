"""The few system calls the standard library does not wrap: mount, umount2, reboot, prctl.

Loaded on first use (ctypes is the largest import PID 1 makes).
"""

import os

MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MNT_DETACH = 0x2

RB_AUTOBOOT = 0x01234567
RB_POWER_OFF = 0x4321FEDC
RB_DISABLE_CAD = 0   # Ctrl-Alt-Del sends SIGINT to PID 1 instead of rebooting at once

PR_SET_CHILD_SUBREAPER = 36
PR_SET_NAME = 15

_libc = None


def libc():
    global _libc
    if _libc is None:
        import ctypes
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result, what):
    if result != 0:
        import ctypes
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(value):
    return None if value is None else value.encode()


def mount(source, target, fstype, flags=0, data=None):
    _check(libc().mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
           f"mount {fstype} on {target}")


def umount(target, flags=0):
    _check(libc().umount2(_b(target), flags), f"umount {target}")


def reboot(cmd):
    _check(libc().reboot(cmd), "reboot")


def set_child_subreaper():
    _check(libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")
