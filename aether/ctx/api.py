"""ContextStore: every call the ABI exposes as ``ctx.*``, with validation and access checks.

Each public method takes the caller's principal first (the kernel identity the
ABI server determined, never a value the client sent), validates every
argument (InvalidArgument), checks the caller's grant (PermissionDenied),
does its work in one transaction and returns plain JSON-able data.  Errors
are the named exceptions of errors.py.

Writes are acknowledged durable when the method returns (store.py).  To
acknowledge many writes with one fsync, run them inside ``transaction()``
or hand them to ``run_batch`` (each op in its own savepoint: one op's
error does not undo the others).

Disk: every principal's journal entries and memories are counted in bytes
(schema migration 3, ``disk_usage``).  A principal other than the system,
the shell and the host writes only while ``disk_quota(principal)`` (given by
aetherd: an agent's manifest ``limits.disk``) allows it (QuotaExceeded), and
never into the last ``reserve_bytes`` of the disk (DiskReserved), which are
the system's: one agent filling the disk does not stop the others' records.

``read_only="auto"`` opens the store read-only when the file or its disk
cannot be written (a read-only data disk at boot): reads work, writes are
refused with StoreReadOnlyError, and ``read_only_reason`` says why.

Not thread-safe: one thread owns a ContextStore (see docs/context-store.md).
"""

import os
import time

from . import access as acl
from . import journal as jr
from . import validate as check
from .access import READ, WRITE, Access
from .compaction import Compactor, ExtractiveSummariser
from .errors import (ContextError, DiskReserved, InvalidArgument, PermissionDenied, QuotaExceeded,
                     StoreError, StoreFullError, StoreReadOnlyError)
from .goals import Goals
from .memories import Memories, check_digests_steps
from ..steps import finish
from .quota import Pressure, Quotas
from .sharing import Sharing
from .migrations import ROW_BYTES
from .store import Store, filesystem
from .terms import DEFAULT_POSTINGS_BUDGET
from .tokens import DEFAULT as DEFAULT_ESTIMATOR
from .tokens import check as check_estimator
from .tokens import item_tokens
from .upkeep import Upkeep
from .window import Assembler

DEFAULT_PATH = "/var/lib/aether/context.db"
DEFAULT_QUOTA_TOKENS = 65536
DEFAULT_QUOTA_ITEMS = 4096
DEFAULT_HALF_LIFE = 86400.0           # seconds: recency halves every day
DEFAULT_BUDGET = 4096
# Journal kinds only the store and aetherd write: an agent appending "tool.call" or "agent.answer"
# to its own scope would forge the record of a tool call or of a person's answer.
RESERVED_KINDS = ("ctx.", "goal.", "agent.", "tool.call")
VOLATILE_FILESYSTEMS = ("tmpfs", "ramfs", "rootfs")

# Calls run_batch accepts (the writes an ABI server may group into one commit).
BATCHABLE = ("append", "remember", "forget", "pin", "create_goal", "add_step", "update_step",
             "update_goal", "grant", "revoke", "create_scope", "set_quota", "compact", "restore")
# Calls that write with one statement, after all their checks: they need no savepoint of their own.
ONE_STATEMENT = ("append",)


