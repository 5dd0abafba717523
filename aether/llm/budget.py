"""Token budgets: what a call may spend, reserved before it is sent and charged (or
released) after; ``refusal`` says why a call was not sent.
"""

import _thread

from .errors import BudgetExceeded

# -- token budget -------------------------------------------------------------------------------

class TokenBudget:
    """A token allowance: ``reserve`` before a call, charge the actual use after.

    ``remaining`` is ``limit - used - reserved`` (never below zero).  Thread-safe.
    Charges may exceed a reservation (a low estimate): ``used`` then passes ``limit``
    and every later call is refused.
    """

    def __init__(self, limit, used=0):
        self.limit, self.used, self.reserved = int(limit), int(used), 0
        self._lock = _thread.allocate_lock()

    @property
    def remaining(self):
        return max(0, self.limit - self.used - self.reserved)

    def reserve(self, tokens):
        """A Reservation of ``tokens``, or BudgetExceeded when they are not left."""
        with self._lock:
            left = self.limit - self.used - self.reserved
            if tokens > left:
                raise BudgetExceeded(refusal(max(0, left), tokens, self.used, self.limit))
            self.reserved += tokens
        return Reservation(self, tokens)

    def charge(self, tokens):
        """Count ``tokens`` as used, with no reservation."""
        with self._lock:
            self.used += max(0, int(tokens))

    def _settle(self, reservation, tokens):
        with self._lock:
            self.reserved -= reservation.tokens
            self.used += max(0, int(tokens))

    def __repr__(self):
        return f"TokenBudget(limit={self.limit}, used={self.used}, reserved={self.reserved})"


class Reservation:
    """Tokens held for one call; settled once, by ``charge(actual)`` or ``release()``."""

    def __init__(self, budget, tokens):
        self.budget, self.tokens, self.settled = budget, tokens, False

    def charge(self, tokens):
        if not self.settled:
            self.settled = True
            self.budget._settle(self, tokens)

    def release(self):
        self.charge(0)


def refusal(left, needed, used=None, limit=None):
    """The sentence that refuses a call the budget cannot cover."""
    if left <= 0:
        spent = f": {used} of {limit} tokens used" if limit is not None else ""
        return f"token budget spent{spent}; the call was not sent"
    return (f"token budget cannot cover this call: it may use up to {needed} tokens "
            f"(prompt estimate + max_tokens) and {left} remain; the call was not sent "
            "(lower max_tokens or raise the budget)")
