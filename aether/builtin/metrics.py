"""Readings both built-in agents use: one flat dict of numbers from sys.info and /proc/stat.

Names (what ``watch`` conditions can use): cpu.percent, load.1, memory.used_percent,
memory.used_mib, memory.available_mib, pressure.cpu, pressure.memory, pressure.io
(PSI some avg10), disk.<mount>.used_percent, agents.total, agents.failed, and
context.pressure (the share of recent thinks that were truncated, machine-wide) and
context.thrashing (how many principals thrash) when aetherd reports them.
"""


def cpu_times():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields), idle


def cpu_percent(before, after):
    total, idle = after[0] - before[0], after[1] - before[1]
    return round(100.0 * (total - idle) / total, 1) if total > 0 else 0.0


def flatten(info, cpu=None):
    mem = info["memory"]
    total = mem.get("memtotal_kib", 0) or 1
    values = {
        "load.1": float(info["load"][0]),
        "memory.used_percent": round(100.0 * mem["used_kib"] / total, 1),
        "memory.used_mib": round(mem["used_kib"] / 1024, 1),
        "memory.available_mib": round(mem.get("memavailable_kib", 0) / 1024, 1),
        "agents.total": info["agents"]["total"],
        "agents.failed": info["agents"]["by_state"].get("failed", 0),
    }
    if cpu is not None:
        values["cpu.percent"] = cpu
    think = (info.get("llm") or {}).get("think") or {}
    if "pressure" in think:                              # the machine's context pressure (llm.think)
        values["context.pressure"] = think.get("pressure", 0.0)
        values["context.thrashing"] = len(think.get("thrashing") or [])
    for resource, kinds in (info.get("pressure") or {}).items():
        values[f"pressure.{resource}"] = kinds.get("some", {}).get("avg10", 0.0)
    for disk in info.get("disks", []):
        if disk["size_bytes"] and not disk.get("read_only"):    # a read-only root (squashfs) is always "full"
            used = 100.0 * (disk["size_bytes"] - disk["free_bytes"]) / disk["size_bytes"]
            values[f"disk.{disk['mount']}.used_percent"] = round(used, 1)
    return values
