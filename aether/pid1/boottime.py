"""The boot timeline: when the kernel ran /init, and PID 1's own marks after it.

PID 1 (aether/pid1/init.py) notes when each of its phases ended, by CLOCK_BOOTTIME
(``now()``: the clock of /proc/uptime, readable before /proc is mounted).  A
second after the consoles are started it imports this module (off the boot
path) and logs one line, which the benchmark (scripts/bench) and a curious user
read:

    boot timeline: kernel ran /init 0.96 s, python 1.10 s, imports 1.18 s, ...

The kernel's moment comes from its own log (/dev/kmsg: the record "Run /init as
init process", which `quiet` keeps off the console but not out of the log).
The log is read without blocking and a bounded number of records at most; a
record is trusted only for its timestamp, and only in the exact kernel format.
"""

import os
import time

KMSG = "/dev/kmsg"
KMSG_RECORDS = 4096          # at most this many records read: the kernel's ring is bounded too
KMSG_RECORD_BYTES = 8192     # larger than the kernel's longest record (PRINTK_MESSAGE_MAX)
RUN_INIT_PREFIX = "Run "
RUN_INIT_SUFFIX = " as init process"


def now():
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def parse_record(record):
    """Seconds of uptime of a /dev/kmsg record saying the kernel ran init; else None.

    A record is ``<prio>,<seq>,<usec>,<flags>[,...];<message>\\n`` (then
    continuation lines); anything else is not from the kernel and is ignored.
    """
    head, sep, message = record.partition(";")
    fields = head.split(",")
    if not sep or len(fields) < 4 or not fields[2].isdigit() or len(fields[2]) > 20:
        return None
    message = message.split("\n", 1)[0]
    if not (message.startswith(RUN_INIT_PREFIX) and message.endswith(RUN_INIT_SUFFIX)):
        return None
    return int(fields[2]) / 1e6


def kernel_ran_init(path=KMSG, limit=KMSG_RECORDS):
    """When the kernel ran init (seconds of uptime) by its log, or None if it is not there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for _ in range(limit):
            try:
                record = os.read(fd, KMSG_RECORD_BYTES)
            except BrokenPipeError:        # records overwritten while we read: go on
                continue
            except OSError:                # EAGAIN: the end of the log
                return None
            if not record:
                return None
            at = parse_record(record.decode("utf-8", "replace"))
            if at is not None:
                return at
        return None
    finally:
        os.close(fd)


def line(kernel_at, marks):
    """The timeline as one log line: each phase (name, uptime) and when it ended."""
    phases = [] if kernel_at is None else [("kernel ran /init", kernel_at)]
    phases += marks
    return "boot timeline: " + ", ".join(f"{name} {at:.2f} s" for name, at in phases)