class ContextStore(Upkeep, Sharing):
    """The context store: journal, memories, goals, windows here; quotas, compaction, spend and
    retention in Upkeep (upkeep.py); scopes, grants, export and as-of in Sharing (sharing.py)."""

    def __init__(self, path=DEFAULT_PATH, *, clock=None, estimator=None, summariser=None,
                 quota_tokens=DEFAULT_QUOTA_TOKENS, quota_items=DEFAULT_QUOTA_ITEMS, auto_compact=True,
                 half_life=DEFAULT_HALF_LIFE, postings_budget=DEFAULT_POSTINGS_BUDGET, read_only=False,
                 check_same_thread=True, migrations=None, disk_quota=None, reserve_bytes=0):
        self.clock = clock or time.time
        self.estimator = check_estimator(estimator or DEFAULT_ESTIMATOR)
        self.summariser = _check_summariser(summariser or ExtractiveSummariser())
        if check.seconds(half_life, "half_life") <= 0:
            raise InvalidArgument(f"half_life={half_life!r}: must be more than 0 seconds")
        check.positive_int(postings_budget, "postings_budget")
        self.auto_compact = check.flag(auto_compact, "auto_compact")
        if disk_quota is not None and not callable(disk_quota):
            raise InvalidArgument("disk_quota: give a function principal -> bytes (or None: no quota)")
        self.disk_quota = disk_quota
        self.reserve_bytes = check.positive_int(reserve_bytes, "reserve_bytes", allow_zero=True)
        self.db = _open(path, read_only, migrations, check_same_thread)
        try:
            self.store_id = self._identity()
            self.access = Access(self.db, self.clock)
            self.memories = Memories(self.db, self.access, self.clock)
            self.quotas = Quotas(self.db, check.quota_value(quota_tokens, "quota_tokens"),
                                 check.quota_value(quota_items, "quota_items"))
            self.pressure_window = Pressure(self.clock)
            self.compactor = Compactor(self.db, self.access, self.memories, self.quotas, self._journal,
                                       self.clock, self.estimator, self.summariser, half_life)
            self.goal_rows = Goals(self.db, self.access, self._journal, self.clock)
            self.assembler = Assembler(self.db, self.access, half_life, postings_budget)
            self._recount_if_estimator_changed()
        except BaseException:
            self.db.close()
            raise

    # ------------------------------------------------------------ lifecycle

    def close(self):
        """Close the database (a clean close checkpoints the WAL)."""
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def transaction(self):
        """Context manager: every write inside commits (and is acknowledged) together, with one fsync."""
        return self.db.atomic()

    def run_batch(self, ops):
        """Run [(call name, {kwargs})] in one transaction, each in a savepoint; return [(ok, result or error)].

        One commit (one fsync) acknowledges every op that returned ("ok", ...).
        An op's ContextError is its own ("error", exc); a StoreError (disk
        full, read-only...) aborts the batch and is raised: then nothing of
        the batch was written.
        """
        if not isinstance(ops, (list, tuple)):
            raise InvalidArgument("ops: give a list of (call name, {arguments}) pairs")
        results = []
        with self.db.atomic():
            for op in ops:
                results.append(self._batch_op(op))
        return results

    def _batch_op(self, op):
        try:
            name, kwargs = op
        except (TypeError, ValueError):
            return ("error", InvalidArgument(f"op {op!r}: give a (call name, {{arguments}}) pair"))
        if name not in BATCHABLE or not isinstance(kwargs, dict):
            return ("error", InvalidArgument(f"op {name!r}: batchable calls are {', '.join(BATCHABLE)}, "
                                             "each with a dict of arguments"))
        try:
            if name in ONE_STATEMENT:
                return ("ok", getattr(self, name)(**kwargs))
            with self.db.atomic():
                return ("ok", getattr(self, name)(**kwargs))
        except StoreError:
            raise
        except ContextError as exc:
            return ("error", exc)
        except TypeError as exc:
            if exc.__traceback__.tb_next is not None:
                raise                       # a bug inside the call, not its arguments
            return ("error", InvalidArgument(f"op {name}: {exc}"))

    def info(self):
        """Where the store lives and what it runs with."""
        mount, fstype = filesystem(self.db.path)
        sizes = {}
        for suffix in ("", "-wal"):
            try:
                sizes["db" if not suffix else "wal"] = os.path.getsize(self.db.path + suffix)
            except OSError:
                sizes["db" if not suffix else "wal"] = 0
        seq, digest = jr.head(self.db)
        return {"path": self.db.path, "store_id": self.store_id, "schema_version": self.db.version,
                "estimator": self.estimator.name, "summariser": self.summariser.name,
                "filesystem": {"mount": mount, "type": fstype},
                "durable": fstype is not None and fstype not in VOLATILE_FILESYSTEMS,
                "read_only": self.db.read_only, "writable": self.db.writable(), "bytes": sizes,
                **({"read_only_reason": self.db.read_only_reason} if self.db.read_only else {}),
                "journal_head": {"seq": seq, "hash": digest}}

    # ------------------------------------------------------------- journal

    def append(self, caller, kind, body=None, scope=None, goal_id=None):
        """Append a journal entry (actor = caller); return {'seq', 'hash', 'ts'}."""
        caller = check.principal(caller)
        kind = check.journal_kind(kind)
        if kind.startswith(RESERVED_KINDS) and not acl.privileged(caller):
            raise PermissionDenied(f"{caller} may not append kind {kind!r}: kinds starting with "
                                   f"{', '.join(RESERVED_KINDS)} are written by the store and aetherd "
                                   "themselves; name your own kind (e.g. note.<what>)")
        scope = self._scope_arg(caller, scope)
        if scope != caller:                 # an agent's own scope needs no lookup
            self.access.require(caller, scope, WRITE)
        if goal_id is not None:
            self.goal_rows.scope_of(check.ident(goal_id, "goal_id"))
        body_text = jr.canonical({} if body is None else body)
        self._check_disk(caller, len(body_text.encode("utf-8")) + ROW_BYTES)
        ts = self.clock()
        if self.db.in_transaction:          # a group commit: one statement needs no savepoint
            seq, digest = jr.append(self.db, ts, caller, scope, kind, body_text, goal_id)
        else:
            with self.db.atomic():
                seq, digest = jr.append(self.db, ts, caller, scope, kind, body_text, goal_id)
        return {"seq": seq, "hash": digest, "ts": ts}

    def journal(self, caller, scope=None, kind=None, goal_id=None, after_seq=0, since=None, until=None,
                limit=100, newest_first=False):
        """Journal entries the caller may read, filtered; oldest first unless newest_first."""
        caller = check.principal(caller)
        if kind is not None:
            check.journal_kind(kind)
        if goal_id is not None:
            check.ident(goal_id, "goal_id")
        check.positive_int(after_seq, "after_seq", allow_zero=True)
        check.flag(newest_first, "newest_first")
        names = self._readable_names(caller, scope)
        return jr.query(self.db, names, kind, goal_id, after_seq, check.timestamp(since, "since"),
                        check.timestamp(until, "until"), check.limit(limit), newest_first)

    def verify(self, caller, expected_head=None):
        """Recompute the journal's hash chain and the digests of the memories the caller may read:
        ok, or the first seq where the chain breaks and the memories whose text no longer matches."""
        caller = check.principal(caller)
        result = jr.verify(self.db, expected_head)
        digests = self.check_digests(caller)
        result["digests"] = digests
        result["ok"] = bool(result.get("ok")) and digests["ok"]
        return result

    def check_digests(self, caller):
        """Every stored memory text against its sha256 digest, in the scopes the caller may read."""
        return finish(self.check_digests_steps(caller))

    def check_digests_steps(self, caller):
        """check_digests() a batch at a time (a generator: memories.check_digests_steps)."""
        ids = self._readable_ids(check.principal(caller), None)
        return check_digests_steps(self.db, ids, self.access.name_of)

    # ----------------------------------------------------------------- disk

    def disk_bytes(self, principal):
        """Bytes the principal's journal entries and memories hold in the store."""
        row = self.db.one("SELECT bytes FROM disk_usage WHERE principal = ?", (check.principal(principal),))
        return row[0] if row else 0

    def _check_disk(self, caller, adding):
        """Refuse a write of ``adding`` bytes by caller past its quota or into the system's reserve."""
        if acl.privileged(caller) or caller == "host":
            return
        if self.reserve_bytes and self.db.path != ":memory:":
            try:
                st = os.statvfs(os.path.dirname(os.path.abspath(self.db.path)))
                free = st.f_bavail * st.f_frsize
            except OSError:
                free = None
            if free is not None and free - adding < self.reserve_bytes:
                raise DiskReserved(f"{caller} may not write {adding} more bytes: the data disk has {free} bytes "
                                   f"free and the last {self.reserve_bytes} are kept for the system; forget "
                                   "memories or delete files you no longer need")
        limit = self.disk_quota(caller) if self.disk_quota is not None else None
        if limit is not None:
            used = self.disk_bytes(caller)
            if used + adding > limit:
                raise QuotaExceeded(f"{caller} may not write {adding} more bytes: its journal entries and "
                                    f"memories hold {used} bytes and its disk quota leaves room for "
                                    f"{max(0, limit)}; forget memories it no longer needs, or ask for a "
                                    "larger limits.disk in its manifest")

    def _journal(self, actor, scope, kind, body, goal_id=None, ts=None, origin=None):
        """Internal append (already authorised); returns the seq."""
        body_text = jr.canonical(body)
        with self.db.atomic(savepoint=False):
            seq, _ = jr.append(self.db, self.clock() if ts is None else ts, actor, scope, kind, body_text,
                               goal_id, origin)
        return seq

    # ------------------------------------------------------------ memories

    def remember(self, caller, text, kind="note", scope=None, tags=None, importance=0.5, pinned=False):
        """Store a memory; compacts the scope when it goes over quota. Returns {'id', 'scope', 'tokens', ...}."""
        caller = check.principal(caller)
        text = check.text(text)
        kind = check.kind(kind)
        tags = check.tags(tags)
        importance = check.importance(importance)
        pinned = check.flag(pinned, "pinned")
        scope = self._scope_arg(caller, scope)
        self.access.require(caller, scope, WRITE)
        self._check_disk(caller, 2 * len(text.encode("utf-8")) + len(" ".join(tags)) + ROW_BYTES)
        tokens = item_tokens(self.estimator, text)
        now = self.clock()
        with self.db.atomic(savepoint=False):      # each step leaves a consistent state
            scope_id, _ = self.access.ensure(scope)
            if pinned:
                self._check_pinned_room(scope, scope_id, tokens)
            memory_id = self.memories.insert(scope_id, kind, text, tags, importance, pinned, tokens, caller, now)
            compactions = self._maybe_compact(scope_id, caller)
        result = {"id": memory_id, "scope": scope, "kind": kind, "tokens": tokens, "created_at": now}
        if compactions:
            result["compactions"] = compactions
        return result

    def _check_pinned_room(self, scope, scope_id, tokens):
        limit = self.quotas.limits(scope_id)[0]
        pinned = self.quotas.pinned_tokens(scope_id)
        if limit is not None and pinned + tokens > limit:
            raise QuotaExceeded(f"pinning this item would put {pinned + tokens} pinned tokens in {scope}, "
                                f"over its quota of {limit}: pinned items are never compacted; unpin "
                                "something, store it unpinned, or raise the quota (ctx.set_quota)")

    def _maybe_compact(self, scope_id, actor):
        if self.auto_compact and self.compactor.over_quota(scope_id):
            return self.compactor.compact(scope_id, actor)
        return []

    def forget(self, caller, memory_id):
        """Mark a live memory forgotten (kept until the retention policy purges it)."""
        caller, row = self._memory_for(caller, memory_id, WRITE)
        return self.memories.forget(row[0], caller)

    def pin(self, caller, memory_id, pinned=True):
        """Pin (always first in windows, never compacted) or unpin a memory."""
        caller, row = self._memory_for(caller, memory_id, WRITE)
        pinned = check.flag(pinned, "pinned")
        if pinned and not row[6]:
            if row[11] != "live":
                raise InvalidArgument(f"memory {row[0]} is {row[11]}; only live memories can be pinned")
            self._check_pinned_room(self.access.name_of(row[1]), row[1], row[7])
        return self.memories.pin(row[0], pinned, caller)

    def recall(self, caller, memory_id):
        """One memory by id (any state); a live one counts as used now."""
        caller, row = self._memory_for(caller, memory_id, READ)
        item = self.memories.get(row[0])
        if row[11] == "live" and not self.db.read_only:
            now = self.clock()
            try:
                self.memories.touch([row[0]], now)
                item["last_used"] = now
            except (StoreFullError, StoreReadOnlyError):
                pass                        # bookkeeping only: a read must work on a full or read-only disk
        return item

    def search(self, caller, query="", scopes=None, kinds=None, state="live", limit=20):
        """Memories ranked by BM25 for query (newest first without one) in the caller's readable scopes."""
        caller = check.principal(caller)
        query = check.text(query, "query", allow_empty=True)
        check.choice(state, "state", ("live", "compacted"))
        kinds = [check.kind(k) for k in kinds] if kinds else None
        ids = self._readable_ids(caller, scopes)
        if ids == []:
            return {"items": [], "terms": {"used": [], "dropped": []}}
        items, kept, dropped = self.memories.search(ids, query, state, kinds, check.limit(limit))
        return {"items": items, "terms": {"used": kept, "dropped": [{"term": t, "items": c, "reason": r}
                                                                     for t, c, r in dropped]}}

    def _memory_for(self, caller, memory_id, need):
        caller = check.principal(caller)
        row = self.memories.row(check.ident(memory_id, "memory_id"))
        self.access.require(caller, self.access.name_of(row[1]), need)
        return caller, row

    # --------------------------------------------------------------- goals

    def create_goal(self, caller, intent, plan="", steps=None, scope=None):
        """A new goal (status open) with optional steps; journalled as goal.create."""
        caller = check.principal(caller)
        scope = self._scope_arg(caller, scope)
        self.access.require(caller, scope, WRITE)
        if steps is not None and not isinstance(steps, (list, tuple)):
            raise InvalidArgument("steps: give a list of step descriptions")
        return self.goal_rows.create(caller, scope, intent, plan, steps)

    def add_step(self, caller, goal_id, description):
        """Append a step (pending) to a goal."""
        caller = self._goal_for(caller, goal_id, WRITE)
        return self.goal_rows.add_step(caller, goal_id, description)

    def update_step(self, caller, goal_id, step, status, outcome=None):
        """Set a step's status (pending, running, done, failed, skipped) and outcome."""
        caller = self._goal_for(caller, goal_id, WRITE)
        return self.goal_rows.update_step(caller, goal_id, check.positive_int(step, "step"), status, outcome)

    def update_goal(self, caller, goal_id, status=None, plan=None, outcome=None):
        """Change a goal's status (open, active, done, failed, abandoned), plan or outcome."""
        caller = self._goal_for(caller, goal_id, WRITE)
        if status is None and plan is None and outcome is None:
            raise InvalidArgument("update_goal: give at least one of status, plan, outcome")
        return self.goal_rows.update(caller, goal_id, status, plan, outcome)

    def goal(self, caller, goal_id, history=True):
        """A goal with its steps and (history=True) its journal entries."""
        self._goal_for(caller, goal_id, READ)
        goal = self.goal_rows.get(goal_id)
        if check.flag(history, "history"):
            goal["journal"] = jr.query(self.db, None, goal_id=goal_id, limit=check.MAX_LIMIT)
        return goal

    def goals(self, caller, scope=None, status=None, limit=50):
        """Goals in the caller's readable scopes (or one scope), most recently updated first."""
        caller = check.principal(caller)
        ids = self._readable_ids(caller, scope)
        if ids == []:
            return []
        return self.goal_rows.list(ids, status, check.limit(limit))

    def _goal_for(self, caller, goal_id, need):
        caller = check.principal(caller)
        scope = self.goal_rows.scope_of(check.ident(goal_id, "goal_id"))
        self.access.require(caller, scope, need)
        return caller

    # -------------------------------------------------------------- window

    def window(self, caller, query="", budget_tokens=DEFAULT_BUDGET, scopes=None):
        """The best items for caller within budget_tokens: pinned first, then by relevance, recency and
        importance; with what was left out and why (see window.py)."""
        caller = check.principal(caller)
        query = check.text(query, "query", allow_empty=True)
        budget = check.budget(budget_tokens)
        names = self._readable_names(caller, scopes)
        ids = None if names is None else self._ids(names)
        if ids == []:
            result = {"budget_tokens": budget, "tokens_used": 0, "items": [], "left_out": [],
                      "left_out_counts": {}, "left_out_listed": 0, "exact": True, "threshold": 0.0,
                      "terms": {"used": [], "dropped": []}, "demand_tokens": 0}
        else:
            result = self.assembler.assemble(ids, query, budget, self.clock())
        result["query"], result["scopes"] = query, names if names is not None else "all"
        counts = result["left_out_counts"]
        self.pressure_window.record(caller, result["demand_tokens"], budget,
                                    int(any(counts.get(k) for k in ("over_budget", "lower_score",
                                                                    "not_ranked", "pinned_over_budget"))),
                                    int(bool(counts.get("pinned_over_budget"))))
        return result

    # -------------------------------------------------------------- helpers

    def _scope_arg(self, caller, scope):
        if scope is not None:
            return check.scope(scope)
        home = acl.home(caller)
        if home is None:
            raise InvalidArgument(f"scope: {caller} has no scope of its own; name one it has a "
                                  "read-write grant on")
        return home

    def _readable_names(self, caller, scopes):
        """Scope names to read: the given ones (each checked) or all the caller may read (None: all)."""
        names = check.scopes(scopes)
        if names is None:
            return self.access.readable(caller)
        for name in names:
            self.access.require(caller, name, READ)
        return names

    def _readable_ids(self, caller, scopes):
        names = self._readable_names(caller, scopes)
        return None if names is None else self._ids(names)

    def _ids(self, names):
        hits = (self.access.lookup(n) for n in names)
        return [h[0] for h in hits if h is not None]

    def _identity(self):
        store_id = self.db.meta("store_id")
        if store_id is None:
            store_id = os.urandom(16).hex()
            with self.db.atomic():
                self.db.set_meta("store_id", store_id)
                self.db.set_meta("created_at", self.clock())
        return store_id

    def _recount_if_estimator_changed(self):
        if self.db.meta("estimator") == self.estimator.name or self.db.read_only:
            return
        with self.db.atomic():
            rows = self.db.all("SELECT id, text FROM memories WHERE text IS NOT NULL")
            self.db.executemany("UPDATE memories SET tokens = ? WHERE id = ?",
                                [(item_tokens(self.estimator, text), mid) for mid, text in rows])
            self.db.set_meta("estimator", self.estimator.name)


