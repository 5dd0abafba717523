"""The spend ledger: how many model tokens each principal may use, has used, and holds.

An *account* per principal (``agent:web``, ``uid:1000``, ``shell``, ``system``) has a
``limit`` (None: unlimited, counted only), an optional ``period`` (seconds; the
count starts again every period, aligned to the account's ``period_start``;
None: over its lifetime), ``used`` and ``reserved`` tokens, and ``carved``: the
limits it has given to its children.

* ``reserve(principal, tokens)`` before a call is sent: refused (Exhausted) unless
  ``limit - used - reserved - carved`` covers it; the hold is written durably
  first, so 30 calls at once can never promise more than the limit, and a crash
  forgets nothing in flight.
* ``settle(hold, tokens)`` after: the hold becomes the tokens actually used (which
  may exceed it: a low estimate; the account then stays spent).
* ``carve(parent, child, tokens)``: a child's limit comes out of what its parent
  may still spend (the parent's own available tokens shrink by it).  A child's
  account follows its parent's period.  ``close(child)`` (the child is removed)
  charges the child's used and reserved tokens to the parent and gives back only
  the unspent rest; until then the carve stays taken, stopped or not, so a share
  can never be carved twice.
* Persisted through ``store`` (ContextStore.spend_*; context-store table ``spend``).
  At ``attach``: tokens still reserved by the previous aetherd are charged (those
  calls may have been served), and child accounts are folded into their parents
  (unless the child is durable: ``durable`` names the children declared again from
  their records, whose accounts stay carved out of their parents').
"""

import time


class Exhausted(Exception):
    """The account cannot cover the call; nothing was sent.  ``data``: the numbers."""

    def __init__(self, message, data=None):
        super().__init__(message)
        self.data = data or {}


class LedgerError(Exception):
    """The ledger could not record a change durably (the store refused the write)."""


class Account:
    __slots__ = ("principal", "parent", "limit", "period", "period_start", "used", "reserved",
                 "calls", "carved", "children", "ran_out")

    def __init__(self, principal, limit=None, period=None, parent=None, start=0.0):
        self.principal, self.limit, self.period, self.parent = principal, limit, period, parent
        self.period_start, self.used, self.reserved, self.calls = start, 0, 0, 0
        self.carved, self.children, self.ran_out = 0, set(), False

    def available(self):
        """Tokens a new call may still hold (None: unlimited)."""
        if self.limit is None:
            return None
        return self.limit - self.used - self.reserved - self.carved

    def row(self):
        return {"principal": self.principal, "parent": self.parent, "limit_tokens": self.limit,
                "period_s": self.period, "period_start": self.period_start, "used": self.used,
                "reserved": self.reserved, "calls": self.calls}


class Hold:
    """Tokens reserved for one call; settled once."""

    __slots__ = ("principal", "tokens", "settled")

    def __init__(self, principal, tokens):
        self.principal, self.tokens, self.settled = principal, tokens, False


