"""Long checks run a slice per turn of aetherd's loop, so nobody waits behind them.

Recomputing the journal's hash chain, a thread's chain or every memory's digest
reads the whole of it: on a journal of a million entries that is seconds of CPU,
and aetherd serves every agent from one loop.  Such a check is a generator of
steps (``journal.verify_steps``, ``Threads.verify_steps``,
``memories.check_digests_steps``: a batch of rows each, a query of its own) that
``Checks`` drives here:

* a slice runs steps for at most SLICE_SECONDS, then every descriptor that is
  ready is served before the next slice (``loop.call_soon``);
* one run per key at a time (the journal's chain: one for the machine; a thread's
  chain: one per thread; digests: one per principal): a caller who asks while it
  runs waits for that run's answer instead of starting another, so a caller that
  asks in a loop costs one run, not one per call;
* bounded: MAX_RUNS runs at once and MAX_RUNS_EACH started by one principal,
  MAX_WAITERS callers on one run and MAX_WAITERS_EACH of them one principal's, past
  which the call answers ``busy``; the privileged pass the caps (nobody can deny the
  console a check);
* a step is a batch of rows kept near a few milliseconds whatever the rows hold
  (``aether.steps.Pace``).
"""

import time

from .. import diskspace
from .deferred import Deferred
from .protocol import Busy

SLICE_SECONDS = 0.01       # the longest a check holds the loop at a time
MAX_RUNS = 16              # checks running at once, machine-wide
MAX_WAITERS = 64           # callers waiting on one run
MAX_WAITERS_EACH = 4       # ... of them one principal's (so one caller cannot fill a run for the rest)
MAX_RUNS_EACH = 2          # runs one principal has started and that still run


class Run:
    __slots__ = ("steps", "waiters", "owner")

    def __init__(self, steps, owner):
        self.steps, self.owner = steps, owner
        self.waiters = []                   # (principal, Deferred)


class Checks:
    """The checks running now, by key; ``join(key, start)`` waits for one (starting it if none runs).

    ``on_error(exception)`` turns what a step raised into the ABI error the callers get."""

    def __init__(self, loop, on_error, clock=time.monotonic, max_runs=None):
        self.loop, self.on_error, self.clock = loop, on_error, clock
        self.max_runs = max_runs                # None: MAX_RUNS
        self.runs = {}
        self.slices = 0                     # slices run, for tests and sys.info-style reports

    def admit(self, keys, who, what="check", privileged=False):
        """Refuse (Busy) unless ``who`` may join a run for each of ``keys`` now: call it before
        joining several, so a refusal leaves no waiter behind.  The privileged (the console,
        the host) pass every cap, so no flood by others can deny them a check."""
        if privileged:
            return
        new = [k for k in keys if k not in self.runs]
        most = MAX_RUNS if self.max_runs is None else self.max_runs
        if new and len(self.runs) + len(new) > most:
            raise Busy(f"{len(self.runs)} long checks are running, the most aetherd runs at once "
                       f"({most}); ask for the {what} again in a few seconds")
        started = sum(1 for r in self.runs.values() if r.owner == who)
        if new and started + len(new) > MAX_RUNS_EACH:
            raise Busy(f"{who} has started {started} long checks that still run, the most one caller may "
                       f"({MAX_RUNS_EACH}); wait for their answers")
        for key in keys:
            run = self.runs.get(key)
            if run is None:
                continue
            if len(run.waiters) >= MAX_WAITERS:
                raise Busy(f"{len(run.waiters)} callers already wait for this {what}, the most one run may "
                           f"have ({MAX_WAITERS}); ask again when it has answered")
            mine = sum(1 for p, _w in run.waiters if p == who)
            if mine >= MAX_WAITERS_EACH:
                raise Busy(f"{who} already waits {mine} times for this {what}, the most one caller may "
                           f"({MAX_WAITERS_EACH}); wait for those answers")

    def join(self, key, start, who, what="check", privileged=False):
        """A Deferred answering the result of the run for ``key`` (``start()`` makes its steps
        when none runs); ``who`` is the caller's principal."""
        self.admit([key], who, what, privileged)
        run = self.runs.get(key)
        if run is None:
            run = self.runs[key] = Run(start(), who)
            self.loop.call_soon(lambda: self._slice(key, run))
        waiting = Deferred()
        run.waiters.append((who, waiting))
        return waiting

    def _slice(self, key, run):
        self.slices += 1
        deadline = self.clock() + SLICE_SECONDS
        try:
            while True:
                next(run.steps)
                if self.clock() >= deadline:
                    break
        except StopIteration as done:
            return self._end(key, run, done.value, None)
        except Exception as e:  # noqa: BLE001 - a failed check answers its callers, it never stops the loop
            return self._end(key, run, None, self.on_error(e))
        self.loop.call_soon(lambda: self._slice(key, run))

    def _end(self, key, run, value, error):
        if self.runs.get(key) is run:
            del self.runs[key]
        waiters, run.waiters = run.waiters, []
        for _who, w in waiters:
            w.fail(error) if error is not None else w.resolve(value)


def then(deferred, fn):
    """A Deferred answering ``fn(value)`` once ``deferred`` answers (its error as it is; what
    ``fn`` raises is the error)."""
    out = Deferred()

    def done(value, error):
        if error is not None:
            return out.fail(error)
        try:
            result = fn(value)
        except Exception as e:  # noqa: BLE001 - handed to the caller as its answer
            return out.fail(e)
        out.resolve(result)
    deferred.bind(done)
    return out


def both(first, second):
    """A Deferred answering (first's value, second's value), or the first error either gives."""
    out, got, failed = Deferred(), {}, []

    def settle(index):
        def done(value, error):
            if failed:
                return
            if error is not None:
                failed.append(error)
                return out.fail(error)
            got[index] = value
            if len(got) == 2:
                out.resolve((got[0], got[1]))
        return done
    first.bind(settle(0))
    second.bind(settle(1))
    return out


MAX_WALKS = 64             # homes walked at once (their own Checks: a flood of verifies cannot hold them up)


def walk_homes(d):
    """Have diskspace walk big homes a slice per loop turn (diskspace.use_walker)."""
    walks = d.home_walks = Checks(d.loop, lambda e: e, max_runs=MAX_WALKS)

    def walker(root, steps, started):
        try:                                     # its own owner: the per-caller run cap is not for walks
            walking = walks.join(("home", root), lambda: steps, root, "measure of a home")
        except Busy:
            return False
        walking.bind(lambda total, error: diskspace.measured(root, total if error is None else None, started))
        return True
    diskspace.use_walker(walker)


def of(d, on_error):
    """aetherd's Checks, made on first use."""
    found = getattr(d, "checks", None)
    if found is None:
        found = d.checks = Checks(d.loop, on_error)
    return found
