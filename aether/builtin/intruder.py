"""intruder: a hostile agent, for the confinement tests (tests/vm/test_confinement.py and
the host tests).  It tries, from its own process and without the ABI, what kernel
confinement must stop, and prints one JSON line per attempt:

    {"try": "read /proc/cmdline", "outcome": "blocked", "detail": "PermissionError: ..."}

``outcome`` is ``blocked`` (the kernel refused), ``allowed`` (it worked: a hole, unless
the attempt is a control) or ``control`` (something it must be able to do, that worked).
The run ends with ``{"done": N}``; the agent then idles, so its state can be inspected.

    python3 -m ... intruder:main [--victim NAME] [--store PATH] [--config PATH]
                                 [--tcp HOST:PORT]... [--udp HOST:PORT]... [--idle]
"""

import json
import os
import socket
import sys
import time

DATA = "/var/lib/aether"
# Devices every network namespace has: loopback, and the kernel's tunnel endpoints
# (CONFIG_IPV6_SIT and the like), which carry nothing without a route out.
VIRTUAL = frozenset({"lo", "sit0", "tunl0", "ip6tnl0", "gre0", "ip6gre0"})


def say(attempt, outcome, detail=""):
    print(json.dumps({"try": attempt, "outcome": outcome, "detail": detail[:200]}), flush=True)


def attempt(what, action, control=False):
    """Run action(); report whether the kernel stopped it."""
    try:
        result = action()
    except OSError as e:
        say(what, "blocked" if not control else "FAILED-CONTROL", f"{type(e).__name__}: {e}")
        return False
    say(what, "control" if control else "allowed", "" if result is None else str(result))
    return True


def read(path):
    with open(path, "rb") as f:
        return f"read {len(f.read(4096))} bytes"


def write(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    os.write(fd, b"intruder was here\n")
    os.close(fd)


def other_processes():
    """Processes of others that /proc shows: none may be visible (or readable)."""
    mine = {os.getpid()}
    seen = [n for n in os.listdir("/proc") if n.isdigit() and int(n) not in mine]
    if not seen:
        raise PermissionError(13, "no other process is visible")
    return f"{len(seen)} visible: {seen[:5]}"


def files(home, victim, store, config):
    victim_home = os.path.join(os.path.dirname(home), victim)
    secret = os.path.join(victim_home, "secret")
    attempt("write own home", lambda: write(os.path.join(home, "mine")), control=True)
    attempt("read own home", lambda: read(os.path.join(home, "mine")), control=True)
    for path in (secret, store, config, os.path.join(DATA, "system", "names.json"), "/proc/cmdline",
                 "/etc/aether/defaults", "/proc/1/environ", f"/proc/{os.getppid()}/environ",
                 f"/proc/{os.getppid()}/cmdline", "/proc/kallsyms", "/dev/vda", "/dev/mem"):
        attempt(f"read {path}", lambda p=path: read(p))
    attempt(f"list {victim_home}", lambda: os.listdir(victim_home))
    attempt("see other processes in /proc", other_processes)
    for pid in (1, os.getppid()):          # hidepid=invisible (the image): not even there
        attempt(f"stat /proc/{pid}", lambda p=pid: os.stat(f"/proc/{p}"))
    for path in (os.path.join(victim_home, "planted"), "/tmp/intruder", "/run/intruder",
                 "/dev/shm/intruder", os.path.join(DATA, "intruder"), "/etc/aether/intruder",
                 os.path.join(os.path.dirname(store), "intruder")):
        attempt(f"write {path}", lambda p=path: write(p))
    link = os.path.join(home, "to-secret")
    attempt("plant a symlink in own home", lambda: _fresh_symlink(secret, link), control=True)
    attempt("read through the symlink", lambda: read(link))
    attempt("write through the symlink", lambda: write(link))
    attempt("hardlink the victim's file into own home",
            lambda: os.link(secret, os.path.join(home, "hardlink")))
    attempt("hardlink the store into own home", lambda: os.link(store, os.path.join(home, "db")))
    attempt("rename the victim's file into own home",
            lambda: os.rename(secret, os.path.join(home, "stolen")))
    attempt("mount a tmpfs over own home", lambda: _mount_tmpfs(home))


def _fresh_symlink(target, link):
    try:
        os.unlink(link)
    except FileNotFoundError:
        pass
    os.symlink(target, link)


def _mount_tmpfs(home):
    from .. import syscalls
    syscalls.mount("tmpfs", home, "tmpfs", 0, None)


def network(tcp, udp):
    names = [n for _, n in socket.if_nameindex()]
    say("network interfaces", "info", ",".join(names))
    say("real network interfaces", "info", ",".join(n for n in names if n not in VIRTUAL))
    for where in tcp:
        host, _, port = where.rpartition(":")
        attempt(f"tcp connect {where}", lambda h=host, p=int(port): _tcp(h, p))
    for where in udp:
        host, _, port = where.rpartition(":")
        attempt(f"udp send {where}", lambda h=host, p=int(port): _udp(h, p))
    attempt("raw ICMP to 10.0.2.2", _raw_ping)
    attempt("packet socket on a real interface", _packet)


def _raw_ping():
    """An ICMP echo through a raw socket: refused to a plain uid, unroutable in a netns."""
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        s.sendto(b"\x08\x00\xf7\xff\x00\x00\x00\x00", ("10.0.2.2", 0))


def _packet():
    """A packet socket bound to an interface other than loopback (to sniff or forge frames)."""
    real = [n for _, n in socket.if_nameindex() if n not in VIRTUAL]
    if not real:
        raise OSError(19, "no interface but loopback in this network namespace")
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((real[0], 0))
        return f"bound to {real[0]}"


def _tcp(host, port):
    """A TCP connect to a numeric address (no resolver: the image has no idna codec)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.connect((host, port))


def _udp(host, port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", (host, port))


def main(args):
    opts = {"victim": "victim", "store": os.path.join(DATA, "context.db"),
            "config": os.path.join(DATA, "config"), "tcp": [], "udp": [], "idle": False}
    args = list(args)
    while args:
        arg = args.pop(0)
        if arg in ("--victim", "--store", "--config") and args:
            opts[arg[2:]] = args.pop(0)
        elif arg in ("--tcp", "--udp") and args:
            opts[arg[2:]].append(args.pop(0))
        elif arg == "--idle":
            opts["idle"] = True
        else:
            print(f"intruder: unknown argument {arg!r}\n{__doc__}", file=sys.stderr)
            return 2
    home = os.environ.get("HOME") or os.getcwd()
    files(home, opts["victim"], opts["store"], opts["config"])
    network(opts["tcp"], opts["udp"])
    print(json.dumps({"done": True}), flush=True)
    while opts["idle"]:
        time.sleep(3600)
    return 0
