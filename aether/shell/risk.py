"""Which calls need a person's yes, whoever planned them.

Every Step takes its risk from here, so an offline intent, a model's proposal,
an undo and a step found while a plan runs all pass the same gate; a planner
may give a more specific reason, never take the risk away.  The rule: a call
that stops or destroys something, creates a principal (an agent), grants
privilege, sends data off the machine or changes a file needs a yes.

The gate fails closed: a method or tool not listed here as safe needs a yes,
so a call added to the model's menu later is asked about until someone says it
is safe.  ``objects`` names what a risky step acts on (an agent, a file, a
memory), so the session can check it exists before proposing it.
"""

METHODS = {
    "sys.power": "powers the machine off or reboots it",
    "agent.approve": "lets the agent that asked run the step it described (requests shows it)",
    "agent.stop": "stops an agent and every agent under it",
    "agent.restart": "stops an agent and every agent under it",
    "agent.remove": "removes an agent's declaration",
    "agent.signal": "sends a signal to an agent's processes",
    "ctx.forget": "forgets a memory (recoverable until purged)",
    "ctx.purge": "deletes compacted and forgotten originals for good",
    "ctx.grant": "grants another principal access to a scope (a privilege)",
    "ctx.revoke": "takes a principal's access to a scope away",
    "ctx.export": "writes the context store to a file",
    "ctx.import": "adds an export's memories and goals to the store",
    "ctx.set_quota": "changes a scope's quota (a lower one compacts it)",
    "ctx.set_retention": "changes how long forgotten and compacted originals are kept",
}
SAFE_METHODS = frozenset({
    "sys.info", "sys.processes", "agent.list", "agent.inspect", "agent.logs", "agent.start",
    "ctx.remember", "ctx.search", "ctx.recall", "ctx.journal", "ctx.compacted", "ctx.restore",
    "ctx.usage", "ctx.pressure", "ctx.goals", "ctx.goal", "ctx.compact", "ctx.window", "ctx.thread",
    "tool.list", "abi.hello", "ctx.info", "ctx.scopes", "ctx.grants", "ctx.verify", "ctx.check", "ctx.as_of",
    "llm.usage", "llm.queue", "agent.queue", "sys.events", "agent.requests", "agent.deny",
})
LIMITS = "a lower memory or process limit can kill the agent's processes"

TOOLS = {
    "files.delete": "deletes {path}; it cannot be undone",
    "fetch.url": "sends a request off the machine",
    "processes.signal": "sends a signal to a process (it may stop and lose its work)",
}
SAFE_TOOLS = frozenset({"clock.now", "disk.usage", "network.interfaces", "network.routes",
                        "processes.list", "files.list", "files.read"})
WRITES = {"create": "creates {path} (a new file there can be read by the system or an agent)",
          "append": "changes {path} if it exists (adds to its end), else creates it",
          "overwrite": "replaces {path} if it exists"}


def of(method, params):
    """Why this call needs a yes, or None."""
    if method == "tool.call":
        return of_tool(params.get("name"), params.get("args") or {})
    if method == "agent.spawn":
        return _spawn(params.get("manifest"))
    if method == "agent.set_limits":
        return LIMITS if "memory" in params or "pids" in params else None
    if method in METHODS:
        return METHODS[method]
    if method in SAFE_METHODS:
        return None
    return f"is a call the shell does not know to be safe ({method})"


def of_tool(name, args):
    """Why this tool call needs a yes, or None."""
    path = args.get("path", "?") if isinstance(args, dict) else "?"
    if name == "files.write":
        mode = args.get("mode", "create") if isinstance(args, dict) else "create"
        return WRITES.get(mode, WRITES["overwrite"]).format(path=path)
    if name in TOOLS:
        return TOOLS[name].format(path=path)
    if name in SAFE_TOOLS:
        return None
    return f"is a tool the shell does not know to be safe ({name})"


def _spawn(manifest):
    """A spawn creates a principal; as root, or with grants, it also grants privilege."""
    m = manifest if isinstance(manifest, dict) else {}
    name = m.get("name", "?")
    grants = m.get("grant") or []
    if m.get("user") == "root" or grants:
        extra = ", ".join(["runs as root"] * (m.get("user") == "root") + [f"grant {g}" for g in grants])
        return f"creates agent {name} WITH PRIVILEGE ({extra}): it can do anything on the machine"
    return f"creates agent {name}, a new principal with its own uid, that runs {m.get('program', '?')}"


def objects(method, params):
    """[(kind, name)] that a step acts on and that must exist: "agent", "file" or "memory"."""
    if method in ("agent.stop", "agent.restart", "agent.remove", "agent.signal", "agent.set_limits"):
        return [("agent", params.get("name"))]
    if method == "ctx.forget":
        return [("memory", params.get("memory_id"))]
    if method == "tool.call":
        args = params.get("args") or {}
        name = params.get("name")
        if name == "files.delete":
            return [("file", args.get("path"))]
    return []
