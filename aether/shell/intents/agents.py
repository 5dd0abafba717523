"""Intents that act on agents: inspect, logs, start, stop, restart, remove,
spawn, limit (each with its undo).
"""

import re

from ..plan import Step
from .words import ABOVE, BELOW, CPU, DELETE, INSPECT, LOGS, MEMORY, RESTART, SHOW, SPAWN, START, STOP
from .registry import Match, ask_agent, intent


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
