"""The tool-call ledger: ``tool.call`` with a ``call_id`` runs at most once per caller.

An agent that is killed between asking for a tool call and hearing its result
cannot know whether the call ran.  So it names each call (``call_id``, its own
string: the goal agent uses ``<thread>:<turn>:<index>``) and asks again after a
restart; the ledger answers from what it recorded instead of running it twice::

    begin(owner, call_id, tool, args, instance, rerun_in_doubt, running)
        -> ("run", None)        no row yet (or an in-doubt call that may run again):
                                 a 'started' row is written; run the tool, then finish()
           ("replay", outcome)  it finished before: {"result": ...} or {"error": ...}
           ("running", None)    this aetherd is running it now (running=True): wait
        raises Conflict          the same call_id with other arguments or another tool,
                                 or a call *in doubt* (started by an aetherd that is gone,
                                 and not safe to run again: risky tools)
    finish(owner, call_id, outcome, journal)  -> journal seq

``finish`` writes the outcome and the call's one journal entry (kind ``tool.call``)
in one transaction, so a call is in the journal exactly once, however often it is
asked for.  A call started by an aetherd that died before ``finish`` is *in doubt*:
a tool that changes nothing (not risky) simply runs again; a risky one is refused
with ``conflict`` and ``in_doubt: true``, and the caller decides (check the effect,
then retry with a new call_id).

Bounds: call ids of at most MAX_CALL_ID characters; outcomes of at most
MAX_OUTCOME_BYTES are kept whole (a bigger one is kept as its size and digest: a
replay then says the call ran and that its result was too large to keep); the
newest KEEP rows per owner are kept; every row counts toward the owner's disk use.
"""

import hashlib
import json

from .errors import Conflict, InvalidArgument
from .journal import canonical
from .migrations import ROW_BYTES

MAX_CALL_ID = 128
MAX_OUTCOME_BYTES = 64 * 1024
KEEP = 1024                  # rows per owner; older finished ones are dropped
JOURNAL_ARGS = 2000          # characters of the arguments shown in the journal entry
COLUMNS = "id, owner, call_id, tool, args_digest, status, instance, started_at, finished_at, outcome, journal_seq"


class InDoubt(Conflict):
    """A call started by an aetherd that is gone, whose result was never recorded."""

    def __init__(self, message, data):
        super().__init__(message)
        self.data = data


def check_call_id(call_id):
    if (not isinstance(call_id, str) or not 1 <= len(call_id) <= MAX_CALL_ID
            or not call_id.isprintable()):
        raise InvalidArgument(f"call_id: give a printable string of 1 to {MAX_CALL_ID} characters that names "
                              "this call (the same id again gets the recorded result, not a second run)")
    return call_id


def digest(tool, args):
    return hashlib.sha256(canonical({"tool": tool, "args": args}).encode()).hexdigest()


class ToolCalls:
    """The ledger in one ContextStore (``of(store)``)."""

    def __init__(self, store):
        self.store, self.db = store, store.db

    def get(self, owner, call_id):
        row = self.db.one(f"SELECT {COLUMNS} FROM tool_calls WHERE owner = ? AND call_id = ?", (owner, call_id))
        return None if row is None else _as_dict(row)

    def begin(self, owner, call_id, tool, args, instance, rerun_in_doubt, running=False):
        """What to do with this call (see the module doc); writes the 'started' row when it is to run."""
        check_call_id(call_id)
        wanted = digest(tool, args)
        row = self.get(owner, call_id)
        if row is not None:
            if row["tool"] != tool or row["args_digest"] != wanted:
                raise Conflict(f"call_id {call_id!r} was used for another call ({row['tool']} with other "
                               "arguments); give each distinct call its own call_id")
            if row["status"] != "started":
                return "replay", row["outcome"]
            if row["instance"] == instance and running:
                return "running", None
            if not rerun_in_doubt:
                raise InDoubt(f"tool call {call_id!r} ({tool}) is in doubt: it was started before aetherd "
                               "stopped and its result was never recorded, so it may or may not have taken "
                               "effect; check, then retry with a new call_id if it is still needed",
                               {"in_doubt": True, "call_id": call_id, "tool": tool,
                                "started_at": row["started_at"]})
            with self.db.atomic(savepoint=False):
                self.db.execute("UPDATE tool_calls SET instance = ?, started_at = ? WHERE id = ?",
                                (instance, self.store.clock(), row["id"]))
            return "run", None
        self.store._check_disk(owner, ROW_BYTES)
        with self.db.atomic(savepoint=False):
            self.db.execute("INSERT INTO tool_calls(owner, call_id, tool, args_digest, status, instance, started_at) "
                            "VALUES (?, ?, ?, ?, 'started', ?, ?)",
                            (owner, call_id, tool, wanted, instance, self.store.clock()))
        return "run", None

    def finish(self, owner, call_id, tool, args, outcome, scope):
        """Record the outcome and the call's one journal entry; return the journal seq."""
        text = canonical(outcome)
        size = len(text.encode("utf-8"))
        kept = outcome
        if size > MAX_OUTCOME_BYTES or not self._room(owner, size):
            kept = {"not_kept": {"bytes": size, "sha256": hashlib.sha256(text.encode()).hexdigest(),
                                 "ok": "result" in outcome}}
            text = canonical(kept)
        args_text = canonical(args)
        entry = {"tool": tool, "call_id": call_id, "ok": "result" in outcome,
                 "args": args_text if len(args_text) <= JOURNAL_ARGS else args_text[:JOURNAL_ARGS] + "...",
                 "outcome_sha256": hashlib.sha256(canonical(outcome).encode()).hexdigest()}
        if "error" in outcome:
            entry["error"] = {"code": outcome["error"].get("code"), "message": str(outcome["error"].get("message"))[:500]}
        with self.db.atomic(savepoint=False):
            seq = self.store._journal(owner, scope, "tool.call", entry)
            self.db.execute("UPDATE tool_calls SET status = ?, finished_at = ?, outcome = ?, journal_seq = ?, "
                            "bytes = ? WHERE owner = ? AND call_id = ?",
                            ("done" if "result" in outcome else "failed", self.store.clock(), text, seq,
                             ROW_BYTES + len(text.encode("utf-8")), owner, call_id))
            self._prune(owner)
        return seq

    def _room(self, owner, size):
        try:
            self.store._check_disk(owner, size)
            return True
        except Exception:  # noqa: BLE001 - over its quota: the call is still recorded, its result is not kept
            return False

    def _prune(self, owner):
        row = self.db.one("SELECT id FROM tool_calls WHERE owner = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
                          (owner, KEEP))
        if row is not None:
            self.db.execute("DELETE FROM tool_calls WHERE owner = ? AND id <= ? AND status != 'started'",
                            (owner, row[0]))


def of(store):
    ledger = getattr(store, "_tool_calls", None)
    if ledger is None:
        ledger = store._tool_calls = ToolCalls(store)
    return ledger


def _as_dict(row):
    keys = [k.strip() for k in COLUMNS.split(",")]
    out = dict(zip(keys, row))
    out["outcome"] = json.loads(out["outcome"]) if out["outcome"] else None
    return out
