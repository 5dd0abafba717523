"""tool.*: the built-in tools that replace the userland (aether/tools, docs/tools.md).

Arguments are validated against each tool's schema before anything runs.
Confinement: an agent works inside its data directory and may signal only
its own processes; the privileged (shell, host) may touch everything.
Fast tools run in aetherd's loop; ``fetch.url`` runs in a forked worker.
"""

from ... import tools
from ...tools import processes
from .. import worker
from ..methods import ANY, PUBLIC, Method, obj
from ..protocol import (BudgetExhausted, Conflict, Internal, InvalidParams, MethodNotFound, NotFound,
                        PermissionDenied, TooLarge, Unavailable)
from . import ctx as ctx_calls

SLOW = {"fetch.url": 60.0}          # tool -> longest it may take (its own timeout bound)
CODES = {"unknown_tool": MethodNotFound, "invalid_arguments": InvalidParams,
         "permission_denied": PermissionDenied, "not_found": NotFound, "already_exists": Conflict,
         "too_large": TooLarge, "unavailable": Unavailable, "wrong_type": InvalidParams,
         "fetch_failed": Unavailable, "quota_exceeded": BudgetExhausted}
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


METHODS = [
    Method("tool.list", listing, obj(), PUBLIC,
           "every built-in tool: name, description, argument schema, and whether it is risky"),
    Method("tool.call", call, obj(["name"], name={"type": "string", "minLength": 1, "maxLength": 64},
                                  args={"type": "object"}), ANY,
           "run a built-in tool with arguments checked against its schema first"),
]
