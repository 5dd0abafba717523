"""The one reaper: every waitpid() in PID 1 happens here.

Whoever starts a child ``claim``s its pid; ``reap()`` collects every exited
child with ``waitpid(-1, WNOHANG)`` and routes ``(pid, status)`` to its owner.
Children nobody claimed are orphans the kernel re-parented to us: they are
reaped and counted.  Nothing else in PID 1 may wait for children (no
``subprocess``, no asyncio child watchers): they would steal statuses.
"""

import os


class Reaper:
    def __init__(self, log, waitpid=os.waitpid):
        self.log = log
        self._waitpid = waitpid
        self._owners = {}
        self.orphans_reaped = 0
        self.children_left = True

    def claim(self, pid, callback):
        self._owners[pid] = callback

    def reap(self, _signum=None):
        """Collect every child that has exited; return how many were reaped."""
        count = 0
        while True:
            try:
                pid, status = self._waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children_left = False
                return count
            except InterruptedError:
                continue
            if pid == 0:
                self.children_left = True
                return count
            count += 1
            self._route(pid, status)

    def _route(self, pid, status):
        callback = self._owners.pop(pid, None)
        if callback is None:
            self.orphans_reaped += 1
            self.log.debug(f"reaped orphan pid {pid} (status {status})")
            return
        try:
            callback(pid, status)
        except Exception as e:  # noqa: BLE001 - one owner's bug must not stop reaping
            self.log.exception(f"handling exit of pid {pid}", e)
