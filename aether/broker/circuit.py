"""An endpoint's circuit breaker: stop sending to a model server that keeps failing.

Closed: calls go out.  After ``threshold`` failures in a row (unreachable, timed
out, a 5xx answer, or garbage), it opens for a back-off (``initial`` seconds,
doubling on each failed probe up to ``maximum``): calls are refused at once with
the last failure and the setting to fix, and nothing waits on the server.  When
the back-off is over one call goes out as a probe (half-open); its success closes
the circuit, its failure opens it again for longer.  Pure: time comes from ``clock``.
"""

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class Circuit:
    def __init__(self, clock, threshold=3, initial=1.0, maximum=60.0):
        self.clock, self.threshold, self.initial, self.maximum = clock, threshold, initial, maximum
        self.state, self.failures, self.backoff = CLOSED, 0, initial
        self.opened_at, self.last_error, self.probing = None, None, False

    def allow(self):
        """(True, None) when a call may go out now; else (False, seconds until a probe)."""
        if self.state == CLOSED:
            return True, None
        left = self.opened_at + self.backoff - self.clock()
        if left > 0:
            return False, left
        if self.probing:
            return False, 0.0
        self.state, self.probing = HALF_OPEN, True
        return True, None

    def blocked(self):
        """Seconds until a probe may go, while open; None when calls may queue (looks only)."""
        if self.state != OPEN:
            return None
        left = self.opened_at + self.backoff - self.clock()
        return left if left > 0 else None

    def success(self):
        self.state, self.failures, self.backoff, self.probing = CLOSED, 0, self.initial, False

    def failure(self, message):
        self.failures += 1
        self.last_error = message
        if self.state == HALF_OPEN:
            self.backoff = min(self.maximum, self.backoff * 2)
        if self.state == HALF_OPEN or self.failures >= self.threshold:
            self.state, self.opened_at, self.probing = OPEN, self.clock(), False

    def neutral(self):
        """A call ended without saying anything about the server (cancelled): a probe may go again."""
        if self.state == HALF_OPEN:
            self.state, self.probing, self.opened_at = OPEN, False, self.clock() - self.backoff

    def view(self):
        left = None
        if self.state == OPEN:
            left = round(max(0.0, self.opened_at + self.backoff - self.clock()), 3)
        return {"state": self.state, "failures_in_a_row": self.failures, "last_error": self.last_error,
                "retry_in_s": left}
