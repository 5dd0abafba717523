"""Every intent the offline planner understands: how to spot it, and its plan.

An intent is a function of an Utterance that returns None (not this) or a
Match: a score (how sure) and the steps.  The planner keeps the best match.
Scores are small sums of evidence: a topic word, a verb, a named agent, a
slot of the right type.  Each intent is registered with its help text and
examples; ``help`` and docs/shell.md are made from the same registry, and a
test checks both.

Words are grouped into vocabularies (SHOW, STOP, ...) so one intent accepts
many phrasings: "stop sysmon", "kill the sysmon agent", "shut sysmon down"
and "please terminate sysmon" are one evidence sum.
"""

import re

from .plan import Step

# -- vocabularies ---------------------------------------------------------------

SHOW = ("show", "list", "display", "print", "get", "give", "view", "see", "check", "tell",
        "report", "what", "which", "how", "are", "is", "any", "find", "look", "whats", "query")
STOP = ("stop", "kill", "terminate", "halt", "end", "shut", "shutdown", "abort", "quit")
START = ("start", "launch", "run", "resume", "boot", "bring", "begin", "fire", "enable")
RESTART = ("restart", "relaunch", "reload", "bounce", "recycle", "respawn", "reboot")
SPAWN = ("spawn", "create", "make", "new", "add", "deploy", "set", "setup")
MEMORY = ("memory", "ram", "mem", "swap", "meminfo")
CPU = ("cpu", "cpus", "processor", "processors", "load", "busy", "loadavg", "cores", "utilisation",
       "utilization")
DISK = ("disk", "disks", "storage", "space", "filesystem", "filesystems", "partition", "partitions",
        "mounts", "mounted", "df", "drive", "drives")
NET = ("network", "networking", "interfaces", "interface", "ip", "ips", "address", "addresses",
       "online", "connected", "connection", "internet", "routes", "route", "gateway", "nic", "eth0",
       "ifconfig", "mac")
TIME = ("time", "date", "clock", "day", "today", "timezone", "utc")
ALERT = ("alert", "alerts", "warning", "warnings", "alarm", "alarms", "notification", "notifications",
         "problems", "issues", "errors")
AGENTWORD = ("agent", "agents", "services", "service", "daemons", "workers")
PROC = ("process", "processes", "ps", "programs", "tasks", "pids", "top")
LOGS = ("log", "logs", "output", "printed", "print", "stdout", "said", "saying", "messages", "tail", "lines",
        "wrote", "written")
INSPECT = ("inspect", "details", "detail", "describe", "info", "information", "about", "doing",
           "state", "status", "health", "usage", "using", "limits", "explain")
FILEWORDS = ("file", "files", "directory", "folder", "dir", "contents", "content")
REMEMBER = ("remember", "memorise", "memorize", "note", "record", "save", "store", "keep")
FORGET = ("forget", "erase", "unlearn", "drop")
RECALL = ("recall", "know", "remember", "memories", "memory", "notes", "said", "told", "knowledge")
SEARCH = ("search", "find", "lookup", "grep", "look")
WHEN_WORDS = ("when", "whenever", "once", "if", "alert", "notify", "warn", "tell", "ping", "let")
ABOVE = ("above", "over", "exceeds", "exceed", "exceeding", "more", "higher", "greater", "crosses",
         "past", "beyond", "reaches", "hits", ">")
BELOW = ("below", "under", "less", "lower", "drops", "falls", "<")
EVERY = ("every", "each", "hourly", "minutely", "periodically", "regularly", "daily")
POWEROFF = ("poweroff", "shutdown", "halt")
WRITE = ("write", "append", "put", "overwrite", "save", "create", "replace")
DELETE = ("delete", "remove", "rm", "erase", "unlink", "del", "destroy", "wipe", "rid")
MACHINE = ("machine", "system", "computer", "box", "vm", "os", "aetheros", "host", "server")
QUESTION = ("when", "since", "last", "ago", "how", "was", "were", "did", "changed", "happened")
POLITE = ("please", "could", "would", "can", "you", "kindly", "now", "me", "for", "the", "a", "an",
          "i", "want", "to", "like", "need", "us", "let", "just", "quickly", "go", "ahead")

