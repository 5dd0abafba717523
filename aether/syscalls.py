"""The few system calls the standard library does not wrap: mount, umount2, reboot, prctl.

PID 1 makes these calls through ``_ctypes`` alone (``_function``): each is an int
function of ints, byte strings and NULLs, which needs none of the ``ctypes``
package.  That package cost the boot ~40 ms more under TCG (guest A/B, issue 14).
``libc()`` is the whole ``ctypes.CDLL``, for callers that need its types
(aether/agent/confine.py: Landlock's structures).
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


_functions: dict = {}     # name -> the C function


def _function(name):
    """libc's ``name`` as a C function returning int that keeps errno (_ctypes.get_errno)."""
    fn = _functions.get(name)
    if fn is None:
        function_type, library = _lean_types()
        fn = _functions[name] = function_type((name, library))
    return fn


_types: list = []


def _lean_types():
    """(the function type, the libc handle holder), made once."""
    if not _types:
        import _ctypes

        class Int(_ctypes._SimpleCData):
            _type_ = "i"

        class Function(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = Int

        class Libc:                         # what CFuncPtr((name, library)) reads
            _handle = _ctypes.dlopen(None, os.RTLD_NOW | os.RTLD_LOCAL)  # type: ignore[arg-type]
        _types.extend((Function, Libc))
    return _types[0], _types[1]


def _check(result, what):
    if result != 0:
        import _ctypes
        err = _ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(value):
    return None if value is None else value.encode()


def mount(source, target, fstype, flags=0, data=None):
    _check(_function("mount")(_b(source), _b(target), _b(fstype), flags, _b(data)),
           f"mount {fstype} on {target}")


def umount(target, flags=0):
    _check(_function("umount2")(_b(target), flags), f"umount {target}")


def reboot(cmd):
    _check(_function("reboot")(cmd), "reboot")


def set_child_subreaper():
    _check(_function("prctl")(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")
