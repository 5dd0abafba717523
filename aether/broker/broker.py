"""The broker's runtime: one queue for every model call, dispatched to forked workers.

aetherd stays single-threaded: ``submit`` queues a Call (its tokens already held by
the ledger, spend.py) and returns a Deferred; ``_dispatch`` starts a worker
(aether/abi/worker.py) for the best waiting call (queue.py) whenever the
endpoint has a free slot (``aether.llm.concurrency``), and the worker's answer
settles the hold with the tokens used.

Cancelled (the caller's connection closed, its agent stopped, its deadline passed):
a waiting call leaves the queue and its hold is released (nothing was sent); a
running one has its worker killed, which closes the HTTP connection and stops the
server's generation; it is charged what it spent: the prompt estimate plus the
streamed pieces the worker reported, or, for an answer that was not streamed (the
server says nothing until it is done), the whole hold.

A failing endpoint opens its circuit (circuit.py): waiting calls are refused with
the failure and the setting to fix, and new ones are refused at once until a probe
succeeds.  Nothing in aetherd waits on the server.
"""

import time

from . import queue as q
from .circuit import Circuit
from .spend import LedgerError
from ..abi import worker
from ..abi.protocol import AbiError, Busy, Unavailable
from ..abi.server import Deferred

CIRCUIT_CODES = ("unreachable", "timeout", "malformed_response")
PROGRESS_EVERY = 0.1          # seconds between a streaming worker's progress reports


class Call:
    """One model call: who asks, what it sends, and what it holds."""

    def __init__(self, principal, klass, priority, run, hold, prompt_tokens, max_tokens, stream,
                 deadline_s, conn=None, agent=None):
        self.principal, self.klass, self.priority = principal, klass, priority
        self.run = run                     # fn(report) in the worker: the answer dict
        self.hold, self.prompt_tokens, self.max_tokens = hold, prompt_tokens, max_tokens
        self.stream, self.deadline_s, self.conn, self.agent = stream, deadline_s, conn, agent
        self.deferred = Deferred()
        self.job = self.worker = None
        self.submitted = self.started = None
        self.cancelled = None              # why, once cancelled

    def spent_if_killed(self):
        """Tokens charged when the call is stopped while running (see the module docstring)."""
        progress = self.worker.progress if self.worker else {}
        if self.stream:
            return self.prompt_tokens + (int(progress.get("chars", 0)) + 3) // 4
        return self.hold.tokens if self.hold else self.prompt_tokens + self.max_tokens


class Stats:
    """Per principal, since aetherd started: what agent.inspect and status show."""

    __slots__ = ("calls", "ok", "failed", "cancelled", "tokens_in", "tokens_out", "latency_s", "wait_s")

    def __init__(self):
        self.calls = self.ok = self.failed = self.cancelled = self.tokens_in = self.tokens_out = 0
        self.latency_s = self.wait_s = 0.0

    def view(self):
        n = max(1, self.calls)
        return {"calls": self.calls, "ok": self.ok, "failed": self.failed, "cancelled": self.cancelled,
                "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
                "mean_latency_s": round(self.latency_s / n, 4), "mean_queue_wait_s": round(self.wait_s / n, 4)}


