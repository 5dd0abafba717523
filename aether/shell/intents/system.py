"""Intents that say what is going on: status, agents, processes, memory, CPU,
disks, network, time, uptime, alerts.
"""

import re

from ..plan import Step
from .words import AGENTWORD, ALERT, CPU, DISK, EVERY, LOGS, MEMORY, NET, PROC, SHOW, SPAWN, STOP, WHEN_WORDS
from .registry import Match, intent, tool


@intent("status", "system", "an overview: uptime, memory, load, agents, context, services",
        ["status", "how is the machine doing?", "what is going on", "give me an overview"])
def status(u, env):
    score = 0.0
    if u.has("status", "overview", "health", "healthy", "summary", "situation", "dashboard", "sitrep"):
        score += 2
    if u.has("going on", "happening", "up to", "how are things", "how is everything", "doing", "everything ok",
             "everything okay", "all ok", "all good", "up with", "everything fine", "things", "holding up"):
        score += 1.5
    if u.has("system", "machine", "box", "computer", "host", "everything", "vm", "os"):
        score += 0.5
    if u.agent or u.has("since", "yesterday", "ago", "last"):
        score -= 2
    return Match(score, [Step("sys.info", says="the machine's state", show="status")]) if score >= 1.5 else None


@intent("agents", "system", "the agent table: name, state, pid, parent, restarts",
        ["list agents", "which agents are running?", "show me the services"])
def agents(u, env):
    if not u.has(*AGENTWORD) or u.agent:
        return None
    score = 1.0 + (1 if u.has(*SHOW, "running", "active", "up", "alive", "all") else 0)
    if u.has("agents", "services", "daemons", "workers"):
        score += 0.5
    if u.has(*PROC, *SPAWN, *STOP, *LOGS) or u.quoted:
        score -= 1
    return Match(score, [Step("agent.list", says="every agent and its state")])


@intent("processes", "system", "the process table (optionally those matching a word)",
        ["show processes", "what programs are running", "ps", "processes matching python"])
def processes(u, env):
    if not u.has(*PROC) and not u.has("programs running", "what is running", "running programs"):
        return None
    score = 2.0
    match = None
    m = re.search(r"\b(?:matching|named|called|like|with)\s+([\w.\-/]+)", u.lowered)
    if m:
        match = m.group(1)
    elif u.quoted:
        match = u.quoted[0]
    if match:
        return Match(score + 0.5, [tool("processes.list", f"processes whose command line has {match!r}",
                                        match=match)])
    return Match(score, [Step("sys.processes", says="every process, with memory and agent")])


@intent("memory", "system", "memory in use and available, and memory pressure",
        ["how much memory is free?", "ram usage", "show memory"])
def memory(u, env):
    if not u.has(*MEMORY) or u.has(*WHEN_WORDS[:4], "limit", "cap", "remember", "every") or u.agent:
        return None
    if u.has("memories", "remembered", "know", "forget", "my memory", "in memory", "look up", "search", *PROC) \
            or u.integers and not u.percents:
        return None
    return Match(2.0 + (0.5 if u.has(*SHOW, "free", "used", "available", "left", "usage") else 0),
                 [Step("sys.info", says="memory and pressure", show="memory")])


@intent("cpu", "system", "CPU count, load and CPU pressure",
        ["cpu usage", "what is the load average", "how busy is the machine"])
def cpu(u, env):
    if not u.has(*CPU) or u.has("when", "whenever", "every", "record", "limit", "cap") or u.agent:
        return None
    if u.has("disk", "memory", "network") and not u.has("cpu", "load"):
        return None
    return Match(2.0, [Step("sys.info", says="CPUs, load and pressure", show="cpu")])


@intent("disks", "system", "file systems: size, used and free space",
        ["disk usage", "how much space is left?", "show mounted filesystems"])
def disks(u, env):
    if not u.has(*DISK) or u.has("when", "whenever") or u.paths or u.has(*EVERY) and u.has("record", "log"):
        return None
    score = 2.0 + (0.5 if u.has("free", "used", "left", "usage", "full") else 0)
    return Match(score, [tool("disk.usage", "space on each mounted file system", all=u.has("all", "every"))])


@intent("network", "system", "network interfaces and addresses (and routes)",
        ["show network interfaces", "what is my ip address", "am I online", "show routes"])
def network(u, env):
    if not u.has(*NET) or u.urls or u.has("fetch", "download"):
        return None
    steps = [tool("network.interfaces", "interfaces, state and addresses")]
    if u.has("route", "routes", "gateway", "online", "internet", "connected", "routing"):
        steps.append(tool("network.routes", "routes and default gateways"))
    return Match(2.0, steps)


@intent("time", "system", "the date and time, uptime and time zone",
        ["what time is it", "what is the date", "show the clock"])
def time_(u, env):
    if not (u.has("time", "date", "clock", "timezone", "utc") or u.phrase("what day")):
        return None
    if u.has("every", "since", "last", "ago", "yesterday", "happened", "compacted", "schedule"):
        return None
    return Match(2.0, [tool("clock.now", "wall clock, uptime and time zone")])


@intent("uptime", "system", "how long the machine has been up",
        ["uptime", "how long has it been up?", "when did it boot"])
def uptime(u, env):
    if u.has("uptime") or u.phrase("been up") or u.phrase("been running") and not u.agent \
            or u.has("boot", "booted", "reboot", "started") and u.has("when", "long") and not u.agent:
        return Match(2.2, [tool("clock.now", "uptime and wall clock")])
    return None


@intent("alerts", "system", "recent alerts (from sysmon, watchers and agents), newest first",
        ["show alerts", "any warnings?", "what alerts are waiting"])
def alerts(u, env):
    if not u.has(*ALERT) or u.has("when", "whenever", "if", "every") or u.percents:
        return None
    if u.has("tell me", "notify", "let me know"):
        return None
    params = {"kind": "alert", "limit": 20, "newest_first": True}
    since = u.since()
    if since is not None:
        params["since"] = since
    return Match(2.0 + (0.5 if u.has(*SHOW, "recent", "latest", "new", "waiting") else 0),
                 [Step("ctx.journal", params, "recent alerts", show="alerts")])
