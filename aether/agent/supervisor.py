"""The agent supervisor: the table of agents, their lineage, admission, and the OS side
of their state machines.

* Admission: an agent starts only when its memory reservation (limits.memory)
  and its context budget fit in what is free; otherwise it waits in a queue
  ordered by priority, then by arrival, and its reason says what is missing.
* Lineage: a sub-agent's memory and context budget are carved out of its
  parent's (and its cgroup is nested under the parent's, so the kernel holds
  it to that); stopping a parent stops its subtree; a parent is told (by an
  event) when a child ends and why.
* Identity: a name is an identity with an owner that survives restarts
  (names.py); its home is ``home/<name>`` on the data partition (layout.py),
  apart from every tree aetherd reads.  A child never gets more than its
  parent: no grant or root the parent lacks, no CPU or process limit above the
  parent's (bounds.py).
* Groups (groups.py): with cgroup v2 each agent's processes live in its own cgroup
  (limits, usage, kill).  Without it (a development host), process groups stand in
  and limits are not enforced; the supervisor says so once, loudly.
"""

import errno
import os
import time
from collections import deque

from . import launch as _launch
from .. import spawn as _spawn
from . import bounds
from .bounds import ACTIVE
from .errors import AgentError
from .groups import CgroupGroups, ProcessGroups
from .layout import Layout, LayoutError
from .names import LEGACY, Names, NameRefused
from .persist import ON_PURPOSE, Durable, process_start
from .machine import Agent
from ..broker.spend import Exhausted, Ledger, LedgerError
from ..states import (ADMIT, EXIT, FAILED, RESTING, RUNNING, SPAWN_FAILED, START, STARTED, STARTING, STOP,
                      STOPPED, WAITING)

LOG_LINES = 500


