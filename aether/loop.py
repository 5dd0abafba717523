"""The event loop PID 1 (aether/pid1/init.py) and aetherd both run: poll() over
file descriptors, timers, and signals.

Signals are delivered through ``set_wakeup_fd``: the C-level handler writes the
signal number into a pipe the loop polls, and the loop runs the registered
callback in normal code.  Uses ``_signal`` rather than ``signal`` to keep
``enum`` off the boot path.  A callback that raises is reported to
``on_error`` and the loop carries on: neither PID 1 nor aetherd may die of one bad
callback.

``call_soon`` queues work for the next turn, after the descriptors that are
ready have had theirs: a peer with more to do than one turn allows (the ABI
server's pipelined requests) takes its share, then yields to the others.
"""

import _signal
from _collections import deque   # the C types themselves: the collections and heapq packages
from _heapq import heappop, heappush   # cost PID 1 ~25 ms before its first prompt under TCG
import os
import select
import time


def _noop(_signum, _frame):
    pass


class Loop:
    def __init__(self, on_error, clock=time.monotonic):
        self.on_error = on_error
        self.now = clock
        self._timers = []
        self._soon: deque = deque()
        self._seq = 0
        self._readers = {}
        self._writers = {}
        self._signals = {}
        self._poll = select.poll()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        self.add_reader(self._wake_r, self._drain_signals)

    # -- registration -----------------------------------------------------------

    def on_signal(self, signum, callback):
        self._signals[signum] = callback
        _signal.signal(signum, _noop)

    def add_reader(self, fd, callback):
        self._readers[fd] = callback
        self._update(fd)

    def remove_reader(self, fd):
        if self._readers.pop(fd, None) is not None:
            self._update(fd)

    def add_writer(self, fd, callback):
        """Call callback(fd) whenever fd can be written (remove it when done)."""
        self._writers[fd] = callback
        self._update(fd)

    def remove_writer(self, fd):
        if self._writers.pop(fd, None) is not None:
            self._update(fd)

    def _update(self, fd):
        mask = (select.POLLIN if fd in self._readers else 0) | \
               (select.POLLOUT if fd in self._writers else 0)
        try:
            if mask:
                self._poll.register(fd, mask)     # register() also modifies
            else:
                self._poll.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass

    def call_soon(self, callback):
        """Run callback() on the next turn, after every descriptor ready then (round-robin)."""
        self._soon.append(callback)

    def call_later(self, delay, callback):
        self._seq += 1
        heappush(self._timers, (self.now() + max(0.0, delay), self._seq, callback))

    # -- running ------------------------------------------------------------------

    def run_once(self, max_wait=None):
        timeout = self._next_timeout(max_wait)
        try:
            wait = None if timeout is None else 0 if self._soon else int(timeout * 1000) + 1
            ready = self._poll.poll(wait)
        except InterruptedError:
            ready = []
        for fd, events in ready:
            if events & (select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLNVAL):
                callback = self._readers.get(fd)
                if callback is not None:
                    self._call(callback, fd)
                elif not events & select.POLLOUT:
                    self._update(fd)        # nobody reads it and it only hangs up: stop polling it
            if events & select.POLLOUT:
                callback = self._writers.get(fd)
                if callback is not None:
                    self._call(callback, fd)
        self._run_soon()
        self._run_due_timers()

    def run_forever(self):
        while True:
            self.run_once()

    def run_until(self, predicate, timeout):
        """Run until predicate() is true or timeout seconds pass; return predicate()."""
        deadline = self.now() + timeout
        while not predicate():
            left = deadline - self.now()
            if left <= 0:
                break
            self.run_once(max_wait=min(left, 0.1))
        return predicate()

    # -- internals ----------------------------------------------------------------

    def _next_timeout(self, max_wait):
        if self._soon:
            return 0.0
        timeout = max_wait
        if self._timers:
            due = max(0.0, self._timers[0][0] - self.now())
            timeout = due if timeout is None else min(timeout, due)
        return timeout

    def _run_soon(self):
        """What was queued before this turn began; what those queue runs next turn."""
        for _ in range(len(self._soon)):
            self._call(self._soon.popleft())

    def _run_due_timers(self):
        now = self.now()
        while self._timers and self._timers[0][0] <= now:
            _deadline, _seq, callback = heappop(self._timers)
            self._call(callback)

    def _drain_signals(self, fd):
        try:
            data = os.read(fd, 512)
        except BlockingIOError:
            return
        for signum in dict.fromkeys(data):   # each distinct signal once, in order
            callback = self._signals.get(signum)
            if callback is not None:
                self._call(callback, signum)

    def _call(self, callback, *args):
        try:
            callback(*args)
        except Exception as e:  # noqa: BLE001 - PID 1 reports and carries on
            self.on_error(e)
