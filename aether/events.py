"""The live event stream: a bounded ring of recent events with sequence numbers,
fanned out to subscribers.  Every event is a dict with ``kind`` ("agent.state",
"alert", ...), ``seq`` and ``time`` (wall clock)."""

import time
from collections import deque


class Events:
    def __init__(self, size=2000, clock=time.time):
        self.ring = deque(maxlen=size)
        self.seq = 0
        self.clock = clock
        self.subscribers = []

    def publish(self, event):
        self.seq += 1
        event = {"seq": self.seq, "time": round(self.clock(), 3), **event}
        self.ring.append(event)
        for deliver in self.subscribers:
            deliver(event)
        return event

    def since(self, seq, limit, caller=None):
        """Events after ``seq`` that the caller may see, oldest first."""
        visible = [e for e in self.ring if e["seq"] > seq and (caller is None or caller.sees(e))]
        return visible[:limit]