# -- the registry ------------------------------------------------------------------

INTENTS = {}


class Intent:
    __slots__ = ("name", "topic", "help", "examples", "match")

    def __init__(self, name, topic, help_text, examples, match):
        self.name, self.topic, self.help, self.examples, self.match = name, topic, help_text, examples, match


class Match:
    __slots__ = ("score", "steps", "note", "answer")

    def __init__(self, score, steps=(), note="", answer=None):
        self.score, self.steps, self.note, self.answer = score, list(steps), note, answer


def intent(name, topic, help_text, examples):
    def register(fn):
        INTENTS[name] = Intent(name, topic, help_text, examples, fn)
        return fn
    return register


def ask_agent(u, what, env):
    """A Match that asks which agent, when the line names none."""
    names = ", ".join(sorted(env.get("agents", ()))) or "none are declared"
    return Match(1.5, note=f"Which agent should I {what}? Name one: {names}.",
                 answer=f"Which agent should I {what}? Name one: {names}.")


def tool(name, says="", risk=None, show=None, undo=None, **args):
    return Step("tool.call", {"name": name, "args": args}, says, risk, show or name, undo)


# ================================================================ what is going on


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


# ================================================================ agents


@intent("agent.inspect", "agents", "one agent in detail: state, lineage, limits, usage, restarts",
        ["inspect sysmon", "tell me about the watch agent", "how much memory does sysmon use?"])
def inspect(u, env):
    if not u.agent:
        return None
    score = 1.0
    if u.has(*INSPECT) or u.has(*SHOW) or u.has(*MEMORY, *CPU):
        score += 1.0
    if u.has(*STOP, *START, *RESTART, *LOGS, *DELETE, "why", "limit", "cap", "spawn", "signal"):
        score -= 1.0
    return Match(score, [Step("agent.inspect", {"name": u.agent}, f"details of {u.agent}")])


@intent("agent.logs", "agents", "an agent's recent output",
        ["logs of sysmon", "show sysmon's output", "last 20 lines from watch"])
def logs(u, env):
    if not u.has(*LOGS) or u.has("remember", "journal", "happened") or u.paths:
        return None
    if not u.agent:
        return ask_agent(u, "show the logs of", env) if u.has("log", "logs") and not u.since() else None
    params = {"name": u.agent}
    lines = [n for n in u.integers if 0 < n <= 10000]
    if lines:
        params["lines"] = lines[0]
    return Match(2.5, [Step("agent.logs", params, f"recent output of {u.agent}")])


def _undo_start(name):
    return lambda _result: [Step("agent.stop", {"name": name}, f"stop {name} again",
                                 f"stops {name} and its children")]


def _undo_stop(name):
    return lambda _result: [Step("agent.start", {"name": name}, f"start {name} again")]


@intent("agent.start", "agents", "start a stopped, exited or failed agent",
        ["start sysmon", "bring the watch agent back up", "launch sysmon"])
def start(u, env):
    if not (u.has(*START) or u.phrase("turn on") or u.all("get", "going")) \
            or u.has("every", "when", "whenever", "restart") or u.phrase("start up") and not u.agent:
        return None
    if u.has(*STOP) and u.has("again"):
        return None                                   # stop and start again: a restart
    if u.has("new", "spawn", "goal") or u.has("boot") and not u.agent:
        return None
    if not u.agent:
        return ask_agent(u, "start", env) if u.has("agent", "service") else None
    return Match(2.5, [Step("agent.start", {"name": u.agent}, f"start {u.agent}", undo=_undo_start(u.agent))])


@intent("agent.stop", "agents", "stop an agent and its children (needs yes)",
        ["stop sysmon", "kill the watch agent", "shut sysmon down"])