def _open(path, read_only, migrations, check_same_thread):
    """The Store; read_only="auto" falls back to read-only when the file or disk cannot be written."""
    if read_only != "auto":
        return Store(path, read_only=read_only, migrations=migrations, check_same_thread=check_same_thread)
    try:
        db = Store(path, read_only=False, migrations=migrations, check_same_thread=check_same_thread)
    except StoreReadOnlyError as exc:
        if not os.path.exists(path):
            raise
        reason = f"the data disk or {path} is read-only: {exc}"
    else:
        where = os.path.dirname(os.path.abspath(path))
        if path == ":memory:" or (db.writable() and os.access(path, os.W_OK) and os.access(where, os.W_OK)):
            return db
        db.close()                      # SQLite fell back to reading: say so, and refuse writes early
        reason = f"the data disk or {path} is read-only: it cannot be written"
    return Store(path, read_only=reason, migrations=migrations, check_same_thread=check_same_thread)


def _check_summariser(summariser):
    if not isinstance(getattr(summariser, "name", None), str) or not callable(getattr(summariser, "summarise",
                                                                                    None)):
        raise InvalidArgument(f"summariser={summariser!r}: needs a str attribute 'name' and a method "
                              "summarise(items, budget_tokens, estimator) -> str")
    return summariser
