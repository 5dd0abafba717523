"""cgroup v2 for agents: one directory per agent, limits, live usage, kill.

Layout under the supervisor's subtree (default /sys/fs/cgroup/aether/agents):

    <agent>/            limits for the agent and everything below it
    <agent>/self/       the agent's own processes (cgroup v2 allows processes
                        only in leaves once controllers are enabled below)
    <agent>/<child>/    a sub-agent: nested, so the kernel enforces that a
                        child never escapes its parent's limits

The root is a parameter so tests can run on a plain directory.
"""

import os

CONTROLLERS = ("cpu", "memory", "pids")
CPU_PERIOD = 100_000     # microseconds


class CgroupError(OSError):
    """A cgroup operation failed; the message names the file and the value."""


def _write(path, value):
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise CgroupError(e.errno, f"cannot write {value!r} to {path}: {e.strerror}") from None


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def cpu_weight(priority):
    """Priority 0..100 -> cpu.weight; 50 is the kernel's default weight, 100; +10 doubles it."""
    return max(1, min(10000, round(100 * 2 ** ((priority - 50) / 10))))


class Cgroups:
    def __init__(self, root="/sys/fs/cgroup", base="aether/agents"):
        self.root = root
        self.base = os.path.join(root, base)

    def setup(self):
        """Create the supervisor's subtree and enable the controllers down to it."""
        os.makedirs(self.base, exist_ok=True)
        path = self.root
        for part in os.path.relpath(self.base, self.root).split("/"):
            self._enable(path)
            path = os.path.join(path, part)
        self._enable(self.base)

    def _enable(self, path):
        available = _read(os.path.join(path, "cgroup.controllers")).split()
        wanted = [c for c in CONTROLLERS if c in available] if available else list(CONTROLLERS)
        if wanted:
            _write(os.path.join(path, "cgroup.subtree_control"), " ".join("+" + c for c in wanted))

    def path(self, lineage):
        """Directory of an agent given its lineage (root ancestor first)."""
        return os.path.join(self.base, *lineage)

    def create(self, lineage, memory=None, cpu=None, pids=None, priority=50):
        path = self.path(lineage)
        os.makedirs(os.path.join(path, "self"), exist_ok=True)
        self.set_limits(path, memory=memory, cpu=cpu, pids=pids, priority=priority)
        self._enable(path)
        return path

    def set_limits(self, path, memory=None, cpu=None, pids=None, priority=50):
        _write(os.path.join(path, "memory.max"), str(memory) if memory else "max")
        if os.path.exists(os.path.join(path, "memory.swap.max")):
            _write(os.path.join(path, "memory.swap.max"), "0")
        _write(os.path.join(path, "memory.oom.group"), "1")
        _write(os.path.join(path, "pids.max"), str(pids) if pids else "max")
        _write(os.path.join(path, "cpu.weight"), str(cpu_weight(priority)))
        quota = f"{int(cpu * CPU_PERIOD)} {CPU_PERIOD}" if cpu else f"max {CPU_PERIOD}"
        _write(os.path.join(path, "cpu.max"), quota)

    @staticmethod
    def procs_file(path):
        return os.path.join(path, "self", "cgroup.procs")

    def usage(self, path):
        """Live usage of an agent's subtree, read from the cgroup files."""
        events = dict(line.split() for line in _read(os.path.join(path, "memory.events")).splitlines()
                      if len(line.split()) == 2)
        cpu = dict(line.split() for line in _read(os.path.join(path, "cpu.stat")).splitlines()
                   if len(line.split()) == 2)
        return {
            "memory_bytes": _int(_read(os.path.join(path, "memory.current"))),
            "memory_peak_bytes": _int(_read(os.path.join(path, "memory.peak"))),
            "cpu_seconds": _int(cpu.get("usage_usec", "0")) / 1e6,
            "processes": _int(_read(os.path.join(path, "pids.current"))),
            "oom_kills": _int(events.get("oom_kill", "0")),
        }

    def pids(self, path):
        """Every pid in an agent's subtree."""
        found = []
        for dirpath, _dirs, files in os.walk(path):
            if "cgroup.procs" in files:
                found += [int(p) for p in _read(os.path.join(dirpath, "cgroup.procs")).split()]
        return found

    def kill(self, path):
        """SIGKILL every process in the subtree (cgroup.kill, Linux 5.14+)."""
        if os.path.exists(os.path.join(path, "cgroup.kill")):
            _write(os.path.join(path, "cgroup.kill"), "1")

    def remove(self, path):
        """Remove an agent's (empty) directories, deepest first; True if gone."""
        for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(dirpath)
            except FileNotFoundError:
                pass
            except OSError:
                return False
        return True


def _int(text):
    try:
        return int(text.strip() or 0)
    except ValueError:
        return 0
