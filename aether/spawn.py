"""Starting children with a clean slate.

CPython ignores SIGPIPE and SIGXFSZ, and PID 1 handles or blocks others; a
child must not inherit any of that.  ``posix_spawn`` resets every catchable
signal to its default disposition and empties the mask before exec, and puts
the child in its own process group (or session).  No Python code runs in the
child, so this is safe in PID 1 (unlike fork + preexec_fn).
"""

import _signal
import os
import sys

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


# Dispositions a fresh interpreter starts with: SIGINT raises KeyboardInterrupt,
# SIGPIPE and SIGXFSZ are ignored (errors surface as exceptions), the rest default.
PYTHON_IGNORED = frozenset({_signal.SIGPIPE, _signal.SIGXFSZ})


def fork_call(entry, args, *, setsid=False, stdout=None, stderr=None, name=None, nice=0):
    """Run ``module:function(args)`` in a forked child; return its pid.

    A forked child skips the interpreter start and the imports PID 1 already
    made (under emulation that is most of a Python program's start-up time).
    Before calling anything, the child gets the signal state of a fresh
    interpreter, its own process group or session, /dev/null as stdin, the
    given stdout/stderr, and no other inherited descriptor.  It never returns
    into the caller's stack: it ends with os._exit.

    ``nice`` is set first, before the child's set-up and imports: a low-priority
    child (aetherd, nice 10) must not compete at priority 0 with the consoles
    forked just before it for its first tens of milliseconds (under TCG with
    one CPU, on OVMF, that held the serial prompt back by ~0.06 s).
    """
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        if nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        _child_setup(setsid, stdout, stderr, name)
        module, _, function = entry.partition(":")
        # __import__ rather than importlib.import_module: the importlib package is one
        # more import in every child, which costs milliseconds under emulation.
        __import__(module)
        code = getattr(sys.modules[module], function)(list(args))
    except SystemExit as e:
        code = e.code
    except BaseException:  # noqa: BLE001 - report, then leave with a failure status
        import traceback
        traceback.print_exc()
    finally:
        exit_child(code)


def _child_setup(setsid, stdout, stderr, name, keep=()):
    _signal.set_wakeup_fd(-1)
    for sig in DEFAULT_SIGNALS:
        try:
            _signal.signal(sig, _signal.SIG_IGN if sig in PYTHON_IGNORED else _signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
    if setsid:
        os.setsid()
    else:
        os.setpgid(0, 0)
    null = os.open(DEVNULL, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(stdout if stdout is not None else null, 1)
    os.dup2(stderr if stderr is not None else null, 2)
    _close_from(3, keep)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    if name:
        _set_comm(name)


def _close_from(low, keep):
    """Close every descriptor from ``low`` up, except those in ``keep``."""
    top = os.sysconf("SC_OPEN_MAX")
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, top)


def _set_comm(name):
    """Name the process (what /proc/<pid>/comm and process lists show)."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name[:15])
    except OSError:
        pass


MAX_LINE = 4096            # bytes of one output line kept; the rest of a longer line is dropped
OUTPUT_READ = 4096         # bytes of a child's output read per turn: at most that many lines (~4 ms)
CUT_MARK = " [line cut: longer than {} bytes]"


class LineBuffer:
    """Splits a byte stream into lines, in time linear in the bytes fed and in bounded space.

    Only new bytes are searched for a newline.  A line longer than ``limit`` is
    cut: its first ``limit`` bytes are given with CUT_MARK appended, and the
    rest up to the next newline is dropped.
    """

    def __init__(self, limit=MAX_LINE):
        self.limit = limit
        self.pending = bytearray()
        self.cutting = False             # inside a line already given (cut); drop up to its newline

    def feed(self, data):
        """The lines (str) that ``data`` completes or cuts, in order."""
        lines = []
        start = 0
        while start < len(data):
            newline = data.find(b"\n", start)
            end = len(data) if newline < 0 else newline
            if not self.cutting:
                room = self.limit - len(self.pending)
                self.pending += data[start:start + min(room, end - start)]
                if end - start > room:
                    lines.append(self._take(cut=True))
                    self.cutting = True
                elif newline >= 0:
                    lines.append(self._take())
            if newline < 0:
                break
            self.cutting = False
            start = newline + 1
        return lines

    def end(self):
        """At EOF: the unfinished last line, or None."""
        return self._take() if self.pending else None

    def _take(self, cut=False):
        text = bytes(self.pending).decode("utf-8", "replace")
        self.pending.clear()
        if cut:
            text = text.rstrip("\ufffd") + CUT_MARK.format(self.limit)
        return text


def read_lines(loop, fd, on_line, limit=MAX_LINE):
    """Read a child's output pipe on the loop; call on_line(text) per line, close at EOF.

    One read of OUTPUT_READ bytes per turn of the loop (a child writing empty lines flat out
    costs ~1 us of Python a line: 64 KiB reads made one turn 60 ms per such child; beyond
    what is read, the pipe fills and the child waits), and lines bounded by ``limit`` (LineBuffer):
    a child that writes without newlines costs time linear in what it writes.
    """
    lines = LineBuffer(limit)

    def readable(fd):
        try:
            data = os.read(fd, OUTPUT_READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            os.close(fd)
            rest = lines.end()
            if rest is not None:
                on_line(rest)
            return
        for line in lines.feed(data):
            on_line(line)

    loop.add_reader(fd, readable)


def exit_child(code):
    """End a forked child: flush Python's stdio, then os._exit with a status from ``code``."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))
