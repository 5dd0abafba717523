"""aetherd: the agent supervisor and the agent ABI server.

PID 1 starts it as a service (forked, pre-imported).  It is a child
subreaper, so everything its agents leave behind is reaped here, by its one
reaper; it owns the agents' cgroup subtree; it serves the ABI on
``/run/aether/abi.sock`` for the machine and on the virtio-serial port
``org.aetheros.ctl`` for the host.  SIGTERM stops every agent in order, then
aetherd exits.

    python3 -m aether.aetherd --host --run-dir DIR --data-dir DIR [--manifests DIR]...

runs it on a development machine (no cgroups there: limits are not enforced,
and it says so).
"""

import _signal
import os
import sys

from . import config, sysinfo
from .abi import calls as abi_calls, identity
from .abi.server import Server
from .agent import manifest as manifests
from .agent.groups import make_cgroups
from .agent.supervisor import AgentSupervisor
from .events import Events
from .log import Log
from .loop import Loop
from .reaper import Reaper

RUN_DIR = "/run/aether"
DATA_DIR = "/var/lib/aether"
# The image's built-ins, then the data partition's root-only manifests (never a tree an agent
# can write: homes are <data>/home/<name>, see aether/agent/layout.py), with the owner their
# names get (aether/agent/names.py).
IMAGE_MANIFESTS = "/etc/aether/agents"
MANIFEST_DIRS = (IMAGE_MANIFESTS, os.path.join(DATA_DIR, "manifests"))
HOST_PORT = "org.aetheros.ctl"          # the virtio-serial port's name (run-qemu sets it)
STOP_GRACE = 2.0
AGENT_MEMORY_RESERVE = 96 << 20     # kept back from agents for the system itself


