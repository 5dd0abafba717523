"""Starting an agent: fork from aetherd (pre-imported), then, in the child, join the
agent's cgroup, enter its own network namespace, take its uid, put its Landlock
ruleset in force (aether/agent/confine.py), and exec the program or call the function.

The child reports on a handshake pipe: nothing (the pipe closes on a
successful exec, or after ``\\0`` for a forked function) means it runs; any
text is the reason it could not start.  The supervisor turns that into
STARTED or SPAWN_FAILED.  Forking a pre-imported worker instead of starting a
fresh interpreter is what keeps spawn-to-running fast on a slow CPU.
"""

import importlib  # loaded here, before a child drops privileges: it may not read the stdlib's path
import os
import sys
import traceback  # likewise: reporting an agent's crash must not need an import at that moment

from .. import spawn as _spawn
from .manifest import BUILTIN, current_program

STARTED_MARK = b"\0"


class LaunchSpec:
    """What one start of an agent needs.  net: the manifest grants ``net`` (no network
    namespace of its own); confined: false only with the ``unconfined`` grant (no Landlock,
    no namespace); strict: refuse to start it unconfined otherwise (the image); package:
    the installed directory of a deployed package (aether/packages/): the child may read it,
    and it (and its vendor/) go first on that child's import path."""

    __slots__ = ("program", "args", "env", "procs_file", "uid", "gid", "home", "out_fd", "name",
                 "net", "confined", "strict", "package")

    def __init__(self, program, args, env, procs_file, uid, gid, home, out_fd, name,
                 net=False, confined=True, strict=True, package=None):
        self.program, self.args, self.env = program, list(args), dict(env)
        self.procs_file, self.uid, self.gid, self.home = procs_file, uid, gid, home
        self.out_fd, self.name, self.net, self.strict = out_fd, name, net, strict
        self.confined, self.package = confined, package


class LaunchError(Exception):
    """The agent cannot be started at all (before its child exists); the message says why."""


TMP = ".tmp"                # an agent's TMPDIR, in its home: it has no /tmp
_policies: dict = {}


def policy(strict):
    """The confinement policy (aether/agent/confine.py, loaded here on first use: it needs
    ctypes, which PID 1 never imports), probed once per aetherd."""
    if strict not in _policies:
        from . import confine
        _policies[strict] = confine.Policy(strict)
    return _policies[strict]


def launch(spec):
    """Fork the agent; return (pid, handshake read fd).

    The image's own built-in agents (aether.builtin.*) are imported here, in
    aetherd, once: every later fork has them loaded.  Any other agent's module
    is imported only in the child, after it has become the agent's uid.
    """
    confinement = policy(spec.strict)
    try:
        if spec.confined:
            confinement.check(spec.name)
            confinement.paths(spec.home)          # worked out here once, not in every child
    except OSError as e:
        raise LaunchError(str(e)) from None
    spec.program = current_program(spec.program)
    module = spec.program.partition(":")[0]
    if module.startswith(BUILTIN) and not spec.program.startswith("/"):
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - any failure of the import is this agent's alone
            raise LaunchError(f"cannot import {module}: {type(e).__name__}: {e}") from None
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid:
        os.close(w)
        return pid, r
    os.close(r)
    try:
        _child(spec, w, confinement)
    except BaseException as e:  # noqa: BLE001 - report the reason to the supervisor
        _report(w, f"{type(e).__name__}: {e}")
        os._exit(127)
    os._exit(0)


def _report(fd, text):
    try:
        os.write(fd, text.encode("utf-8", "replace")[:4000])
    except OSError:
        pass


def _child(spec, w, confinement):
    from . import confine           # loaded by policy() in aetherd: no import happens here
    _spawn._child_setup(setsid=True, stdout=spec.out_fd, stderr=spec.out_fd, name=spec.name,
                        keep=(w,))
    try:
        with open(spec.procs_file, "w") as f:
            f.write("0")
    except OSError as e:
        raise OSError(e.errno, f"cannot join cgroup {spec.procs_file}: {e.strerror}") from None
    os.chdir(spec.home)
    if os.getpriority(os.PRIO_PROCESS, 0) != 0 and os.geteuid() == 0:
        os.setpriority(os.PRIO_PROCESS, 0, 0)      # CPU share comes from the cgroup, not nice
    rules = confine.prepare(confinement, spec.home, spec.program, spec.net) if spec.confined else None
    if rules is not None and spec.package:
        rules.allow(spec.package, confine.READ)
    if spec.uid != os.getuid():
        os.setgroups([])
        os.setgid(spec.gid)
        os.setuid(spec.uid)
    tmp = os.path.join(spec.home, TMP)
    try:
        os.mkdir(tmp, 0o700)
    except FileExistsError:
        pass
    spec.env.setdefault("TMPDIR", tmp)
    if rules is not None:
        rules.restrict()             # from here on, this process tree is confined
    os.environ.clear()
    os.environ.update(spec.env)
    if spec.program.startswith("/"):
        os.execve(spec.program, [spec.program, *spec.args], spec.env)
    module, _, function = spec.program.partition(":")
    if spec.package:             # a deployed package: its code and vendored dependencies, for this agent only
        sys.path[:0] = [spec.package, os.path.join(spec.package, "vendor")]
    target = getattr(importlib.import_module(module), function)   # as the agent, not as root
    os.write(w, STARTED_MARK)
    os.close(w)
    code = 1
    try:
        code = target(list(spec.args))
    except SystemExit as e:
        code = e.code
    except BaseException:  # noqa: BLE001 - the agent's own failure: into its output (agent.logs)
        traceback.print_exc()
    _spawn.exit_child(code)
