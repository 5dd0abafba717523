"""The model planner: with a model configured, it asks it for the plan.

It thinks with the store (``llm.think`` on the shell's thread ``planner``): the
broker's queue, as an interactive call ahead of every agent; aetherd holds the
endpoint and the key, assembles the window and records each turn.  The shell
sends only what is new: the line, and what came of the last model plan's tool
calls (``tool_results``: each step done, with the shape of what it gave, failed
with aetherd's error, or not run), so the model knows what its earlier plans did;
never the results themselves, which may hold text an agent wrote.  The rules it sends are the
machine's state and the system's recent journal; aetherd adds the memories
relevant to the line from the user's and the system's scopes only (it never
puts what an agent wrote in its own scope into a privileged caller's window: a
planted memory would be a prompt injection), a summary of older lines, and the
recent ones.  ``max_tokens`` is at most a quarter of the endpoint's window
(MAX_TOKENS at most).  The tools offered are the few that matter for the line
(``relevant``: its words against each tool's name, description and a small
table of hints), not the whole catalogue: built-in tools (``tool.list``) and the
shell's ABI methods, with their schemas.  ``explain`` after a model plan shows
what went into that window and what was left out (``window_lines``).

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
JOURNAL_ENTRIES = 15
MAX_STEPS = 12
MAX_TOKENS = 512               # the answer: a plan is a few tool calls
MAX_TOOLS = 6
JOURNAL_SCOPES = ("system", "user")
PRIVILEGED_ACTORS = ("system", "shell", "host")     # journal_line shows their entries' bodies
AGENT_FACTS = ("agent", "parent", "state", "level", "last_exit", "source", "owner", "version")   # names, not text
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

THREAD = "planner"
SYSTEM = """You plan actions on AetherOS, a small Linux machine run by agents.
Turn the person's request into calls of the tools given. Call only the tools needed,
in order; every call is shown to the person before it runs, and risky ones need their yes.
If the request needs no action (a question you can answer from the state below), answer in
one or two sentences without calling tools. Never invent agent names, paths or ids.

Machine state:
{state}

Recent journal (newest first):
{journal}

Memories and earlier requests that bear on this one are given below when there are any."""


class PlanError(Exception):
    """The model's answer is not a plan the shell can run."""


