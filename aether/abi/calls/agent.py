"""agent.*: list, inspect, spawn, stop, start, restart, signal, logs, heartbeat, remove, queue."""

import _signal

from ...agent.manifest import ManifestError, from_dict
from ...agent.supervisor import AgentError
from ..methods import AGENT, ANY, NAME, PUBLIC, Method, obj
from ..protocol import BudgetExhausted, Conflict, InvalidParams, NotFound, PermissionDenied, Unavailable

ERRORS = {"not_found": NotFound, "conflict": Conflict, "budget": BudgetExhausted,
          "permission": PermissionDenied, "unavailable": Unavailable}
SIGNALS = {"TERM": _signal.SIGTERM, "KILL": _signal.SIGKILL, "INT": _signal.SIGINT,
           "HUP": _signal.SIGHUP, "USR1": _signal.SIGUSR1, "USR2": _signal.SIGUSR2,
           "STOP": _signal.SIGSTOP, "CONT": _signal.SIGCONT}


def _call(fn, *args):
    try:
        return fn(*args)
    except AgentError as e:
        raise ERRORS.get(e.kind, Conflict)(str(e)) from None


def owns(d, caller, name):
    """The privileged own every agent; an agent owns itself and its descendants."""
    if caller.privileged:
        return True
    agent = d.supervisor.agents.get(name)
    return bool(caller.agent and agent and caller.agent in agent.lineage)


def _owned(d, caller, name, action):
    _call(d.supervisor.get, name)
    if not owns(d, caller, name):
        raise PermissionDenied(f"{caller.principal} may not {action} agent {name!r}: "
                               "an agent acts only on itself and the agents it spawned")
    return name


def listing(d, caller, params, conn):
    return d.supervisor.listing()


def inspect(d, caller, params, conn):
    return _call(d.supervisor.inspect, params["name"])


def spawn(d, caller, params, conn):
    """Declare an agent from a manifest and start it; an agent's spawn is its own child.

    What a child may have (grants, root, limits) is the supervisor's rule for every
    caller: never more than its parent.  Only the privileged spawn top-level agents,
    and only they may take a name over from its owner (``reclaim``)."""
    try:
        manifest = from_dict(params["manifest"], origin="agent.spawn manifest")
    except ManifestError as e:
        raise InvalidParams(str(e)) from None
    parent = params.get("parent")
    if not caller.privileged:
        if parent not in (None, caller.agent) and not owns(d, caller, parent):
            raise PermissionDenied(f"{caller.principal} may spawn only below itself")
        parent = parent or caller.agent
        if manifest.user == "root":
            raise PermissionDenied(f"{caller.principal} may not spawn a root agent")
        if params.get("reclaim"):
            raise PermissionDenied(f"{caller.principal} may not take a name over (reclaim): "
                                   "only the shell and the host may")
    agent = _call(d.supervisor.declare, manifest, parent, caller.principal, caller.principal,
                  bool(params.get("reclaim")))
    if params.get("start", True):
        d.supervisor.start(agent.name)
    return d.supervisor.inspect(agent.name)


def _acting(action):
    """A handler for agent.<action> NAME: check ownership, act, answer with the agent's state."""
    def handler(d, caller, params, conn):
        name = _owned(d, caller, params["name"], action)
        _call(getattr(d.supervisor, action), name)
        return d.supervisor.inspect(name)
    return handler


stop, start, restart = _acting("stop"), _acting("start"), _acting("restart")


def remove(d, caller, params, conn):
    name = _owned(d, caller, params["name"], "remove")
    _call(d.supervisor.remove, name)
    return {"removed": name}


def signal(d, caller, params, conn):
    name = _owned(d, caller, params["name"], "signal")
    agent = d.supervisor.agents[name]
    if not d.supervisor.alive(agent):
        raise Conflict(f"{name} has no running process ({agent.state})")
    d.supervisor.signal(agent, SIGNALS[params["signal"]])
    return {"signalled": name, "signal": params["signal"]}


def logs(d, caller, params, conn):
    name = _owned(d, caller, params["name"], "read the output of")
    return {"name": name, "lines": d.supervisor.recent_output(name, params.get("lines", 100))}