def stop(u, env):
    if not u.has(*STOP, "stopped") and not u.phrase("turn off") and not u.all("take", "down"):
        return None
    if u.has(*START) and u.has("again"):
        return None
    if u.has("why", "when", "whenever") or not u.agent and not u.has("agent", "agents", "service"):
        return None
    if not u.agent:
        return ask_agent(u, "stop", env)
    return Match(2.5, [Step("agent.stop", {"name": u.agent}, f"stop {u.agent} and its children",
                            f"stops {u.agent} and every agent under it", undo=_undo_stop(u.agent))])


@intent("agent.restart", "agents", "stop an agent, then start it again (needs yes)",
        ["restart sysmon", "bounce the watch agent", "give sysmon a fresh start"])
def restart(u, env):
    if not (u.has(*RESTART[:-1]) or u.phrase("fresh start") or u.phrase("start again")
            or u.phrase("start over") or u.has(*STOP) and u.has(*START) and u.has("again")
            or u.has("reboot") and u.agent):
        return None
    if u.has("why", "how", "often", "times", "many", "when", "machine", "system", "computer"):
        return None
    if not u.agent:
        return ask_agent(u, "restart", env) if u.has("agent", "service") else None
    return Match(3.0, [Step("agent.restart", {"name": u.agent}, f"stop, then start {u.agent}",
                            f"stops {u.agent} and its children")])


@intent("agent.remove", "agents", "forget a stopped agent and its subtree (needs yes)",
        ["remove the watch agent", "delete agent watch-memory"])
def remove(u, env):
    if not (u.has(*DELETE, "forget", "uninstall", "drop") or u.phrase("get rid of")) or not u.agent or u.paths:
        return None
    return Match(2.6, [Step("agent.stop", {"name": u.agent}, f"stop {u.agent} if it is running",
                            f"stops {u.agent} and its children"),
                       Step("agent.remove", {"name": u.agent}, f"forget {u.agent} and its subtree",
                            f"removes {u.agent}'s declaration; it will not come back")])


@intent("agent.spawn", "agents", "spawn a new agent with a goal (it works toward it with the model)",
        ["spawn an agent to summarise the journal every hour", "create a new agent called digest that "
         "watches disk use", "start an agent with the goal: tidy /var/lib/aether/tmp"])
def spawn(u, env):
    if not u.has("spawn") and not (u.has(*SPAWN, *START) and u.has("agent", "worker", "helper")
                                   and u.has("goal", "to", "that", "which", "for", "called", "named")):
        return None
    if u.has("when", "whenever") and (u.percents or u.has(*ABOVE, *BELOW)):
        return None
    goal = (u.quoted[0] if u.quoted else
            u.after("with the goal of", "with the goal", "with goal", "goal:", "whose goal is to", "whose goal is",
                    "whose job is to", "goal", "that will", "which will",
                    "to", "that", "which", "for"))
    goal = re.sub(r"^(?:to|will)\s+", "", goal).strip(" .")
    if not goal:
        return Match(2.0, note="What should the new agent do? Say it as a goal, e.g. "
                               "'spawn an agent to check /var/log every hour'.",
                     answer="What should the new agent do? Say it as a goal, e.g. "
                            "'spawn an agent to check /var/log every hour'.")
    name = u.named if u.named and u.named not in env.get("agents", ()) else _name_from(goal, env)
    manifest = {"name": name, "goal": goal[:500], "program": "aether.builtin.goal:main",
                "restart": "on-failure"}
    return Match(3.0, [Step("agent.spawn", {"manifest": manifest}, f"declare and start {name}: {goal[:60]}",
                            undo=_undo_spawn(name))])


def _undo_spawn(name):
    return lambda _result: [Step("agent.stop", {"name": name}, f"stop {name}", f"stops {name}"),
                            Step("agent.remove", {"name": name}, f"forget {name}", f"removes {name}")]


