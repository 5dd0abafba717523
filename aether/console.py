"""The console: the intent shell on one terminal (ttyS0, tty1).

PID 1 forks it in a new session; it makes its terminal the controlling
terminal (TIOCSCTTY), so Ctrl-C reaches this program and never PID 1.  Just
before its first prompt of a boot on a terminal it prints
``aether-ready uptime=<seconds>``; tests and benchmarks key on it.  It reads
the first line plainly, and only then imports and runs the intent shell
(aether/shell/terminal.py), so a console nobody uses (tty1 under QEMU) never
loads it.

    python3 -m aether.console --tty /dev/ttyS0
"""

import fcntl
import os
import sys
import termios

from . import __version__, sysinfo

RUN_DIR = "/run/aether"


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
    sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)
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


def normal_priority():
    """Return to CPU priority 0 if started lower.

    PID 1 may start the consoles after the first at a low priority (nice 10), so
    that on one CPU the first console's prompt is not held back by the others'
    start-up; once a console's own prompt is up, the shell a person types in
    runs at the normal priority.  Not root (host tests): it stays as started."""
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) > 0:
            os.setpriority(os.PRIO_PROCESS, 0, 0)
    except OSError:
        pass


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "--tty":
        print("usage: python3 -m aether.console --tty /dev/ttyS0", file=sys.stderr)
        return 2
    tty = argv[1]
    attach(tty)
    print(f"\nAetherOS {__version__} on {os.path.basename(tty)}. Type what you want, or help.", flush=True)
    ready_marker(tty)
    normal_priority()
    first = first_line()
    if first is None:
        return 0                           # end of input: PID 1 starts a fresh console
    from .shell import terminal            # only now: a console nobody types on costs no memory
    return terminal.console(first)


def first_line(prompt="aether> "):
    """The first line, read plainly (the tty edits and echoes it) before the shell is loaded."""
    while True:
        sys.stdout.write(prompt)
        sys.stdout.flush()
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            sys.stdout.write("\n")
            continue
        return line.rstrip("\n") if line else None


if __name__ == "__main__":
    sys.exit(main())
