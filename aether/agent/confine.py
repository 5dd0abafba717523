"""Kernel confinement of an agent's process tree: Landlock and a network namespace.

The tools confine paths only for what goes through the ABI; an agent's own
process could still open any world-readable file, or connect anywhere.  Here
the kernel is told, in the agent's child between fork and exec:

* **Landlock** (a ruleset the process and all its descendants keep): the
  agent may read and execute the image's program paths (``/usr``, the Python
  install, the few ``/etc`` files a program needs, the harmless part of
  ``/proc``), read and write ``/dev/null``, and do anything in its own home.
  Nothing else: not another agent's home, not ``/var/lib/aether`` (the context
  store, the settings with the model's API key), not ``/proc/cmdline``, not
  another process's ``/proc/<pid>``, not ``/tmp`` (its ``TMPDIR`` is in its
  home).  Landlock also forbids it to mount, and to ptrace anything outside
  its domain; from ABI v6 (Linux 6.12) also to signal a process outside it or
  reach its abstract unix sockets (aetherd and agents run under one uid on a
  host).  The kernel's ABI version decides which access rights are handled;
  rights it does not know are dropped from the rules (6.1 has v2).
* **A network namespace of its own** with only loopback up, unless the
  manifest grants ``net``.  The ABI socket is a path, so it still reaches
  aetherd; ``fetch.url`` and ``llm.*`` are its accounted way out.  On a kernel
  with Landlock ABI v4 or later, TCP bind and connect are refused as well.

The ``unconfined`` grant (the administrator's, like ``root``: a child never gets a grant
its parent lacks) starts an agent without either, e.g. to measure what confinement
costs (scripts/bench-agents).

``Policy(strict)``: in the image (strict) an agent that cannot be confined is
not started (``ConfinementError``, its reason); on a development host
(``aetherd --host``) what the kernel cannot do is warned about once, loudly.
Loaded by aetherd's launch path only (it needs ctypes): PID 1 never imports it.
"""

import os
import stat
import sys

from .. import netif, syscalls

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446       # x86_64
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
CLONE_NEWNET = 0x40000000

# Filesystem access rights (include/uapi/linux/landlock.h).
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV   # all a rule on a file may hold
# Every filesystem right each ABI version handles: v1 has bits 0-12 (read, write, make
# and remove), v2 adds REFER (links and renames across directories), v3 TRUNCATE,
# v5 IOCTL_DEV.  A later kernel's version gets the newest set known here.
FS_RIGHTS = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1,
             5: (1 << 16) - 1}
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1           # ABI v4
# ABI v6 scopes: no signal to, and no abstract unix socket of, a process outside the
# agent's own domain (aetherd, another agent, the host's services), even under one uid.
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
READ = EXECUTE | READ_FILE | READ_DIR

# What an agent may read (and execute) besides its home.
PROGRAM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib64")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "hosts", "resolv.conf",
             "nsswitch.conf", "gai.conf", "host.conf", "protocols", "services", "passwd", "group",
             "os-release", "mime.types", "ssl", "ca-certificates")
DEVICES = {"/dev/null": READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV,
           "/dev/zero": READ_FILE, "/dev/full": READ_FILE | WRITE_FILE,
           "/dev/random": READ_FILE, "/dev/urandom": READ_FILE}
# /proc entries no agent reads: the kernel command line may carry aether.llm.api_key=;
# the rest reveal kernel addresses, other principals' keys, or act on the machine.
PROC_HIDDEN = frozenset({"cmdline", "bootconfig", "kcore", "kallsyms", "kmsg", "sysrq-trigger",
                         "keys", "key-users", "timer_list", "sched_debug", "kpagecount",
                         "kpageflags", "kpagecgroup", "iomem", "ioports", "vmallocinfo",
                         "slabinfo", "pagetypeinfo", "mtrr", "config.gz", "acpi", "fs", "irq",
                         "bus", "driver", "tty", "dynamic_debug", "latency_stats", "sysvipc"})


class ConfinementError(OSError):
    """The kernel cannot confine this agent as its policy requires; the message says why."""


_struct: list = []


def _path_beneath(allowed, fd):
    """struct landlock_path_beneath_attr (packed: u64 allowed_access, s32 parent_fd)."""
    if not _struct:
        import ctypes

        class PathBeneath(ctypes.Structure):
            _pack_ = 1
            _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]
        _struct.append(PathBeneath)
    return _struct[0](allowed, fd)


def _syscall(number, *args):
    import ctypes
    libc = syscalls.libc()
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(ctypes.c_long(number), *args)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


_abi: list = []


def landlock_abi():
    """The Landlock ABI version the running kernel offers (0: none), and why not, once."""
    if not _abi:
        try:
            _abi.append((_syscall(SYS_CREATE_RULESET, None, 0, CREATE_RULESET_VERSION), None))
        except OSError as e:
            why = {38: "the kernel has no Landlock (CONFIG_SECURITY_LANDLOCK)",
                   95: "Landlock is built in but off (add landlock to CONFIG_LSM or lsm=)"}
            _abi.append((0, why.get(e.errno, f"landlock_create_ruleset: {e.strerror}")))
    return _abi[0]


