"""tool.*: the built-in tools that replace the userland (aether/tools, docs/tools.md).

Arguments are validated against each tool's schema before anything runs.
Confinement: an agent works inside its data directory and may signal only
its own processes; the privileged (shell, host) may touch everything.
Fast tools run in aetherd's loop; ``fetch.url`` runs in a forked worker.

Exactly once: with a ``call_id`` (the caller's name for the call), the call goes
through the tool-call ledger (aether/ctx/toolcalls.py): the first ask runs it and
records its outcome and one ``tool.call`` journal entry; any later ask with the
same call_id answers the recorded outcome with ``replayed: true`` and runs nothing
(an ask while it is still running waits for that run).  The answer is then
``{"call_id", "result", "replayed", "journal_seq"}``; a recorded failure answers
its error again (``data.replayed``).  A call left *in doubt* by a crash (started,
never recorded) of a tool that can change things (``risky`` in tool.list, whatever
the arguments) is refused with ``conflict`` (``data.in_doubt``); a call of a tool
that only reads runs again.
"""

import os

from ... import tools
from ...tools import processes
from .. import worker
from ..methods import ANY, PUBLIC, Method, obj
from ..protocol import CODES, Conflict, Internal, Unavailable
from ...ctx import toolcalls
from ...ctx.errors import ContextError
from ..deferred import Deferred
from . import ctx as ctx_calls

SLOW = {"fetch.url": 60.0}          # tool -> longest it may take (its own timeout bound)
# A tool error's code -> the ABI error: CODES, from aether.errors.WIRE_CODES (the one table).
# Anything else ("failed": an OS error no rule names, or a bug in a tool) answers internal.


def tool_caller(d, caller):
    """The tools' view of an ABI caller (their confinement rules)."""
    if caller.privileged:
        return tools.Caller(caller.principal, caller.uid or 0, privileged=True)
    if caller.agent and caller.agent in d.supervisor.agents:
        agent = d.supervisor.agents[caller.agent]
        home = d.supervisor.home(caller.agent)
        return tools.Caller(caller.principal, caller.uid, root=home, gid=caller.gid,
                            owns_pid=processes.in_cgroup("/aether/agents/" + "/".join(agent.lineage)),
                            disk_quota=_home_quota(d, caller))
    return tools.Caller(caller.principal, caller.uid, gid=caller.gid)


def _home_quota(d, caller):
    """What an agent's home may hold: its limits.disk less its rows in the context store."""
    limit = ctx_calls.agent_disk_limit(d, caller.agent)
    if d.store is not None:
        try:
            limit -= d.store.disk_bytes(caller.principal)
        except Exception:  # noqa: BLE001 - an unreadable store leaves the whole quota to the home
            pass
    return limit


def as_abi_error(e):
    error = CODES.get(getattr(e, "code", ""), Internal)(str(e), e.to_dict())
    return error


def listing(d, caller, params, conn):
    return tools.list_tools()


def call(d, caller, params, conn):
    name, args = params["name"], params.get("args", {})
    tc = tool_caller(d, caller)
    if params.get("call_id") is not None:
        return once(d, caller, tc, name, args, params["call_id"])
    if name in SLOW:
        try:
            tools.validate(name, args)           # bad arguments answer at once, no worker
        except tools.ToolError as e:
            raise as_abi_error(e) from None

        def run():
            try:
                return tools.call(tc, name, args)
            except tools.ToolError as e:
                raise as_abi_error(e) from None
        return worker.run(d.loop, d.reaper, run, SLOW[name])
    try:
        return tools.call(tc, name, args)
    except tools.ToolError as e:
        raise as_abi_error(e) from None


# -- exactly once ----------------------------------------------------------------------------------

def once(d, caller, tc, name, args, call_id):
    """tool.call with a call_id: run at most once per (caller, call_id); see the module doc."""
    store = ctx_calls._store(d)
    try:
        tools.validate(name, args)          # bad arguments are refused before anything is recorded
    except tools.ToolError as e:
        raise as_abi_error(e) from None
    ledger, key = toolcalls.of(store), (caller.principal, call_id)
    running = _running(d)
    try:
        with store.transaction():
            action, outcome = ledger.begin(caller.principal, call_id, name, args, _instance(d),
                                           rerun_in_doubt=not _changes_things(name), running=key in running)
    except toolcalls.InDoubt as e:
        raise Conflict(str(e), e.data) from None
    except ContextError as e:
        raise ctx_calls.as_abi_error(e) from None
    if action == "replay":
        return _answer(call_id, outcome, replayed=True)
    if action == "running":
        waiting = Deferred()
        running[key].append(waiting)
        return waiting
    if len(running) >= MAX_RUNNING:
        _finish(d, caller, name, args, call_id, {"error": {"code": "unavailable", "message": "too many calls"}})
        raise Unavailable(f"aetherd is running {len(running)} exactly-once tool calls, the most it holds; "
                          "retry with a new call_id")
    running[key] = []
    if name in SLOW:
        relay = Deferred()

        def run():
            try:
                return {"result": tools.call(tc, name, args)}
            except tools.ToolError as e:
                return {"error": e.to_dict()}
        worker.run(d.loop, d.reaper, run, SLOW[name]).bind(
            lambda value, error: _settle(d, caller, name, args, call_id, relay, value, error))
        return relay
    try:
        outcome = {"result": tools.call(tc, name, args)}
    except tools.ToolError as e:
        outcome = {"error": e.to_dict()}
    return _settle(d, caller, name, args, call_id, None, outcome, None)


