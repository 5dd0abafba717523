"""The model planner: with a model configured, it asks it for the plan.

The request goes through aetherd (``llm.complete``: the broker's queue, as an
interactive call, ahead of every agent), which holds the endpoint and the key.
It is sized to the endpoint's window (``llm.usage`` says it when aetherd knows it):
``max_tokens`` is at most a quarter of the window (MAX_TOKENS at most), and the
prompt, tools included, fits in the rest.  The system prompt is assembled from the
context store: the machine's state, the system's recent journal, and the memories
a ``ctx.window`` finds relevant to the line, from the shell's and the user's scope
only (SCOPES): what an agent wrote in its own scope never reaches the shell's model
(a planted memory would be a prompt injection).  The tools offered are the few
that matter for the line (``relevant``: its words against each tool's name,
description and a small table of hints), not the whole catalogue: built-in tools
(``tool.list``) and the shell's ABI methods, with their schemas.

Every tool call the model proposes is checked against its schema before it
becomes a step, and gets the same risk rules as an offline plan; the session
shows it and asks before anything risky.  A model answer that is not a valid
plan (an unknown tool, arguments that break the schema, text that is neither
a plan nor an answer) raises PlanError, and the session falls back to the
offline planner with a notice.  So do a timeout and an error.
"""

import json

from ..schema import ValidationError, validate
from .plan import Plan, Step

BUDGET_TOKENS = 3000           # the system prompt's share when the endpoint's window is unknown
WINDOW_TOKENS = 1200           # of which memories
JOURNAL_ENTRIES = 15
MAX_STEPS = 12
MAX_TOKENS = 512               # the answer: a plan is a few tool calls
MAX_TOOLS = 6
SCOPES = ("user",)             # the shell's own scope (the console user's memories; owned by the shell)
JOURNAL_SCOPES = ("system", "user")
PAD = 1.25                     # the broker's margin on our token estimate (aether/abi/calls/llm.py)
DEFAULT_TOOLS = ("sys.info", "agent.list", "ctx.search")
HINTS = {      # words a request uses -> the tools it likely needs
    "slow": ("sys.processes", "sys.info"), "eating": ("sys.processes",), "cpu": ("sys.processes", "sys.info"),
    "memory": ("sys.info", "sys.processes"), "busy": ("sys.processes",), "load": ("sys.info",),
    "disk": ("sys.info",), "running": ("agent.list", "sys.processes"), "agents": ("agent.list",),
    "agent": ("agent.list", "agent.inspect"), "kill": ("agent.stop",), "stop": ("agent.stop",),
    "start": ("agent.start",), "restart": ("agent.restart",), "logs": ("agent.logs",), "log": ("agent.logs",),
    "output": ("agent.logs",), "remember": ("ctx.remember",), "note": ("ctx.remember",),
    "forget": ("ctx.forget",), "recall": ("ctx.search", "ctx.recall"), "find": ("ctx.search", "files.list"),
    "search": ("ctx.search",), "file": ("files.read", "files.list"), "files": ("files.list", "files.read"),
    "read": ("files.read",), "write": ("files.write",), "fetch": ("fetch.url",), "url": ("fetch.url",),
    "time": ("clock.now",), "clock": ("clock.now",), "goal": ("ctx.goals",), "goals": ("ctx.goals",),
    "reboot": ("sys.power",), "shutdown": ("sys.power",), "spawn": ("agent.spawn",), "limit": ("agent.set_limits",),
}

# ABI methods the model may propose (their risk: aether/shell/risk.py)
METHODS = ("sys.info", "sys.processes", "sys.power", "agent.list", "agent.inspect", "agent.logs",
           "agent.start", "agent.stop", "agent.restart", "agent.spawn", "agent.remove", "agent.set_limits",
           "ctx.remember", "ctx.search", "ctx.recall", "ctx.forget", "ctx.journal", "ctx.compacted",
           "ctx.restore", "ctx.usage", "ctx.pressure", "ctx.goals")

