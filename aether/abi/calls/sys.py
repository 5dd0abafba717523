"""sys.*: what the machine is doing (the questions agents otherwise answer by scraping logs)."""

import os

from ... import localstatus, sysinfo
from .. import VERSION
from ..identity import agent_of_cgroup, cgroup_of
from ..methods import ANY, PRIVILEGED, PUBLIC, Method, obj
from . import ask


def _meminfo():
    info = sysinfo.meminfo()
    keys = ("MemTotal", "MemAvailable", "MemFree", "Buffers", "Cached", "Shmem", "SwapTotal", "SwapFree")
    return {k.lower() + "_kib": info[k] for k in keys if k in info} | {
        "used_kib": sysinfo.memory_used_kib(info)}


def _pressure():
    """PSI: /proc/pressure/{cpu,memory,io} as {resource: {some: {avg10..total}, full: ...}}."""
    found = {}
    for resource in ("cpu", "memory", "io"):
        text = sysinfo.read_text(f"/proc/pressure/{resource}")
        if not text:
            continue
        found[resource] = {}
        for line in text.splitlines():
            kind, *fields = line.split()
            found[resource][kind] = {k: float(v) for k, v in (f.split("=") for f in fields)}
    return found or None


def _disks():
    disks = []
    with open("/proc/self/mounts") as f:
        for line in f:
            device, point, fstype, options = line.split()[:4]
            if not device.startswith("/dev/") and fstype not in ("tmpfs",):
                continue
            try:
                st = os.statvfs(point)
            except OSError:
                continue
            disks.append({"mount": point, "device": device, "fstype": fstype,
                          "read_only": "ro" in options.split(","),
                          "size_bytes": st.f_blocks * st.f_frsize,
                          "free_bytes": st.f_bavail * st.f_frsize})
    return disks


def _network():
    nets = []
    try:
        names = sorted(os.listdir("/sys/class/net"))
    except OSError:
        return nets
    for name in names:
        base = f"/sys/class/net/{name}"
        nets.append({"name": name, "state": sysinfo.read_text(f"{base}/operstate"),
                     "mac": sysinfo.read_text(f"{base}/address"),
                     "rx_bytes": int(sysinfo.read_text(f"{base}/statistics/rx_bytes", "0") or 0),
                     "tx_bytes": int(sysinfo.read_text(f"{base}/statistics/tx_bytes", "0") or 0)})
    return nets


def info(d, caller, params, conn):
    uname = os.uname()
    return {"hostname": uname.nodename, "kernel": uname.release, "machine": uname.machine,
            "uptime_s": sysinfo.uptime(), "cpus": os.cpu_count(), "load": sysinfo.loadavg(),
            "memory": _meminfo(), "pressure": _pressure(), "disks": _disks(), "network": _network(),
            "agents": d.agents_summary(), "context": d.context_summary(), "abi_version": VERSION,
            "caller": caller.describe(), "llm": _llm(d, caller), **localstatus.fields(),
            **({"requests": ask.summary(d)} if caller.privileged else {})}   # agent.ask: the person's to see


def _llm(d, caller):
    """Whether a model is configured (never the key)."""
    endpoint, model = d.config.get("llm.endpoint"), d.config.get("llm.model")
    from .llm import summary
    from .think import summary as context_pressure
    return {"configured": bool(endpoint and model), "endpoint": endpoint or None, "model": model or None,
            **summary(d, caller), "think": context_pressure(d, caller)}


def processes(d, caller, params, conn):
    rows = []
    for pid in sysinfo.pids():
        stat = sysinfo.proc_stat(pid)
        if stat is None:
            continue
        try:
            cmd = sysinfo.cmdline(pid)
            with open(f"/proc/{pid}/statm") as f:
                rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            uid = os.stat(f"/proc/{pid}").st_uid
        except (OSError, IndexError, ValueError):
            continue
        if not cmd and stat[1] in (0, 2):
            continue                      # kernel threads
        agent = agent_of_cgroup(cgroup_of(pid) or "")
        if not _sees_process(d, caller, uid, agent):
            continue
        rows.append({"pid": pid, "ppid": stat[1], "state": stat[0], "uid": uid, "rss_bytes": rss,
                     "cmdline": cmd, "agent": agent})
    return rows[: params.get("limit", 1000)]


def _sees_process(d, caller, uid, agent):
    """The privileged see every process, as aetherd does; an agent sees its own and its
    descendants' (as /proc with hidepid would show it); a local uid sees its own uid's."""
    if caller.privileged:
        return True
    if caller.agent:
        found = d.supervisor.agents.get(agent) if agent else None
        return found is not None and caller.agent in found.lineage
    return uid == caller.uid and agent is None


def agents(d, caller, params, conn):
    return d.supervisor.listing()


def subscribe(d, caller, params, conn):
    kinds = params.get("kinds", ["*"])
    conn.subscriptions = set(kinds) if kinds else None
    return {"subscribed": sorted(conn.subscriptions or ()), "seq": d.events.seq}


def events(d, caller, params, conn):
    return d.events.since(params.get("since", 0), params.get("limit", 200), caller)


def alert(d, caller, params, conn):
    event = d.events.publish({"kind": "alert", "level": params["level"], "message": params["message"],
                              "agent": caller.agent, "source": caller.principal,
                              "data": params.get("data")})
    return {"seq": event["seq"]}


def power(d, caller, params, conn):
    """Ask PID 1 (aetherd's parent) for an orderly poweroff or reboot: TERM or INT, as the console did."""
    action = params["action"]
    d.log.warning(f"{action} requested by {caller.principal} ({caller.via})")
    d.loop.call_later(0.2, lambda: os.kill(d.init_pid, POWER[action]))   # answer first
    return {"action": action, "init_pid": d.init_pid}


POWER = {"poweroff": 15, "reboot": 2}


def hello(d, caller, params, conn):
    return {"server": "aetherd", "version": VERSION, "you": caller.describe(),
            "methods": [m.describe() for m in sorted(d.methods.values(), key=lambda m: m.name)]}


KINDS = {"type": "array", "items": {"type": "string", "maxLength": 64}, "maxItems": 32}
METHODS = [
    Method("abi.hello", hello, obj(version={"type": "integer", "minimum": 1}), PUBLIC,
           "the server's protocol version, who you are, and every method with its parameters"),
    Method("sys.info", info, obj(), PUBLIC,
           "kernel, uptime, CPUs, load, memory, pressure (PSI), disks, network, agents, context"),
    Method("sys.processes", processes, obj(limit={"type": "integer", "minimum": 1, "maximum": 100000}),
           PUBLIC, "the process table: pid, parent, state, memory, command line, agent"),
    Method("sys.agents", agents, obj(), PUBLIC, "the agent table"),
    Method("sys.subscribe", subscribe, obj(kinds=KINDS), PUBLIC,
           "push events of these kinds (e.g. agent, agent.state, alert; default all) on this connection"),
    Method("sys.alert", alert, obj(["level", "message"],
                                   level={"type": "string", "enum": ["info", "warning", "critical"]},
                                   message={"type": "string", "minLength": 1, "maxLength": 1000},
                                   data={"type": "object"}), ANY,
           "raise an alert: an event of kind `alert` every subscriber (and the shell) sees"),
    Method("sys.power", power, obj(["action"], action={"type": "string", "enum": sorted(POWER)}), PRIVILEGED,
           "power off or reboot the machine: PID 1 stops every agent and service first"),
    Method("sys.events", events, obj(since={"type": "integer", "minimum": 0},
                                     limit={"type": "integer", "minimum": 1, "maximum": 10000}), PUBLIC,
           "recent events after sequence number `since`"),
]