STOPWORDS = {"the", "a", "an", "to", "of", "and", "or", "for", "in", "on", "at", "my", "me", "it", "is", "every",
             "each", "all", "that", "this", "with", "when", "be", "from", "into", "if", "above", "over", "goes"}


def _name_from(text, env, prefix=""):
    """An agent name made from the first content words of text, unique among known agents."""
    words = [w for w in re.findall(r"[a-z][a-z0-9]*", text.lower()) if w not in STOPWORDS][:3]
    base = (prefix + "-".join(words))[:28].strip("-") or "agent"
    name, n = base, 2
    while name in env.get("agents", ()):
        name, n = f"{base}-{n}", n + 1
    return name


@intent("agent.limit", "agents", "set an agent's memory, CPU or process limit (lowering one needs yes)",
        ["limit sysmon to 64M of memory", "give watch 50% cpu", "cap the sysmon agent at 32 processes"])
def limit(u, env):
    if not (u.has("limit", "limits", "cap", "restrict", "allow", "give", "set", "lower", "raise", "increase",
                  "reduce", "max", "maximum", "throttle") or u.agent and u.has("more than", "at most", "no more")):
        return None
    if not (u.sizes or u.percents or (u.has("processes", "pids", "tasks") and u.integers)):
        return None
    if not u.agent:
        return ask_agent(u, "limit", env)
    limits = {}
    if u.sizes:
        limits["memory"] = u.sizes[0]
    if u.percents and (u.has("cpu", "processor") or not u.sizes):
        limits["cpu_percent"] = u.percents[0]
    if u.has("processes", "pids", "tasks") and u.integers:
        limits["pids"] = u.integers[-1]
    shown = ", ".join(f"{k} {v}" for k, v in limits.items())
    return Match(3.0, [Step("agent.set_limits", {"name": u.agent, **limits}, f"set {u.agent}'s limits: {shown}",
                            undo=_undo_limits(u.agent))])


def _undo_limits(name):
    def undo(result):
        before = (result or {}).get("previous") or {}
        keep = {k: v for k, v in before.items() if k in ("memory", "cpu_percent", "pids") and v is not None}
        return [Step("agent.set_limits", {"name": name, **keep}, f"put {name}'s limits back")] if keep else []
    return undo


# ================================================================ watching and scheduling

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


# ================================================================ context


@intent("ctx.remember", "context", "remember a fact or note (in the shell's memory)",
        ["remember that the printer is on 10.0.0.7", "note: backups run at 2am", "make a note that disk 2 is flaky"])
def remember(u, env):
    lead = next((w for w in u.words if w not in POLITE and w not in ("always", "also")), "")
    dont_forget = u.phrase("do not forget") or u.phrase("never forget")
    if lead not in REMEMBER_VERBS and not u.phrase("make a note") and not u.phrase("keep in mind") \
            and not dont_forget:
        return None
    if u.has("what", "do you", "did i", "every") and not u.quoted or u.has("forget") and not dont_forget \
            or u.paths and u.quoted:
        return None
    if u.has(*EVERY) and u.has("record", "log", "save"):
        return None
    text = u.quoted[0] if u.quoted else u.after(
        "remember as a fact that", "remember that", "note that", "make a note that", "make a note",
        "keep in mind that", "record that", "jot down that", "jot down", "note down", "the fact that",
        "as a fact that", ":", "forget that", "remember", "memorise", "memorize", "note", "save", "store", "jot", "pin")
    text = re.sub(r"^(?:that|this)\s+", "", text.strip()).strip()
    if not text or text.lower() in ("this", "that", "it"):
        return Match(2.5, answer="What should I remember? e.g. 'remember that backups run at 2am'.")
    prefix = u.line[: len(u.line) - len(text)].lower() if u.line.endswith(text) else u.line.lower()
    kind = "fact" if "fact" in prefix else "note"
    params = {"text": text, "scope": "user", "kind": kind}
    if re.search(r"\b(pin|pinned|always|important)\b", prefix):
        params["pinned"] = True
    return Match(3.2, [Step("ctx.remember", params, "store it in the shell's memory", undo=_undo_remember)])


