"""Threads: each agent's conversation with the model, held by the store, turn by turn.

A thread belongs to one principal (``owner``, the caller's kernel identity) and
has a name (``main`` unless the agent asks for another).  A *turn* is one row of
``thread_turns`` that is never changed or deleted (triggers), numbered 1, 2, 3...
within its thread and hash-chained like the journal::

    hash = sha256(prev_hash + netstrings(thread_id, n, ts, role, body))

(``prev_hash`` is the thread's previous turn's hash, 64 zeros for turn 1; the
body is canonical JSON).  Two roles:

* ``input``: what the agent sent (its text, its tool results, a goal id) and
  what ``llm.think`` put into the window for it, *by reference*: memory ids,
  turn numbers, the summary's id, and what was left out and why;
* ``answer``: what came back (the text, the tool calls, the tokens), or why
  nothing did.

The input turn is written (durably) before the model is asked, so an agent's
input is never lost, whatever happens to the call.  Older turns are condensed
into ``thread_summaries`` (``compact``): the turns stay, every summary version
stays, so compaction loses nothing and a window can still fetch an old turn
back by relevance (aether/ctx/assembly.py).

Sizes are bounded: MAX_TEXT characters of input text, MAX_RESULTS tool results
of MAX_RESULT characters, MAX_BODY_BYTES of canonical JSON per turn (validate.py),
THREADS_PER_OWNER threads per principal; pages of ``turns`` stay under PAGE_BYTES.
"""

import hashlib
import json

from . import access as acl
from .errors import InvalidArgument, NotFound, PermissionDenied, QuotaExceeded
from ..steps import Pace, finish
from .journal import canonical
from .migrations import GENESIS, ROW_BYTES

MAX_TEXT = 32_000            # characters of an input's text
MAX_RESULTS = 32             # tool results in one input
MAX_RESULT = 16_000          # characters of one tool result
MAX_ANSWER = 64_000          # characters of an answer's text kept
MAX_RULES = 8_000
MAX_NAME = 64
THREADS_PER_OWNER = 64
PAGE_BYTES = 768 * 1024      # a page of turns, as JSON, stays under this (the ABI frame is 1 MiB)
COMPACT_BATCH = 200          # turns folded into a summary per compaction, at most
TURN_COLUMNS = "id, thread_id, n, ts, role, body, text, tokens, prev_hash, hash"
THREAD_COLUMNS = "id, owner, name, created_at, rules, goal_id, turns, tokens, head_hash"


def turn_hash(prev_hash, thread_id, n, ts, role, body_text):
    """The chain hash of one turn (see the module doc)."""
    fields = (str(thread_id), str(n), repr(float(ts)), role, body_text)
    data = "".join(f"{len(f.encode())}:{f}," for f in fields)
    return hashlib.sha256((prev_hash + data).encode()).hexdigest()


class Thread(tuple):
    """One threads row."""

    __slots__ = ()
    id = property(lambda self: self[0])
    owner = property(lambda self: self[1])
    name = property(lambda self: self[2])
    created_at = property(lambda self: self[3])
    rules = property(lambda self: self[4])
    goal_id = property(lambda self: self[5])
    turns = property(lambda self: self[6])
    tokens = property(lambda self: self[7])
    head_hash = property(lambda self: self[8])

    def view(self):
        return {"thread_id": self.id, "owner": self.owner, "name": self.name, "created_at": self.created_at,
                "rules": self.rules, "goal_id": self.goal_id, "turns": self.turns, "tokens": self.tokens,
                "head_hash": self.head_hash}


