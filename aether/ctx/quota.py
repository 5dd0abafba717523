"""Quotas, usage and context pressure, per scope, per principal and system-wide.

*Usage* of a scope is what it holds: live items and their tokens (what
windows draw from and what the quota limits) and retained items (compacted
or forgotten, recoverable until a purge).  The counters are kept by triggers
(migrations.py), so reading them costs one row.

A scope's *quota* is a number of live tokens and of live items; NULL in the
database means the store's default, -1 unlimited ("max").  When a write takes
a scope over its quota, compaction (compaction.py) brings it back under.

*Context pressure* is demand against budget, reported like the kernel's PSI
(/proc/pressure/memory) for every principal and for the whole system:

* ``storage``: live tokens / quota tokens of a scope (1.0 = full; above 1.0
  only when pinned items alone exceed it, or after a restore);
* for the windows a principal asked for in the last 10, 60 and 300 seconds:
  ``some`` = % of windows that left out any live item of their scopes
  (the budget could not hold everything),
  ``full`` = % of windows where even the pinned items did not fit, and
  ``demand`` = sum of demanded tokens / sum of budgets (1.0 = demand equals
  budget); ``total`` = number of windows (some/full: how many were short).
  A window's demand is its pinned tokens plus the live items its query
  matches (every live item when it has no query) times their mean size,
  counting at most 4 x the items that fit: demand saturates at about 4x.
"""

from collections import deque

HORIZONS = (10, 60, 300)
MAX_SAMPLES = 4096          # per principal; older samples fall out first


def effective(value, default):
    """A stored quota (NULL, -1 or a number) as a limit (None = unlimited)."""
    if value is None:
        value = default
    return None if value is None or value < 0 else value


def ratio(used, limit):
    return 0.0 if not limit else round(used / limit, 4)


def scope_usage(row, defaults):
    """The usage dict of one scopes row (name, owner, quota_tokens, quota_items, live..., retained...)."""
    name, owner, q_tokens, q_items, live_items, live_tokens, ret_items, ret_tokens = row
    tokens_limit = effective(q_tokens, defaults[0])
    items_limit = effective(q_items, defaults[1])
    pressure = max(ratio(live_tokens, tokens_limit), ratio(live_items, items_limit))
    return {"scope": name, "owner": owner,
            "live": {"items": live_items, "tokens": live_tokens},
            "retained": {"items": ret_items, "tokens": ret_tokens},
            "quota": {"tokens": "max" if tokens_limit is None else tokens_limit,
                      "items": "max" if items_limit is None else items_limit},
            "storage_pressure": pressure}


USAGE_COLUMNS = ("name, owner, quota_tokens, quota_items, live_items, live_tokens, retained_items, "
                 "retained_tokens")


class Quotas:
    """Reads and sets scope quotas; reports usage."""

    def __init__(self, db, default_tokens, default_items):
        self.db = db
        self.defaults = (default_tokens, default_items)

    def limits(self, scope_id):
        """(token limit or None, item limit or None, live tokens, live items) of a scope."""
        row = self.db.one("SELECT quota_tokens, quota_items, live_tokens, live_items FROM scopes "
                          "WHERE id = ?", (scope_id,))
        return (effective(row[0], self.defaults[0]), effective(row[1], self.defaults[1]), row[2], row[3])

    def set(self, scope_id, tokens, items):
        with self.db.atomic():
            self.db.execute("UPDATE scopes SET quota_tokens = ?, quota_items = ? WHERE id = ?",
                            (tokens, items, scope_id))

    def usage(self, names=None):
        """Usage of the named scopes (None: all), by name."""
        if names is None:
            rows = self.db.all(f"SELECT {USAGE_COLUMNS} FROM scopes ORDER BY name")
        else:
            rows = self.db.all(f"SELECT {USAGE_COLUMNS} FROM scopes WHERE name IN "
                               f"({','.join('?' * len(names))}) ORDER BY name", names)
        return [scope_usage(r, self.defaults) for r in rows]

    def totals(self):
        """System-wide live and retained items and tokens."""
        row = self.db.one("SELECT count(*), total(live_items), total(live_tokens), total(retained_items), "
                          "total(retained_tokens) FROM scopes")
        return {"scopes": row[0], "live": {"items": int(row[1]), "tokens": int(row[2])},
                "retained": {"items": int(row[3]), "tokens": int(row[4])}}

    def pinned_tokens(self, scope_id):
        row = self.db.one("SELECT total(tokens) FROM memories WHERE scope_id = ? AND pinned = 1 "
                          "AND state = 'live'", (scope_id,))
        return int(row[0])


class Pressure:
    """Sliding-window accounting of window demand, per principal and for the system."""

    def __init__(self, clock):
        self.clock = clock
        self.samples = {}         # principal -> deque of (t, demand, budget, some, full)
        self.totals = {}          # principal -> [windows, some, full]

    def record(self, principal, demand, budget, some, full):
        t = self.clock()
        for key in (principal, "*"):
            ring = self.samples.setdefault(key, deque(maxlen=MAX_SAMPLES))
            ring.append((t, demand, budget, some, full))
            counts = self.totals.setdefault(key, [0, 0, 0])
            counts[0] += 1
            counts[1] += some
            counts[2] += full

    def report(self, principal="*"):
        """{'some': {...}, 'full': {...}, 'demand': {...}} for a principal ('*': the system)."""
        now = self.clock()
        ring = self.samples.get(principal, ())
        out = {"some": {}, "full": {}, "demand": {}}
        for horizon in HORIZONS:
            recent = [s for s in ring if now - s[0] <= horizon]
            key = f"avg{horizon}"
            n = len(recent)
            out["some"][key] = round(100.0 * sum(s[3] for s in recent) / n, 2) if n else 0.0
            out["full"][key] = round(100.0 * sum(s[4] for s in recent) / n, 2) if n else 0.0
            budget = sum(s[2] for s in recent)
            out["demand"][key] = round(sum(s[1] for s in recent) / budget, 4) if budget else 0.0
        windows, some, full = self.totals.get(principal, (0, 0, 0))
        out["some"]["total"], out["full"]["total"], out["demand"]["total"] = some, full, windows
        return out


def psi_lines(report):
    """A pressure report as /proc/pressure-style lines."""
    lines = []
    for name in ("some", "full", "demand"):
        fields = report[name]
        avgs = " ".join(f"avg{h}={fields[f'avg{h}']:.2f}" for h in HORIZONS)
        lines.append(f"{name} {avgs} total={fields['total']}")
    return lines
