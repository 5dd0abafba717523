"""Work done a batch at a time: a generator of steps, run to its end here or a slice per
turn of aetherd's loop (aether/abi/checks.py).

``finish(steps)`` runs one to its end (or for at most ``most`` steps); ``Pace`` keeps a
batch of rows near a few milliseconds whatever the rows hold.  Used by the store's checks
(aether/ctx/journal.py, memories.py, threads.py) and the walk of a home
(aether/diskspace.py).  Leaf module (time).
"""

import time


def finish(steps, most=None):
    """Run a generator of steps to its end (its answer), or None after ``most`` steps."""
    taken = 0
    while most is None or taken < most:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        taken += 1
    return None


class Pace:
    """Rows per batch, kept near TARGET seconds a batch whatever the rows hold: it starts at
    FIRST rows, doubles (up to ``most``) after a quick batch and halves after a slow one."""

    FIRST, TARGET = 16, 0.004

    def __init__(self, most, clock=time.monotonic):
        self.most, self.clock = most, clock
        self.rows, self.began = min(most, self.FIRST), None

    def start(self):
        self.began = self.clock()
        return self.rows

    def done(self):
        took = self.clock() - self.began
        if took > 2 * self.TARGET:
            self.rows = max(1, self.rows // 2)
        elif took < self.TARGET / 2:
            self.rows = min(self.most, self.rows * 2)