class Threads:
    """Threads and their turns in one ContextStore (``of(store)`` gives the store's one)."""

    def __init__(self, store):
        self.store, self.db = store, store.db

    # -------------------------------------------------------------- threads

    def open(self, owner, name="main", create=True):
        """The owner's thread of that name (created when missing and create is true)."""
        name = check_name(name)
        row = self.db.one(f"SELECT {THREAD_COLUMNS} FROM threads WHERE owner = ? AND name = ?", (owner, name))
        if row is not None:
            return Thread(row)
        if not create:
            raise NotFound(f"{owner} has no thread named {name!r}")
        count = self.db.one("SELECT count(*) FROM threads WHERE owner = ?", (owner,))[0]
        if count >= THREADS_PER_OWNER:
            raise QuotaExceeded(f"{owner} has {count} threads, the most one principal may have "
                                f"({THREADS_PER_OWNER}); reuse one (thread=NAME)")
        with self.db.atomic(savepoint=False):
            self.db.execute("INSERT INTO threads(owner, name, created_at, head_hash) VALUES (?, ?, ?, ?)",
                            (owner, name, self.store.clock(), GENESIS))
        return self.open(owner, name, create=False)

    def get(self, caller, thread_id, write=True):
        """Thread thread_id, if caller may use it: its owner always; the shell and the host may read it."""
        row = self.db.one(f"SELECT {THREAD_COLUMNS} FROM threads WHERE id = ?", (thread_id,))
        if row is None:
            raise NotFound(f"no thread {thread_id}; ctx.thread without thread_id lists the caller's threads")
        thread = Thread(row)
        if thread.owner != caller and (write or not acl.privileged(caller)):
            raise PermissionDenied(f"thread {thread_id} is not {caller}'s: a thread is used only by the "
                                   "principal that made it (the shell and the host may read it)")
        return thread

    def list(self, owner):
        rows = self.db.all(f"SELECT {THREAD_COLUMNS} FROM threads WHERE owner = ? ORDER BY id", (owner,))
        return [Thread(r).view() for r in rows]

    def set_rules(self, thread, rules=None, goal_id=None):
        """Keep the agent's rules and goal on its thread (sent once, used by every later think)."""
        changes, params = [], []
        if rules is not None and rules != thread.rules:
            if len(rules) > MAX_RULES:
                raise InvalidArgument(f"rules: {len(rules)} characters; at most {MAX_RULES}")
            changes.append("rules = ?")
            params.append(rules)
        if goal_id is not None and goal_id != thread.goal_id:
            changes.append("goal_id = ?")
            params.append(goal_id)
        if not changes:
            return thread
        with self.db.atomic(savepoint=False):
            self.db.execute(f"UPDATE threads SET {', '.join(changes)} WHERE id = ?", (*params, thread.id))
        return Thread(self.db.one(f"SELECT {THREAD_COLUMNS} FROM threads WHERE id = ?", (thread.id,)))

    # ---------------------------------------------------------------- turns

    def record(self, thread_id, role, body, text, tokens, owner):
        """Append a turn (durable when the outer transaction commits); return {'n', 'hash', 'ts'}."""
        body_text = canonical(body)
        self.store._check_disk(owner, 2 * len(body_text.encode("utf-8")) + ROW_BYTES)
        with self.db.atomic(savepoint=False):
            turns, prev = self.db.one("SELECT turns, head_hash FROM threads WHERE id = ?", (thread_id,))
            n, ts = turns + 1, self.store.clock()
            digest = turn_hash(prev, thread_id, n, ts, role, body_text)
            self.db.execute(f"INSERT INTO thread_turns({TURN_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (thread_id, n, ts, role, body_text, text[:MAX_TEXT * 2], int(tokens), prev, digest))
        return {"n": n, "hash": digest, "ts": ts}

    def turn(self, thread_id, n):
        row = self.db.one(f"SELECT {TURN_COLUMNS} FROM thread_turns WHERE thread_id = ? AND n = ?",
                          (thread_id, n))
        if row is None:
            raise NotFound(f"thread {thread_id} has no turn {n}")
        return as_dict(row)

    def bodies(self, thread_id, numbers):
        """{n: (role, body dict, tokens)} of the given turns."""
        found, numbers = {}, sorted(set(numbers))
        for first in range(0, len(numbers), 500):
            chunk = numbers[first:first + 500]
            for n, role, body, tokens in self.db.all(
                    f"SELECT n, role, body, tokens FROM thread_turns WHERE thread_id = ? AND n IN "
                    f"({','.join('?' * len(chunk))})", (thread_id, *chunk)):
                found[n] = (role, json.loads(body), tokens)
        return found

    def page(self, thread_id, after_n=0, limit=100):
        """Turns after after_n, oldest first, at most limit and PAGE_BYTES of JSON; with next_after."""
        rows = self.db.all(f"SELECT {TURN_COLUMNS} FROM thread_turns WHERE thread_id = ? AND n > ? "
                           "ORDER BY n LIMIT ?", (thread_id, after_n, limit))
        out, size = [], 0
        for row in rows:
            turn = as_dict(row)
            cost = len(json.dumps(turn, ensure_ascii=False).encode())
            if out and size + cost > PAGE_BYTES:
                break
            out.append(turn)
            size += cost
        more = bool(out) and (len(out) < len(rows) or self.db.one(
            "SELECT 1 FROM thread_turns WHERE thread_id = ? AND n > ?", (thread_id, out[-1]["n"])) is not None)
        return {"turns": out, "next_after": out[-1]["n"] if more else None}

    def verify(self, thread_id, batch=2048):
        """Recompute the thread's chain: {'ok', 'turns', 'head'} or the first break {'ok': False, 'n', 'reason'}."""
        return finish(self.verify_steps(thread_id, batch))

    def verify_steps(self, thread_id, batch=2048):
        """verify() a batch at a time (a generator; see journal.verify_steps): the turns up to
        the thread's head when it starts, each batch a query of its own (``n > last``), so
        turns may be added between batches (turns are append-only)."""
        head = self.db.one("SELECT head_hash, turns FROM threads WHERE id = ?", (thread_id,))
        through = head[1] if head else self.db.one(
            "SELECT coalesce(max(n), 0) FROM thread_turns WHERE thread_id = ?", (thread_id,))[0]
        prev, expected, pace = GENESIS, 1, Pace(batch)
        while expected <= through:
            rows = self.db.all(f"SELECT {TURN_COLUMNS} FROM thread_turns WHERE thread_id = ? AND n >= ? "
                               "AND n <= ? ORDER BY n LIMIT ?", (thread_id, expected, through, pace.start()))
            if not rows:
                break
            for _id, tid, n, ts, role, body, _text, _tokens, prev_hash, digest in rows:
                if n != expected:
                    return {"ok": False, "n": n, "reason": f"turn {n} follows turn {expected - 1}: turns are missing"}
                if prev_hash != prev:
                    return {"ok": False, "n": n, "reason": f"turn {n}'s prev_hash does not match turn {n - 1}'s hash"}
                if turn_hash(prev_hash, tid, n, ts, role, body) != digest:
                    return {"ok": False, "n": n, "reason": f"turn {n}'s content does not match its hash"}
                prev, expected = digest, n + 1
            pace.done()
            yield expected - 1
        if head and (head[0] != prev or head[1] != expected - 1):
            return {"ok": False, "n": expected, "reason": "the thread's head does not match its last turn "
                                                          "(turns were cut off)"}
        now = self.db.one("SELECT turns FROM threads WHERE id = ?", (thread_id,))
        past = now[0] if now else through          # the head now (turns added during the check are fine)
        if self.db.one("SELECT 1 FROM thread_turns WHERE thread_id = ? AND n > ? LIMIT 1", (thread_id, past)):
            return {"ok": False, "n": past + 1, "reason": f"turn {past + 1} is past the thread's head "
                                                          f"(turn {past}): turns were added behind the store's back"}
        return {"ok": True, "turns": expected - 1, "head": prev}

    # ------------------------------------------------------------ summaries

    def summary(self, thread_id):
        """The newest summary {'id', 'through_n', 'text', 'tokens', 'summariser'} of the thread, or None."""
        row = self.db.one("SELECT id, through_n, text, tokens, summariser, created_at FROM thread_summaries "
                          "WHERE thread_id = ? ORDER BY through_n DESC, id DESC LIMIT 1", (thread_id,))
        if row is None:
            return None
        return {"id": row[0], "through_n": row[1], "text": row[2], "tokens": row[3], "summariser": row[4],
                "created_at": row[5]}

    def summaries(self, thread_id, limit=20):
        rows = self.db.all("SELECT id, through_n, tokens, summariser, created_at FROM thread_summaries "
                           "WHERE thread_id = ? ORDER BY id DESC LIMIT ?", (thread_id, limit))
        return [{"id": r[0], "through_n": r[1], "tokens": r[2], "summariser": r[3], "created_at": r[4]}
                for r in rows]

    def compact(self, thread_id, keep_from_n, budget_tokens, estimator, summariser):
        """Fold turns before keep_from_n not yet summarised (at most COMPACT_BATCH) into a new summary,
        extractively (the store's summariser); return it, or None when there is nothing to fold."""
        last = self.summary(thread_id)
        start = (last["through_n"] if last else 0) + 1
        end = min(keep_from_n - 1, start + COMPACT_BATCH - 1)
        if end < start:
            return None
        items = [{"text": last["text"]}] if last and last["text"] else []
        items += [{"text": text} for (text,) in self.db.all(
            "SELECT text FROM thread_turns WHERE thread_id = ? AND n BETWEEN ? AND ? ORDER BY n",
            (thread_id, start, end))]
        text = summariser.summarise(items, budget_tokens, estimator) or ""
        return self.add_summary(thread_id, end, text, estimator.count(text), summariser.name)

    def add_summary(self, thread_id, through_n, text, tokens, summariser):
        with self.db.atomic(savepoint=False):
            cursor = self.db.execute("INSERT INTO thread_summaries(thread_id, through_n, text, tokens, summariser, "
                                     "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                                     (thread_id, through_n, text, tokens, summariser, self.store.clock()))
        return {"id": cursor.lastrowid, "through_n": through_n, "text": text, "tokens": tokens,
                "summariser": summariser}


def of(store):
    """The store's Threads (made on first use)."""
    threads = getattr(store, "_threads", None)
    if threads is None:
        threads = store._threads = Threads(store)
    return threads


def as_dict(row):
    _id, thread_id, n, ts, role, body, _text, tokens, prev_hash, digest = row
    return {"thread_id": thread_id, "n": n, "ts": ts, "role": role, "body": json.loads(body), "tokens": tokens,
            "prev_hash": prev_hash, "hash": digest}


def check_name(name):
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or not name.isprintable():
        raise InvalidArgument(f"thread={name!r}: give a name of 1 to {MAX_NAME} printable characters")
    return name


def check_input(text, tool_results):
    """(text or None, [{'id', 'content', 'name'?}]): bounded, or InvalidArgument saying what is wrong."""
    if text is not None and (not isinstance(text, str) or len(text) > MAX_TEXT):
        raise InvalidArgument(f"input: give a string of at most {MAX_TEXT} characters")
    results = []
    if tool_results is not None:
        if not isinstance(tool_results, list) or len(tool_results) > MAX_RESULTS:
            raise InvalidArgument(f"tool_results: give a list of at most {MAX_RESULTS} results")
        for i, r in enumerate(tool_results):
            if not isinstance(r, dict) or not isinstance(r.get("id"), str) or not r["id"] or len(r["id"]) > 200:
                raise InvalidArgument(f"tool_results[{i}]: give {{'id': <the tool call's id>, 'content': <text>}}")
            content = r.get("content")
            if not isinstance(content, str):
                content = json.dumps(content, ensure_ascii=False, default=str)
            if len(content) > MAX_RESULT:
                content = content[:MAX_RESULT - 20] + "... (cut)"
            item = {"id": r["id"], "content": content}
            if isinstance(r.get("name"), str):
                item["name"] = r["name"][:100]
            results.append(item)
    if not text and not results:
        raise InvalidArgument("give input (the new user turn) or tool_results, or both: a think needs something new")
    return text or None, results


def input_messages(body, answered_ids=frozenset()):
    """The chat messages of an input turn: tool results (as 'tool' messages when the call that asked
    for them is in answered_ids, else as user text), then the text."""
    out = []
    for r in body.get("tool_results") or ():
        if r["id"] in answered_ids:
            out.append({"role": "tool", "tool_call_id": r["id"], "content": r["content"]})
        else:
            out.append({"role": "user", "content": f"[result of tool call {r['id']}] {r['content']}"})
    if body.get("text"):
        out.append({"role": "user", "content": body["text"]})
    return out


def answer_messages(body):
    """The assistant message of an answer turn ([] when nothing came back)."""
    calls = body.get("tool_calls") or []
    if not body.get("content") and not calls:
        return []
    message = {"role": "assistant", "content": body.get("content")}
    if calls:
        message["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c.get("wire_name") or c.get("name"),
                                               "arguments": c.get("arguments_json") or "{}"}} for c in calls]
    return [message]


def searchable(role, body):
    """The text a turn is found by."""
    if role == "input":
        parts = [r["content"] for r in body.get("tool_results") or ()] + [body.get("text") or ""]
    else:
        parts = [body.get("content") or ""] + [f"{c.get('name')} {c.get('arguments_json') or ''}"
                                                for c in body.get("tool_calls") or ()]
    return "\n".join(p for p in parts if p)