REMEMBER_VERBS = ("remember", "memorise", "memorize", "note", "jot", "pin", "save", "store", "record", "keep")


def _undo_remember(result):
    mid = (result or {}).get("id")
    return [Step("ctx.forget", {"memory_id": mid}, f"forget memory {mid}")] if mid else []


@intent("ctx.forget", "context", "forget a memory by number, or the memories about something (needs yes)",
        ["forget memory 12", "forget what I said about the printer", "forget everything about backups"])
def forget(u, env):
    if u.phrase("do not forget") or u.phrase("never forget"):
        return None                                   # that is a remember
    if u.has(*DELETE) and u.has("memory", "memories", "note") and u.integers and not u.paths:
        mid = u.integers[0]
        return Match(3.0, [Step("ctx.forget", {"memory_id": mid}, f"forget memory {mid}",
                                "forgets a memory (recoverable until purged)")])
    if not u.has(*FORGET) or u.agent:
        return None
    if u.has("memory", "note", "fact", "item", "number", "id") and u.integers:
        mid = u.integers[0]
        return Match(3.0, [Step("ctx.forget", {"memory_id": mid}, f"forget memory {mid}",
                                "forgets a memory (recoverable until purged)")])
    about = u.quoted[0] if u.quoted else u.after("about", "regarding", "concerning", "forget that", "forget")
    about = re.sub(r"^(?:the|that|what i said about|everything about)\s+", "", about).strip(" .?")
    if not about:
        return Match(2.0, answer="Forget what? Give a memory number ('forget memory 12') or a subject "
                                 "('forget what I said about the printer').")
    step = Step("ctx.search", {"query": about, "scopes": ["user"], "limit": 20},
                f"find the shell's memories about {about!r}", show="memories")
    step.then = _forget_each
    return Match(2.8, [step], note="I will forget each memory the search finds (you will be asked).")


def _forget_each(result):
    return [Step("ctx.forget", {"memory_id": m["id"]}, f"forget memory {m['id']}: {m['text'][:50]!r}",
                 "forgets a memory (recoverable until purged)", undo=_reremember(m))
            for m in (result or {}).get("items", [])]


def _reremember(m):
    return lambda _result: [Step("ctx.remember", {"text": m["text"], "kind": m.get("kind", "note"),
                                                  "scope": m.get("scope", "user")},
                                 f"remember {m['text'][:40]!r} again")]


@intent("ctx.search", "context", "search the memories you may read, or show what is known about something",
        ["what do you know about the printer?", "search memories for backup", "recall the printer address"])
def search(u, env):
    if u.has(*FORGET) or u.has("every"):
        return None
    asks = u.has("know", "recall", "memories", "search", "remember", "told", "said", "notes", "remembered",
                 "in memory") \
        or u.has("tell", "say", "mention", "mentioned") and u.has("i") \
        or u.has("memory") and u.integers and not u.percents
    if not asks or u.has("compacted", "happened") or u.paths \
            or u.agents and not u.has("search", "memories", "memory", "notes", "remember", "know"):
        return None
    if u.has(*REMEMBER[1:]) and not u.has("what", "search", "recall", "do you", "did i", "know", "memory"):
        return None
    if u.has("ask", "asked", "typed"):
        return None
    if u.has("memory", "recall") and u.integers and not u.has("search", *DELETE):
        mid = u.integers[0]
        return Match(2.6, [Step("ctx.recall", {"memory_id": mid}, f"memory {mid}", show="memory_item")])
    query = u.quoted[0] if u.quoted else u.after("about", "regarding", "for", "recall", "search memories",
                                                 "search", "look up", "on")
    query = re.sub(r"(?i)\s+in (?:my |your )?(?:memory|memories)$", "", query.strip(" ?."))
    query = re.sub(r"(?i)^(?:the|a|an|my)\s+", "", query.strip(" ?."))
    if re.fullmatch(r"(?i)(memories|my memories|everything|anything|all)?", query):
        query = ""
    params = {"query": query, "limit": 20}
    return Match(2.4, [Step("ctx.search", params, f"memories matching {query!r}" if query else "recent memories",
                            show="memories")])


