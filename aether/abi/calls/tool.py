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
that only reads runs again.  An agent's calls are journalled in its own scope, never
the system's (which the shell's model planner reads).

Bounds (``busy`` past each, nothing recorded, so the same call_id may be asked again):
a slow call is a forked copy of aetherd, outside the caller's cgroup, so an
unprivileged caller has at most SLOW_PER_CALLER in flight (an agent's whole tree
counting as one caller) and all of them SLOW_TOTAL; at most MAX_RUNNING exactly-once slow calls run at once, and MAX_WAITERS
asks wait on one running call_id.
"""

import os

from ... import tools
from ...tools import processes
from .. import worker
from ..methods import ANY, PUBLIC, Method, obj
from ..protocol import CODES, Busy, Conflict, Internal, Unavailable
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
        relay, release = Deferred(), _take_slot(d, caller, name)

        def done(value, error):
            release()
            relay.fail(error) if error is not None else relay.resolve(value)
        _start(d, run, name, release).bind(done)
        return relay
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
    if key in running and len(running[key]) >= MAX_WAITERS:
        raise Busy(f"{len(running[key])} asks already wait for the running call {call_id!r}, the most one "
                   f"call may have ({MAX_WAITERS}); ask again once it has answered")
    release, action = _reserve(d, caller, name, call_id, ledger, key in running), None
    try:
        with store.transaction():
            action, outcome = ledger.begin(caller.principal, call_id, name, args, _instance(d),
                                           rerun_in_doubt=not _changes_things(name), running=key in running)
    except toolcalls.InDoubt as e:
        raise Conflict(str(e), e.data) from None
    except ContextError as e:
        raise ctx_calls.as_abi_error(e) from None
    finally:
        if action != "run":                 # only a run holds its slot until it answers
            release()
    if action == "replay":
        return _answer(call_id, outcome, replayed=True)
    if action == "running":
        waiting = Deferred()
        running[key].append(waiting)
        return waiting
    running[key] = []
    if name in SLOW:
        relay = Deferred()

        def run():
            try:
                return {"result": tools.call(tc, name, args)}
            except tools.ToolError as e:
                return {"error": e.to_dict()}

        def settle(value, error):
            release()
            _settle(d, caller, name, args, call_id, relay, value, error)
        try:
            _start(d, run, name, release).bind(settle)
        except Unavailable as e:            # no worker: it did not run, and the record says so
            _running(d).pop(key, None)
            _finish(d, caller, name, args, call_id, {"error": {"code": "unavailable", "message": str(e)}})
            raise
        return relay
    try:
        outcome = {"result": tools.call(tc, name, args)}
    except tools.ToolError as e:
        outcome = {"error": e.to_dict()}
    return _settle(d, caller, name, args, call_id, None, outcome, None)


# -- slow calls in flight ---------------------------------------------------------------------------

def _take_slot(d, caller, name):
    """A slot for one slow call (a forked copy of aetherd, root, outside the caller's cgroup): at most
    SLOW_PER_CALLER in flight per unprivileged caller, an agent's tree (a top-level agent and its
    descendants) counting as one, so children do not multiply it, and SLOW_TOTAL theirs in all.
    Returns the function that gives the slot back (once)."""
    if name not in SLOW:
        return lambda: None
    slots = _slots(d)
    who = _slot_owner(d, caller)
    if not caller.privileged:
        mine, theirs = slots.get(who, 0), sum(n for p, n in slots.items() if p != PRIVILEGED_SLOTS)
        if mine >= SLOW_PER_CALLER:
            shared = "" if who == caller.principal else f" ({caller.principal} shares them with {who}'s tree)"
            raise Busy(f"{who} has {mine} {name} calls in flight{shared}, the most one caller may have "
                       f"({SLOW_PER_CALLER}); wait for one to answer, then ask again")
        if theirs >= SLOW_TOTAL:
            raise Busy(f"agents have {theirs} slow tool calls ({', '.join(SLOW)}) in flight, the most "
                       f"aetherd runs for them ({SLOW_TOTAL}); try again in a few seconds")
    else:
        who = PRIVILEGED_SLOTS
    slots[who] = slots.get(who, 0) + 1
    given_back = []

    def release():
        if not given_back:
            given_back.append(True)
            slots[who] -= 1
            if not slots[who]:
                del slots[who]
    return release


def _reserve(d, caller, name, call_id, ledger, waiting):
    """For an exactly-once call that would run now: its slow slot and a place among the MAX_RUNNING
    calls in flight, taken *before* anything is recorded, so a refusal leaves the call_id unused
    (ask again later with the same one).  A replay, a wait and an in-doubt refusal need neither."""
    if waiting:
        return lambda: None
    row = ledger.get(caller.principal, call_id)
    if row is not None and (row["status"] != "started" or _changes_things(name)):
        return lambda: None
    running = _running(d)
    if len(running) >= MAX_RUNNING and name in SLOW:
        raise Busy(f"aetherd is running {len(running)} exactly-once slow tool calls, the most it holds "
                   f"({MAX_RUNNING}); nothing was recorded: ask again later with the same call_id")
    return _take_slot(d, caller, name)


def _start(d, run, name, release):
    """The worker's Deferred; a fork that fails gives the slot back and answers unavailable."""
    try:
        return worker.run(d.loop, d.reaper, run, SLOW[name])
    except OSError as e:
        release()
        raise Unavailable(f"{name}: aetherd could not start a worker for the call ({e}); try again later") from None


def _slot_owner(d, caller):
    """Whose slow slots a caller uses: an agent's tree's, else its own principal's."""
    agent = d.supervisor.agents.get(caller.agent) if caller.agent else None
    lineage = getattr(agent, "lineage", None)
    return f"agent:{lineage[0]}" if lineage else caller.principal


def _slots(d):
    slots = getattr(d, "tool_slots", None)
    if slots is None:
        slots = d.tool_slots = {}
    return slots


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
    """The journal scope of a caller's tool calls: an agent's is always its own (whether or not it
    has stored anything there yet: the system scope is read into the shell's model prompt, so no
    agent's arguments may land there); the privileged's their home if it exists, else the system's."""
    from ...ctx import access as acl
    home = acl.home(caller.principal)
    if home is not None and home.startswith("agent:"):
        return home
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
MAX_WAITERS = 4                      # asks of one running call_id waiting for its run
SLOW_PER_CALLER = 8                  # slow calls (forked workers) in flight per unprivileged principal
SLOW_TOTAL = 64                      # ... and for all of them together (the privileged are not held)
PRIVILEGED_SLOTS = "(privileged)"

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