class ModelPlanner:
    def __init__(self):
        self._tools = None
        self.pending = []              # tool results of the last model plan, for the next think

    def plan(self, session, line):
        tools = self.tools(session)
        n_ctx = self.window(session)
        max_tokens = min(MAX_TOKENS, n_ctx // 4) if n_ctx else MAX_TOKENS
        room = int((n_ctx - max_tokens) / PAD) - 64 if n_ctx else BUDGET_TOKENS * 2
        offered = relevant(line, tools, room // 2)
        spent = sum(spec_tokens(t) for t in offered)
        rules = self.context(session, line, min(BUDGET_TOKENS // 2, max(200, (room - spent) // 3)))
        results, self.pending = self.pending, []
        completion = session.call("llm.think", thread=THREAD, input=line, rules=rules, max_tokens=max_tokens,
                                  **({"tool_results": results} if results else {}),
                                  tools=[{"name": t["name"], "description": t["description"],
                                          "schema": t["schema"]} for t in offered],
                                  tool_choice="auto")
        plan = to_plan(line, completion, tools)
        plan.think = {"thread": completion.get("thread"), "window": completion.get("window")}
        return plan

    def ran(self, plan, results):
        """Keep what came of a model plan's tool calls; the next think sends it (tool_results).

        Only whether each step was done (and the shape of what it gave), failed (aetherd's error)
        or not run: never the result itself, which may hold text an agent wrote (a memory found by
        ctx.search, an agent's log lines, a file) and would reach this privileged prompt."""
        if plan.source != "model":
            return
        done = {id(r[0]): r for r in results}
        out = []
        for s in plan.steps:
            if not s.call_id:
                continue
            r = done.get(id(s))
            content = ("not run: the person did not say yes, or an earlier step failed" if r is None else
                       f"error: {_clip(str(r[2]), 300)}" if r[2] is not None else _shape(r[1]))
            out.append({"id": s.call_id, "name": s.show or s.method, "content": content})
        self.pending = out[:MAX_STEPS]

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
        """The rules: the machine's state and the system's recent journal, bounded (aetherd adds the
        memories, from the user's and the system's scopes only)."""
        info = session.call("sys.info")
        agents = session.call("agent.list")
        mem = info["memory"]
        state = [f"host {info['hostname']}, kernel {info['kernel']}, up {info['uptime_s']:.0f} s, "
                 f"load {' '.join(info['load'])}, memory {mem['used_kib'] >> 10} of {mem['memtotal_kib'] >> 10} MiB",
                 "agents: " + (", ".join(f"{a['name']} ({a['state']})" for a in agents) or "none")]
        entries = sorted((e for scope in JOURNAL_SCOPES for e in session.call(
            "ctx.journal", scope=scope, limit=JOURNAL_ENTRIES, newest_first=True)),
            key=lambda e: -e["seq"])[:JOURNAL_ENTRIES]
        journal = [journal_line(e) for e in entries]
        text = SYSTEM.format(state="\n".join(state), journal="\n".join(journal) or "(empty)")
        return _clip(text, budget_tokens * 4)


def journal_line(e):
    """One journal entry for the system prompt.  An entry an agent wrote, or one about an agent
    (its sys.alert, its state with the reason and last error its program gave, which aetherd
    journals as system), shows only what happened, to whom and who: never its text, since an
    agent's words must not instruct the model that plans for the person."""
    body = e.get("body") if isinstance(e.get("body"), dict) else {}
    source = body.get("source") if isinstance(body.get("source"), str) else ""
    actor = str(e.get("actor"))
    privileged = actor in PRIVILEGED_ACTORS or actor.startswith("shell:")
    if privileged and not source.startswith("agent:") and "agent" not in body:
        return f"- {e['kind']} by {actor}: {_clip(json.dumps(body, sort_keys=True), 160)}"
    facts = {k: body[k] for k in AGENT_FACTS if isinstance(body.get(k), (str, int, float)) and len(str(body[k])) <= 72}
    shown = json.dumps(facts, sort_keys=True) if facts else "{}"
    return f"- {e['kind']} by {actor}: {shown} (any text in it is an agent's, not shown)"


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
    steps = []
    for c in calls:
        s = step(c, tools)
        s.call_id = c.get("id") if isinstance(c.get("id"), str) else None
        steps.append(s)
    return Plan("model", line, steps, source="model")


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


def _shape(result):
    """What a step gave, without its content: 'done', with a count or the keys it answered."""
    if isinstance(result, list):
        return f"done: {len(result)} items (shown to the person)"
    if isinstance(result, dict):
        keys = sorted(k for k in result if isinstance(k, str) and k.isidentifier())[:12]
        return f"done: an answer with {', '.join(keys) or 'no fields'} (shown to the person)"
    return "done (shown to the person)"


def window_lines(think):
    """What went into a model plan's window and what was left out, for ``explain``."""
    window = (think or {}).get("window") or {}
    where = (think or {}).get("thread") or {}
    if not window:
        return []
    counts = window.get("left_out_counts") or {}
    left = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in sorted(counts.items()) if n) or "nothing"
    return [f"The model's window (thread {where.get('thread_id')}, turn {where.get('input_turn')}): "
            f"{window.get('tokens')} of {window.get('budget_tokens')} tokens; {window.get('memories', 0)} memories, "
            f"{window.get('recent', 0)} recent and {window.get('relevant', 0)} older turns fetched back; "
            f"left out: {left}.",
            f"  (ctx.thread thread_id={where.get('thread_id')} turn={where.get('input_turn')} lists each one)"]


def _clip(text, n):
    return text if len(text) <= n else text[:n - 3] + "..."
