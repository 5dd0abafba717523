"""Compaction: when a scope outgrows its quota, old low-value items become summaries.

Nothing is silently lost:

* which items: live, unpinned items of the scope, lowest *keep value*
  first, where keep = 0.5 x importance + 0.5 x recency (recency halves every
  ``half_life`` seconds since last use; ties: oldest, then lowest id); enough
  of them to bring the scope to LOW_WATER (75%) of its quota, so the next
  compaction is not one write away;
* how: the chosen items, in time order, are cut into chunks of at most
  CHUNK_ITEMS items / CHUNK_TOKENS tokens; each chunk becomes one summary
  memory (kind 'summary', in the same scope) and one ``compactions`` row that
  records exactly which items it replaced (``compaction_members``), their
  token total, the summariser's name and the journal entry (kind
  'ctx.compact') written in the same transaction;
* the originals move to state 'compacted' and keep their text: ``restore``
  brings them back (and retires the summary), ``compacted`` lists what was
  compacted, windows name relevant compacted items in ``left_out``;
* only ``purge`` (an explicit retention policy) removes their text, leaving
  tombstones, and journals that it did.

The summariser is pluggable: any object with ``name`` and
``summarise(items, budget_tokens, estimator) -> str``.  The default,
``ExtractiveSummariser``, is SumBasic (Nenkova & Vanderwende, 2005): it
scores each sentence by the mean frequency, over all the chunk's text, of
its content words, takes the best sentence that fits the budget, squares the
probability of the words it used (so the next pick says something new), and
repeats; the picks are printed in their original order.  Deterministic: ties
go to the earlier sentence.  If a summariser other than the extractive one
raises, the chunk falls back to the extractive one.

A model writes summaries after the fact instead (aether/abi/resummarise.py),
since it is slow and may fail: ``summary_request`` gives it a compaction's
originals and budget, and ``supersede`` replaces the summary, in one
transaction, with one of the same header, the model's text as body, and the
old summary forgotten, if the compaction was neither restored nor purged and
its summary is still the same live, unpinned memory.
"""

import re
import time

from .errors import Conflict, InvalidArgument, NotFound
from .terms import STOP_WORDS
from .tokens import item_tokens

LOW_WATER = 0.75
CHUNK_ITEMS = 64
CHUNK_TOKENS = 8000
SUMMARY_MIN_TOKENS = 48
SUMMARY_MAX_TOKENS = 400
SUMMARY_SHARE = 4            # a summary gets at most 1/SUMMARY_SHARE of what it replaces

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_SENTENCE_STOP = re.compile(r"[.!?](?=\s|$)|\n")
_WORD = re.compile(r"[^\W_]+")


class ExtractiveSummariser:
    """SumBasic over the items' sentences (see the module doc)."""

    name = "extractive-v1"

    def summarise(self, items, budget_tokens, estimator):
        """A summary of items' texts of at most budget_tokens tokens."""
        sentences = list(_sentences(items))
        if not sentences:
            return ""
        words = [[w for w in _WORD.findall(s.casefold()) if w not in STOP_WORDS] for _, s in sentences]
        prob = _probabilities(words)
        chosen, used = [], 0
        candidates = set(range(len(sentences)))
        while candidates:
            best = max(candidates, key=lambda i: (_score(words[i], prob), -i))
            candidates.discard(best)
            cost = estimator.count(sentences[best][1]) + 1
            if used + cost > budget_tokens:
                continue
            chosen.append(best)
            used += cost
            for w in words[best]:
                prob[w] = prob[w] ** 2
        if not chosen:
            return _truncate(sentences[0][1], budget_tokens, estimator)
        return " ".join(_ended(sentences[i][1]) for i in sorted(chosen))


def _sentences(items):
    for n, item in enumerate(items):
        for part in _SENTENCE_END.split(item["text"] or ""):
            part = " ".join(part.split())
            if part:
                yield n, part


def _probabilities(words):
    counts = {}
    for ws in words:
        for w in ws:
            counts[w] = counts.get(w, 0) + 1
    total = sum(counts.values()) or 1
    return {w: c / total for w, c in counts.items()}