@intent("ctx.journal", "context", "what happened: the journal since boot, yesterday, or in the last hour",
        ["what happened since boot", "show the journal for the last hour", "what did the system do yesterday"])
def journal(u, env):
    if not (u.has("happened", "journal", "history", "events", "occurred", "done", "did", "changed")
            or u.phrase("going on") and u.since()):
        return None
    if u.has("why", "compacted", "compaction") or u.agent and u.has("restart", "restarted"):
        return None
    if u.has("my", "intents", "i", "asked", "typed", "commands") and u.has("history", "asked", "typed", "did"):
        return None
    since = u.since()
    params = {"limit": 50, "newest_first": True}
    if since is not None:
        params["since"] = since
    score = 2.0 + (0.8 if since is not None else 0) + (0.3 if u.has("happened", "journal") else 0)
    if u.has("alert", "alerts"):
        params["kind"] = "alert"
    elif u.agent:
        params["kind"] = "agent.state"
    return Match(score, [Step("ctx.journal", params, "journal entries" + (f" {since}" if since else ""),
                              show="journal")])


@intent("why.restart", "context", "why an agent restarted, failed or stopped: its exits and state changes",
        ["why did sysmon restart?", "why is the watch agent failing", "what made sysmon stop"])
def why(u, env):
    if not (u.has("why") or u.phrase("what made") or u.phrase("what caused") or u.phrase("reason")):
        return None
    if not u.agent:
        return ask_agent(u, "explain", env) if u.has("restart", "restarted", "fail", "failed", "crash",
                                                     "crashed", "died", "stop", "stopped") else None
    return Match(3.2, [Step("agent.inspect", {"name": u.agent}, f"{u.agent}'s restarts and last exit"),
                       Step("ctx.journal", {"kind": "agent.state", "limit": 200, "newest_first": True},
                            f"{u.agent}'s state changes", show=f"why:{u.agent}")])


@intent("ctx.compacted", "context", "what compaction replaced (and when), to get it back with restore",
        ["what was compacted yesterday?", "show compactions", "what got summarised in the last day"])
def compacted(u, env):
    if not u.has("compacted", "compaction", "compactions", "summarised", "summarized", "compacting", "compact"):
        return None
    if u.has("restore", "undo", "back") or u.has("compact") and not u.has("what", "show", "list"):
        return None
    params = {"limit": 100}
    since = u.since()
    if since is not None:
        params["since"] = since
    return Match(2.8, [Step("ctx.compacted", params, "compactions" + (f" {since}" if since else ""))])


@intent("ctx.restore", "context", "bring back what a compaction replaced",
        ["restore compaction 3", "bring back what compaction 7 summarised", "uncompact 2"])
def restore(u, env):
    if not (u.has("restore", "uncompact", "undo") or u.phrase("bring back") or u.phrase("get back")) \
            or not u.has("compaction", "compacted", "uncompact", "summarised", "summarized") or not u.integers:
        return None
    cid = u.integers[0]
    return Match(3.0, [Step("ctx.restore", {"compaction_id": cid}, f"bring compaction {cid}'s originals back")])


@intent("ctx.usage", "context", "context use against quota, and context pressure",
        ["context usage", "how full is the context store", "show context pressure"])
def ctx_usage(u, env):
    if not u.has("context", "ctx", "quota", "quotas", "tokens", "pressure") or u.has("when", "every"):
        return None
    if u.has(*CPU, *MEMORY, "io", "disk") and not u.has("context", "ctx", "tokens", "quota"):
        return None
    if u.has("memory") and not u.has("context", "ctx"):
        return None
    return Match(2.2, [Step("ctx.usage", {}, "items and tokens per scope"),
                       Step("ctx.pressure", {}, "context pressure")])