class Broker:
    def __init__(self, loop, reaper, ledger, log, publish, concurrency=1, bound=q.DEFAULT_BOUND,
                 aging_s=q.DEFAULT_AGING, fifo=False, endpoint="default", clock=time.monotonic):
        self.loop, self.reaper, self.ledger, self.log, self.publish = loop, reaper, ledger, log, publish
        self.clock, self.concurrency, self.endpoint = clock, concurrency, endpoint
        self.queue = q.Queue(clock, bound=bound, per_principal=min(bound, q.DEFAULT_PER_PRINCIPAL),
                             aging_s=aging_s, fifo=fifo)
        self.circuit = Circuit(clock)
        self.waiting = {}                 # job id -> Call
        self.running = {}                 # job id -> Call
        self.stats = {}
        self.timeout = 600.0
        self.setting = "aether.llm.endpoint"

    # -- calls --------------------------------------------------------------------

    def submit(self, call):
        """Queue ``call``; its Deferred answers.  Busy or Unavailable at once when it cannot wait."""
        left = self.circuit.blocked()
        if left:
            self._release(call)
            raise Unavailable(self._circuit_message(left))
        job = q.Job(call.principal, call.klass, call.priority, self.endpoint,
                    cost=call.prompt_tokens + call.max_tokens,
                    deadline=self.clock() + call.deadline_s if call.deadline_s else None)
        try:
            self.queue.push(job)
        except q.Busy as e:
            self._release(call)
            raise Busy(str(e)) from None
        call.job, call.submitted = job, self.clock()
        self.waiting[job.id] = call
        if call.deadline_s:
            self.loop.call_later(call.deadline_s, lambda: self._deadline(call))
        self.loop.call_later(0, self._dispatch)
        return call.deferred

    def cancel(self, call, why):
        """Stop ``call``: out of the queue, or its worker killed (charged what it spent)."""
        if call.cancelled or call.job is None:
            return
        call.cancelled = why
        if self.queue.remove(call.job.id) is not None:
            del self.waiting[call.job.id]
            self._release(call)
            self._stat(call).cancelled += 1
            call.deferred.fail(Unavailable(f"the model call was cancelled before it was sent: {why}",
                                           {"charged": 0, "queue_wait_s": self._waited(call)}))
        elif call.worker is not None:
            call.worker.kill(Unavailable(f"the model call was cancelled while running: {why}"))

    def cancel_where(self, predicate, why):
        for call in [c for c in (*self.waiting.values(), *self.running.values()) if predicate(c)]:
            self.cancel(call, why)

    def connection_closed(self, conn):
        self.cancel_where(lambda c: c.conn is conn, "the caller's connection closed")

    def agent_event(self, event):
        """An agent that stops has its model calls cancelled."""
        if event.get("kind") == "agent.state" and event.get("state") in ("stopping", "stopped", "failed",
                                                                       "exited", "backoff"):
            name = event.get("agent")
            self.cancel_where(lambda c: c.agent == name, f"agent {name} is {event['state']}")

    def _deadline(self, call):
        if call.job is not None and not call.cancelled and (call.job.id in self.waiting
                                                           or call.job.id in self.running):
            self.cancel(call, f"its deadline of {call.deadline_s:g}s passed")

    # -- dispatch -----------------------------------------------------------------

    def attained(self, principal):
        s = self.stats.get(principal)
        return s.tokens_in + s.tokens_out if s else 0

    def _dispatch(self):
        while len(self.running) < self.concurrency and len(self.queue):
            allowed, left = self.circuit.allow()
            if not allowed:
                if left:
                    self.loop.call_later(left, self._dispatch)
                return
            job = self.queue.pop(self.attained, self.endpoint)
            call = self.waiting.pop(job.id)
            self._start(call)

    def _start(self, call):
        call.started = self.clock()
        self.running[call.job.id] = call
        try:
            call.worker = worker.start(self.loop, self.reaper, call.run, self.timeout,
                                       on_done=lambda value, error: self._done(call, value, error),
                                       progress=True)
        except OSError as e:          # no pipe or no fork: this call fails, the queue goes on
            self.running.pop(call.job.id, None)
            self._release(call)
            call.deferred.fail(Unavailable(f"aetherd could not start a worker for the model call: "
                                           f"{e.strerror or e}; try again"))
            self.loop.call_later(0, self._dispatch)
            return
        call.worker.deferred.bind(lambda value, error: call.deferred.fail(error) if error is not None
                                  else call.deferred.resolve(value))

    def _done(self, call, value, error):
        """The worker answered (or was killed): settle, count, and answer the caller."""
        self.running.pop(call.job.id, None)
        ended = self.clock()
        stat = self._stat(call)
        stat.calls += 1
        stat.wait_s += call.started - call.submitted
        stat.latency_s += ended - call.submitted
        broker = {"queue_wait_s": round(call.started - call.submitted, 4),
                  "service_s": round(ended - call.started, 4)}
        if error is not None:                      # killed (cancel, overdue) or the worker died
            charged = call.spent_if_killed()
            counted = "estimated: killed while streaming" if call.stream else \
                "the whole hold: killed before the server answered"
            stat.cancelled += 1 if call.cancelled else 0
            stat.failed += 0 if call.cancelled else 1
            stat.tokens_in += call.prompt_tokens
            stat.tokens_out += max(0, charged - call.prompt_tokens)
            self._settle(call, charged)
            self.circuit.neutral() if call.cancelled else self.circuit.failure(str(error))
            self.loop.call_later(0, self._dispatch)
            data = {**(getattr(error, "data", None) or {}), "charged": charged, "counted": counted, **broker}
            return None, type(error)(str(error), data) if isinstance(error, AbiError) else error
        failure = value.get("failure")
        if failure is not None:
            charged = int(value.get("spent") or 0)
            stat.failed += 1
            stat.tokens_in += min(charged, call.prompt_tokens)
            stat.tokens_out += max(0, charged - call.prompt_tokens)
            self._settle(call, charged)
            self._judge(failure)
            self.loop.call_later(0, self._dispatch)
            return None, self._failure_error(failure, {"charged": charged, **broker})
        completion = value["completion"]
        usage = completion.get("usage") or {}
        charged = int(usage.get("total_tokens") or 0)
        stat.ok += 1
        stat.tokens_in += int(usage.get("prompt_tokens") or 0)
        stat.tokens_out += int(usage.get("completion_tokens") or 0)
        self._settle(call, charged)
        self.circuit.success()
        self.loop.call_later(0, self._dispatch)
        completion["broker"] = {**broker, "charged": charged,
                                "counted": "estimated" if usage.get("estimated") else "server",
                                "max_tokens": call.max_tokens}
        return completion, None

    def _judge(self, failure):
        code, status = failure.get("code"), failure.get("status")
        if code in CIRCUIT_CODES or (code == "endpoint_error" and (status is None or status >= 500)):
            was = self.circuit.state
            self.circuit.failure(failure.get("message"))
            if self.circuit.state == "open" and was != "open":
                self._refuse_waiting()
        else:
            self.circuit.success()             # it answered: the server is alive

    def _refuse_waiting(self):
        """The circuit opened: the waiting calls would only fail; they are refused now."""
        message = self._circuit_message(self.circuit.blocked() or self.circuit.backoff)
        self.log.warning(f"llm: {message}")
        for call in list(self.waiting.values()):
            self.queue.remove(call.job.id)
            del self.waiting[call.job.id]
            self._release(call)
            call.deferred.fail(Unavailable(message, {"charged": 0}))

    def _circuit_message(self, left):
        return (f"the model endpoint keeps failing ({self.circuit.failures} calls in a row; the last: "
                f"{self.circuit.last_error}); calls are refused for {left:.1f}s more, then one is tried "
                f"(check that the server runs and {self.setting} points at it)")

    def _failure_error(self, failure, data):
        message = f"{failure.get('code')}: {failure.get('message')}"
        return Unavailable(message, {**failure, **data})

    def _settle(self, call, tokens):
        if call.hold is not None and self.ledger.settle(call.hold, tokens):
            try:
                account = self.ledger.view(call.principal) or {}
            except LedgerError:
                account = {}
            self.publish({"kind": "alert", "source": "llm", "agent": call.agent, "principal": call.principal,
                          "message": f"{call.principal} has spent its model tokens "
                                     f"({account.get('used_tokens')} of {account.get('spend_tokens')}); "
                                     "its next calls are refused"})

    def _release(self, call):
        if call.hold is not None:
            self.ledger.release(call.hold)

    def _stat(self, call):
        return self.stats.setdefault(call.principal, Stats())

    def _waited(self, call):
        return round(self.clock() - call.submitted, 4) if call.submitted else 0.0

    # -- views --------------------------------------------------------------------

    def view(self, caller_sees=lambda _principal: True):
        """llm.queue: who waits, for how long and why, and what runs."""
        now = self.clock()
        waiting = []
        for row in self.queue.waiting(self.attained):
            if not caller_sees(row["principal"]):
                row = {"id": row["id"], "principal": "(another caller)", "position": row["position"],
                       "class": row["class"], "waited_s": row["waited_s"]}
            waiting.append(row)
        running = []
        for call in self.running.values():
            row = {"id": call.job.id, "principal": call.principal, "class": call.klass,
                   "running_s": round(now - call.started, 3), "waited_s": round(call.started - call.submitted, 3),
                   "max_tokens": call.max_tokens, "streamed_chars": (call.worker.progress or {}).get("chars", 0)
                   if call.worker else 0}
            if not caller_sees(call.principal):
                row = {"id": row["id"], "principal": "(another caller)", "class": call.klass,
                       "running_s": row["running_s"]}
            running.append(row)
        return {"waiting": waiting, "running": running, "concurrency": self.concurrency,
                "queue_limit": self.queue.bound, "order": "fifo" if self.queue.fifo else "priority",
                "aging_s": self.queue.aging_s, "circuit": self.circuit.view()}

    def stats_view(self, principal):
        s = self.stats.get(principal)
        return (s or Stats()).view()