class Ledger:
    def __init__(self, clock=time.time, log=None):
        self.clock, self.log = clock, log
        self.accounts = {}
        self.store = None
        self.durable = set()     # child principals that outlive a restart (aether/agent/persist.py)

    # -- persistence ----------------------------------------------------------------

    def attach(self, store):
        """Load the accounts a previous aetherd left; return the notices (strings)."""
        self.store = store
        rows = store.spend_accounts()
        notices = []
        for principal, row in rows.items():
            account = Account(principal, row["limit_tokens"], row["period_s"], row["parent"],
                              row["period_start"])
            account.used, account.calls = row["used"], row["calls"]
            if row["reserved"]:
                account.used += row["reserved"]
                notices.append(f"{principal}: {row['reserved']} tokens held by calls in flight when "
                               "aetherd stopped are charged (those calls may have been served)")
            self.accounts[principal] = account
        for account in [a for a in self.accounts.values() if a.parent is not None]:
            parent = self.accounts.get(account.parent)
            if parent is not None and account.principal in self.durable:
                parent.carved += account.limit if parent.limit is not None else 0
                parent.children.add(account.principal)      # a durable child keeps its own account
                continue
            if parent is not None:
                parent.used += account.used
                notices.append(f"{account.principal}: a child of {parent.principal} from before the "
                               f"restart; its {account.used} used tokens are charged to the parent")
            del self.accounts[account.principal]
            store.spend_delete(account.principal)
        store.spend_save([a.row() for a in self.accounts.values()])
        return notices

    def _save(self, *accounts):
        if self.store is None:
            return
        try:
            self.store.spend_save([a.row() for a in accounts])
        except Exception as e:  # noqa: BLE001 - any store failure: the change is refused
            raise LedgerError(f"the spend ledger could not be written ({e}); the call was not sent") from e

    # -- accounts ---------------------------------------------------------------------

    def open(self, principal, limit=None, period=None):
        """The account of a top-level principal, created or given a new limit and period
        (what it used so far is kept: a restart or a new manifest never resets it)."""
        account = self.accounts.get(principal)
        if account is None:
            account = self.accounts[principal] = Account(principal, limit, period, start=self.clock())
        elif account.parent is None:
            if account.period != period:
                account.period_start = self.clock()
            account.limit, account.period = limit, period
        self._save(account)
        return account

    def get(self, principal):
        return self.accounts.get(principal)

    def carve(self, parent, child, tokens):
        """Give ``child`` an account of ``tokens`` out of ``parent``'s; Exhausted if it cannot."""
        p = self.accounts.get(parent)
        if p is None:
            raise Exhausted(f"{parent} has no spend account to carve from")
        if child in self.accounts:
            raise Exhausted(f"{child} already has a spend account")
        self._roll(p)
        left = p.available()
        if left is not None and tokens > left:
            raise Exhausted(f"{child}: context.spend_tokens {tokens} exceeds what {parent} has left to "
                            f"give ({max(0, left)}: limit {p.limit}, used {p.used}, reserved {p.reserved}, "
                            f"already given to children {p.carved})",
                            {"needed": tokens, "available": max(0, left)})
        c = Account(child, tokens, p.period, parent, p.period_start)
        p.carved += tokens if p.limit is not None else 0
        p.children.add(child)
        self.accounts[child] = c
        try:
            self._save(p, c)
        except LedgerError:
            p.carved -= tokens if p.limit is not None else 0
            p.children.discard(child)
            del self.accounts[child]
            raise
        return c

    def close(self, principal):
        """A child is removed: its spending stays charged to its parent; the rest comes back."""
        c = self.accounts.get(principal)
        if c is None or c.parent is None:
            return
        for grandchild in list(c.children):
            self.close(grandchild)
        p = self.accounts.get(c.parent)
        del self.accounts[principal]
        if p is not None:
            p.used += c.used + c.reserved
            p.carved -= c.limit if p.limit is not None else 0
            p.children.discard(principal)
            self._save(p)
        if self.store is not None:
            self.store.spend_delete(principal)

    # -- calls ------------------------------------------------------------------------

    def reserve(self, principal, tokens):
        """A Hold of ``tokens`` on the account, durably recorded; Exhausted when not left."""
        account = self.accounts.get(principal)
        if account is None:
            raise Exhausted(f"{principal} has no model-token account; the call was not sent")
        self._roll(account)
        left = account.available()
        if left is not None and tokens > left:
            raise Exhausted(refusal(account, tokens, left), self.view(principal))
        account.reserved += tokens
        try:
            self._save(account)
        except LedgerError:
            account.reserved -= tokens
            raise
        return Hold(principal, tokens)

    def settle(self, hold, tokens):
        """The call is over: ``tokens`` were used.  Returns True when the account just ran out."""
        if hold.settled:
            return False
        hold.settled = True
        account = self.accounts.get(hold.principal)
        if account is None:              # closed meanwhile: its parent was charged the hold
            return False
        account.reserved -= hold.tokens
        account.used += max(0, int(tokens))
        account.calls += 1
        try:
            self._save(account)
        except LedgerError as e:
            if self.log:
                self.log.error(str(e))
        left = account.available()
        if left is not None and left <= 0 and not account.ran_out:
            account.ran_out = True
            return True
        return False

    def release(self, hold):
        """The call was never sent: give its tokens back (not counted as a call)."""
        if hold.settled:
            return
        hold.settled = True
        account = self.accounts.get(hold.principal)
        if account is not None:
            account.reserved -= hold.tokens
            try:
                self._save(account)
            except LedgerError as e:
                if self.log:
                    self.log.error(str(e))

    def _roll(self, account):
        """Start a new period when the current one is over (a child follows its parent)."""
        if account.parent is not None:
            parent = self.accounts.get(account.parent)
            if parent is not None:
                self._roll(parent)
                if parent.period_start != account.period_start:
                    account.period_start, account.used, account.ran_out = parent.period_start, 0, False
            return
        if account.period is None:
            return
        now = self.clock()
        if now >= account.period_start + account.period:
            periods = (now - account.period_start) // account.period
            account.period_start += periods * account.period
            account.used, account.ran_out = 0, False
            self._save(account)

    def view(self, principal):
        """What ``llm.usage`` shows of the spend."""
        account = self.accounts.get(principal)
        if account is None:
            return None
        self._roll(account)
        left = account.available()
        return {"spend_tokens": account.limit, "period_s": account.period,
                "period_ends": (account.period_start + account.period) if account.period else None,
                "used_tokens": account.used, "reserved_tokens": account.reserved,
                "carved_tokens": account.carved, "available_tokens": None if left is None else max(0, left),
                "parent": account.parent, "calls": account.calls, "durable": self.store is not None}


def refusal(account, needed, left):
    what = f"per {_period(account.period)}" if account.period else "over its lifetime"
    if left <= 0:
        return (f"{account.principal} has spent its model tokens ({account.used} used, "
                f"{account.reserved} held by calls in flight, {account.carved} given to children, of "
                f"{account.limit} {what}); nothing was sent")
    return (f"{account.principal} cannot cover this call: it may use up to {needed} tokens (prompt "
            f"estimate + max_tokens) and {left} of {account.limit} {what} remain (used {account.used}, "
            f"held by calls in flight {account.reserved}); nothing was sent (lower max_tokens, or "
            "raise context.spend_tokens)")


def _period(seconds):
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
