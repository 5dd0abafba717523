"""Starting children with a clean slate.

CPython ignores SIGPIPE and SIGXFSZ, and PID 1 handles or blocks others; a
child must not inherit any of that.  ``posix_spawn`` resets every catchable
signal to its default disposition and empties the mask before exec, and puts
the child in its own process group (or session).  No Python code runs in the
child, so this is safe in PID 1 (unlike fork + preexec_fn).
"""

import _signal
import os

_UNCATCHABLE = {_signal.SIGKILL, _signal.SIGSTOP}
DEFAULT_SIGNALS = frozenset(s for s in _signal.valid_signals() if s not in _UNCATCHABLE)

DEVNULL = "/dev/null"


def spawn(argv, env, *, setsid=False, stdin=None, stdout=None, stderr=None):
    """Start argv[0] with argv and env; return the pid.

    The child gets an empty signal mask, default dispositions, and its own
    process group (pgid = pid) or, with setsid, its own session.  stdin,
    stdout, stderr: file descriptors to hand over (None: /dev/null for stdin,
    inherit for the others).  Raises OSError (e.g. FileNotFoundError) when the
    program cannot be executed.
    """
    actions = []
    if stdin is None:
        actions.append((os.POSIX_SPAWN_OPEN, 0, DEVNULL, os.O_RDONLY, 0))
    else:
        actions.append((os.POSIX_SPAWN_DUP2, stdin, 0))
    for fd, target in ((stdout, 1), (stderr, 2)):
        if fd is not None:
            actions.append((os.POSIX_SPAWN_DUP2, fd, target))
    kwargs = {"setsid": True} if setsid else {"setpgroup": 0}
    return os.posix_spawn(argv[0], argv, env, file_actions=actions,
                          setsigmask=(), setsigdef=DEFAULT_SIGNALS, **kwargs)
