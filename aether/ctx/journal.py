"""The journal: an append-only, hash-chained record of what the system did.

Each entry has a sequence number (1, 2, 3... with no gaps), a time, the
*actor* (the caller's kernel identity, never the caller's own claim), the
*scope* it concerns (access control), a *kind* ('boot', 'agent.exit',
'tool.call'...), an optional goal, a JSON body and, for imported entries,
its origin.  Its hash is

    hash = sha256(prev_hash + netstrings(seq, ts, actor, scope, kind, goal_id, origin, body))

in lower-case hex, where ``prev_hash`` is the previous entry's hash (64
zeros for entry 1), each field is a netstring ``<len>:<utf-8 bytes>,`` (ts
as Python's shortest repr of the float, absent values as empty strings) and
the body is canonical JSON (sorted keys, no spaces, UTF-8, no NaN).  So
changing, inserting, removing or reordering any entry breaks the chain at
that entry; ``verify()`` recomputes it and names the first broken seq.

What the chain cannot show on its own is a cut-off tail (the last entries
removed and nothing after them): compare ``verify()``'s head with one
recorded elsewhere (``verify(expected_head=...)``).  Triggers refuse UPDATE
and DELETE, so the store's own code cannot change history either.
"""

import hashlib
import json

from ..steps import Pace, finish
from .errors import InvalidArgument
from .migrations import GENESIS
from .validate import MAX_BODY_BYTES

COLUMNS = "seq, ts, actor, scope, kind, goal_id, body, origin, prev_hash, hash"


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical(body):
    """The canonical JSON text of a body (a dict, list, str, number, bool or None)."""
    try:
        text = _CANONICAL.encode(body)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"body: must be JSON data (objects with string keys, lists, strings, "
                              f"finite numbers, true/false/null): {exc}") from None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgument("body: holds a lone surrogate (such as \\ud800), which is not "
                                  "text; send valid Unicode, or base64 for bytes") from None
    if len(text) > MAX_BODY_BYTES // 4 and len(text.encode("utf-8")) > MAX_BODY_BYTES:
        raise InvalidArgument(f"body: is {len(text.encode('utf-8'))} bytes as JSON; the limit is "
                              f"{MAX_BODY_BYTES}; store large data elsewhere and journal a reference")
    return text


def entry_hash(prev_hash, seq, ts, actor, scope, kind, goal_id, origin, body_text):
    """The chain hash of one entry (see the module doc)."""
    fields = (str(seq), repr(float(ts)), actor, scope, kind, "" if goal_id is None else str(goal_id),
              origin or "", body_text)
    data = "".join([f"{len(f) if f.isascii() else len(f.encode())}:{f}," for f in fields])
    return hashlib.sha256((prev_hash + data).encode()).hexdigest()


def head(db):
    """(seq, hash) of the last entry, or (0, GENESIS) for an empty journal.

    Cached on the store after each append; any rollback (db.rollbacks) makes
    the cache stale, so it is never ahead of what the database holds.
    """
    cached = db.journal_head
    if cached is not None and cached[0] == db.rollbacks:
        return cached[1], cached[2]
    row = db.one("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1")
    return (row[0], row[1]) if row else (0, GENESIS)