class Policy:
    """What the kernel is asked for.  strict: refuse what it cannot do (the image)."""

    def __init__(self, strict):
        self.strict = strict
        self.abi, self.no_landlock = landlock_abi()
        self.no_netns = _probe_netns()
        self._paths = {}

    def problems(self):
        """What agents will go without, as sentences (empty when fully confined)."""
        out = []
        if self.no_landlock:
            out.append(f"agents' files are NOT confined by the kernel: {self.no_landlock}")
        if self.no_netns:
            out.append(f"agents share the host's network: {self.no_netns}")
        return out

    def paths(self, home):
        """What an agent with this home may read besides it (its own /proc/<pid> aside).
        Worked out once per data location, in aetherd: each child only adds the rules."""
        key = os.path.dirname(os.path.realpath(home))
        if key not in self._paths:
            self._paths[key] = (*read_paths(home), *proc_paths(own=False), *DEVICES.items())
        return self._paths[key]

    def check(self, name):
        """Raise ConfinementError when strict and the kernel cannot confine agent ``name``."""
        if self.strict and self.problems():
            raise ConfinementError(f"agent {name} not started: the kernel cannot confine it: "
                                   + "; ".join(self.problems()))


def _probe_netns():
    """None if a child can get a network namespace of its own here, else why not."""
    if os.geteuid() != 0:
        return "aetherd is not root (a network namespace needs CAP_SYS_ADMIN)"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if syscalls.libc().unshare(CLONE_NEWNET) == 0 else 1
        finally:
            os._exit(code)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        status = 1
    return None if status == 0 else "unshare(CLONE_NEWNET) is refused here (CONFIG_NET_NS?)"


def read_paths(home):
    """(path, rights) an agent may read besides its home: the program paths, the Python
    install and import path, a few /etc files.  Nothing that holds ``home``'s parent."""
    guarded = os.path.dirname(os.path.dirname(os.path.realpath(home)))    # the data location
    seen = {}
    candidates = [*PROGRAM_PATHS, sys.prefix, sys.exec_prefix, sys.base_prefix,
                  os.path.dirname(os.path.realpath(sys.executable)), *sys.path,
                  *(os.path.join("/etc", f) for f in ETC_FILES)]
    for path in candidates:
        real = os.path.realpath(path or ".")
        if real == "/" or real in seen or not os.path.exists(real):
            continue
        if _within(guarded, real) or _within(real, guarded):
            continue              # an import path that holds (or lies in) every agent's home
        seen[real] = READ
    return list(seen.items())


def _within(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def proc_paths(own=True):
    """The /proc entries an agent may read: the machine-wide files (not PROC_HIDDEN) and
    its own /proc/<pid>.  Other processes' directories stay closed even where hidepid is
    off (a development host); the listing of /proc itself is not granted."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    out = [(f"/proc/{n}", READ) for n in names
           if not n.isdigit() and n not in PROC_HIDDEN and not os.path.islink(f"/proc/{n}")]
    if own:
        out.append((f"/proc/{os.getpid()}", READ))
    return out


class Ruleset:
    """A Landlock ruleset being built in the child; ``restrict()`` makes it hold."""

    def __init__(self, abi, net):
        import ctypes
        self.fs = FS_RIGHTS[min(abi, max(FS_RIGHTS))]
        self.net = 0 if net or abi < 4 else NET_BIND_TCP | NET_CONNECT_TCP
        self.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
        attr = (ctypes.c_uint64 * 3)(self.fs, self.net, self.scoped)
        size = 24 if abi >= 6 else 16 if abi >= 4 else 8
        self.fd = _syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)

    def allow(self, path, rights):
        """Grant ``rights`` beneath path (on the file itself, if it is not a directory).
        A path that does not exist grants nothing."""
        import ctypes
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return
        try:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                rights &= FILE_RIGHTS
            attr = _path_beneath(rights & self.fs, fd)
            _syscall(SYS_ADD_RULE, self.fd, RULE_PATH_BENEATH, ctypes.byref(attr), 0)
        finally:
            os.close(fd)

    def restrict(self):
        """no_new_privs, then the ruleset for this process and everything it starts."""
        _check(syscalls.libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
        try:
            _syscall(SYS_RESTRICT_SELF, self.fd, 0)
        finally:
            os.close(self.fd)


def _check(result, what):
    if result != 0:
        import ctypes
        err = ctypes.get_errno()
        raise ConfinementError(err, f"{what}: {os.strerror(err)}")


def private_network():
    """A network namespace for this process with only loopback, up (needs CAP_SYS_ADMIN)."""
    _check(syscalls.libc().unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
    netif.up("lo")


def prepare(policy, home, program, net):
    """In the child, still privileged: the network namespace, and the ruleset (returned,
    not yet in force; None where the kernel has no Landlock and the policy allows it)."""
    if not net and policy.no_netns is None:
        try:
            private_network()
        except OSError as e:
            raise ConfinementError(e.errno, "cannot give the agent its own network "
                                            f"namespace: {e.strerror}") from None
    if not policy.abi:
        return None
    rules = Ruleset(policy.abi, net)
    rules.allow(home, rules.fs)
    for path, rights in policy.paths(home):
        rules.allow(path, rights)
    rules.allow(f"/proc/{os.getpid()}", READ)
    if program.startswith("/"):
        rules.allow(program, READ_FILE | EXECUTE)
    return rules
