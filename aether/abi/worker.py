"""Blocking calls (fetching a URL, asking a model) run in a forked worker process, so
aetherd's loop never waits on the network and aetherd stays single-threaded
(threads and fork do not mix, and aetherd forks every agent).

The worker runs ``fn()``, writes ``{"result": ...}`` or ``{"error": {...}}`` as
JSON to a pipe and exits; the loop reads it and resolves the call's Deferred.
A worker past its deadline is killed and the call answers ``unavailable``.
"""

import json
import os

from .. import spawn as _spawn
from .protocol import AbiError, Internal, Unavailable
from .server import Deferred

KILL_AFTER = 5.0     # seconds past the call's own timeout before the worker is killed


def run(loop, reaper, fn, timeout, on_done=None):
    """Start fn() in a worker; return a Deferred.  ``on_done(value, error)`` runs first."""
    deferred = Deferred()
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        _child(fn, w)
    os.close(w)
    chunks, state = [], {"done": False}

    def finish(value, error):
        if state["done"]:
            return
        state["done"] = True
        loop.remove_reader(r)
        os.close(r)
        if on_done:
            value, error = on_done(value, error)
        deferred.fail(error) if error is not None else deferred.resolve(value)

    def readable(fd):
        data = os.read(fd, 65536)
        if data:
            chunks.append(data)
            return
        try:
            answer = json.loads(b"".join(chunks) or b"null")
        except ValueError as e:
            return finish(None, Internal(f"the worker's answer is not JSON: {e}"))
        if not isinstance(answer, dict):
            return finish(None, Internal("the worker ended without an answer"))
        if "error" in answer:
            return finish(None, _error(answer["error"]))
        finish(answer.get("result"), None)

    def overdue():
        if not state["done"]:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
            finish(None, Unavailable(f"the call did not finish within {timeout + KILL_AFTER:g}s; "
                                     "it was stopped"))

    reaper.claim(pid, lambda _pid, _status: None)
    loop.add_reader(r, readable)
    loop.call_later(timeout + KILL_AFTER, overdue)
    return deferred


def _child(fn, w):
    code = 0
    try:
        _spawn._child_setup(setsid=False, stdout=None, stderr=None, name="aetherd-worker", keep=(w,))
        try:
            answer = {"result": fn()}
        except AbiError as e:
            answer = {"error": e.to_wire()}
        except Exception as e:  # noqa: BLE001 - reported to the caller, never raised in aetherd
            answer = {"error": {"code": getattr(e, "code", "internal"), "message": str(e),
                                "data": _details(e)}}
        data = json.dumps(answer, default=str).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(w, view):]
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
