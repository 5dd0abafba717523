"""How an agent's processes are held together: its own cgroup (cgroup v2: limits, usage,
kill), or, without cgroups (a development host), a process group with no limits.

Both give the supervisor (supervisor.py) the same calls: prepare (the procs file the
child joins), pids, apply_limits, signal, usage, release.  ``make_cgroups`` says
which one a machine gets.
"""

import os

from .cgroup import CgroupError, Cgroups


class CgroupGroups:
    """Agent processes tracked by cgroup membership."""

    enforced = True

    def __init__(self, cgroups):
        self.cg = cgroups

    def prepare(self, agent):
        m = agent.manifest
        path = self.cg.create(agent.lineage, memory=m.limits_memory, cpu=m.limits_cpu,
                              pids=m.limits_pids, priority=m.priority)
        return Cgroups.procs_file(path)

    def pids(self, agent):
        return self.cg.pids(os.path.join(self.cg.path(agent.lineage), "self"))

    def apply_limits(self, agent):
        path = self.cg.path(agent.lineage)
        if os.path.isdir(path):
            m = agent.manifest
            self.cg.set_limits(path, memory=m.limits_memory, cpu=m.limits_cpu, pids=m.limits_pids,
                               priority=m.priority)

    def signal(self, agent, sig):
        if sig == 9:
            self.cg.kill(os.path.join(self.cg.path(agent.lineage), "self"))
        for pid in self.pids(agent):
            _kill(pid, sig)

    def usage(self, agent):
        return self.cg.usage(self.cg.path(agent.lineage))

    def release(self, agent):
        self.cg.remove(self.cg.path(agent.lineage))


class ProcessGroups:
    """Fallback without cgroup v2: each agent is a session/process group; no limits."""

    enforced = False

    def prepare(self, _agent):
        return os.devnull          # the child "joins" /dev/null: nothing to join

    def apply_limits(self, _agent):
        return None                # nothing enforces limits here (inspect says enforced: false)

    def pids(self, agent):
        if agent.pid is None and getattr(agent, "pgid", None) is None:
            return []
        pgid = agent.pid or agent.pgid
        try:
            os.kill(-pgid, 0)
            return [pgid]
        except (ProcessLookupError, PermissionError):
            return []

    def signal(self, agent, sig):
        pgid = agent.pid or getattr(agent, "pgid", None)
        if pgid:
            _kill(-pgid, sig)

    def usage(self, agent):
        rss = 0
        if agent.pid:
            try:
                with open(f"/proc/{agent.pid}/statm") as f:
                    rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except OSError:
                pass
        return {"memory_bytes": rss, "memory_peak_bytes": None, "cpu_seconds": None,
                "processes": len(self.pids(agent)), "oom_kills": None}

    def release(self, _agent):
        pass


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def make_cgroups(root, log):
    """Cgroups for agents if the unified hierarchy is usable at root, else None."""
    if not os.path.exists(os.path.join(root, "cgroup.controllers")):
        return None
    cg = Cgroups(root)
    try:
        cg.setup()
    except (OSError, CgroupError) as e:
        log.warning(f"agents: cannot set up cgroups under {root}: {e}")
        return None
    return cg
