"""The state machine of one agent, written out in full.

Every (state, event) pair has a named outcome in ``TRANSITIONS``; the test
walks all of them on a fake clock.  The machine reaches the world only through
its supervisor (``sup``): ``launch(agent)``, ``signal(agent, sig)``,
``alive(agent)``, ``now()``, ``schedule(delay, cb)``, ``admit_soon()``,
``changed(agent, detail)``.

Stop reasons decide what an exit during STOPPING means: ``request``, ``parent``
and ``shutdown`` end in STOPPED; ``deadline`` ends in EXITED; ``silent`` (a
missed heartbeat) counts as a failure and goes through the restart rules.
"""

from ..restart import DONE, FAIL, SIGKILL, SIGTERM, STOP_POLL, RestartTracker, exit_code
from ..states import (ADMIT, BACKOFF, DEADLINE, EXIT, EXITED, FAILED, RUNNING, SILENT, SPAWN_FAILED,
                      START, STARTED, STARTING, STOP, STOPPED, STOPPING, TIMER, WAITING)

STABLE_AFTER = 10.0


class Agent:
    def __init__(self, manifest, sup, parent=None, lineage=None, spawned_by=None):
        self.manifest = manifest
        self.sup = sup
        self.name = manifest.name
        self.parent = parent
        self.lineage = lineage or [manifest.name]
        self.spawned_by = spawned_by
        self.children = []
        self.state = STOPPED
        self.reason = "declared"
        self.pid = None
        self.started_at = None
        self.starts = 0
        self.last_exit = None
        self.last_error = None
        self.last_heartbeat = None
        self.stop_reason = None
        self.killed = False
        self.stop_deadline = None
        self.start_after_stop = False
        self.timer_gen = 0
        self.watch_gen = 0
        self.tokens_used = 0
        self.restarts = RestartTracker(manifest.restart, manifest.backoff_initial, manifest.backoff_max,
                                       manifest.intensity_restarts, manifest.intensity_period,
                                       STABLE_AFTER)

    # -- the table ------------------------------------------------------------

    def handle(self, event, arg=None):
        getattr(self, TRANSITIONS[(self.state, event)])(arg)

    def ignore(self, _arg):
        """The event means nothing in this state."""

    def queue(self, _arg):
        # STOPPED/EXITED/FAILED/BACKOFF -> WAITING: the supervisor admits it when it fits
        if self.state in (STOPPED, EXITED, FAILED):
            self.restarts.reset()
        self.timer_gen += 1
        self._set(WAITING, "queued for admission")
        self.sup.admit_soon()

    def launch(self, _arg):
        # WAITING -> STARTING (or FAILED when it cannot even be forked)
        self.killed = False
        self.stop_reason = None
        try:
            self.pid = self.sup.launch(self)
        except OSError as e:
            return self._fail(f"cannot start {self.manifest.program}: {e.strerror or e}")
        except Exception as e:  # noqa: BLE001 - a launch failure of any kind fails this agent alone
            return self._fail(f"cannot start {self.manifest.program}: {e}")
        self.started_at = self.sup.now()
        self.last_heartbeat = self.started_at
        self.starts += 1
        self._set(STARTING, f"pid {self.pid}")

    def running(self, _arg):
        # STARTING -> RUNNING; arm the watchdog
        self.last_error = None
        self._set(RUNNING, f"pid {self.pid}")
        self._arm_watchdog()

    def spawn_failed(self, reason):
        # STARTING -> FAILED: the child reported it could not start
        self._fail(str(reason))

    def exited(self, status):
        # RUNNING/STARTING -> BACKOFF | EXITED | FAILED
        code = self._record_exit(status)
        self._after_exit(code, failed=False)

    def stop(self, reason):
        # RUNNING/STARTING -> STOPPING: TERM the agent's processes, KILL at the deadline
        self.stop_reason = reason or "request"
        self.killed = False
        self.stop_deadline = self.sup.now() + self.sup.stop_timeout
        self.sup.signal(self, SIGTERM)
        self._set(STOPPING, self.stop_reason)      # logged as "stopping (<reason>)"
        self._schedule(min(STOP_POLL, self.sup.stop_timeout))

    def stop_deadline_reached(self, _arg):
        self.stop("deadline")

    def stop_silent(self, _arg):
        self.stop("silent")

    def cancel(self, _arg):
        # WAITING/BACKOFF -> STOPPED
        self._stopped("stopped before it started")

    def exited_while_stopping(self, status):
        self._record_exit(status)
        if not self.sup.alive(self):
            self._finish_stop()

    def escalate(self, _arg):
        # STOPPING, poll timer: done when nothing is left; KILL at the deadline
        if self.pid is None and not self.sup.alive(self):
            return self._finish_stop()
        left = self.stop_deadline - self.sup.now()
        if left <= 0 and not self.killed:
            self.sup.signal(self, SIGKILL)
            self.killed = True
        self._schedule(STOP_POLL if left <= 0 else min(STOP_POLL, left))

    def restart_after_stop(self, _arg):
        self.start_after_stop = True

    # -- helpers --------------------------------------------------------------

    def _after_exit(self, code, failed):
        if self.sup.shutting_down:
            return self._stopped("stopped for shutdown")
        ran = self.sup.now() - (self.started_at or self.sup.now())
        verdict, detail = self.restarts.decide(code, ran, self.sup.now(), failed=failed)
        if verdict == DONE:
            return self._set(EXITED, detail)
        if verdict == FAIL:
            return self._fail(detail)
        self._set(BACKOFF, f"exited with {code} after {ran:.1f}s; restarting in {detail:g}s")
        self._schedule(detail)

    def _finish_stop(self):
        reason = self.stop_reason
        self.timer_gen += 1
        if reason == "deadline":
            self._set(EXITED, f"stopped at its deadline ({self.manifest.limits_deadline:g}s)")
        elif reason == "silent":
            self._after_exit(self.last_exit if self.last_exit is not None else 1, failed=True)
        else:
            self._stopped(f"stopped ({reason})")
        if self.start_after_stop and self.state in (STOPPED, EXITED):
            self.start_after_stop = False
            self.handle(START)

    def _record_exit(self, status):
        self.last_exit = exit_code(status)
        self.pid = None
        self.watch_gen += 1
        return self.last_exit

    def _fail(self, reason):
        self.last_error = reason
        self.pid = None
        self.watch_gen += 1
        self._set(FAILED, reason)

    def _stopped(self, reason):
        self.timer_gen += 1
        self.watch_gen += 1
        self._set(STOPPED, reason)

    def _schedule(self, delay):
        self.timer_gen += 1
        gen = self.timer_gen
        self.sup.schedule(delay, lambda: gen == self.timer_gen and self.handle(TIMER))

    def _arm_watchdog(self):
        self.watch_gen += 1
        gen = self.watch_gen
        deadline = self.manifest.limits_deadline
        if deadline:
            left = deadline - (self.sup.now() - self.started_at)
            self.sup.schedule(max(0.0, left), lambda: gen == self.watch_gen and self.handle(DEADLINE))
        if self.manifest.heartbeat:
            self._check_heartbeat(gen)

    def _check_heartbeat(self, gen):
        if gen != self.watch_gen or self.state != RUNNING:
            return
        interval = self.manifest.heartbeat
        silent_for = self.sup.now() - self.last_heartbeat
        if silent_for >= interval:
            self.last_error = f"no heartbeat for {silent_for:.1f}s (interval {interval:g}s)"
            return self.handle(SILENT)
        self.sup.schedule(interval - silent_for, lambda: self._check_heartbeat(gen))

    def heartbeat(self):
        self.last_heartbeat = self.sup.now()

    def _set(self, state, reason):
        self.state, self.reason = state, reason
        self.sup.changed(self)


