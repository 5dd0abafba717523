"""Supervision of PID 1's services: one state machine per service.

Every (state, event) pair has a named outcome in ``TRANSITIONS``; nothing is
left undefined (tests/unit/test_services.py walks the whole table).  The
machine touches the OS only through the ``osi`` object it is given (``spawn``,
``kill``, ``group_alive``, ``now``) and time only through ``schedule``, so the
tests drive every edge with fakes and a fake clock.

Each service runs in its own process group (its pgid is its pid): stopping it
sends TERM to the whole group and KILL after ``stop_timeout``.
"""

from ..restart import DONE, FAIL, SIGKILL, SIGTERM, STOP_POLL, RestartTracker, exit_code
from ..states import (
    ACTIVE, ALWAYS, BACKOFF, EXIT, EXITED, FAILED, POLICIES, RESTING, RUNNING, START, STOP,
    STOPPED, STOPPING, TIMER,
)


class SpecError(ValueError):
    """A service specification is invalid."""


class ServiceSpec:
    """What to run and how to supervise it."""

    __slots__ = ("name", "argv", "env", "restart", "backoff_initial", "backoff_max",
                 "intensity", "period", "stable_after", "stop_timeout", "retry_after",
                 "setsid", "capture_output", "entry", "nice")

    def __init__(self, name, argv, env=None, restart=ALWAYS, backoff_initial=0.5,
                 backoff_max=30.0, intensity=5, period=60.0, stable_after=10.0,
                 stop_timeout=5.0, retry_after=None, setsid=False, capture_output=True,
                 entry=None, nice=0):
        """argv: the program and its arguments; or, with entry="module:function", a
        function PID 1 calls in a forked child (no new interpreter) with argv[1:]."""
        if not name or not isinstance(name, str):
            raise SpecError(f"service name must be a non-empty string, got {name!r}")
        if not argv or not all(isinstance(a, str) for a in argv):
            raise SpecError(f"service {name}: argv must be a non-empty list of strings, got {argv!r}")
        if entry is not None:
            module, sep, function = str(entry).partition(":")
            if not (sep and module and function.isidentifier()):
                raise SpecError(f"service {name}: entry={entry!r} must look like 'package.module:function'")
        elif not argv[0].startswith("/"):
            raise SpecError(f"service {name}: program {argv[0]!r} must be an absolute path")
        if restart not in POLICIES:
            raise SpecError(f"service {name}: restart={restart!r}; use one of {', '.join(POLICIES)}")
        for field, value in (("backoff_initial", backoff_initial), ("backoff_max", backoff_max),
                             ("period", period), ("stop_timeout", stop_timeout)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise SpecError(f"service {name}: {field}={value!r} must be a positive number")
        if not isinstance(intensity, int) or intensity < 0:
            raise SpecError(f"service {name}: intensity={intensity!r} must be an integer >= 0")
        self.name, self.argv, self.env = name, list(argv), env
        self.restart = restart
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.intensity, self.period = intensity, period
        self.stable_after, self.stop_timeout = stable_after, stop_timeout
        self.retry_after = retry_after
        self.setsid, self.capture_output = setsid, capture_output
        self.entry = entry
        self.nice = nice             # niceness the (forked) child starts with


class Service:
    """One supervised service and its state machine."""

    def __init__(self, spec, sup):
        self.spec = spec
        self.sup = sup
        self.state = STOPPED
        self.pid = None
        self.pgid = None
        self.started_at = None
        self.restarts = RestartTracker(spec.restart, spec.backoff_initial, spec.backoff_max,
                                       spec.intensity, spec.period, spec.stable_after)
        self.starts = 0
        self.last_exit = None
        self.last_error = None
        self.timer_gen = 0
        self.killed = False
        self.stop_deadline = None
        self.start_after_stop = False

    # -- the table ------------------------------------------------------------

    def handle(self, event, arg=None):
        action = TRANSITIONS[(self.state, event)]
        getattr(self, action)(arg)

    def ignore(self, _arg):
        """The event means nothing in this state (e.g. a stale timer)."""

    def start(self, _arg):
        # STOPPED/EXITED/FAILED -> RUNNING (or FAILED if the program cannot start)
        self.restarts.reset()
        self._spawn()

    def start_now(self, _arg):
        # BACKOFF -> RUNNING: skip the rest of the delay
        self._spawn()

    def retry(self, _arg):
        # FAILED -> RUNNING once retry_after has passed
        self.sup.log.info(f"{self.spec.name}: retrying after {self.spec.retry_after:g}s in failed state")
        self.start(None)

    def restart_after_stop(self, _arg):
        # STOPPING: a start request waits for the stop to finish
        self.start_after_stop = True

    def stop(self, _arg):
        # RUNNING -> STOPPING: TERM the group; poll until it is gone, KILL at the deadline
        self.killed = False
        self.stop_deadline = self.sup.osi.now() + self.spec.stop_timeout
        self._signal_group(SIGTERM)
        self._set_state(STOPPING)
        self._schedule(min(STOP_POLL, self.spec.stop_timeout))

    def cancel(self, _arg):
        # BACKOFF/FAILED -> STOPPED: nothing runs, drop the pending timer
        self._stopped()

    def exited(self, status):
        # RUNNING -> BACKOFF | EXITED | FAILED
        code = self._record_exit(status)
        ran = self.sup.osi.now() - self.started_at
        if self.sup.shutting_down:
            return self._stopped()
        verdict, detail = self.restarts.decide(code, ran, self.sup.osi.now())
        if verdict == DONE:
            self.sup.log.info(f"{self.spec.name}: {detail}")
            return self._set_state(EXITED)
        if verdict == FAIL:
            return self._fail(detail)
        self.sup.log.info(f"{self.spec.name}: exited with {code} after {ran:.1f}s; "
                          f"restarting in {detail:g}s")
        self._set_state(BACKOFF)
        self._schedule(detail)

    def exited_while_stopping(self, status):
        # STOPPING -> STOPPED once the whole group is gone (other members may still be
        # zombies waiting for the reaper: the poll timer checks again shortly)
        self._record_exit(status)
        if not self.sup.osi.group_alive(self.pgid):
            self._stopped()

    def escalate(self, _arg):
        # STOPPING, poll timer: done if the group is gone; KILL it at the deadline
        if self.pid is None and not self.sup.osi.group_alive(self.pgid):
            return self._stopped()
        left = self.stop_deadline - self.sup.osi.now()
        if left <= 0 and not self.killed:
            self._signal_group(SIGKILL)
            self.killed = True
        self._schedule(STOP_POLL if left <= 0 else min(STOP_POLL, left))

    # -- helpers --------------------------------------------------------------

    def _spawn(self):
        self.timer_gen += 1
        try:
            pid = self.sup.osi.spawn(self.spec)
        except OSError as e:
            reason = e.strerror or str(e)
            return self._fail(f"cannot start {self.spec.argv[0]}: {reason}")
        self.pid = self.pgid = pid
        self.started_at = self.sup.osi.now()
        self.starts += 1
        self.last_error = None
        self.sup.claim(pid, self._on_reaped)
        self.sup.log.info(f"{self.spec.name}: started (pid {pid})")
        self._set_state(RUNNING)

    def _on_reaped(self, pid, status):
        if pid == self.pid:
            self.handle(EXIT, status)

    def _record_exit(self, status):
        code = exit_code(status)
        self.last_exit = code
        self.pid = None
        return code

    def _fail(self, reason):
        self.last_error = reason
        self.sup.log.error(f"{self.spec.name}: failed: {reason}")
        self._set_state(FAILED)
        if self.spec.retry_after:
            self._schedule(self.spec.retry_after)

    def _stopped(self):
        self.timer_gen += 1
        self._set_state(STOPPED)
        if self.start_after_stop:
            self.start_after_stop = False
            self.handle(START)

    def _signal_group(self, sig):
        if self.pgid is not None:
            self.sup.osi.kill(-self.pgid, sig)

    def _schedule(self, delay):
        self.timer_gen += 1
        gen = self.timer_gen
        self.sup.schedule(delay, lambda: self._timer(gen))

    def _timer(self, gen):
        if gen == self.timer_gen:
            self.handle(TIMER)

    def _set_state(self, state):
        self.state = state
        self.sup.changed(self)

    def snapshot(self):
        return {
            "name": self.spec.name, "state": self.state, "pid": self.pid,
            "starts": self.starts, "last_exit": self.last_exit, "last_error": self.last_error,
            "argv": self.spec.argv,
        }


# (state, event) -> Service method.  Every pair is listed.
TRANSITIONS = {
    (STOPPED, START): "start",
    (STOPPED, STOP): "ignore",
    (STOPPED, EXIT): "ignore",
    (STOPPED, TIMER): "ignore",
    (RUNNING, START): "ignore",
    (RUNNING, STOP): "stop",
    (RUNNING, EXIT): "exited",
    (RUNNING, TIMER): "ignore",
    (STOPPING, START): "restart_after_stop",
    (STOPPING, STOP): "ignore",
    (STOPPING, EXIT): "exited_while_stopping",
    (STOPPING, TIMER): "escalate",
    (BACKOFF, START): "start_now",
    (BACKOFF, STOP): "cancel",
    (BACKOFF, EXIT): "ignore",
    (BACKOFF, TIMER): "start_now",
    (EXITED, START): "start",
    (EXITED, STOP): "ignore",
    (EXITED, EXIT): "ignore",
    (EXITED, TIMER): "ignore",
    (FAILED, START): "start",
    (FAILED, STOP): "cancel",
    (FAILED, EXIT): "ignore",
    (FAILED, TIMER): "retry",
}


class ServiceSupervisor:
    """The set of services PID 1 runs.

    ``osi``: spawn(spec) -> pid, kill(pid, sig), group_alive(pgid), now().
    ``schedule(delay, callback)``: run callback later.  ``claim(pid, callback)``:
    route that pid's wait status to callback (the reaper).  ``on_change(service)``
    is called after every state change.
    """

    def __init__(self, osi, schedule, claim, log, on_change=None):
        self.osi, self.schedule, self.claim, self.log = osi, schedule, claim, log
        self.on_change = on_change
        self.services = {}
        self.shutting_down = False

    def add(self, spec):
        if spec.name in self.services:
            raise SpecError(f"service {spec.name} is defined twice")
        self.services[spec.name] = Service(spec, self)
        return self.services[spec.name]

    def send(self, name, event):
        svc = self.services.get(name)
        if svc is None:
            raise KeyError(f"no service named {name!r} (known: {', '.join(sorted(self.services))})")
        svc.handle(event)

    def start_all(self):
        for svc in self.services.values():
            svc.handle(START)

    def stop_all(self):
        self.shutting_down = True
        for svc in self.services.values():
            svc.handle(STOP)

    def all_resting(self):
        return all(s.state in RESTING for s in self.services.values())

    def active(self):
        return [s for s in self.services.values() if s.state in ACTIVE]

    def changed(self, svc):
        if self.on_change:
            self.on_change(svc)

    def snapshot(self):
        return [s.snapshot() for s in self.services.values()]
