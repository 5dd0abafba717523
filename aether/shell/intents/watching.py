"""Intents that watch and schedule: watch (alert when a reading crosses a
threshold) and record (sample a reading every so often), each a built-in agent.
"""

from ..plan import Step
from .words import ABOVE, BELOW, EVERY, WHEN_WORDS
from .registry import Match, intent
from .agents import _name_from, _undo_spawn

READINGS = [  # (words that name it, reading, unit)
    (("pressure", "psi"), "pressure.memory", ""),
    (("memory", "ram", "mem"), "memory.used_percent", "%"),
    (("cpu", "processor", "cpus"), "cpu.percent", "%"),
    (("load",), "load.1", ""),
    (("disk", "storage", "space", "filesystem"), "disk./.used_percent", "%"),
    (("failed", "failures", "failing"), "agents.failed", ""),
    (("agents", "agent"), "agents.total", ""),
]


def _reading(u):
    for words, name, unit in READINGS:
        if u.has(*words):
            if name == "pressure.memory" and u.has("cpu", "io"):
                return ("pressure.cpu" if u.has("cpu") else "pressure.io"), unit
            if name.startswith("disk.") and u.has("data", "/var/lib/aether"):
                return "disk./var/lib/aether.used_percent", unit
            return name, unit
    return None, None


@intent("watch", "watching", "tell me when a reading crosses a threshold (starts a watch agent)",
        ["tell me when memory goes above 80%", "alert me if the load is over 2", "warn when disk use passes 90%"])
def watch(u, env):
    if not (u.has(*WHEN_WORDS) or u.has("watch", "monitor")):
        return None
    if not (u.percents or u.integers) or not u.has(*ABOVE, *BELOW, "goes", "reaches", "hits", "passes"):
        return None
    if u.has(*EVERY) and not u.has("when", "whenever", "if"):
        return None
    if u.agent and not u.has("when", "whenever", "if", "once"):
        return None
    reading, _unit = _reading(u)
    if reading is None:
        return Match(1.5, note="Watch which reading? I can watch memory, cpu, load, disk, pressure and "
                               "failed agents, e.g. 'tell me when memory goes above 80%'.",
                     answer="Watch which reading? I can watch memory, cpu, load, disk, pressure and failed "
                            "agents, e.g. 'tell me when memory goes above 80%'.")
    value = u.percents[0] if u.percents else float(u.integers[0])
    op = "<" if u.has(*BELOW) and not u.has(*ABOVE) else ">"
    if u.has("or equal", "at least", "reaches", "hits") and op == ">":
        op = ">="
    condition = f"{reading} {op} {value:g}"
    short = reading.split(".")[0] if not reading.startswith("disk.") else "disk"
    name = _name_from(f"{short} {'above' if '>' in op else 'below'} {value:g}", env, "watch-")
    args = [condition] + (["--once"] if u.has("once", "first", "one time") and not u.has("whenever") else [])
    manifest = {"name": name, "goal": f"alert when {condition}", "program": "aether.builtin.watch:main",
                "args": args, "restart": "on-failure"}
    return Match(3.0, [Step("agent.spawn", {"manifest": manifest}, f"start {name}: alert when {condition}",
                            undo=_undo_spawn(name))])


@intent("record", "watching", "record a reading every so often into the context store (starts an agent)",
        ["every 5 minutes record the load", "log memory usage every minute", "sample cpu every 30 seconds"])
def record(u, env):
    if not u.has(*EVERY):
        return None
    reading, _unit = _reading(u)
    if reading is None or not u.has("record", "log", "save", "store", "sample", "track", "keep", "note",
                                    "write", "collect", "measure", "capture"):
        return None
    seconds = u.durations[0] if u.durations else (3600 if u.has("hourly", "hour") else
                                                  86400 if u.has("daily", "day") else 60)
    if reading == "memory.used_percent" and u.has("mib", "megabytes", "used"):
        reading = "memory.used_mib"
    name = _name_from(f"record {reading.split('.')[0]}", env)
    manifest = {"name": name, "goal": f"record {reading} every {seconds:g}s",
                "program": "aether.builtin.record:main",
                "args": [reading, "--every", f"{seconds:g}"], "restart": "on-failure"}
    return Match(3.0, [Step("agent.spawn", {"manifest": manifest},
                            f"start {name}: record {reading} every {_dur(seconds)}", undo=_undo_spawn(name))])


def _dur(seconds):
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g} {unit}"
    return f"{seconds:g} s"