# (state, event) -> Agent method.  Every pair is listed.
TRANSITIONS = {
    (STOPPED, START): "queue", (STOPPED, ADMIT): "ignore", (STOPPED, STARTED): "ignore",
    (STOPPED, SPAWN_FAILED): "ignore", (STOPPED, EXIT): "ignore", (STOPPED, STOP): "ignore",
    (STOPPED, TIMER): "ignore", (STOPPED, DEADLINE): "ignore", (STOPPED, SILENT): "ignore",

    (WAITING, START): "ignore", (WAITING, ADMIT): "launch", (WAITING, STARTED): "ignore",
    (WAITING, SPAWN_FAILED): "ignore", (WAITING, EXIT): "ignore", (WAITING, STOP): "cancel",
    (WAITING, TIMER): "ignore", (WAITING, DEADLINE): "ignore", (WAITING, SILENT): "ignore",

    (STARTING, START): "ignore", (STARTING, ADMIT): "ignore", (STARTING, STARTED): "running",
    (STARTING, SPAWN_FAILED): "spawn_failed", (STARTING, EXIT): "exited", (STARTING, STOP): "stop",
    (STARTING, TIMER): "ignore", (STARTING, DEADLINE): "ignore", (STARTING, SILENT): "ignore",

    (RUNNING, START): "ignore", (RUNNING, ADMIT): "ignore", (RUNNING, STARTED): "ignore",
    (RUNNING, SPAWN_FAILED): "ignore", (RUNNING, EXIT): "exited", (RUNNING, STOP): "stop",
    (RUNNING, TIMER): "ignore", (RUNNING, DEADLINE): "stop_deadline_reached",
    (RUNNING, SILENT): "stop_silent",

    (BACKOFF, START): "queue", (BACKOFF, ADMIT): "ignore", (BACKOFF, STARTED): "ignore",
    (BACKOFF, SPAWN_FAILED): "ignore", (BACKOFF, EXIT): "ignore", (BACKOFF, STOP): "cancel",
    (BACKOFF, TIMER): "queue", (BACKOFF, DEADLINE): "ignore", (BACKOFF, SILENT): "ignore",

    (STOPPING, START): "restart_after_stop", (STOPPING, ADMIT): "ignore",
    (STOPPING, STARTED): "ignore", (STOPPING, SPAWN_FAILED): "ignore",
    (STOPPING, EXIT): "exited_while_stopping", (STOPPING, STOP): "ignore",
    (STOPPING, TIMER): "escalate", (STOPPING, DEADLINE): "ignore", (STOPPING, SILENT): "ignore",

    (EXITED, START): "queue", (EXITED, ADMIT): "ignore", (EXITED, STARTED): "ignore",
    (EXITED, SPAWN_FAILED): "ignore", (EXITED, EXIT): "ignore", (EXITED, STOP): "ignore",
    (EXITED, TIMER): "ignore", (EXITED, DEADLINE): "ignore", (EXITED, SILENT): "ignore",

    (FAILED, START): "queue", (FAILED, ADMIT): "ignore", (FAILED, STARTED): "ignore",
    (FAILED, SPAWN_FAILED): "ignore", (FAILED, EXIT): "ignore", (FAILED, STOP): "ignore",
    (FAILED, TIMER): "ignore", (FAILED, DEADLINE): "ignore", (FAILED, SILENT): "ignore",
}
