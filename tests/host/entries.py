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


def abi_probe(args):
    """As an agent: try a few ABI calls; write each outcome (code or 'ok') to args[0]."""
    import json
    from aether.abi.protocol import AbiError
    from aether.client import Client
    calls = json.loads(args[1])
    outcomes = []
    with Client() as c:
        for method, params in calls:
            try:
                result = c.call(method, **params)
                outcomes.append(["ok", result])
            except AbiError as e:
                outcomes.append([e.code, str(e)])
    with open(args[0], "w") as f:
        json.dump(outcomes, f)
    return 0


def probe_when_told(args):
    """abi_probe (args[0] out, args[1] calls), once the file "go" appears in the cwd (the test
    plants links in the home first)."""
    import time
    deadline = time.monotonic() + 20
    while not os.path.exists("go") and time.monotonic() < deadline:
        time.sleep(0.02)
    return abi_probe(args)
