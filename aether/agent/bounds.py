"""What an agent may have, measured against its parent, its children and the machine's pool.

* A child never gets more than its parent (``inherit``): no grant the parent
  lacks, root only below a root parent, CPU and process limits at most the
  parent's.  Memory and model spend are carved out of the parent's in
  ``AgentSupervisor._carve``.
* A top-level agent's memory fits in the pool (``fits_pool``), or it could never start.
* ``agent.set_limits``: an agent lowers its own limits, never raises them
  (``only_lower``); whoever asks, new limits stay within the parent's, above what
  the children hold, and within the pool (``limits_fit``).
"""

from ..states import FAILED, RUNNING, STARTING, STOPPED, STOPPING
from .errors import AgentError

ACTIVE = frozenset({STARTING, RUNNING, STOPPING})     # states that hold their reservation


def inherit(parent, manifest):
    """A child never gets more than its parent: no grant the parent lacks, root only below a
    root parent, CPU and process limits within the parent's (an explicit larger one is
    refused; a default one is lowered to the parent's)."""
    pm = parent.manifest
    extra = sorted(set(manifest.grant) - set(pm.grant))
    if extra:
        raise AgentError("permission", f"{manifest.name}: grant {extra} is more than its parent "
                                       f"{parent.name} has ({pm.grant or 'no grants'}); a child "
                                       "never gets more than its parent")
    if manifest.user == "root" and pm.user != "root":
        raise AgentError("permission", f"{manifest.name}: user = 'root' below {parent.name}, which "
                                       "runs as its own uid: a child never gets more than its parent")
    changes = {}
    for field, unit in (("limits.cpu", "CPUs"), ("limits.pids", "processes")):
        mine, theirs = manifest.values[field], pm.values[field]
        if theirs is None or (mine is not None and mine <= theirs):
            continue
        if field in manifest.given and mine is not None:
            raise AgentError("budget", f"{manifest.name}: {field} {mine:g} {unit} is more than its "
                                       f"parent {parent.name}'s ({theirs:g})")
        changes[field.replace(".", "__")] = theirs
    return manifest.with_changes(**changes) if changes else manifest


def fits_pool(manifest, memory_pool):
    """A top-level agent's memory must fit in the machine's pool, or it would wait forever."""
    if manifest.limits_memory > memory_pool:
        raise AgentError("budget", f"{manifest.name}: limits.memory {manifest.limits_memory >> 20} MiB "
                                   f"is more than the whole pool for agents "
                                   f"({memory_pool >> 20} MiB); it could never start")


def only_lower(agent, memory, cpu, pids):
    """An agent changing its own limits: each given one at most what it has now."""
    m = agent.manifest
    for what, new, now in (("memory", memory, m.limits_memory), ("cpu", cpu, m.limits_cpu),
                           ("pids", pids, m.limits_pids)):
        if new is not None and now is not None and new > now:
            raise AgentError("permission", f"{agent.name} may lower its own {what} limit, never raise "
                                           f"it ({now:g} -> {new:g}); its parent or the shell can")


def limits_fit(sup, agent, memory, cpu, pids):
    """Refuse new limits that break the parent's, the children's or the pool's bounds."""
    m = agent.manifest
    if memory is not None:
        held = sum(sup.agents[c].manifest.limits_memory for c in agent.children if c in sup.agents
                   and sup.agents[c].state not in (STOPPED, FAILED))
        if memory < held:
            raise AgentError("budget", f"{agent.name}: memory {memory >> 20} MiB is less than its "
                                       f"children hold ({held >> 20} MiB); lower theirs first")
    if agent.parent is None:
        if memory is not None and memory > m.limits_memory:
            active = agent.state in ACTIVE          # a resting one only has to fit when it starts
            free = sup.memory_pool - (sup.reserved()[0] - m.limits_memory if active else 0)
            if memory > free:
                raise AgentError("budget", f"{agent.name}: memory {memory >> 20} MiB does not fit in "
                                           f"the pool for agents ({max(0, free) >> 20} MiB free of "
                                           f"{sup.memory_pool >> 20} MiB)")
        return
    parent = sup.agents[agent.parent]
    pm = parent.manifest
    if memory is not None:
        siblings = sum(sup.agents[c].manifest.limits_memory for c in parent.children
                       if c != agent.name and c in sup.agents
                       and sup.agents[c].state not in (STOPPED, FAILED))
        free = pm.limits_memory - siblings
        if memory > free:
            raise AgentError("budget", f"{agent.name}: memory {memory >> 20} MiB exceeds what its parent "
                                       f"{parent.name} has for it ({max(0, free) >> 20} MiB)")
    for what, new, theirs in (("cpu", cpu, pm.limits_cpu), ("pids", pids, pm.limits_pids)):
        if new is not None and theirs is not None and new > theirs:
            raise AgentError("budget", f"{agent.name}: {what} {new:g} is more than its parent "
                                       f"{parent.name}'s ({theirs:g})")