class Daemon:
    def __init__(self, run_dir, data_dir, cgroup_root, manifest_dirs, host_port, log, cfg, host=False):
        self.log = log
        self.init_pid = os.getppid()
        self.llm_tokens = {}              # model tokens used by callers that are not agents      # PID 1 in the image; the host harness's init in tests
        self.loop = Loop(on_error=lambda e: log.exception("internal error", e))
        self.reaper = Reaper(log)
        self.events = Events()
        self.methods = abi_calls.table()
        self.socket_path = os.path.join(run_dir, "abi.sock")
        self.server = Server(self.loop, self.methods, log, self)
        self.events.subscribers.append(self.server.publish)
        self.events.subscribers.append(self._log_event)
        cgroups = make_cgroups(cgroup_root, log) if cgroup_root else None
        self.supervisor = AgentSupervisor(self.loop, self.reaper, log, self.events.publish, data_dir,
                                     cgroups=cgroups, memory_pool=_memory_pool(),
                                     socket_path=self.socket_path, own_uids=not host)
        if host:
            log.warning("host mode: agents run as aetherd's own uid, without cgroups: "
                        "a development sandbox, not isolation")
        if not self.supervisor.groups.enforced:
            self.server.identify = self._identify_by_session
        self.run_dir, self.manifest_dirs, self.host_port = run_dir, manifest_dirs, host_port
        self.config = cfg
        self.data_dir = data_dir
        self.store, self.store_problem = None, None
        from .abi.calls.ctx import Batcher
        from .abi.resummarise import Resummariser
        self.resummariser = Resummariser(self)
        self.batcher = Batcher(self, on_commit=self.resummariser.follow)
        from .abi.calls import llm as llm_calls
        self.broker = llm_calls.make_broker(self)    # every model call waits in its one queue
        self.stopping = False

    def open_store(self):
        """The context store on the data location; aetherd runs without it if it cannot open."""
        from .ctx import ContextStore
        path = os.path.join(self.data_dir, "context.db")
        from .abi.calls import ctx as ctx_calls
        try:
            self.store = ContextStore(path, **ctx_calls.store_options(self, path))
        except Exception as e:  # noqa: BLE001 - the machine keeps working without context
            self.store_problem = f"the context store at {path} cannot open: {e}"
            self.log.error(self.store_problem)
            return
        info = self.store.info()
        head = info["journal_head"]
        self.log.info(f"context store {path}: journal head {head['seq']}"
                      + ("" if info["durable"] else " (in memory: NOTHING SURVIVES A REBOOT)"))
        if info["read_only"]:
            self.log.error(f"context store {path} is READ-ONLY: reads work, writes answer "
                           f"unavailable ({info['read_only_reason']})")
        else:
            self.journal("boot", {"kernel": os.uname().release, "uptime_s": sysinfo.uptime(),
                                  "journal_head": head})
        from .abi.calls import llm as llm_calls
        llm_calls.attach_store(self)                 # model-token spend persists from here on
        from .abi.calls import think as think_calls
        think_calls.meter(self)                      # context accounting, rebuilt from the threads
        self.resummariser.start()

    JOURNALED = ("agent.state", "agent.declared", "agent.reclaimed", "alert")

    def journal(self, kind, body, scope=None):
        """Record what the system does (principal "system"), in the next batch's commit."""
        if self.store is not None:
            self.batcher.submit("append", {"caller": "system", "kind": kind, "body": body, "scope": scope})

    def _journal_event(self, event):
        if event["kind"] in self.JOURNALED:
            self.journal(event["kind"], {k: v for k, v in event.items() if k not in ("kind",)})

    def start(self):
        os.makedirs(self.run_dir, exist_ok=True)
        self.open_store()
        self.events.subscribers.append(self._journal_event)
        for message in self.supervisor.notices:          # setting up the data partition refused something
            self.events.publish({"kind": "alert", "level": "critical", "message": message, "agent": None,
                                 "source": "aetherd", "data": None})
        self.loop.on_signal(_signal.SIGCHLD, self.reaper.reap)
        self.loop.on_signal(_signal.SIGTERM, lambda _s: self.shutdown())
        self.loop.on_signal(_signal.SIGINT, lambda _s: self.shutdown())
        from .abi import checks
        checks.walk_homes(self)                  # big homes measured a slice per loop turn (disk quotas)
        self.server.listen(self.socket_path)
        if self.host_port:
            self.server.serve_port(self.host_port)
        for directory in self.manifest_dirs:
            self._start_boot_agents(directory)
        try:
            self.supervisor.durable.restore()      # agents spawned through the ABI (agent/persist.py)
        except Exception as e:  # noqa: BLE001 - a bug in restoring agents must not keep the ABI down
            self.log.exception("recorded agents not restored", e)
        try:
            from .packages import deploy
            deploy.restore(self)                   # deployed agent packages (agents/<name>/record.json)
        except Exception as e:  # noqa: BLE001 - a bug in restoring packages must not keep the ABI down
            self.log.exception("deployed agents not restored", e)
        self.log.info(f"serving the agent ABI on {self.socket_path}"
                      + (f" and {self.host_port}" if self.host_port else ""))

    def _start_boot_agents(self, directory):
        """Declare and start the manifests of one directory; their names belong to the image
        (/etc/aether/agents) or to the system (the data partition's manifests)."""
        owner = "image" if directory == IMAGE_MANIFESTS else "system"
        try:
            found = manifests.load_dir(directory, self.log.warning)
        except Exception as e:  # noqa: BLE001 - a bug in reading manifests must not keep the ABI down
            return self.log.exception(f"manifests in {directory} not read", e)
        for manifest in found.values():
            try:
                self.supervisor.declare(manifest, owner=owner)
                self.supervisor.start(manifest.name)
            except Exception as e:  # noqa: BLE001 - one bad agent must not stop the others
                self.log.warning(f"agent {manifest.name} from {manifest.origin} not started: {e}")

    def _identify_by_session(self, pid, uid, gid):
        """Without cgroups (a development host): an agent is its session (each agent is a
        session leader).  Weaker than a cgroup: a process can leave its session."""
        caller = identity.from_peer(pid, uid, gid)
        if caller.agent is None:
            session = sysinfo.session_of(pid)
            for agent in self.supervisor.agents.values():
                if session is not None and getattr(agent, "pgid", None) == session:
                    return identity.Caller(f"agent:{agent.name}", pid, uid, gid, agent=agent.name)
        return caller

    def _log_event(self, event):
        if event["kind"] == "agent.state":
            self.log.info(f"agent {event['agent']}: {event['state']} ({event['reason']})")
        elif event["kind"] == "alert":
            self.log.info(f"alert from {event.get('source')}: {event['message']}")

    def run(self):
        while not self.stopping:
            self.loop.run_once()
        self.supervisor.stop_all()
        self.loop.run_until(self.supervisor.all_resting, self.supervisor.stop_timeout + STOP_GRACE)
        self.batcher.flush()
        if self.store is not None:
            self.store.close()
        self.log.info("all agents stopped; exiting")
        return 0

    def shutdown(self):
        if not self.stopping:
            self.log.info("stopping every agent")
            self.stopping = True

    # -- summaries for sys.info -------------------------------------------------------

    def agents_summary(self):
        states = {}
        for agent in self.supervisor.agents.values():
            states[agent.state] = states.get(agent.state, 0) + 1
        memory, tokens = self.supervisor.reserved()
        return {"total": len(self.supervisor.agents), "by_state": states,
                "memory_reserved_bytes": memory, "memory_pool_bytes": self.supervisor.memory_pool,
                "context_reserved_tokens": tokens, "limits_enforced": self.supervisor.groups.enforced}

    def context_summary(self):
        if self.store is None:
            return {"available": False, "problem": self.store_problem}
        try:
            info = self.store.info()
            return {"available": True, "durable": info["durable"], "path": info["path"],
                    "journal_head": info["journal_head"]["seq"],
                    "pressure": self.store.pressure("system")}
        except Exception as e:  # noqa: BLE001 - sys.info must answer
            return {"available": False, "problem": str(e)}


