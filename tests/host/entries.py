"""Functions the host tests run as forked services (ServiceSpec entry=...)."""

import os


def report(args):
    """Write what the forked child inherited to args[0]; exit with args[1]."""
    with open("/proc/self/status") as f:
        sig = {k: v.strip() for k, v in (l.split(":", 1) for l in f if l.startswith("Sig"))}
    fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    with open(args[0], "w") as f:
        f.write(f"{sig['SigBlk']} {sig['SigIgn']} {os.getpgrp() == os.getpid()} {fds}\n")
    return int(args[1])


def crash(_args):
    raise RuntimeError("entry crashed on purpose")