def _score(ws, prob):
    return sum(prob[w] for w in ws) / len(ws) if ws else 0.0


def _ended(sentence):
    return sentence if sentence[-1] in ".!?" else sentence + "."


def _truncate(text, budget, estimator):
    words = text.split()
    while words and estimator.count(" ".join(words) + " ...") > budget:
        words.pop()
    return " ".join(words) + " ..." if words else ""


def recency(now, last_used, half_life):
    """1.0 for just used, 0.5 one half-life ago, towards 0 for long ago."""
    age = max(0.0, now - last_used)
    return 0.5 ** (age / half_life)


class Compactor:
    """Picks, summarises and records compactions; restores and purges them."""

    def __init__(self, db, access, memories, quotas, journal, clock, estimator, summariser, half_life):
        self.db, self.access, self.memories, self.quotas = db, access, memories, quotas
        self.journal, self.clock, self.estimator = journal, clock, estimator
        self.summariser, self.half_life = summariser, half_life

    # ------------------------------------------------------------ compacting

    def over_quota(self, scope_id):
        tokens_limit, items_limit, tokens, items = self.quotas.limits(scope_id)
        return (tokens_limit is not None and tokens > tokens_limit) or \
            (items_limit is not None and items > items_limit)

    def compact(self, scope_id, actor, tokens_target=None, items_target=None, rounds=4):
        """Compact until the scope is at its targets (default: LOW_WATER of its quota); return the ids."""
        tokens_limit, items_limit, _, _ = self.quotas.limits(scope_id)
        if tokens_target is None and tokens_limit is not None:
            tokens_target = int(tokens_limit * LOW_WATER)
        if items_target is None and items_limit is not None:
            items_target = int(items_limit * LOW_WATER)
        made, fresh = [], set()
        with self.db.atomic():
            for _ in range(rounds):             # estimates of a summary's size can fall short
                _, _, tokens, items = self.quotas.limits(scope_id)
                excess_tokens = tokens - tokens_target if tokens_target is not None else 0
                excess_items = items - items_target if items_target is not None else 0
                victims = self._victims(scope_id, excess_tokens, excess_items, fresh)
                if not victims:
                    break
                for chunk in _chunks(victims):
                    cid, summary_id = self._compact_chunk(scope_id, chunk, actor)
                    made.append(cid)
                    fresh.add(summary_id)
        return made

    def _victims(self, scope_id, excess_tokens, excess_items, exclude):
        """The lowest-keep-value unpinned live items whose compaction covers the excess, in time order."""
        if excess_tokens <= 0 and excess_items <= 0:
            return []
        now = self.clock()
        rows = self.db.all("SELECT id, importance, last_used, tokens, created_at FROM memories "
                           "WHERE scope_id = ? AND state = 'live' AND pinned = 0", (scope_id,))
        rows = [r for r in rows if r[0] not in exclude]
        rows.sort(key=lambda r: (0.5 * r[1] + 0.5 * recency(now, r[2], self.half_life), r[4], r[0]))
        chosen, tokens = [], 0
        for row in rows:
            items_saved = len(chosen) - -(-len(chosen) // CHUNK_ITEMS)     # n - ceil(n / CHUNK_ITEMS)
            if tokens * (1 - 1 / SUMMARY_SHARE) >= excess_tokens and items_saved >= excess_items:
                break
            chosen.append(row)
            tokens += row[3]
        if len(chosen) < 2:
            return []                       # one item cannot be replaced by something smaller
        chosen.sort(key=lambda r: (r[4], r[0]))
        return chosen

    def _compact_chunk(self, scope_id, chunk, actor):
        ids = [r[0] for r in chunk]
        rows = [self.memories.row(i) for i in ids]
        now = self.clock()
        replaced = sum(r[7] for r in rows)
        cur = self.db.execute("INSERT INTO compactions(scope_id, created_at, actor, summariser, items, tokens, "
                              "summary_tokens) VALUES (?, ?, ?, ?, ?, ?, 0)",
                              (scope_id, now, actor, self.summariser.name, len(ids), replaced))
        cid = cur.lastrowid
        text, summariser = self._summary_text(cid, rows)
        summary_tokens = item_tokens(self.estimator, text)
        tags = _common_tags(rows)
        sid = self.memories.insert(scope_id, "summary", text, tags, max(r[5] for r in rows), False,
                                   summary_tokens, actor, now, last_used=max(r[10] for r in rows))
        for mid in ids:
            self.memories.set_state(mid, "compacted", "compacted", actor, now, ref=cid, compaction_id=cid)
        self.db.executemany("INSERT INTO compaction_members(compaction_id, memory_id) VALUES (?, ?)",
                            [(cid, mid) for mid in ids])
        seq = self.journal(actor, self.access.name_of(scope_id), "ctx.compact",
                           {"compaction": cid, "summary": sid, "items": ids, "tokens": replaced,
                            "summary_tokens": summary_tokens, "summariser": summariser})
        self.db.execute("UPDATE compactions SET summary_id = ?, summary_tokens = ?, summariser = ?, "
                        "journal_seq = ? WHERE id = ?", (sid, summary_tokens, summariser, seq, cid))
        return cid, sid

    def _summary_text(self, cid, rows):
        items = _items(rows)
        header = _header(cid, rows)
        room = self._room(header, rows)
        name = self.summariser.name
        try:
            body = self.summariser.summarise(items, room, self.estimator)
        except Exception:
            if isinstance(self.summariser, ExtractiveSummariser):
                raise
            fallback = ExtractiveSummariser()      # a model failed: never lose the compaction over it
            body, name = fallback.summarise(items, room, self.estimator), fallback.name
        return (header + "\n" + body).strip(), name

    def _room(self, header, rows):
        """Tokens the text under header may use in a summary of rows."""
        return max(8, summary_budget(sum(r[7] for r in rows)) - self.estimator.count(header) - 1)

    # ------------------------------------------------------------- restoring

    def _open(self, compaction_id):
        """(scope id, summary id) of a compaction neither restored nor purged; NotFound or Conflict."""
        row = self.db.one("SELECT scope_id, summary_id, restored_at, purged_at FROM compactions WHERE id = ?",
                          (compaction_id,))
        if row is None:
            raise NotFound(f"compaction {compaction_id} does not exist")
        scope_id, summary_id, restored_at, purged_at = row
        if restored_at is not None:
            raise Conflict(f"compaction {compaction_id} was already restored (at {restored_at})")
        if purged_at is not None:
            raise Conflict(f"compaction {compaction_id} was purged at {purged_at} by the retention "
                           "policy: its originals' text is gone (their tombstones remain)")
        return scope_id, summary_id

    def _member_ids(self, compaction_id):
        return [r[0] for r in self.db.all("SELECT memory_id FROM compaction_members WHERE compaction_id = ? "
                                          "ORDER BY memory_id", (compaction_id,))]

    def restore(self, compaction_id, actor):
        """Bring a compaction's originals back to live and retire its summary."""
        scope_id, summary_id = self._open(compaction_id)
        summary = self.memories.row(summary_id)
        if summary[11] == "compacted":
            raise Conflict(f"compaction {compaction_id}'s summary (memory {summary_id}) was itself "
                           f"compacted by compaction {summary[13]}: restore {summary[13]} first")
        ids = self._member_ids(compaction_id)
        now = self.clock()
        with self.db.atomic():
            for mid in ids:
                self.memories.set_state(mid, "live", "restored", actor, now, ref=compaction_id)
            self.db.executemany("UPDATE memories SET last_used = ? WHERE id = ?", [(now, i) for i in ids])
            if summary[11] == "live":
                self.memories.set_state(summary_id, "forgotten", "forgotten", actor, now, ref=compaction_id)
            self.db.execute("UPDATE compactions SET restored_at = ?, restored_by = ? WHERE id = ?",
                            (now, actor, compaction_id))
            self.journal(actor, self.access.name_of(scope_id), "ctx.restore",
                         {"compaction": compaction_id, "items": ids, "summary": summary_id})
        return {"compaction": compaction_id, "restored": ids, "summary_retired": summary_id}

    # --------------------------------------------------- summaries from a model

    def made_after(self, after_id):
        """(the newest compaction's id or 0, ids of the compactions made in this store, not imported,
        after after_id, oldest first); after_id None: no ids."""
        head = self.db.one("SELECT coalesce(max(id), 0) FROM compactions")[0]
        if after_id is None or head <= after_id:
            return head, []
        rows = self.db.all("SELECT c.id FROM compactions c JOIN memories m ON m.id = c.summary_id "
                           "WHERE c.id > ? AND m.origin IS NULL ORDER BY c.id", (after_id,))
        return head, [r[0] for r in rows]

    def _replaceable(self, compaction_id, summary_id=None):
        """(scope id, summary row, originals in time order) of a compaction whose summary may be
        replaced: neither restored nor purged, its summary (still summary_id) live and unpinned."""
        scope_id, current = self._open(compaction_id)
        if summary_id is not None and current != summary_id:
            raise Conflict(f"compaction {compaction_id}'s summary is now memory {current}, not {summary_id}")
        summary = self.memories.row(current)
        if summary[11] != "live":
            by = f" by compaction {summary[13]}" if summary[11] == "compacted" else ""
            raise Conflict(f"compaction {compaction_id}'s summary (memory {current}) was {summary[11]}{by}; "
                           "only a live summary is replaced")
        if summary[6]:
            raise Conflict(f"compaction {compaction_id}'s summary (memory {current}) is pinned: "
                           "a pinned summary is kept as it is")
        rows = sorted((self.memories.row(i) for i in self._member_ids(compaction_id)),
                      key=lambda r: (r[9], r[0]))
        return scope_id, summary, rows

    def summary_request(self, compaction_id):
        """A compaction's originals and the tokens a new summary's text may use (under the header)."""
        scope_id, summary, rows = self._replaceable(compaction_id)
        return {"compaction": compaction_id, "scope": self.access.name_of(scope_id), "summary_id": summary[0],
                "budget_tokens": self._room(_header(compaction_id, rows), rows), "items": _items(rows)}

    def supersede(self, compaction_id, summary_id, body, summariser, actor, model_tokens=None):
        """Replace the compaction's summary summary_id by a new one: same header, body as its text
        (cut to whole sentences within the budget), same tags, importance and last use; the old
        one is forgotten, the compaction names the new one and summariser, and it is journalled
        (ctx.resummarise), in one transaction.  Conflict if the summary may no longer be replaced."""
        scope_id, old, rows = self._replaceable(compaction_id, summary_id)
        header = _header(compaction_id, rows)
        room = self._room(header, rows)
        body = body.strip()
        if self.estimator.count(body) > room:
            body = whole_sentences(body, room, self.estimator)
            if not body:
                raise InvalidArgument(f"the new summary of compaction {compaction_id} has no whole "
                                      f"sentence within its budget of {room} tokens")
        text = header + "\n" + body
        tokens = item_tokens(self.estimator, text)
        now = self.clock()
        with self.db.atomic():
            sid = self.memories.insert(scope_id, "summary", text, old[4], old[5], False, tokens, actor, now,
                                       last_used=old[10])
            self.memories.set_state(old[0], "forgotten", "forgotten", actor, now, ref=compaction_id)
            self.db.execute("UPDATE compactions SET summary_id = ?, summary_tokens = ?, summariser = ? "
                            "WHERE id = ?", (sid, tokens, summariser, compaction_id))
            self.journal(actor, self.access.name_of(scope_id), "ctx.resummarise",
                         {"compaction": compaction_id, "summary": sid, "replaced_summary": old[0],
                          "summariser": summariser, "summary_tokens": tokens, "model_tokens": model_tokens})
        return {"compaction": compaction_id, "summary": sid, "replaced_summary": old[0],
                "summariser": summariser, "summary_tokens": tokens}

    # --------------------------------------------------------------- purging

    def purge(self, cutoff, scope_ids, actor):
        """Remove the text of items compacted or forgotten before cutoff; keep tombstones; journal it."""
        now = self.clock()
        where, params = "", ()
        if scope_ids is not None:
            where, params = f" AND scope_id IN ({','.join('?' * len(scope_ids))})", tuple(scope_ids)
        compactions = [r[0] for r in self.db.all(
            "SELECT id FROM compactions WHERE created_at < ? AND restored_at IS NULL AND purged_at IS NULL"
            + where + " ORDER BY id", (cutoff, *params))]
        victims = self.db.all("SELECT id, scope_id, state, compaction_id, tokens FROM memories WHERE "
                              "((state = 'forgotten' AND state_at < ?) OR (state = 'compacted' AND "
                              "compaction_id IN (SELECT id FROM compactions WHERE created_at < ? AND "
                              "restored_at IS NULL AND purged_at IS NULL)))" + where + " ORDER BY id",
                              (cutoff, cutoff, *params))
        with self.db.atomic():
            for mid, _scope_id, _state, cid, _ in victims:
                self.db.execute("UPDATE memories SET state = 'purged', state_at = ?, text = NULL, tags = '' "
                                "WHERE id = ?", (now, mid))
                self.memories.event(mid, "purged", actor, now, cid)
            self.db.executemany("UPDATE compactions SET purged_at = ? WHERE id = ?",
                                [(now, c) for c in compactions])
            by_scope = {}
            for _mid, scope_id, _, _, tokens in victims:
                entry = by_scope.setdefault(scope_id, [0, 0])
                entry[0] += 1
                entry[1] += tokens
            for scope_id, (items, tokens) in sorted(by_scope.items()):
                self.journal(actor, self.access.name_of(scope_id), "ctx.purge",
                             {"cutoff": cutoff, "items": items, "tokens": tokens,
                              "compactions": list(compactions)})
        return {"cutoff": cutoff, "purged_items": len(victims),
                "purged_tokens": sum(v[4] for v in victims), "compactions": compactions}


def summary_budget(replaced_tokens):
    """Tokens a summary of replaced_tokens may use."""
    return max(SUMMARY_MIN_TOKENS, min(SUMMARY_MAX_TOKENS, replaced_tokens // SUMMARY_SHARE))


def whole_sentences(text, budget, estimator):
    """The longest start of text that ends a sentence or a line within budget tokens ('' if none)."""
    best = ""
    for stop in _SENTENCE_STOP.finditer(text):
        head = text[:stop.end()].rstrip()
        if estimator.count(head) > budget:
            break
        best = head
    return best


def _header(cid, rows):
    """The first line of a summary: what it replaced and how to get the originals back."""
    return (f"[summary of {len(rows)} compacted items ({_kind_counts(rows)}), {_day(rows[0][9])} to "
            f"{_day(rows[-1][9])}; restore compaction {cid} for the originals]")


def _items(rows):
    """Memory rows as a summariser's items."""
    return [{"id": r[0], "kind": r[2], "text": r[3], "tags": r[4].split(), "importance": r[5],
             "created_at": r[9]} for r in rows]


def _chunks(victims):
    """Time-ordered victims cut into chunks worth replacing by one summary each."""
    chunk, tokens = [], 0
    for row in victims:
        if chunk and (len(chunk) >= CHUNK_ITEMS or tokens + row[3] > CHUNK_TOKENS):
            if _worth(chunk, tokens):
                yield chunk
            chunk, tokens = [], 0
        chunk.append(row)
        tokens += row[3]
    if chunk and _worth(chunk, tokens):
        yield chunk


def _worth(chunk, tokens):
    """Two or more items, or one long enough that its summary is much smaller."""
    return len(chunk) >= 2 or tokens > 2 * summary_budget(tokens)


def _common_tags(rows, most=8):
    counts = {}
    for r in rows:
        for tag in r[4].split():
            counts[tag] = counts.get(tag, 0) + 1
    best = sorted(counts, key=lambda t: (-counts[t], t))[:most]
    return " ".join(sorted(best))


def _kind_counts(rows):
    counts = {}
    for r in rows:
        counts[r[2]] = counts.get(r[2], 0) + 1
    return ", ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in sorted(counts.items()))


def _day(ts):
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))