@intent("ctx.compact", "context", "compact a scope now (originals stay recoverable)",
        ["compact the shell's memories", "compact scope agent:sysmon"])
def compact(u, env):
    if not u.has("compact", "compress", "shrink", "squash") or u.has("what", "show", "list", "restore"):
        return None
    m = re.search(r"\bscope\s+([\w:.\-]+)", u.line)
    scope = m.group(1) if m else (f"agent:{u.agent}" if u.agent else "user")
    return Match(2.5, [Step("ctx.compact", {"scope": scope}, f"compact {scope} down to its quota")])


# ================================================================ files


@intent("files.list", "files", "list a directory",
        ["list /var/lib/aether", "what is in /etc?", "show the files in /tmp"])
def files_list(u, env):
    if not u.paths or u.has(*DELETE, *WRITE):
        return None
    path = u.paths[0]
    if "." in path.rsplit("/", 1)[-1] and not u.has("directory", "folder", "dir", "ls", "list"):
        return None                                   # a file's name: show it
    dirish = path.endswith("/") or u.has("directory", "folder", "dir", "files", "ls", "list", "in", "inside",
                                        "contents of", "contains", "contain", "entries")
    if not dirish or u.has("read", "cat", "print", "show file", "open"):
        return None
    return Match(2.6, [tool("files.list", f"entries of {path}", path=path)])


@intent("files.read", "files", "show a file's contents",
        ["show /etc/hostname", "cat /proc/version", "read the file /var/lib/aether/config"])
def files_read(u, env):
    if not u.paths or u.has(*DELETE, *WRITE):
        return None
    path = u.paths[0]
    score = 1.8 + (0.6 if u.has("read", "cat", "show", "print", "open", "view", "contents", "display",
                                "what", "file") else 0)
    if path.endswith("/") or u.has("directory", "folder", "dir", "ls", "list"):
        score -= 1
    return Match(score, [tool("files.read", f"the contents of {path}", path=path)])


@intent("files.write", "files", "write text to a file (needs yes: it changes the machine)",
        ["write 'hello' to /tmp/greeting", "append \"done\" to /tmp/log", "overwrite /tmp/x with 'new text'"])
def files_write(u, env):
    if not u.paths or not u.has(*WRITE, "add"):
        return None
    if u.has(*DELETE):
        return None
    path = u.paths[0]
    content = u.quoted[0] if u.quoted else None
    if content is None:
        return Match(2.0, answer=f"What should I write to {path}? Put the text in quotes, "
                                 f"e.g. write \"hello\" to {path}.")
    mode = "append" if u.has("append", "add") else "overwrite" if u.has("overwrite", "replace") else "create"
    if not content.endswith("\n"):
        content += "\n"
    risk = f"replaces {path} if it exists" if mode == "overwrite" else None
    undo = (lambda _r: [tool("files.delete", f"delete {path} again", f"deletes {path}", path=path)]) \
        if mode == "create" else None
    says = {"create": f"create {path} (refused if it exists)", "append": f"append to {path}",
            "overwrite": f"replace {path}"}[mode]
    return Match(2.6, [tool("files.write", says, risk, undo=undo, path=path, content=content, mode=mode)])


@intent("files.delete", "files", "delete a file or directory (needs yes)",
        ["delete /tmp/greeting", "remove the directory /tmp/old recursively", "rm /tmp/x"])
def files_delete(u, env):
    if not u.paths or not u.has(*DELETE):
        return None
    path = u.paths[0]
    recursive = u.has("recursively", "recursive", "tree", "directory", "folder", "everything") \
        or re.search(r"(?:^|\s)-[a-z]*r", u.line) is not None
    args = {"path": path}
    if recursive:
        args["recursive"] = True
    return Match(2.8, [tool("files.delete", f"delete {path}" + (" and everything in it" if recursive else ""),
                            f"deletes {path}; it cannot be undone", **args)])


