"""Agent programs for tests/host/test_attack_files.py: what a hostile agent's own process tries.

``kernel_probe`` tries, from inside the agent's confinement, what Landlock and the
network namespace should stop and prints one JSON line per attempt (as
aether/builtin/intruder.py does): signals and ptrace on aetherd, aetherd's /proc files,
its own cgroup's limits, /sys, /dev/shm, /run, and an abstract unix socket.
"""

import ctypes
import json
import os
import socket
import sys

PTRACE_ATTACH, PTRACE_DETACH = 16, 17


def say(what, outcome, detail=""):
    print(json.dumps({"try": what, "outcome": outcome, "detail": str(detail)[:200]}), flush=True)


def attempt(what, action):
    try:
        result = action()
    except OSError as e:
        say(what, "blocked", f"{type(e).__name__}: {e}")
        return
    say(what, "allowed", "" if result is None else result)


def _ptrace(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    libc.ptrace(PTRACE_DETACH, pid, None, None)


def _read(path):
    with open(path, "rb") as f:
        return f.read(64)


def _write(path, data=b"x"):
    with open(path, "wb") as f:
        f.write(data)


def _abstract(name):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.settimeout(1)
        s.connect("\0" + name)
        s.sendall(b"hello from the agent\n")
    finally:
        s.close()


def _cgroup_file(name):
    with open("/proc/self/cgroup") as f:
        rel = f.read().strip().rpartition(":")[2]
    return f"/sys/fs/cgroup{rel}/{name}"


def kernel_probe(args):
    """args: aetherd's pid, an abstract socket name the test listens on."""
    pid, abstract = int(args[0]), args[1]
    attempt("signal 0 to aetherd", lambda: os.kill(pid, 0))
    attempt("SIGSTOP to aetherd", lambda: (os.kill(pid, 19), os.kill(pid, 18)))
    attempt("ptrace aetherd", lambda: _ptrace(pid))
    attempt("read aetherd's environ", lambda: _read(f"/proc/{pid}/environ"))
    attempt("read aetherd's cmdline", lambda: _read(f"/proc/{pid}/cmdline"))
    attempt("raise own memory.max", lambda: _write(_cgroup_file("memory.max"), b"max"))
    attempt("read /sys/class/net", lambda: os.listdir("/sys/class/net"))
    attempt("write /dev/shm", lambda: _write("/dev/shm/aether-attack"))
    attempt("list /run", lambda: os.listdir("/run"))
    attempt("abstract unix socket", lambda: _abstract(abstract))
    say("done", "info")
    return 0


if __name__ == "__main__":
    sys.exit(kernel_probe(sys.argv[1:]))
