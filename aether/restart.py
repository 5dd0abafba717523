"""When a supervised process exits: restart it (after how long), or stop for good.

Shared by PID 1's services (aether/pid1/services.py) and aetherd's agents
(aether/agent/machine.py), with what both need to stop one: the signals, how
often to look whether it is gone, and a wait status read as one exit code.  The rules: exit status 125
means "done, do not restart me"; ``never`` never restarts, ``on-failure``
restarts only non-zero exits, ``always`` restarts every exit; more than
``intensity`` restarts within ``period`` seconds fails the process; the delay
doubles from ``backoff_initial`` up to ``backoff_max`` and starts over after a
run of ``stable_after`` seconds or more.
"""

from _collections import deque  # the C module itself: the collections package costs PID 1 ~19 ms before its first prompt under TCG

from .states import EXIT_DONT_RESTART, NEVER, ON_FAILURE

RESTART, DONE, FAIL = "restart", "done", "fail"
SIGTERM = 15
SIGKILL = 9
STOP_POLL = 0.05  # seconds between checks, while stopping, that the group is gone


def exit_code(status):
    """A wait status as one number: the exit code, or 128 + the signal number."""
    if status & 0x7F == 0:          # WIFEXITED
        return (status >> 8) & 0xFF
    if status & 0xFF == 0x7F:       # WIFSTOPPED: not an exit; callers do not pass these
        return None
    return 128 + (status & 0x7F)    # WIFSIGNALED


class RestartTracker:
    def __init__(self, policy, backoff_initial, backoff_max, intensity, period, stable_after):
        self.policy = policy
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.intensity, self.period, self.stable_after = intensity, period, stable_after
        self.times: deque[float] = deque()
        self.failures = 0

    def reset(self):
        self.times.clear()
        self.failures = 0

    def decide(self, code, ran_for, now, failed=False):
        """(RESTART, delay) | (DONE, reason) | (FAIL, reason) for an exit with ``code``.

        ``failed`` marks an exit the supervisor caused because the process
        misbehaved (e.g. it stopped answering its heartbeat): never "done".
        """
        if code == EXIT_DONT_RESTART and not failed:
            return DONE, f"exited with {code} (done, not restarting)"
        if self.policy == NEVER or (self.policy == ON_FAILURE and code == 0 and not failed):
            return DONE, f"exited with {code}; restart={self.policy}"
        if ran_for >= self.stable_after:
            self.failures = 0
        self.times.append(now)
        while self.times and self.times[0] <= now - self.period:
            self.times.popleft()
        if len(self.times) > self.intensity:
            return FAIL, (f"exited {len(self.times)} times within {self.period:g}s "
                          f"(last status {code}); giving up")
        self.failures += 1
        return RESTART, min(self.backoff_max, self.backoff_initial * 2 ** (self.failures - 1))
