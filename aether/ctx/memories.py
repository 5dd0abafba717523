"""Memories: what an agent (or the user, or the system) knows, noted or observed.

A memory has a scope, a kind (fact, note, observation, summary), its text,
tags, an importance from 0 to 1, a pinned flag, its token cost (estimator +
framing), the author (the caller that wrote it), when it was created and
last used, and a state:

    live -> compacted (replaced by a summary; restorable)  -> purged
    live -> forgotten (ctx.forget; kept until retention)   -> purged
    compacted -> live (restore)

Text, tags, kind and scope never change; a purge blanks the text and keeps a
tombstone (id, kind, times, token count, sha256 digest of the text).  Every
state change after creation, and every pin or unpin, is recorded in
``memory_events`` so ``history.as_of`` can say exactly what was live when.
``last_used`` moves on ``recall`` and ``restore`` only, never because an
item appeared in a window (that would lock the same items in forever).
"""

import hashlib

from . import terms as fts
from .errors import Conflict, NotFound
from ..steps import Pace, finish

COLUMNS = ("id, scope_id, kind, text, tags, importance, pinned, tokens, author, created_at, "
           "last_used, state, state_at, compaction_id, digest")
INSERT = ("INSERT INTO memories(scope_id, kind, text, tags, importance, pinned, tokens, digest, author, "
          "created_at, last_used, state, state_at, compaction_id, origin) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def digest(text):
    """sha256 hex of the text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


MAX_MISMATCHES = 100        # rows named in one check_digests answer


def check_digests(db, scope_ids, name_of):
    """Recompute the digest of every stored text (scopes ``scope_ids``; None: all).

    {"ok", "checked", "mismatched": count, "rows": [{"memory_id", "scope", "stored", "computed"}]}:
    a row whose text was changed behind the store's back (by editing the database file) no
    longer matches the digest written with it."""
    return finish(check_digests_steps(db, scope_ids, name_of))


def check_digests_steps(db, scope_ids, name_of, batch=1000):
    """check_digests() a batch at a time (a generator; see journal.verify_steps): each batch
    is a query of its own (``id > last``), so writes may run between batches."""
    where, params = "text IS NOT NULL AND id > ?", ()
    if scope_ids is not None:
        if not scope_ids:
            return {"ok": True, "checked": 0, "mismatched": 0, "rows": []}
        # "+scope_id": not through the scope index, whose order is not id's (each batch would
        # sort every remaining row); by rowid from the last id instead: linear in all
        where += f" AND +scope_id IN ({','.join('?' * len(scope_ids))})"
        params = tuple(scope_ids)
    checked, mismatched, bad, last = 0, 0, [], 0
    pace = Pace(batch)
    while True:
        want = pace.start()
        rows = db.all(f"SELECT id, scope_id, text, digest FROM memories WHERE {where} ORDER BY id LIMIT ?",
                      (last, *params, want))
        for mid, scope_id, text, stored in rows:
            checked += 1
            computed = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
            if computed != stored:
                mismatched += 1
                if len(bad) < MAX_MISMATCHES:
                    bad.append({"memory_id": mid, "scope": name_of(scope_id), "stored": stored,
                                "computed": computed})
            last = mid
        if len(rows) < want:
            break
        pace.done()
        yield checked
    return {"ok": not mismatched, "checked": checked, "mismatched": mismatched, "rows": bad}


def as_dict(row, scope_name):
    """One memory row as the dict the API returns."""
    (mid, _, kind, text, tags, importance, pinned, tokens, author, created_at, last_used, state,
     state_at, compaction_id, text_digest) = row
    item = {"id": mid, "scope": scope_name, "kind": kind, "text": text,
            "tags": tags.split() if tags else [], "importance": importance, "pinned": bool(pinned),
            "tokens": tokens, "author": author, "created_at": created_at, "last_used": last_used,
            "state": state, "state_at": state_at, "digest": text_digest}
    if compaction_id is not None:
        item["compaction_id"] = compaction_id
    return item


class Memories:
    """Rows of the memories table and their events."""

    def __init__(self, db, access, clock):
        self.db, self.access, self.clock = db, access, clock

    def insert(self, scope_id, kind, text, tags, importance, pinned, tokens, author, now,
               state="live", last_used=None, state_at=None, compaction_id=None, origin=None,
               text_digest=None):
        """Insert one row (validated by the caller); return its id. Call inside atomic()."""
        cur = self.db.execute(INSERT, (
            scope_id, kind, text, tags, importance, int(pinned), tokens,
            text_digest or digest(text), author, now, now if last_used is None else last_used,
            state, now if state_at is None else state_at, compaction_id, origin))
        return cur.lastrowid

    def row(self, memory_id):
        """The row of a memory, or NotFound."""
        row = self.db.one(f"SELECT {COLUMNS} FROM memories WHERE id = ?", (memory_id,))
        if row is None:
            raise NotFound(f"memory {memory_id} does not exist")
        return row

    def scope_of(self, row):
        return self.access.name_of(row[1])

    def get(self, memory_id):
        row = self.row(memory_id)
        return as_dict(row, self.scope_of(row))

    def event(self, memory_id, event, actor, now, ref=None):
        self.db.execute("INSERT INTO memory_events(memory_id, ts, event, ref, actor) VALUES (?, ?, ?, ?, ?)",
                        (memory_id, now, event, ref, actor))

    def set_state(self, memory_id, state, event, actor, now, ref=None, compaction_id=None):
        """Move a memory to state and record the event. Call inside atomic()."""
        self.db.execute("UPDATE memories SET state = ?, state_at = ?, compaction_id = ? WHERE id = ?",
                        (state, now, compaction_id, memory_id))
        self.event(memory_id, event, actor, now, ref)

    def forget(self, memory_id, actor):
        """live -> forgotten; the text stays until a purge."""
        row = self.row(memory_id)
        if row[11] != "live":
            raise Conflict(f"memory {memory_id} is {row[11]}, not live; only live memories can be "
                           "forgotten" + (f" (restore compaction {row[13]} first)" if row[13] else ""))
        now = self.clock()
        with self.db.atomic():
            self.set_state(memory_id, "forgotten", "forgotten", actor, now)
        return {"id": memory_id, "state": "forgotten", "state_at": now}

    def pin(self, memory_id, pinned, actor):
        """Set or clear the pinned flag, with an event when it changes."""
        row = self.row(memory_id)
        if bool(row[6]) == pinned:
            return {"id": memory_id, "pinned": pinned, "changed": False}
        now = self.clock()
        with self.db.atomic():
            self.db.execute("UPDATE memories SET pinned = ? WHERE id = ?", (int(pinned), memory_id))
            self.event(memory_id, "pinned" if pinned else "unpinned", actor, now)
        return {"id": memory_id, "pinned": pinned, "changed": True}

    def touch(self, memory_ids, now):
        """Set last_used (bookkeeping: committed without fsync, see store.atomic)."""
        with self.db.atomic(durable=False):
            self.db.executemany("UPDATE memories SET last_used = ? WHERE id = ? AND state = 'live'",
                                [(now, i) for i in memory_ids])

    def search(self, scope_ids, query, state="live", kinds=None, limit=20):
        """Items of the given scopes (None: all) ranked by BM25; with no usable terms, newest first."""
        words = fts.terms(query or "")
        index = "memories_fts" if state == "live" else "compacted_fts"
        kind_sql, kind_params = _kinds(kinds)
        if not words:
            return self._recent(scope_ids, state, kind_sql, kind_params, limit), [], []
        kept, dropped, _ = fts.plan(self.db, index, words, scope_ids, 8 * fts.DEFAULT_POSTINGS_BUDGET)
        if not kept:
            return [], kept, dropped
        scope_sql, scope_params = "", ()
        if scope_ids is not None:                 # the sid filter, checked again on the rows
            scope_sql = f"AND m.scope_id IN ({','.join('?' * len(scope_ids))})"
            scope_params = tuple(scope_ids)
        rows = self.db.all(
            f"SELECT {_prefixed('m')}, -f.rank FROM {index} f JOIN memories m ON m.id = f.rowid "
            f"WHERE {index} MATCH ? {scope_sql} {kind_sql} ORDER BY f.rank LIMIT ?",
            (fts.expression(kept, scope_ids), *scope_params, *kind_params, limit))
        return [self._with_score(r) for r in rows], kept, dropped

    def _recent(self, scope_ids, state, kind_sql, kind_params, limit):
        where, params = ["m.state = ?"], [state]
        if scope_ids is not None:
            where.append(f"m.scope_id IN ({','.join('?' * len(scope_ids))})")
            params.extend(scope_ids)
        rows = self.db.all(f"SELECT {_prefixed('m')}, NULL FROM memories m WHERE {' AND '.join(where)} "
                           f"{kind_sql} ORDER BY m.created_at DESC, m.id DESC LIMIT ?",
                           (*params, *kind_params, limit))
        return [self._with_score(r) for r in rows]

    def _with_score(self, row):
        item = as_dict(row[:-1], self.access.name_of(row[1]))
        if row[-1] is not None:
            item["score"] = row[-1]
        return item


def _prefixed(alias):
    return ", ".join(f"{alias}.{c.strip()}" for c in COLUMNS.split(","))


def _kinds(kinds):
    if not kinds:
        return "", ()
    return f"AND m.kind IN ({','.join('?' * len(kinds))})", tuple(kinds)