SYSTEM = """You plan actions on AetherOS, a small Linux machine run by agents.
Turn the person's request into calls of the tools given. Call only the tools needed,
in order; every call is shown to the person before it runs, and risky ones need their yes.
If the request needs no action (a question you can answer from the state below), answer in
one or two sentences without calling tools. Never invent agent names, paths or ids.

Machine state:
{state}

Recent journal (newest first):
{journal}

Memories that may be relevant:
{memories}"""


class PlanError(Exception):
    """The model's answer is not a plan the shell can run."""


class ModelPlanner:
    def __init__(self):
        self._tools = None

    def plan(self, session, line):
        tools = self.tools(session)
        n_ctx = self.window(session)
        max_tokens = min(MAX_TOKENS, n_ctx // 4) if n_ctx else MAX_TOKENS
        room = int((n_ctx - max_tokens) / PAD) - 64 if n_ctx else BUDGET_TOKENS * 2
        offered = relevant(line, tools, room // 2)
        spent = sum(spec_tokens(t) for t in offered)
        system = self.context(session, line, min(BUDGET_TOKENS, max(200, room - spent - len(line) // 4)))
        messages = [{"role": "system", "content": system}, {"role": "user", "content": line}]
        completion = session.call("llm.complete", messages=messages, max_tokens=max_tokens,
                                  tools=[{"name": t["name"], "description": t["description"],
                                          "schema": t["schema"]} for t in offered],
                                  tool_choice="auto")
        return to_plan(line, completion, tools)

    @staticmethod
    def window(session):
        """The endpoint's context size in tokens, when aetherd knows it (else None)."""
        try:
            return (session.call("llm.usage").get("window") or {}).get("endpoint_n_ctx")
        except Exception:  # noqa: BLE001 - an older aetherd: size as before
            return None

    def tools(self, session):
        """{name: {name, description, schema, kind}}: built-in tools and ABI methods (asked once)."""
        if self._tools is None:
            found = {}
            for t in session.call("tool.list"):
                found[t["name"]] = {"name": t["name"], "description": t["description"], "schema": t["schema"],
                                    "kind": "tool"}
            for m in session.call("abi.hello")["methods"]:
                if m["name"] in METHODS:
                    found[m["name"]] = {"name": m["name"], "description": m["doc"], "schema": m["params"],
                                        "kind": "method"}
            self._tools = found
        return self._tools

    def context(self, session, line, budget_tokens=BUDGET_TOKENS):
        """The system prompt: state, journal and memories (the shell's and the user's only), bounded."""
        info = session.call("sys.info")
        agents = session.call("agent.list")
        mem = info["memory"]
        state = [f"host {info['hostname']}, kernel {info['kernel']}, up {info['uptime_s']:.0f} s, "
                 f"load {' '.join(info['load'])}, memory {mem['used_kib'] >> 10} of {mem['memtotal_kib'] >> 10} MiB",
                 "agents: " + (", ".join(f"{a['name']} ({a['state']})" for a in agents) or "none")]
        entries = sorted((e for scope in JOURNAL_SCOPES for e in session.call(
            "ctx.journal", scope=scope, limit=JOURNAL_ENTRIES, newest_first=True)),
            key=lambda e: -e["seq"])[:JOURNAL_ENTRIES]
        journal = [f"- {e['kind']} by {e['actor']}: {_clip(json.dumps(e.get('body'), sort_keys=True), 160)}"
                   for e in entries]
        window = session.call("ctx.window", query=line, budget_tokens=min(WINDOW_TOKENS, budget_tokens // 2),
                              scopes=list(SCOPES))
        memories = [f"- #{m['id']} ({m['scope']}, {m['kind']}): {m['text']}" for m in window.get("items", [])]
        text = SYSTEM.format(state="\n".join(state), journal="\n".join(journal) or "(empty)",
                             memories="\n".join(memories) or "(none)")
        return _clip(text, budget_tokens * 4)


def relevant(line, tools, room_tokens):
    """The tools that matter for the line, best first: at most MAX_TOOLS, within room_tokens."""
    words = {w for w in "".join(c if c.isalnum() else " " for c in line.lower()).split() if len(w) > 2}
    scores = {}
    for name, t in tools.items():
        parts = set(name.replace("_", ".").split("."))
        described = {w for w in "".join(c if c.isalnum() else " " for c in t["description"].lower()).split()
                     if len(w) > 3}
        score = 3 * len(words & parts) + len(words & described)
        score += sum(2 for w in words if name in HINTS.get(w, ()))
        if score:
            scores[name] = score
    ranked = sorted(scores, key=lambda n: (-scores[n], n)) or [n for n in DEFAULT_TOOLS if n in tools]
    chosen, used = [], 0
    for name in ranked[:MAX_TOOLS]:
        cost = spec_tokens(tools[name])
        if used + cost <= room_tokens:
            chosen.append(tools[name])
            used += cost
    return chosen


def spec_tokens(tool):
    """About how many prompt tokens a tool's spec costs (the broker's estimate)."""
    return (len(json.dumps({"name": tool["name"], "description": tool["description"],
                            "parameters": tool["schema"]})) + 40) // 4


def to_plan(line, completion, tools):
    """A Plan from a completion: its tool calls as checked steps, or its text as the answer."""
    if not isinstance(completion, dict):
        raise PlanError("the model's answer is not a completion")
    calls = completion.get("tool_calls") or []
    if not calls:
        calls = _calls_in_text(completion.get("content"), tools)
    if not calls:
        text = (completion.get("content") or "").strip()
        if not text:
            raise PlanError("the model answered with neither tool calls nor text")
        return Plan("model.answer", line, answer=text, source="model")
    if len(calls) > MAX_STEPS:
        raise PlanError(f"the model proposed {len(calls)} steps; at most {MAX_STEPS} are taken")
    return Plan("model", line, [step(c, tools) for c in calls], source="model")


def step(call, tools):
    """One proposed call as a Step, after checking it against its schema."""
    name, args = call.get("name"), call.get("arguments")
    if name not in tools and isinstance(name, str) and name.replace("_", ".", 1) in tools:
        name = name.replace("_", ".", 1)        # a known tool that was not offered for this line
    if call.get("error"):
        raise PlanError(f"the model's call of {name}: {call['error']}")
    if name not in tools:
        raise PlanError(f"the model proposed {name!r}, which is not one of the shell's tools")
    if not isinstance(args, dict):
        raise PlanError(f"the model's arguments for {name} are not an object: {_clip(repr(args), 80)}")
    try:
        validate(tools[name]["schema"], args, name)      # checked; sent as proposed (defaults filled there)
    except ValidationError as e:
        raise PlanError(f"the model's call of {name} breaks its schema: {e}") from None
    if tools[name]["kind"] == "tool":
        from .. import tools as builtin
        risk = f"is a risky tool call ({name})" if builtin.is_risky(name, args) else None
        risk = {"fetch.url": "sends a request off the machine"}.get(name, risk)
        return Step("tool.call", {"name": name, "args": args}, f"{name} (proposed by the model)", risk, show=name)
    return Step(name, args, f"{name} (proposed by the model)")


def _calls_in_text(content, tools):
    """Tool calls some local servers put in the text: {"name": ..., "arguments": {...}}."""
    text = (content or "").strip()
    if text.startswith("```"):
        text = text.strip("`").partition("\n")[2] if "\n" in text else ""
    if not text.startswith(("{", "[")):
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return []
        name = item["name"]
        name = name if name in tools else name.replace("_", ".", 1)
        args = item.get("arguments", item.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                return []
        calls.append({"name": name, "arguments": args})
    return calls


def _clip(text, n):
    return text if len(text) <= n else text[:n - 3] + "..."
