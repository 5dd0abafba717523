"""What the machine is doing, read from /proc: uptime, memory, processes, mounts;
and which boot this is (the counter PID 1 keeps on the data partition)."""

import os

DATA_DIR = "/var/lib/aether"         # the data partition's mount point (aether/pid1/datadisk.py)
BOOT_COUNT = "boot-count"            # PID 1 adds one to it at every boot with a data partition


def uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def meminfo():
    """{field: kB} from /proc/meminfo."""
    values = {}
    with open("/proc/meminfo") as f:
        for line in f:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                values[name] = int(parts[0])
    return values


def memory_used_kib(info=None):
    info = info or meminfo()
    return info["MemTotal"] - info.get("MemAvailable", info.get("MemFree", 0))


def processes():
    """Pids of user-space processes (kernel threads have an empty cmdline)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if f.read(1):
                        pids.append(int(name))
            except OSError:
                pass
    return sorted(pids)


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")


def mount_points():
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.strip()]


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def read_text(path, default=""):
    """A small file's text, stripped; default when it cannot be read."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def read_boot_count(data_dir=DATA_DIR):
    """The number in data_dir/boot-count, or 0 when there is none (or it is garbage)."""
    text = read_text(os.path.join(data_dir, BOOT_COUNT))
    return int(text) if text.isdigit() else 0


def proc_stat(pid):
    """(state, ppid, pgrp) of a process from /proc/<pid>/stat, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[2])


def session_of(pid):
    """The session id of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2:].split()[3])


def pids():
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(root):
    """Every pid below ``root`` in the process tree, parents before children."""
    children: dict[int, list] = {}
    for pid in pids():
        stat = proc_stat(pid)
        if stat:
            children.setdefault(stat[1], []).append(pid)
    found, queue = [], [root]
    while queue:
        for child in children.get(queue.pop(0), ()):
            found.append(child)
            queue.append(child)
    return found