def _memory_pool():
    try:
        total = sysinfo.meminfo()["MemTotal"] * 1024
    except (OSError, KeyError):
        return 256 << 20
    return max(32 << 20, total - AGENT_MEMORY_RESERVE)


def raise_nofile(log):
    """Lift RLIMIT_NOFILE's soft limit to the hard one: connections and agents' pipes are
    descriptors, and the kernel's default soft limit (1024) is a few hundred clients."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (OSError, ValueError) as e:
            log.warning(f"cannot raise the open-files limit from {soft} to {want}: {e}")


def parse_args(argv):
    opts = {"host": False, "run_dir": RUN_DIR, "data_dir": DATA_DIR, "manifests": [],
            "cgroup_root": "/sys/fs/cgroup", "port": HOST_PORT}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--host":
            opts.update(host=True, cgroup_root=None, port=None)
        elif arg in ("--run-dir", "--data-dir", "--cgroup-root", "--port") and args:  # --port: a port name
            opts[arg[2:].replace("-", "_")] = args.pop(0)
        elif arg == "--manifests" and args:
            opts["manifests"].append(args.pop(0))
        else:
            raise SystemExit(f"aetherd: unknown argument {arg!r}\nusage: python3 -m aether.aetherd "
                             "[--host] [--run-dir DIR] [--data-dir DIR] [--manifests DIR]... "
                             "[--cgroup-root DIR] [--port PATH]")
    if not opts["manifests"] and not opts["host"]:
        opts["manifests"] = [IMAGE_MANIFESTS, os.path.join(opts["data_dir"], "manifests")]
    return opts


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    log = Log(prefix="aetherd", fd=2)
    from . import syscalls
    try:
        syscalls.set_child_subreaper()
    except OSError as e:
        log.warning(f"cannot become a child subreaper ({e}); orphans of agents go to PID 1")
    if opts["host"]:      # on a development machine: settings only from <data-dir>/config
        cfg = config.load(log.warning, cmdline="/nonexistent", defaults="/nonexistent",
                          data=os.path.join(opts["data_dir"], "config"))
    else:
        cfg = config.load(log.warning)
    raise_nofile(log)
    daemon = Daemon(opts["run_dir"], opts["data_dir"], opts["cgroup_root"], opts["manifests"],
                    opts["port"], log, cfg, host=opts["host"])
    daemon.start()
    if os.getpriority(os.PRIO_PROCESS, 0) > 0 and os.geteuid() == 0:
        os.setpriority(os.PRIO_PROCESS, 0, 0)      # started low (see aether.pid1.init); now serving
    return daemon.run()


if __name__ == "__main__":
    sys.exit(main())