class AgentSupervisor:
    def __init__(self, loop, reaper, log, publish, data_dir, cgroups=None,
                 memory_pool=256 << 20, context_pool=1_000_000, stop_timeout=5.0,
                 socket_path="/run/aether/abi.sock", own_uids=True):
        self.loop, self.reaper, self.log, self.publish = loop, reaper, log, publish
        self.data_dir = data_dir
        self.groups = CgroupGroups(cgroups) if cgroups else ProcessGroups()
        self.memory_pool, self.context_pool = memory_pool, context_pool
        self.stop_timeout = stop_timeout
        self.socket_path = socket_path
        self.own_uids = own_uids and os.getuid() == 0
        self.agents = {}
        self.logs = {}
        self.queued_at = {}
        self.ledger = Ledger(log=log)    # model-token spend (aether/broker/spend.py); aetherd persists it
        self.llm_view = None             # principal -> its model-call counters (set by aetherd)
        self.think_view = None           # principal -> its context accounting (llm.think; set on first think)
        self.shutting_down = False
        self._admit_pending = False
        self.notices = []                # alerts from setting up the data partition, for aetherd
        self.broken = None               # why agents' homes cannot be used, if they cannot
        self.layout = Layout(data_dir)
        self.names = self._open_names()
        self.durable = Durable(self, self.layout.records())    # ABI-spawned agents (persist.py)
        if not self.groups.enforced:
            log.warning("agents: no cgroup v2 hierarchy here: agent limits are NOT enforced "
                        "(process groups stand in for cgroups)")
        else:
            self._clear_leftovers(cgroups)
        for problem in _launch.policy(self.own_uids).problems():
            log.warning(f"agents: {problem}" + (": agents are refused until it is fixed"
                                                 if self.own_uids else ""))

    def _open_names(self):
        """The data partition's trees, the old layout moved (once), and the registry of names.

        When the trees cannot be made (a read-only or broken data disk) or are not what they
        must be (a planted link), aetherd keeps serving; no agent starts, and each says why."""
        legacy = {}
        try:
            self.layout.prepare()
            legacy = self.layout.migrate(self._notice)
        except (LayoutError, OSError) as e:
            self.broken = f"the agents' trees on the data partition are not usable: {e}"
            self._notice(self.broken + "; no agent can start")
        names = Names(self.layout.names_file(), self.log)
        if names.problem:
            self._notice(names.problem)
        try:
            for entry in sorted(os.listdir(self.layout.homes)):
                if entry not in names.entries:          # a home without an owner: legacy,
                    legacy.setdefault(entry, _home_uid(self.layout.homes, entry))   # its uid kept
            names.adopt({n: u for n, u in legacy.items() if self._nameable(n)})
            if self.broken is None:
                self.layout.mark_migrated()
        except OSError as e:
            self._notice(f"the agent name registry cannot be brought up to date: {e}")
        return names

    @staticmethod
    def _nameable(name):
        from .manifest import ManifestError, check_name
        try:
            check_name(name)
            return True
        except ManifestError:
            return False

    def _notice(self, message):
        self.log.warning(f"agents: {message}")
        self.notices.append(message)

    def home(self, name):
        """The agent's home directory (home/<name> on the data partition)."""
        return self.layout.home(name)

    def _clear_leftovers(self, cgroups):
        """Agents a previous aetherd left running (it crashed; PID 1 restarted us) are stopped:
        nobody supervises them now, and their manifests start them afresh."""
        try:
            names = sorted(os.listdir(cgroups.base))
        except OSError:
            return
        for name in names:
            path = os.path.join(cgroups.base, name)
            if not os.path.isdir(path):
                continue
            pids = cgroups.pids(path)
            if pids:
                self.log.warning(f"agents: {name} has {len(pids)} process(es) left by a previous "
                                 "aetherd; killing them (they run unsupervised)")
                cgroups.kill(path)
                deadline = time.monotonic() + 5
                while cgroups.pids(path) and time.monotonic() < deadline:
                    time.sleep(0.05)
            cgroups.remove(path)

    # -- the machine's window on the world ------------------------------------------

    def now(self):
        return time.monotonic()

    def schedule(self, delay, callback):
        self.loop.call_later(delay, callback)

    def admit_soon(self):
        if not self._admit_pending:
            self._admit_pending = True
            self.loop.call_later(0, self._admit)

    def changed(self, agent):
        if agent.state == WAITING:
            self.queued_at.setdefault(agent.name, self.now())
        else:
            self.queued_at.pop(agent.name, None)
        event = {"kind": "agent.state", "agent": agent.name, "parent": agent.parent,
                 "state": agent.state, "reason": agent.reason}
        if agent.state in RESTING:
            event["last_exit"] = agent.last_exit
            event["last_error"] = agent.last_error
            self.groups.release(agent)
        elif agent.state == STARTING:
            agent.pgid_start = process_start(agent.pgid) if getattr(agent, "pgid", None) else None
        self.durable.changed(agent)
        self.publish(event)
        if agent.state in RESTING | {RUNNING}:
            self.admit_soon()          # resources may have been freed

    def launch(self, agent):
        m = agent.manifest
        procs_file = self.groups.prepare(agent)
        if self.own_uids:
            uid = gid = 0 if m.user == "root" else self.names.uid(agent.name)
        else:
            uid, gid = os.getuid(), os.getgid()
        if self.broken:
            raise OSError(errno.EIO, self.broken)
        home = self._make_home(agent.name, uid, gid)
        r, w = os.pipe2(os.O_CLOEXEC)
        env = {"PATH": "/usr/bin", "HOME": home, "LANG": "C.UTF-8", "AETHER_AGENT": agent.name,
               "AETHER_SOCKET": self.socket_path, **m.env}
        spec = _launch.LaunchSpec(m.program, m.args, env, procs_file, uid, gid, home, w, agent.name,
                                  net="net" in m.grant, confined="unconfined" not in m.grant,
                                  strict=self.own_uids, package=getattr(agent, "package", None))
        try:
            pid, handshake = _launch.launch(spec)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        agent.pgid = pid
        finish = self._await_handshake(agent, pid, handshake)

        def reaped(_pid, status):
            finish()                   # a child that dies while starting: its reason first
            agent.handle(EXIT, status)

        self.reaper.claim(pid, reaped)
        self._capture(agent.name, r)
        return pid

    def _make_home(self, name, uid, gid):
        """home/<name>: a real directory (never a link), the agent's own, 0700."""
        home = self.home(name)
        try:
            os.mkdir(home, 0o700)
        except FileExistsError:
            pass
        fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if self.own_uids:
                os.fchown(fd, uid, gid)
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
        return home

    def signal(self, agent, sig):
        self.groups.signal(agent, sig)

    def alive(self, agent):
        return bool(self.groups.pids(agent))

    # -- admission --------------------------------------------------------------------

    def reserved(self):
        """(memory bytes, context tokens) held by top-level agents that may run."""
        memory = tokens = 0
        for agent in self.agents.values():
            if agent.parent is None and agent.state in ACTIVE:
                memory += agent.manifest.limits_memory
                tokens += agent.manifest.context_spend_tokens
        return memory, tokens

    def _admit(self):
        self._admit_pending = False
        waiting = sorted((a for a in self.agents.values() if a.state == WAITING),
                         key=lambda a: (-a.manifest.priority, self.queued_at.get(a.name, 0)))
        for agent in waiting:
            missing = self._missing(agent)
            if missing:
                agent.reason = f"waiting: {missing}"
                continue
            agent.handle(ADMIT)

    def _missing(self, agent):
        if agent.parent is not None:
            parent = self.agents.get(agent.parent)
            if parent is None or parent.state not in ACTIVE:
                return f"its parent {agent.parent} is not running"
            return None              # carved out of the parent's reservation at spawn
        memory, tokens = self.reserved()
        m = agent.manifest
        if memory + m.limits_memory > self.memory_pool:
            return (f"needs {m.limits_memory >> 20} MiB of memory, "
                    f"{max(0, self.memory_pool - memory) >> 20} MiB free for agents")
        if tokens + m.context_spend_tokens > self.context_pool:
            return (f"needs a model-token spend of {m.context_spend_tokens} tokens, "
                    f"{max(0, self.context_pool - tokens)} free")
        return None

    def queue(self):
        """The waiting agents in admission order, with their reasons."""
        waiting = sorted((a for a in self.agents.values() if a.state == WAITING),
                         key=lambda a: (-a.manifest.priority, self.queued_at.get(a.name, 0)))
        return [{"agent": a.name, "priority": a.manifest.priority, "reason": a.reason}
                for a in waiting]

    # -- requests ---------------------------------------------------------------------

    def declare(self, manifest, parent=None, spawned_by=None, owner=None, reclaim=False, restored=False):
        """Add an agent to the table.  Its name is claimed for ``agent:<parent>`` (a child) or for
        owner (who declared a top-level agent: shell, host, image, system); ``reclaim`` (the
        privileged only: the caller checks) takes a name over from its owner, with an event.
        An agent not from a boot manifest is recorded durably before this returns (persist.py);
        ``restored``: declared again from that record (its spend account is its own still)."""
        if manifest.name in self.agents:
            raise AgentError("conflict", f"an agent named {manifest.name!r} already exists "
                                         f"(state {self.agents[manifest.name].state})")
        lineage = [manifest.name]
        if parent is not None:
            owner = f"agent:{self.get(parent).name}"
        owner = owner or spawned_by or "system"
        try:
            self.names.check(manifest.name, owner, reclaim=reclaim)     # whose name it is, first
        except NameRefused as e:
            raise AgentError(e.kind, str(e)) from None
        if parent is not None:
            owner_agent = self.get(parent)
            manifest = bounds.inherit(owner_agent, manifest)
            manifest = self._carve(owner_agent, manifest, spend_kept=restored and self._kept(manifest, parent))
            lineage = owner_agent.lineage + [manifest.name]
        else:
            bounds.fits_pool(manifest, self.memory_pool)
        try:
            previous = self.names.claim(manifest.name, owner, reclaim=reclaim,
                                        tree=lineage[0] if parent is not None else None)
        except NameRefused as e:
            raise AgentError(e.kind, str(e)) from None
        if previous not in (None, owner):
            self.publish({"kind": "agent.reclaimed", "agent": manifest.name, "parent": parent,
                          "from": previous, "to": owner, "by": spawned_by or owner,
                          "legacy": previous == LEGACY})
        if not (restored and self._kept(manifest, parent)):
            self._open_spend(manifest, parent)
        agent = Agent(manifest, self, parent=parent, lineage=lineage, spawned_by=spawned_by)
        try:
            self.durable.declared(agent, owner)
        except AgentError:
            if parent is not None:
                self.ledger.close(f"agent:{manifest.name}")
            raise
        self.agents[agent.name] = agent
        self.logs[agent.name] = deque(maxlen=LOG_LINES)
        if parent is not None:
            self.agents[parent].children.append(agent.name)
        self.publish({"kind": "agent.declared", "agent": agent.name, "parent": parent})
        return agent

    def _kept(self, manifest, parent):
        """Did the ledger keep this restored child's own account (carved from its parent)?"""
        account = self.ledger.get(f"agent:{manifest.name}")
        return parent is not None and account is not None and account.parent == f"agent:{parent}"

    def _carve(self, parent, manifest, spend_kept=False):
        """A child's limits must fit in what its parent has not given to other children
        (``spend_kept``: its spend was carved before a restart and is still held)."""
        pm = parent.manifest
        siblings = [self.agents[c] for c in parent.children
                    if c in self.agents and self.agents[c].state not in (STOPPED, FAILED)]
        free_mem = pm.limits_memory - sum(s.manifest.limits_memory for s in siblings)
        account = self.ledger.get(f"agent:{parent.name}")
        free_ctx = account.available() if account is not None else 0
        if manifest.limits_memory > free_mem:
            raise AgentError("budget", f"{manifest.name}: limits.memory {manifest.limits_memory >> 20} MiB "
                                       f"exceeds what {parent.name} has left to give "
                                       f"({max(0, free_mem) >> 20} MiB)")
        if not spend_kept and free_ctx is not None and manifest.context_spend_tokens > free_ctx:
            raise AgentError("budget", f"{manifest.name}: context.spend_tokens "
                                       f"{manifest.context_spend_tokens} exceeds what {parent.name} "
                                       f"has left to give ({max(0, free_ctx)}: what it may still spend, "
                                       "less what its children hold; a removed child's spending stays "
                                       "charged)")
        if pm.limits_deadline and (not manifest.limits_deadline
                                   or manifest.limits_deadline > pm.limits_deadline):
            manifest = manifest.with_changes(limits__deadline=pm.limits_deadline)
        return manifest

    def _open_spend(self, manifest, parent):
        """The agent's model-token account: carved out of its parent's, or its own (what it used
        before a restart or a new manifest still counts)."""
        principal = f"agent:{manifest.name}"
        try:
            if parent is None:
                self.ledger.open(principal, manifest.context_spend_tokens, manifest.context_period)
            else:
                self.ledger.close(principal)             # a leftover of an earlier child of that name
                self.ledger.carve(f"agent:{parent}", principal, manifest.context_spend_tokens)
        except (Exhausted, LedgerError) as e:
            raise AgentError("budget", str(e)) from None

    def get(self, name):
        """The agent named ``name``; AgentError("not_found") naming the known ones otherwise."""
        agent = self.agents.get(name)
        if agent is None:
            known = ", ".join(sorted(self.agents)) or "none"
            raise AgentError("not_found", f"no agent named {name!r} (agents: {known})")
        return agent

    def start(self, name):
        self.get(name).stopped_on_purpose = False
        self.get(name).handle(START)
        self._admit()                    # answer with the state admission leads to

    def stop(self, name, reason="request"):
        """Stop an agent and its whole subtree (children first)."""
        agent = self.get(name)
        for child in list(agent.children):
            if child in self.agents:
                self.stop(child, "parent" if reason in ON_PURPOSE else reason)
        if reason in ON_PURPOSE and agent.state not in RESTING:
            agent.stopped_on_purpose = True          # it stays stopped across restarts
        agent.handle(STOP, reason)
        self.durable.changed(agent)

    def restart(self, name):
        agent = self.get(name)
        if agent.state in ACTIVE:
            self.stop(name)
        agent.stopped_on_purpose = False
        agent.handle(START)

    def remove(self, name):
        agent = self.get(name)
        if agent.state not in RESTING:
            raise AgentError("conflict", f"{name} is {agent.state}; stop it before removing it")
        for child in list(agent.children):
            self.remove(child)
        self.groups.release(agent)
        self.durable.removed(agent)
        del self.agents[name]
        self.ledger.close(f"agent:{name}")      # a child's spending stays charged to its parent
        if agent.parent in self.agents:
            self.agents[agent.parent].children.remove(name)

    def heartbeat(self, name):
        self.get(name).heartbeat()

    def stop_all(self):
        self.shutting_down = True
        for agent in list(self.agents.values()):
            if agent.parent is None:
                self.stop(agent.name, "shutdown")

    def all_resting(self):
        return all(a.state in RESTING | {WAITING} for a in self.agents.values())

    # -- views ------------------------------------------------------------------------

    def set_limits(self, name, memory=None, cpu=None, pids=None, may_raise=True):
        """Change an agent's limits; applied live.  Returns the limits before the change.

        ``may_raise`` is False when an agent changes its own limits: it may lower them, never
        raise them.  Whoever asks, a child's limits stay within its parent's (its memory within
        what the parent has not given its other children), a parent's memory never drops below
        what its children hold, and a top-level agent's memory fits in the machine's pool."""
        agent = self.get(name)
        m = agent.manifest
        previous = {"memory": m.limits_memory, "cpu_percent": m.limits_cpu * 100 if m.limits_cpu else None,
                    "pids": m.limits_pids}
        changes = {}
        if memory is not None:
            changes["limits__memory"] = memory
        if cpu is not None:
            changes["limits__cpu"] = cpu
        if pids is not None:
            changes["limits__pids"] = pids
        if not may_raise:
            bounds.only_lower(agent, memory, cpu, pids)
        bounds.limits_fit(self, agent, memory, cpu, pids)
        agent.manifest = m.with_changes(**changes)
        self.groups.apply_limits(agent)
        self.durable.changed(agent)
        self.publish({"kind": "agent.limits", "agent": name, "parent": agent.parent,
                      "limits": {k.split("__")[1]: v for k, v in changes.items()}})
        return previous

    def _context_view(self, agent):
        """The agent's model budgets (window, spend) and its model calls."""
        m, principal = agent.manifest, f"agent:{agent.name}"
        spend = self.ledger.view(principal) or {}
        return {"window_tokens": m.context_window_tokens, "spend_tokens": m.context_spend_tokens,
                "period_s": m.context_period, "used_tokens": spend.get("used_tokens", 0),
                "reserved_tokens": spend.get("reserved_tokens", 0),
                "carved_tokens": spend.get("carved_tokens", 0),
                "available_tokens": spend.get("available_tokens"),
                "llm": self.llm_view(principal) if self.llm_view else None,
                "think": self.think_view(principal) if self.think_view else None}

    def inspect(self, name):
        agent = self.get(name)
        m = agent.manifest
        info = {
            "name": agent.name, "state": agent.state, "reason": agent.reason, "pid": agent.pid,
            "goal": m.goal, "program": m.program, "args": m.args, "parent": agent.parent,
            "children": list(agent.children), "lineage": agent.lineage,
            "spawned_by": agent.spawned_by, "owner": self.names.owner(agent.name),
            "restart": m.restart, "priority": m.priority,
            "starts": agent.starts, "last_exit": agent.last_exit, "last_error": agent.last_error,
            "limits": {"memory_bytes": m.limits_memory, "cpu": m.limits_cpu, "pids": m.limits_pids,
                       "deadline_s": m.limits_deadline, "heartbeat_s": m.heartbeat,
                       "enforced": self.groups.enforced},
            "context": self._context_view(agent),
            "usage": self.groups.usage(agent) if agent.state in ACTIVE else None,
        }
        if agent.started_at and agent.state in ACTIVE:
            info["uptime_s"] = round(self.now() - agent.started_at, 3)
        return info

    def listing(self):
        return [{"name": a.name, "state": a.state, "pid": a.pid, "parent": a.parent,
                 "reason": a.reason, "starts": a.starts, "last_exit": a.last_exit}
                for a in self.agents.values()]

    def recent_output(self, name, lines):
        self.get(name)
        return list(self.logs[name])[-lines:]

    # -- plumbing ---------------------------------------------------------------------

    def _await_handshake(self, agent, pid, fd):
        """Read the child's report; return a function that finishes it at once (on exit)."""
        buf = bytearray()
        done = []

        def conclude():
            if done:
                return
            done.append(True)
            self.loop.remove_reader(fd)
            os.close(fd)
            if agent.pid != pid or agent.state != STARTING:
                return
            reason = bytes(buf).replace(_launch.STARTED_MARK, b"").decode("utf-8", "replace")
            agent.handle(SPAWN_FAILED, reason) if reason else agent.handle(STARTED)

        def readable(fd):
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                return
            if data:
                buf.extend(data)
            else:
                conclude()              # EOF: the child exec'd, or ran, or gave up

        def finish():
            while not done:              # the child is gone: the pipe ends without blocking
                readable(fd)

        self.loop.add_reader(fd, readable)
        return finish

    def _capture(self, name, fd):
        _spawn.read_lines(self.loop, fd, self.logs[name].append)


def _home_uid(homes, name):
    """The uid that owns an agent's home (None when it cannot be read): a name adopted
    without its registry entry keeps the uid its files already belong to."""
    try:
        return os.lstat(os.path.join(homes, name)).st_uid
    except OSError:
        return None