def _settle(d, caller, name, args, call_id, relay, outcome, error):
    """Record the outcome once, then answer the caller and everyone who waited for the same call."""
    if error is not None:                   # the worker died or timed out: that is the outcome
        outcome = {"error": {"code": getattr(error, "code", "failed"), "message": str(error)}}
    seq = _finish(d, caller, name, args, call_id, outcome)
    waiters = _running(d).pop((caller.principal, call_id), [])
    try:
        answer = _answer(call_id, outcome, replayed=False, seq=seq)
    except Exception as e:  # noqa: BLE001 - the tool's error, answered to each waiter too
        for w in waiters:
            w.fail(_replayed(e))
        if relay is None:
            raise
        relay.fail(e)
        return None
    for w in waiters:
        w.resolve({**answer, "replayed": True})
    if relay is None:
        return answer
    relay.resolve(answer)
    return None


def _finish(d, caller, name, args, call_id, outcome):
    """The journal seq of the call's entry (None when it could not be written: the call stays in doubt)."""
    store = d.store
    try:
        with store.transaction():
            return toolcalls.of(store).finish(caller.principal, call_id, name, args, outcome,
                                              _scope(store, caller))
    except ContextError as e:
        d.log.error(f"tool.call: the outcome of {caller.principal}'s call {call_id!r} ({name}) could not be "
                    f"recorded, so a retry will find it in doubt: {e}")
        return None


def _answer(call_id, outcome, replayed, seq=None):
    if "result" in outcome:
        return {"call_id": call_id, "result": outcome["result"], "replayed": replayed, "journal_seq": seq}
    if "not_kept" in outcome:
        kept = outcome["not_kept"]
        if not kept.get("ok"):
            raise Conflict(f"tool call {call_id!r} ran once and failed; its error was too large to keep", kept)
        raise Conflict(f"tool call {call_id!r} ran once; its result ({kept['bytes']} bytes) was too large to keep, "
                       "so it cannot be given again: read the effect directly", {**kept, "replayed": True})
    error = outcome["error"]
    cls = CODES.get(error.get("code", ""), Internal)
    raise cls(str(error.get("message") or error.get("code")), {**error, "call_id": call_id, "replayed": replayed})


def _replayed(e):
    data = dict(getattr(e, "data", None) or {})
    data["replayed"] = True
    return type(e)(str(e), data) if hasattr(e, "code") else e


def _scope(store, caller):
    """The journal scope of a caller's tool calls: its own scope, else the system's."""
    from ...ctx import access as acl
    home = acl.home(caller.principal)
    return home if home is not None and store.access.lookup(home) is not None else "system"


def _changes_things(name):
    """Whether the tool can change anything, with any arguments (its risky flag, not the call's):
    only a tool that cannot is run again when a crash left a call of it in doubt."""
    try:
        return tools.get(name).risky
    except tools.ToolError:
        return True


def _instance(d):
    mark = getattr(d, "tool_instance", None)
    if mark is None:
        mark = d.tool_instance = os.urandom(8).hex()
    return mark


def _running(d):
    running = getattr(d, "tool_running", None)
    if running is None:
        running = d.tool_running = {}
    return running


MAX_RUNNING = 256                    # exactly-once calls in flight at once, machine-wide

METHODS = [
    Method("tool.list", listing, obj(), PUBLIC,
           "every built-in tool: name, description, argument schema, and whether it is risky"),
    Method("tool.call", call, obj(["name"], name={"type": "string", "minLength": 1, "maxLength": 64},
                                  args={"type": "object"},
                                  call_id={"type": "string", "minLength": 1, "maxLength": toolcalls.MAX_CALL_ID}),
           ANY,
           "run a built-in tool with arguments checked against its schema first; with call_id, at most "
           "once (asking again answers the recorded result, replayed: true)"),
]
