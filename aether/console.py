"""The placeholder console: a plain line reader on one terminal.

Until the intent shell replaces it, it honestly offers four commands: help,
status, poweroff, reboot.  PID 1 starts it in a new session; it makes its
terminal the controlling terminal (TIOCSCTTY), so Ctrl-C reaches this program
and never PID 1.  Just before its first prompt of a boot on a terminal it
prints ``aether-ready uptime=<seconds>``; tests and benchmarks key on it.

    python3 -m aether.console --tty /dev/ttyS0
"""

import fcntl
import os
import sys
import termios

from . import __version__, datadisk, sysinfo

PROMPT = "aether> "
RUN_DIR = "/run/aether"
INIT_STATUS = "/run/aether/init.json"
SIGTERM, SIGINT = 15, 2


def attach(tty):
    """Make tty our controlling terminal and our stdin, stdout and stderr."""
    fd = os.open(tty, os.O_RDWR | os.O_NOCTTY)
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
    attrs = termios.tcgetattr(fd)
    attrs[0] |= termios.ICRNL                      # Enter sends CR on serial lines
    attrs[1] |= termios.OPOST | termios.ONLCR
    attrs[3] |= termios.ICANON | termios.ECHO | termios.ECHOE | termios.ISIG
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    if fd > 2:
        os.close(fd)
    sys.stdin = open(0, "r", encoding="utf-8", errors="replace", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)
    sys.stderr = sys.stdout


def ready_marker(tty):
    """Print the ready line once per boot and terminal."""
    flag = os.path.join(RUN_DIR, "ready-" + os.path.basename(tty))
    if os.path.exists(flag):
        return
    print(f"aether-ready uptime={sysinfo.uptime():.2f}", flush=True)
    try:
        with open(flag, "w"):
            pass
    except OSError:
        pass


# -- commands -------------------------------------------------------------------


def cmd_help(_out):
    lines = ["This is AetherOS's placeholder console. It understands:"]
    lines += [f"  {name:<9} {desc}" for name, (_fn, desc) in COMMANDS.items()]
    lines.append("The intent shell, which takes goals in plain words, will replace it.")
    return "\n".join(lines)


def _exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError as e:
        return f"unreadable: {e.strerror}"


def _services():
    if not os.path.exists(INIT_STATUS):
        return "unknown (PID 1 has not written its status)"
    import json
    try:
        with open(INIT_STATUS) as f:
            status = json.load(f)
    except (OSError, ValueError) as e:
        return f"unknown ({INIT_STATUS}: {e})"
    parts = []
    for svc in status.get("services", []):
        detail = f"pid {svc['pid']}" if svc.get("pid") else f"last exit {svc.get('last_exit')}"
        parts.append(f"{svc['name']} {svc['state']} ({detail})")
    return ", ".join(parts) or "none"


def data_line(mounts_text, boot_count, data_dir=datadisk.DATA_DIR):
    """Where the data location is (the last mount on it wins) and which boot this is."""
    source = fstype = None
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == data_dir:
            source, fstype = fields[0], fields[2]
    if fstype == "ext4":
        where = f"data partition {source}, ext4"
    else:
        where = "in memory: nothing survives a reboot"
    return f"{data_dir} ({where}; boot {boot_count})"


def cmd_status(_out):
    info = sysinfo.meminfo()
    used, total = sysinfo.memory_used_kib(info) / 1024, info["MemTotal"] / 1024
    data = data_line(sysinfo.read_text("/proc/mounts"), datadisk.read_boot_count())
    return "\n".join([
        f"hostname: {sysinfo.read_text('/proc/sys/kernel/hostname', '?')}",
        f"kernel: {sysinfo.read_text('/proc/sys/kernel/osrelease', '?')}",
        f"uptime: {sysinfo.uptime():.2f} s",
        f"load: {' '.join(sysinfo.loadavg())}",
        f"memory: {used:.1f} MiB used of {total:.1f} MiB",
        f"processes: {len(sysinfo.processes())}",
        f"pid1: {sysinfo.cmdline(1)} (exe {_exe(1)})",
        f"mounts: {' '.join(sysinfo.mount_points())}",
        f"services: {_services()}",
        f"data: {data}",
    ])


SHUTDOWN_WAIT = 30.0  # PID 1 stops this console well within this when it shuts down


def _power(action, sig, wait=SHUTDOWN_WAIT):
    def command(out):
        out(f"{action}: asking PID 1 for an orderly shutdown ...")
        os.kill(1, sig)
        import time
        time.sleep(wait)             # PID 1 TERMs us as part of the shutdown
        return f"{action}: PID 1 has not shut down after {wait:g}s; see its log lines above."
    return command


COMMANDS = {
    "help": (cmd_help, "show this list"),
    "status": (cmd_status, "uptime, memory, processes, mounts and services"),
    "poweroff": (_power("poweroff", SIGTERM), "stop everything and power the machine off"),
    "reboot": (_power("reboot", SIGINT), "stop everything and boot again"),
}
ALIASES = {"?": "help", "shutdown": "poweroff", "halt": "poweroff", "restart": "reboot"}


def dispatch(line, out):
    """Run one input line; return what to print (or None)."""
    words = line.split()
    if not words:
        return None
    name = ALIASES.get(words[0].lower(), words[0].lower())
    if name not in COMMANDS:
        return (f"unknown command {words[0]!r}. This console understands: "
                f"{', '.join(COMMANDS)} (type help).")
    if len(words) > 1:
        return f"{name} takes no arguments (got {' '.join(words[1:])!r})."
    return COMMANDS[name][0](out)


def repl(stdin=None, out=None):
    stdin = stdin or sys.stdin
    out = out or (lambda text: print(text, flush=True))
    while True:
        try:
            sys.stdout.write(PROMPT)
            sys.stdout.flush()
            line = stdin.readline()
            if not line:
                out("")
                return 0             # end of input (Ctrl-D): PID 1 starts a fresh console
            result = dispatch(line, out)
            if result:
                out(result)
        except KeyboardInterrupt:
            out("^C")
        except Exception as e:  # noqa: BLE001 - a bad command must not kill the console
            out(f"error: {e}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "--tty":
        print("usage: python3 -m aether.console --tty /dev/ttyS0", file=sys.stderr)
        return 2
    tty = argv[1]
    attach(tty)
    print(f"\nAetherOS {__version__} on {os.path.basename(tty)}. Type help.", flush=True)
    ready_marker(tty)
    return repl()


if __name__ == "__main__":
    sys.exit(main())