def append(db, ts, actor, scope, kind, body_text, goal_id=None, origin=None):
    """Append one entry (already validated, body canonical); return (seq, hash). Call inside atomic()."""
    last_seq, prev = head(db)
    seq = last_seq + 1
    digest = entry_hash(prev, seq, ts, actor, scope, kind, goal_id, origin, body_text)
    db.execute(f"INSERT INTO journal({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (seq, ts, actor, scope, kind, goal_id, body_text, origin, prev, digest))
    db.journal_head = (db.rollbacks, seq, digest)
    return seq, digest


def as_dict(row):
    """One journal row as the dict the API returns."""
    seq, ts, actor, scope, kind, goal_id, body, origin, prev_hash, digest = row
    entry = {"seq": seq, "ts": ts, "actor": actor, "scope": scope, "kind": kind,
             "goal_id": goal_id, "body": json.loads(body), "hash": digest}
    if origin:
        entry["origin"] = origin
    return entry


def query(db, scopes, kind=None, goal_id=None, after_seq=0, since=None, until=None, limit=100,
          newest_first=False):
    """Entries matching every given filter; scopes=None means all scopes."""
    where, params = ["seq > ?"], [after_seq]
    if scopes is not None:
        where.append(f"scope IN ({','.join('?' * len(scopes))})")
        params.extend(scopes)
    for clause, value in (("kind = ?", kind), ("goal_id = ?", goal_id), ("ts >= ?", since),
                          ("ts <= ?", until)):
        if value is not None:
            where.append(clause)
            params.append(value)
    order = "DESC" if newest_first else "ASC"
    rows = db.all(f"SELECT {COLUMNS} FROM journal WHERE {' AND '.join(where)} "
                  f"ORDER BY seq {order} LIMIT ?", (*params, limit))
    return [as_dict(r) for r in rows]


def verify(db, expected_head=None, batch=4096):
    """Recompute the chain: {'ok': True, 'entries', 'head'} or the first break {'ok': False, 'seq', 'reason'}.

    expected_head ({'seq', 'hash'}, e.g. a head printed on the console earlier)
    must still be in the chain: that also catches a cut-off tail.
    """
    anchor_ = anchor(expected_head)
    return check_anchor(db, finish(verify_steps(db, batch)), anchor_)


def verify_steps(db, batch=4096, until=None):
    """verify() a batch at a time: a generator that yields after each batch (the entries
    checked so far) and returns verify()'s answer without the anchor (``check_anchor``).

    It checks the entries up to the last one there when it starts (or up to ``until[0]``,
    which its caller may raise while it runs), each batch a query of its own (``seq >
    last``) of rows kept to a few milliseconds (``Pace``), so a caller may run other work
    between batches, writes to the journal included: the journal is append-only, so what
    a batch read stays read."""
    if until is None:
        until = [db.one("SELECT max(seq) FROM journal")[0] or 0]
    prev, expected_seq, last = GENESIS, 1, None
    pace = Pace(batch)
    while expected_seq <= until[0]:
        rows = db.all(f"SELECT {COLUMNS} FROM journal WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?",
                      (expected_seq, until[0], pace.start()))
        if not rows:
            break
        for row in rows:
            problem = _check(row, prev, expected_seq)
            if problem:
                return {"ok": False, "seq": row[0], "reason": problem}
            prev, expected_seq, last = row[9], row[0] + 1, row
        pace.done()
        yield expected_seq - 1
    if expected_seq <= until[0]:
        return {"ok": False, "seq": expected_seq,
                "reason": f"the journal ends at entry {expected_seq - 1} but held entry {until[0]} when the "
                          "check began: the tail was cut off"}
    return {"ok": True, "entries": expected_seq - 1,
            "head": {"seq": last[0], "hash": last[9]} if last else {"seq": 0, "hash": GENESIS}}


def check_anchor(db, result, anchor):
    """verify_steps' answer, checked against an anchor (seq, hash) from ``anchor``: the entry
    must still be there with that hash."""
    if anchor is None or not result.get("ok"):
        return result
    seq, digest = anchor
    row = db.one("SELECT hash FROM journal WHERE seq = ?", (seq,))
    if row is not None and seq > result["head"]["seq"]:
        return {"ok": False, "seq": seq, "reason": f"entry {seq} was written after the check began (it covered "
                                                   f"entries 1-{result['head']['seq']}); verify again"}
    if row is None:
        return {"ok": False, "seq": result["head"]["seq"] + 1,
                "reason": f"the journal ends at entry {result['head']['seq']} but entry {seq} was "
                          "recorded earlier: the tail was cut off"}
    if row[0] != digest:
        return {"ok": False, "seq": seq, "reason": f"entry {seq} differs from the head recorded earlier"}
    return result


def anchor(expected_head):
    """(seq, hash) from an expected_head as verify returns it; None for none (or seq 0)."""
    if expected_head is None:
        return None
    seq = expected_head.get("seq") if isinstance(expected_head, dict) else None
    digest = expected_head.get("hash") if isinstance(expected_head, dict) else None
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0 or not isinstance(digest, str):
        raise InvalidArgument(f"expected_head={expected_head!r}: give {{'seq': <int>, 'hash': <hex>}} "
                              "as returned by verify")
    return (seq, digest) if seq > 0 else None


def _check(row, prev, expected_seq):
    seq, ts, actor, scope, kind, goal_id, body, origin, prev_hash, digest = row
    if seq != expected_seq:
        missing = seq - expected_seq
        if missing < 0:
            return f"entry {seq} is out of order"
        return f"entry {seq} follows entry {expected_seq - 1}: {missing} entries are missing"
    if prev_hash != prev:
        return (f"entry {seq}'s prev_hash does not match entry {seq - 1}'s hash (an entry was "
                "changed, inserted or removed before it)")
    try:
        recomputed = entry_hash(prev_hash, seq, ts, actor, scope, kind, goal_id, origin, body)
    except (TypeError, ValueError, UnicodeError, AttributeError):
        return f"entry {seq} has a field of the wrong type"
    if recomputed != digest:
        return f"entry {seq}'s content does not match its hash (the entry was modified)"
    return None
