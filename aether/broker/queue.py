"""The broker's scheduling policy: which waiting model call goes next.

Pure: no I/O, and time comes from the ``clock`` it is given (tests use a fake one).

Order, best first:

1. the *level*, from the call's class: ``interactive`` (a person: the privileged
   shell or the host's ``aetherctl intent``) is level 0; an ``agent`` call is level
   1 to 11 by its manifest priority (100 -> 1, 50 -> 6, 0 -> 11); ``background``
   work (compaction rewrites) is level 12.  *Aging*: every ``aging_s`` seconds a
   call waits, its level drops by one (never below 0), so every call reaches the
   front eventually, whatever arrives after it;
2. among calls of one level, the least *attained service* (tokens this principal
   has been served, as ``attained(principal)`` says): fair share;
3. arrival order.

``fifo=True`` orders by arrival alone (the benchmark's baseline).

The queue is bounded: at most ``bound`` calls wait, and at most ``per_principal``
of one principal (so one caller cannot fill it for everyone); past either,
``push`` raises Busy, and nothing is dropped silently.
"""

import itertools

INTERACTIVE, AGENT, BACKGROUND = "interactive", "agent", "background"
CLASSES = (INTERACTIVE, AGENT, BACKGROUND)
BACKGROUND_LEVEL = 12
DEFAULT_BOUND = 64
DEFAULT_PER_PRINCIPAL = 16
DEFAULT_AGING = 10.0


class Busy(Exception):
    """The queue is full (overall or for this principal); the call was not queued."""


def base_level(klass, priority=50):
    """A call's level before aging: 0 interactive, 1..11 agents by priority, 12 background."""
    if klass == INTERACTIVE:
        return 0
    if klass == BACKGROUND:
        return BACKGROUND_LEVEL
    return 1 + (100 - max(0, min(100, int(priority)))) // 10


class Job:
    """One waiting (or running) model call, as the policy sees it."""

    __slots__ = ("id", "principal", "klass", "priority", "endpoint", "cost", "enqueued_at",
                 "deadline", "payload", "seq")

    def __init__(self, principal, klass=AGENT, priority=50, endpoint="default", cost=0,
                 deadline=None, payload=None):
        if klass not in CLASSES:
            raise ValueError(f"klass must be one of {', '.join(CLASSES)}")
        self.id = None
        self.principal, self.klass, self.priority = principal, klass, priority
        self.endpoint, self.cost, self.deadline, self.payload = endpoint, cost, deadline, payload
        self.enqueued_at = self.seq = None

    def __repr__(self):
        return f"Job({self.id}, {self.principal!r}, {self.klass}, priority={self.priority})"


class Queue:
    """The waiting calls; see the module docstring for the order."""

    def __init__(self, clock, bound=DEFAULT_BOUND, per_principal=DEFAULT_PER_PRINCIPAL,
                 aging_s=DEFAULT_AGING, fifo=False):
        if bound < 1 or per_principal < 1 or aging_s <= 0:
            raise ValueError("bound and per_principal must be at least 1, aging_s more than 0")
        self.clock, self.bound, self.per_principal = clock, bound, per_principal
        self.aging_s, self.fifo = aging_s, fifo
        self.jobs = {}
        self._ids = itertools.count(1)

    def __len__(self):
        return len(self.jobs)

    def push(self, job):
        """Queue ``job`` (giving it an id and its arrival time); Busy when full."""
        if len(self.jobs) >= self.bound:
            raise Busy(f"{len(self.jobs)} model calls are already waiting (the bound is "
                       f"{self.bound}, aether.llm.queue_limit); try again later")
        mine = sum(1 for j in self.jobs.values() if j.principal == job.principal)
        if mine >= self.per_principal:
            raise Busy(f"{job.principal} already has {mine} model calls waiting (at most "
                       f"{self.per_principal} each); wait for them before sending more")
        job.id = job.seq = next(self._ids)
        job.enqueued_at = self.clock()
        self.jobs[job.id] = job
        return job

    def level(self, job, now=None):
        waited = (self.clock() if now is None else now) - job.enqueued_at
        return max(0, base_level(job.klass, job.priority) - int(waited // self.aging_s))

    def key(self, job, now, attained):
        if self.fifo:
            return (job.seq,)
        return (self.level(job, now), attained(job.principal), job.seq)

    def order(self, attained=lambda _p: 0, endpoint=None):
        """The waiting calls (of ``endpoint``, or all), best first."""
        now = self.clock()
        jobs = [j for j in self.jobs.values() if endpoint is None or j.endpoint == endpoint]
        return sorted(jobs, key=lambda j: self.key(j, now, attained))

    def pop(self, attained=lambda _p: 0, endpoint=None):
        """Take the next call (of ``endpoint``, or of any), or None when none waits."""
        ranked = self.order(attained, endpoint)
        if not ranked:
            return None
        return self.jobs.pop(ranked[0].id)

    def remove(self, job_id):
        """Take a call out (cancelled); the Job, or None if it was not waiting."""
        return self.jobs.pop(job_id, None)

    def expired(self):
        """Take out and return the calls whose deadline has passed."""
        now = self.clock()
        late = [j for j in self.jobs.values() if j.deadline is not None and j.deadline <= now]
        for job in late:
            del self.jobs[job.id]
        return late

    def waiting(self, attained=lambda _p: 0):
        """What ``llm.queue`` shows: each waiting call in order, with why it waits."""
        now = self.clock()
        rows = []
        for position, job in enumerate(self.order(attained)):
            level = self.level(job, now)
            aged = base_level(job.klass, job.priority) - level
            rows.append({"id": job.id, "principal": job.principal, "class": job.klass,
                         "priority": job.priority, "endpoint": job.endpoint, "position": position,
                         "waited_s": round(now - job.enqueued_at, 3), "level": level,
                         "aged_levels": aged, "attained_tokens": attained(job.principal),
                         "reason": _reason(position, job, level, aged, self.fifo)})
        return rows


def _reason(position, job, level, aged, fifo):
    what = "arrival order (fifo)" if fifo else (
        f"{job.klass}" + (f" priority {job.priority}" if job.klass == AGENT else "")
        + f", level {level}" + (f" (aged {aged})" if aged else ""))
    if position == 0:
        return f"next, when the endpoint has a free slot; {what}"
    return f"{position} call(s) ahead; {what}"
