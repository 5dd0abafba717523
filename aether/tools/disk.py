"""disk.usage: size, used and free space of the mounted file systems (statvfs)."""

import os

from .core import NotFound, args_schema, tool

# Kernel and virtual file systems: no disk behind them; left out unless asked for.
VIRTUAL = frozenset({"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "securityfs",
                     "debugfs", "tracefs", "bpf", "mqueue", "hugetlbfs", "pstore", "configfs",
                     "fusectl", "binfmt_misc", "autofs", "efivarfs", "nsfs", "rpc_pipefs",
                     "selinuxfs"})


def _unescape(field):
    r"""/proc/mounts writes space, tab, newline and backslash as \040, \011, \012, \134."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        octal = field[i + 1:i + 4]
        if field[i] == "\\" and len(octal) == 3 and all(c in "01234567" for c in octal):
            out.append(chr(int(octal, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts():
    """[(device, mount point, fs type, options)] from /proc/self/mounts."""
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 4:
                found.append((_unescape(parts[0]), _unescape(parts[1]), parts[2],
                              parts[3].split(",")))
    return found


def usage(device, point, fstype, options):
    st = os.statvfs(point)
    total, free, avail = st.f_blocks * st.f_frsize, st.f_bfree * st.f_frsize, st.f_bavail * st.f_frsize
    used = total - free
    return {"mount_point": point, "device": device, "fstype": fstype,
            "read_only": "ro" in options, "total_bytes": total, "used_bytes": used,
            "available_bytes": avail,
            "use_percent": round(100 * used / (used + avail), 1) if used + avail else 0.0,
            "inodes_total": st.f_files, "inodes_free": st.f_ffree}


@tool("disk.usage", args_schema({
    "mount_point": {"type": "string", "minLength": 1, "maxLength": 4096,
                    "description": "only this mount point, e.g. /var/lib/aether"},
    "all": {"type": "boolean", "default": False,
            "description": "include virtual file systems (proc, sysfs, cgroup...)"},
}))
def disk_usage(caller, args):
    """Size, used and available space and inodes of each mounted file system.

    ``available_bytes`` is what non-root writers may still use; ``use_percent`` is
    computed like df's.  Virtual file systems are left out unless ``all`` is true.
    """
    result, wanted = [], args.get("mount_point")
    for device, point, fstype, options in mounts():
        if wanted is not None and point != wanted.rstrip("/") and point != wanted:
            continue
        if wanted is None and fstype in VIRTUAL and not args["all"]:
            continue
        try:
            result.append(usage(device, point, fstype, options))
        except OSError:
            continue  # gone, or not ours to look at
    if wanted is not None and not result:
        raise NotFound(f"{wanted} is not a mount point (disk.usage without arguments lists them)")
    return {"filesystems": result}