@intent("fetch", "files", "fetch a URL (sends a request off the machine: needs yes)",
        ["fetch http://10.0.2.2:8000/", "download http://example.org/file.txt"])
def fetch(u, env):
    if not u.urls:
        return None
    method = "HEAD" if u.has("head", "headers") else "GET"
    return Match(2.5, [tool("fetch.url", f"{method} {u.urls[0]}", "sends a request off the machine",
                            url=u.urls[0], method=method)])


# ================================================================ the machine


@intent("reboot", "machine", "stop everything and boot again (needs yes)",
        ["reboot", "restart the machine", "reboot the system now"])
def reboot(u, env):
    if not (u.has("reboot", "reset") or u.has("restart", "reboot") and u.has(*MACHINE)):
        return None
    return None if u.has("why") else _power(u, "reboot", "restarts")


@intent("poweroff", "machine", "stop everything and power off (needs yes)",
        ["poweroff", "shut down the machine", "turn the computer off"])
def poweroff(u, env):
    machine = u.has(*MACHINE, "everything")
    if not (u.has(*POWEROFF) or u.phrase("power off") or u.phrase("power down")
            or u.phrase("shut down") and (machine or len(u.words) <= 3)
            or u.has("turn", "switch", "shut") and u.has("off", "down") and machine or u.phrase("switch off")):
        return None
    return _power(u, "poweroff", "powers off")


def _power(u, action, what):
    """The one-step plan for poweroff and reboot; never for a question or a line about an agent."""
    if u.agent or u.has("agent", "service", *QUESTION):
        return None
    return Match(3.0, [Step("sys.power", {"action": action}, f"stop every agent and service; the machine {what}",
                            f"every agent and service stops and the machine {what}")])


# ================================================================ the shell itself (answered by the session)


@intent("help", "shell", "what the shell understands; 'help TOPIC' for one topic",
        ["help", "what can you do?", "help agents"])
def help_(u, env):
    if u.has("help", "commands", "?") or u.phrase("what can you do") or u.phrase("how do i") \
            or u.phrase("what can i") or u.line.strip() == "?":
        return Match(1.8 + (1 if u.words and u.words[0] in ("help", "?") else 0))
    return None


@intent("explain", "shell", "explain the last plan: what each step did and why",
        ["explain", "explain the last plan", "what did you just do?"])
def explain(u, env):
    if u.has("explain") and not u.agent or u.phrase("what did you just do") or u.phrase("why did you") \
            or u.has("plan") and u.has("last", "that", "previous") and u.has("what", "why", "do", "did"):
        return Match(2.6)
    return None


@intent("undo", "shell", "reverse the last plan's reversible steps (asks first)",
        ["undo", "undo that", "take that back"])
def undo(u, env):
    if u.has("undo", "revert", "reverse") and not u.has("compaction") or u.phrase("take that back") \
            or u.phrase("roll back") or u.phrase("rollback"):
        return Match(3.0)
    return None


@intent("history", "shell", "the intents typed before (kept across reboots), with their outcomes",
        ["history", "what did I ask before?", "show my previous commands"])
def history(u, env):
    if u.has("history") and not u.has("journal", "system", "happened", "machine") or \
            u.has("asked", "typed", "ask") and not u.has("can") or u.has("commands") and u.has(
                "previous", "past", "my", "earlier", "old", "last"):
        return Match(2.5, [Step("ctx.goals", {"scope": "user", "limit": 20}, "the shell's recent intents",
                                show="history")])
    return None


@intent("goals", "context", "goals recorded in the context store (the shell's and agents'), with status",
        ["show goals", "list open goals", "which goals failed?"])
def goals(u, env):
    if not u.has("goal", "goals", "plans") or u.has("spawn", "agent", "new", "create"):
        return None
    params = {"limit": 20}
    for status in ("failed", "done", "active", "abandoned", "open"):
        if u.has(status):
            params["status"] = status
    return Match(2.3, [Step("ctx.goals", params, "recorded goals")])
