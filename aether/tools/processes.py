"""processes.*: what runs (from /proc), and signals to the caller's own processes.

Every caller may list every process (like ``ps`` for any Unix user); ``owned`` marks
the ones the caller may signal.  A non-privileged caller may signal only processes
its ``owns_pid`` hook accepts (``in_cgroup`` builds one for a cgroup subtree).
Nobody signals PID 1 through a tool (its signals power the machine off or reboot it)
nor aetherd itself.  Signals go through a pidfd where the kernel has them, so a pid
reused between the check and the signal is never hit.
"""

import os

from .core import NotFound, PermissionDenied, ToolFailed, args_schema, tool

PID_MAX = 4194304  # PID_MAX_LIMIT on 64-bit Linux
LIST_DEFAULT = 1000
CMDLINE_MAX = 1024
SIGNALS = ("TERM", "KILL", "INT", "HUP", "QUIT", "USR1", "USR2", "STOP", "CONT")
STATES = {"R": "running", "S": "sleeping", "D": "disk sleep", "Z": "zombie", "T": "stopped",
          "t": "tracing stop", "X": "dead", "I": "idle", "P": "parked", "W": "waking",
          "K": "wakekill"}


def cgroup_of(pid):
    """The cgroup v2 path of ``pid`` ("/aether/agents/x"), or None."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        pass
    return None


def in_cgroup(path):
    """An ``owns_pid`` hook for Caller: true for processes in ``path`` or below it.

    ``path`` is as /proc/<pid>/cgroup shows it, relative to the cgroup2 mount.
    """
    top = path.rstrip("/") or "/"

    def owns(pid):
        found = cgroup_of(pid)
        return found is not None and (top == "/" or found == top or found.startswith(top + "/"))
    return owns


def _read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def _user(uid, cache):
    if uid not in cache:
        import pwd
        try:
            cache[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            cache[uid] = str(uid)
    return cache[uid]


def process_info(pid, users, tick=None):
    """One process as a dict, or None when it is gone."""
    tick = tick or os.sysconf("SC_CLK_TCK")
    try:
        stat = _read(f"/proc/{pid}/stat")
        uid = os.stat(f"/proc/{pid}").st_uid
        raw = _read(f"/proc/{pid}/cmdline", "rb")
    except OSError:
        return None
    name = stat[stat.find("(") + 1:stat.rfind(")")]
    fields = stat[stat.rfind(")") + 2:].split()
    cmdline = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
    return {"pid": pid, "ppid": int(fields[1]), "name": name, "user": _user(uid, users),
            "uid": uid, "state": fields[0], "state_name": STATES.get(fields[0], "unknown"),
            "rss_bytes": int(fields[21]) * os.sysconf("SC_PAGE_SIZE"),
            "cpu_seconds": round((int(fields[11]) + int(fields[12])) / tick, 2),
            "threads": int(fields[17]), "started": round(int(fields[19]) / tick, 2),
            "cmdline": cmdline[:CMDLINE_MAX], "kernel_thread": not raw,
            "cgroup": cgroup_of(pid)}


@tool("processes.list", args_schema({
    "match": {"type": "string", "minLength": 1, "maxLength": 256,
              "description": "only processes whose name or command line contains this "
                             "(case-insensitive)"},
    "kernel_threads": {"type": "boolean", "default": False,
                       "description": "include kernel threads"},
    "limit": {"type": "integer", "minimum": 1, "maximum": PID_MAX, "default": LIST_DEFAULT,
              "description": "at most this many processes"},
}))
def list_processes(caller, args):
    """List processes: pid, parent, user, state, memory, CPU time, command line and cgroup.

    ``rss_bytes`` is resident memory; ``cpu_seconds`` user plus system time; ``started``
    seconds after boot.  ``owned`` marks the processes the caller may signal.
    """
    try:
        pids = sorted(int(n) for n in os.listdir("/proc") if n.isdigit())
    except OSError as e:
        raise ToolFailed(f"cannot read /proc: {e.strerror}") from None
    match = args.get("match", "").lower()
    users, tick, found = {}, os.sysconf("SC_CLK_TCK"), []
    for pid in pids:
        info = process_info(pid, users, tick)
        if info is None or (info["kernel_thread"] and not args["kernel_threads"]):
            continue
        if match and match not in info["name"].lower() and match not in info["cmdline"].lower():
            continue
        found.append(info)
    shown = found[:args["limit"]]
    for info in shown:
        info["owned"] = caller.owns_pid(info["pid"])
    return {"processes": shown, "count": len(shown), "total": len(found),
            "truncated": len(found) > len(shown)}


@tool("processes.signal", args_schema({
    "pid": {"type": "integer", "minimum": 1, "maximum": PID_MAX,
            "description": "the process to signal"},
    "signal": {"type": "string", "enum": list(SIGNALS), "default": "TERM",
               "description": "TERM asks it to stop, KILL stops it at once, STOP/CONT pause "
                              "and resume it, HUP/INT/QUIT/USR1/USR2 mean what it decides"},
}, required=["pid"]), risky=True)
def signal_process(caller, args):
    """Send a signal to a process (risky: it may stop the process and lose its work).

    A non-privileged caller may signal only its own processes (its cgroup subtree).
    PID 1 and aetherd are refused for everyone: power off or reboot from the console.
    """
    import signal
    pid, name = args["pid"], args["signal"]
    if pid == 1:
        raise PermissionDenied(f"{caller.principal} may not signal PID 1: its signals power off "
                               "or reboot the machine; use the console's poweroff or reboot "
                               "(rule: not_pid1)", caller=caller.principal, pid=pid, rule="not_pid1")
    if pid == os.getpid():
        raise PermissionDenied(f"{caller.principal} may not signal process {pid}: it is aetherd "
                               "itself (rule: not_aetherd)", caller=caller.principal, pid=pid,
                               rule="not_aetherd")
    pidfd = _pidfd(pid)
    try:
        _check_owner(caller, pid)
        signum = getattr(signal, "SIG" + name)
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        raise NotFound(f"process {pid} does not exist (it may just have exited)", pid=pid) from None
    except PermissionError as e:
        raise ToolFailed(f"the kernel refused to signal {pid}: {e.strerror}", pid=pid) from None
    finally:
        if pidfd is not None:
            os.close(pidfd)
    return {"pid": pid, "signal": name, "sent": True}


def _pidfd(pid):
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        raise NotFound(f"process {pid} does not exist", pid=pid) from None
    except (AttributeError, OSError):
        return None  # a kernel without pidfd_open: plain kill()


def _check_owner(caller, pid):
    if caller.owns_pid(pid):
        return
    try:
        name = _read(f"/proc/{pid}/comm").strip()
    except OSError:
        raise ProcessLookupError(pid) from None
    raise PermissionDenied(f"{caller.principal} may not signal process {pid} ({name}): it is not "
                           "in the caller's own cgroup subtree (rule: own_processes_only)",
                           caller=caller.principal, pid=pid, rule="own_processes_only")
