"""Blocking calls (fetching a URL, asking a model) run in a forked worker process, so
aetherd's loop never waits on the network and aetherd stays single-threaded
(threads and fork do not mix, and aetherd forks every agent).

The worker runs ``fn()`` (or ``fn(report)`` when the caller wants progress) and
writes newline-delimited JSON to a pipe: any number of ``{"progress": {...}}``
lines (``report(dict)``; the loop keeps the latest in ``Worker.progress`` and
passes it to ``on_progress``), then ``{"result": ...}`` or ``{"error": {...}}``,
and exits; the loop reads it and resolves the call's Deferred.  A worker past its
deadline is killed and the call answers ``unavailable``; ``Worker.kill(error)``
ends one early (the broker cancels a model call so: the worker's HTTP connection
closes with it, which stops the server's generation).
"""

import json
import os

from .. import spawn as _spawn
from .protocol import AbiError, Internal, Unavailable
from .server import Deferred

KILL_AFTER = 5.0     # seconds past the call's own timeout before the worker is killed
MAX_ANSWER = 32 << 20


class Worker:
    """One forked worker: ``deferred`` answers, ``progress`` is its latest report."""

    def __init__(self, loop, pid, fd, on_done, on_progress):
        self.loop, self.pid, self.fd = loop, pid, fd
        self.on_done, self.on_progress = on_done, on_progress
        self.deferred = Deferred()
        self.progress = {}
        self.done = False
        self.pending = bytearray()

    def finish(self, value, error):
        if self.done:
            return
        self.done = True
        self.loop.remove_reader(self.fd)
        os.close(self.fd)
        if self.on_done:
            value, error = self.on_done(value, error)
        self.deferred.fail(error) if error is not None else self.deferred.resolve(value)

    def kill(self, error):
        """Stop the worker now (SIGKILL) and answer with ``error``."""
        if self.done:
            return
        try:
            os.kill(self.pid, 9)
        except ProcessLookupError:
            pass
        self.finish(None, error)

    def readable(self, fd):
        try:
            data = os.read(fd, 262144)
        except OSError as e:
            return self.finish(None, Internal(f"cannot read the worker's answer: {e}"))
        if data:
            self.pending.extend(data)
            if len(self.pending) > MAX_ANSWER:
                return self.kill(Internal(f"the worker's answer is larger than {MAX_ANSWER} bytes"))
            self._progress_lines()
            return
        self._progress_lines()
        try:
            answer = json.loads(bytes(self.pending) or b"null")
        except ValueError as e:
            return self.finish(None, Internal(f"the worker's answer is not JSON: {e}"))
        if not isinstance(answer, dict):
            return self.finish(None, Internal("the worker ended without an answer"))
        if "error" in answer:
            return self.finish(None, _error(answer["error"]))
        self.finish(answer.get("result"), None)

    def _progress_lines(self):
        """Take complete progress lines off the front; the answer stays for EOF."""
        while self.pending.startswith(b'{"progress"'):
            end = self.pending.find(b"\n")
            if end < 0:
                return
            line = bytes(self.pending[:end])
            del self.pending[:end + 1]
            try:
                self.progress = json.loads(line)["progress"]
            except (ValueError, KeyError, TypeError):
                continue
            if self.on_progress:
                self.on_progress(self.progress)


def start(loop, reaper, fn, timeout, on_done=None, on_progress=None, progress=False):
    """Start fn() (fn(report) with ``progress``) in a worker; return its Worker.

    ``on_done(value, error)`` runs first and may change the answer."""
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        raise
    if pid == 0:
        _child(fn, w, progress)
    os.close(w)
    worker = Worker(loop, pid, r, on_done, on_progress)

    def overdue():
        worker.kill(Unavailable(f"the call did not finish within {timeout + KILL_AFTER:g}s; "
                                "it was stopped"))

    reaper.claim(pid, lambda _pid, _status: None)
    loop.add_reader(r, worker.readable)
    loop.call_later(timeout + KILL_AFTER, overdue)
    return worker


def run(loop, reaper, fn, timeout, on_done=None):
    """Start fn() in a worker; return a Deferred.  ``on_done(value, error)`` runs first."""
    return start(loop, reaper, fn, timeout, on_done).deferred


def _write(w, data):
    view = memoryview(data)
    while view:
        view = view[os.write(w, view):]


def _child(fn, w, progress):
    code = 0
    try:
        _spawn._child_setup(setsid=False, stdout=None, stderr=None, name="aetherd-worker", keep=(w,))

        def report(values):
            _write(w, json.dumps({"progress": values}, default=str).encode() + b"\n")
        try:
            answer = {"result": fn(report) if progress else fn()}
        except AbiError as e:
            answer = {"error": e.to_wire()}
        except Exception as e:  # noqa: BLE001 - reported to the caller, never raised in aetherd
            answer = {"error": {"code": getattr(e, "code", "internal"), "message": str(e),
                                "data": _details(e)}}
        _write(w, json.dumps(answer, default=str).encode())
    except BaseException:  # noqa: BLE001
        code = 1
    finally:
        os._exit(code)


def _details(e):
    to_dict = getattr(e, "to_dict", None)
    return to_dict() if callable(to_dict) else None


def _error(wire):
    from .protocol import ERRORS
    cls = ERRORS.get(wire.get("code"))
    if cls is None:
        error = Internal(wire.get("message", "error"), wire.get("data"))
        error.code = wire.get("code", "internal")
        return error
    return cls(wire.get("message", "error"), wire.get("data"))
