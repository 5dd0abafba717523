"""drill: workloads that exercise the supervisor's limits, for the test suite, the
benchmark and anyone checking a machine.  One mode per run:

    idle                 sleep until stopped (heartbeats if AETHER_HEARTBEAT is set)
    exit N               exit with status N at once
    hog MIB              allocate and touch MIB MiB, 1 MiB at a time, then idle
    forkbomb             fork until the kernel refuses, report how many, then idle
    spin                 burn CPU until stopped
    stop NAME            try to stop another agent through the ABI; report the answer
    crash-supervisor     SIGKILL aetherd (this agent's parent), to test recovery from an
                         aetherd crash; needs user = "root" (and grant = ["root"])
"""

import os
import sys
import time


def idle():
    from ..client import Client
    beat = float(os.environ.get("AETHER_HEARTBEAT", "0") or 0)
    if not beat:
        while True:
            time.sleep(3600)
    with Client() as c:
        while True:
            c.call("agent.heartbeat")
            time.sleep(beat)


def hog(mib):
    chunks = []
    for i in range(mib):
        chunk = bytearray(1 << 20)
        for offset in range(0, len(chunk), 4096):
            chunk[offset] = 1               # touch every page: resident, counted
        chunks.append(chunk)
        if i % 8 == 0:
            print(f"hog: {i + 1} MiB", flush=True)
    print(f"hog: holding {mib} MiB", flush=True)
    idle()


def forkbomb():
    children = 0
    while True:
        try:
            pid = os.fork()
        except OSError as e:
            print(f"forkbomb: the kernel refused fork #{children + 1}: {e.strerror}", flush=True)
            break
        if pid == 0:
            time.sleep(3600)
            os._exit(0)
        children += 1
    idle()


def spin():
    while True:
        pass


def stop(name):
    from ..abi.protocol import AbiError
    from ..client import Client
    with Client() as c:
        try:
            c.call("agent.stop", name=name)
            print(f"stop {name}: allowed", flush=True)
        except AbiError as e:
            print(f"stop {name}: {e.code}: {e}", flush=True)
    idle()


def main(args):
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    mode, rest = args[0], args[1:]
    if mode == "idle":
        idle()
    elif mode == "exit" and rest:
        return int(rest[0])
    elif mode == "hog" and rest:
        hog(int(rest[0]))
    elif mode == "forkbomb":
        forkbomb()
    elif mode == "spin":
        spin()
    elif mode == "stop" and rest:
        stop(rest[0])
    elif mode == "crash-supervisor":
        print(f"crash-supervisor: killing aetherd (pid {os.getppid()})", flush=True)
        os.kill(os.getppid(), 9)
        idle()
    else:
        print(f"drill: unknown mode {' '.join(args)!r}\n{__doc__}", file=sys.stderr)
        return 2
    return 0
