"""What PID 1's side of the machine can tell without aetherd: the status lines
both ``sys.info`` (through aetherd) and the console (when aetherd does not
answer) show.  Standard library only, and cheap: it reads /proc and
PID 1's status file.
"""

import os

from . import sysinfo

INIT_STATUS = "/run/aether/init.json"
DATA_DIR = sysinfo.DATA_DIR


def exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError as e:
        return f"unreadable: {e.strerror}"


def services(path=INIT_STATUS):
    """PID 1's services as one line, from the status file it keeps."""
    if not os.path.exists(path):
        return "unknown (PID 1 has not written its status)"
    import json
    try:
        with open(path) as f:
            status = json.load(f)
    except (OSError, ValueError) as e:
        return f"unknown ({path}: {e})"
    parts = []
    for svc in status.get("services", []):
        detail = f"pid {svc['pid']}" if svc.get("pid") else f"last exit {svc.get('last_exit')}"
        parts.append(f"{svc['name']} {svc['state']} ({detail})")
    return ", ".join(parts) or "none"


def data_line(mounts_text, boot_count, data_dir=DATA_DIR):
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


def fields():
    """pid1, mounts, services, data and the process count, as sys.info reports them."""
    return {"pid1": f"{sysinfo.cmdline(1)} (exe {exe(1)})", "mounts": sysinfo.mount_points(),
            "services": services(), "processes": len(sysinfo.processes()),
            "data": data_line(sysinfo.read_text("/proc/mounts"), sysinfo.read_boot_count())}


def text():
    """The status screen from this side alone (the console's fallback)."""
    info = sysinfo.meminfo()
    used, total = sysinfo.memory_used_kib(info) / 1024, info["MemTotal"] / 1024
    f = fields()
    return "\n".join([
        f"hostname: {sysinfo.read_text('/proc/sys/kernel/hostname', '?')}",
        f"kernel: {sysinfo.read_text('/proc/sys/kernel/osrelease', '?')}",
        f"uptime: {sysinfo.uptime():.2f} s",
        f"load: {' '.join(sysinfo.loadavg())}",
        f"memory: {used:.1f} MiB used of {total:.1f} MiB",
        f"processes: {f['processes']}",
        f"pid1: {f['pid1']}",
        f"mounts: {' '.join(f['mounts'])}",
        f"services: {f['services']}",
        f"data: {f['data']}",
    ])