def heartbeat(d, caller, params, conn):
    name = params.get("name") or caller.agent
    if not name:
        raise InvalidParams("agent.heartbeat: name is required when the caller is not an agent")
    _owned(d, caller, name, "heartbeat for")
    _call(d.supervisor.heartbeat, name)
    return {"ok": True}


def set_limits(d, caller, params, conn):
    """Change an agent's memory, CPU or process limit; answers with the limits before the change."""
    from ...agent import manifest as mf
    name = _owned(d, caller, params["name"], "set the limits of")
    own = caller.agent == name             # an agent on itself: lower only
    origin = f"agent.set_limits {name}"
    try:
        memory = mf.size(origin, "memory", params["memory"]) if "memory" in params else None
        cpu = mf.cpu(origin, "cpu_percent", params["cpu_percent"] / 100) if "cpu_percent" in params else None
        pids = mf.integer(1, 100000)(origin, "pids", params["pids"]) if "pids" in params else None
    except mf.ManifestError as e:
        raise InvalidParams(str(e)) from None
    if memory is None and cpu is None and pids is None:
        raise InvalidParams(f"{origin}: give at least one of memory (bytes), cpu_percent, pids")
    previous = _call(d.supervisor.set_limits, name, memory, cpu, pids, not own)
    return {"name": name, "previous": previous, "limits": d.supervisor.inspect(name)["limits"]}


def queue(d, caller, params, conn):
    return d.supervisor.queue()


MANIFEST = {"type": "object", "description": "an agent manifest (see docs/abi.md), as JSON"}
METHODS = [
    Method("agent.list", listing, obj(), PUBLIC, "every agent: name, state, pid, parent, reason"),
    Method("agent.inspect", inspect, obj(["name"], name=NAME), PUBLIC,
           "state, lineage, the name's owner, limits, live usage, restarts and last exit of one agent"),
    Method("agent.spawn", spawn, obj(["manifest"], manifest=MANIFEST, parent=NAME,
                                     start={"type": "boolean"}, reclaim={"type": "boolean"}), ANY,
           "declare an agent from a manifest and start it; an agent's spawn becomes its child, "
           "its limits carved out of the caller's, never more than it has; a name stays with "
           "whoever declared it first (reclaim: the privileged take it over, journalled)"),
    Method("agent.stop", stop, obj(["name"], name=NAME), ANY,
           "stop an agent and its subtree (TERM, then KILL after the stop timeout)"),
    Method("agent.start", start, obj(["name"], name=NAME), ANY, "start a stopped, exited or failed agent"),
    Method("agent.restart", restart, obj(["name"], name=NAME), ANY, "stop, then start an agent"),
    Method("agent.remove", remove, obj(["name"], name=NAME), ANY, "forget a stopped agent and its subtree"),
    Method("agent.signal", signal, obj(["name", "signal"], name=NAME,
                                       signal={"type": "string", "enum": sorted(SIGNALS)}), ANY,
           "send a signal to every process of an agent"),
    Method("agent.logs", logs, obj(["name"], name=NAME,
                                   lines={"type": "integer", "minimum": 1, "maximum": 500}), ANY,
           "an agent's recent output (a bounded buffer)"),
    Method("agent.heartbeat", heartbeat, obj(name=NAME), AGENT,
           "tell the watchdog this agent is alive (agents that declare a heartbeat must call it)"),
    Method("agent.set_limits", set_limits,
           obj(["name"], name=NAME, memory={"type": "integer", "minimum": 1 << 20},
               cpu_percent={"type": "number", "minimum": 1, "maximum": 6400},
               pids={"type": "integer", "minimum": 1, "maximum": 100000}), ANY,
           "change an agent's memory (bytes), CPU (% of one CPU) or process limit, live; an agent "
           "may lower its own, a parent set a child's within its own, the privileged within the "
           "pool; answers with the previous limits"),
    Method("agent.queue", queue, obj(), PUBLIC, "agents waiting for resources, in admission order, with reasons"),
]
