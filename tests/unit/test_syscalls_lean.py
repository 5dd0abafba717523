"""PID 1's system calls go through _ctypes alone, keep errno, and never load ctypes."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aether import syscalls

REPO = Path(__file__).resolve().parents[2]


def test_a_call_returns_its_int_result():
    assert syscalls._function("getpid")() == os.getpid()


def test_a_failed_call_raises_with_the_callers_errno(tmp_path):
    missing = tmp_path / "not-a-mount-point"
    with pytest.raises(OSError) as caught:
        syscalls.umount(str(missing))
    assert caught.value.errno in (errno.ENOENT, errno.EINVAL, errno.EPERM)
    assert f"umount {missing}" in str(caught.value)


def test_the_calls_do_not_import_the_ctypes_package():
    code = ("import sys, aether.syscalls as s\n"
            "try:\n    s.umount('/nonexistent-aether-test')\nexcept OSError as e:\n    print(e.errno)\n"
            "print('ctypes' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(REPO)!r})\n" + code],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[-1] == "False", out
    assert int(out[0]) in (errno.ENOENT, errno.EINVAL, errno.EPERM)
