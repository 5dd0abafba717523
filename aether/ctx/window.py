"""Context windows: the best set of items for a caller that fits a token budget.

The algorithm (deterministic: same data, query, budget and clock, same window):

1. **Pinned first.**  Every live pinned item of the searched scopes, by
   importance, then newest.  Pinned items that do not fit are left out with
   reason ``pinned_over_budget`` (and count as ``full`` pressure).
2. **Score the rest.**  ``score = wr x relevance + wt x recency + wi x importance``
   with weights 0.5 / 0.25 / 0.25 (0 / 0.5 / 0.5 when the query has no usable
   terms), each signal in [0, 1]:

   * relevance: FTS5 BM25 of the item for the query's planned terms
     (terms.py), divided by the best match's, for the K best matches where
     K = clamp(3 x items that fit the budget, 128, 4096); every other item has
     relevance 0;
   * recency: 0.5 ** (age since last use / half-life), half-life 1 day by
     default (last use moves on recall and restore, not on window inclusion);
   * importance: as stored.
3. **Candidates.**  Scored candidates are the K best matches, the K most
   recently used and the K most important live items: a two-stage retrieval
   whose cost does not grow with the store.  An item in none of the three
   lists scores at most ``T = wt x recency(K-th most recent) + wi x
   importance(K-th most important)`` (its relevance is 0).  The window
   reports T, and ``exact: true`` when packing never had to look at a
   candidate scoring T or less while budget remained: then scoring every item
   in the store would have given the same window.
4. **Greedy packing** in score order (ties: higher id first): an item that
   does not fit the remaining budget is left out (``over_budget``) and the next
   ones are still tried; once the remainder cannot hold even the smallest
   item, every later candidate is left out as ``lower_score``.  Items in no
   candidate list are counted as ``not_ranked`` (``left_out_counts``).
5. **Compacted matches.**  Up to ``hints`` compacted items that match the
   query are reported with reason ``compacted``, their compaction and its
   summary, so a caller can ``restore`` them.

Costs are bounded by the term planner: bm25() runs over at most about
``postings_budget`` rows; the rest is index lookups of at most 3K rows.
"""

from . import terms as fts
from .compaction import recency
from .tokens import ITEM_OVERHEAD

WEIGHTS = (0.5, 0.25, 0.25)            # relevance, recency, importance
WEIGHTS_NO_QUERY = (0.0, 0.5, 0.5)
MIN_K, MAX_K = 128, 4096
DEPTH = 3                               # candidates per list: 3 x the items that fit
EXPLAIN = 50                            # left-out items listed one by one, at most
DEMAND_CAP = 4                          # demand counts matching items up to 4 x what fits
# Candidates are ranked on these columns only; the text of the chosen few is read afterwards.
RANK_COLUMNS = "id, scope_id, importance, tokens, last_used, created_at"
ID, SCOPE, IMPORTANCE, TOKENS, LAST_USED, CREATED = range(6)
DETAIL_COLUMNS = "id, kind, text, tags, pinned"


class Ranked(tuple):
    """One live candidate: (score, row, relevance, recency)."""

    __slots__ = ()
    score = property(lambda self: self[0])
    row = property(lambda self: self[1])
    relevance = property(lambda self: self[2])
    recency = property(lambda self: self[3])
    tokens = property(lambda self: self[1][TOKENS])


class Assembler:
    """Builds windows from the store's tables; stateless between calls."""

    def __init__(self, db, access, half_life, postings_budget=fts.DEFAULT_POSTINGS_BUDGET, hints=5):
        self.db, self.access, self.half_life = db, access, half_life
        self.postings_budget, self.hints = postings_budget, hints

    def assemble(self, scope_ids, query, budget, now):
        """The window dict (see ContextStore.window) for scope ids (None: every scope)."""
        live_items, live_tokens = self._extent(scope_ids)
        mean = max(ITEM_OVERHEAD + 1, live_tokens // live_items) if live_items else 32
        fit = max(1, budget // mean)
        words = fts.terms(query)
        kept, dropped, _ = fts.plan(self.db, "memories_fts", words, scope_ids, self.postings_budget)
        weights = WEIGHTS if kept else WEIGHTS_NO_QUERY
        pinned = self._pinned(scope_ids)
        depth = min(MAX_K, max(MIN_K, DEPTH * fit))
        matches = self._matches(kept, scope_ids, depth)
        ranked, threshold = self._candidates(scope_ids, depth, matches, pinned, weights, now)
        included, left, exact = _pack(pinned, ranked, budget, threshold)
        details = self._details([row[ID] for row, _ in included])
        window = _result(included, left, details, self.access, budget,
                         live_items - len(pinned) - len(ranked))
        window["threshold"] = round(threshold, 6)
        window["exact"] = exact
        window["terms"] = {"used": kept,
                           "dropped": [{"term": t, "items": c, "reason": r} for t, c, r in dropped]}
        window["demand_tokens"] = self._demand(pinned, words, kept, scope_ids, live_items, mean, fit)
        window["left_out"].extend(self._compacted_hints(kept, scope_ids, window))
        return window

    # --------------------------------------------------------------- sources

    def _extent(self, scope_ids):
        """(live items, live tokens) of the scopes (None: all)."""
        if scope_ids is None:
            row = self.db.one("SELECT total(live_items), total(live_tokens) FROM scopes")
        else:
            row = self.db.one(f"SELECT total(live_items), total(live_tokens) FROM scopes WHERE id IN "
                              f"({','.join('?' * len(scope_ids))})", scope_ids)
        return int(row[0]), int(row[1])

    def _pinned(self, scope_ids):
        where, params = _scope_filter(scope_ids)
        rows = self.db.all(f"SELECT {RANK_COLUMNS} FROM memories WHERE pinned = 1 AND state = 'live' {where}",
                           params)
        rows.sort(key=lambda r: (-r[IMPORTANCE], -r[CREATED], -r[ID]))
        return rows

    def _details(self, ids):
        """{id: (id, kind, text, tags, pinned)} of the included items."""
        found = {}
        for first in range(0, len(ids), 500):
            chunk = ids[first:first + 500]
            for row in self.db.all(f"SELECT {DETAIL_COLUMNS} FROM memories WHERE id IN "
                                   f"({','.join('?' * len(chunk))})", chunk):
                found[row[0]] = row
        return found

    def _matches(self, kept, scope_ids, k):
        """[(row, bm25)] of the k best live matches, best first (empty without terms)."""
        if not kept:
            return []
        cols = ", ".join(f"m.{c.strip()}" for c in RANK_COLUMNS.split(","))
        where, params = _scope_filter(scope_ids, "m.scope_id")     # the sid filter, checked again
        rows = self.db.all(f"SELECT {cols}, -f.rank FROM memories_fts f JOIN memories m ON m.id = f.rowid "
                           f"WHERE memories_fts MATCH ? {where} ORDER BY f.rank LIMIT ?",
                           (fts.expression(kept, scope_ids), *params, k))
        return [(r[:-1], r[-1]) for r in rows]

    def _top(self, scope_ids, column, n):
        """The n live items with the highest `column` (last_used or importance), highest first."""
        order = f"ORDER BY {column} DESC, id DESC LIMIT ?"
        if scope_ids is None:
            return self.db.all(f"SELECT {RANK_COLUMNS} FROM memories WHERE state = 'live' {order}", (n,))
        rows = []
        for sid in scope_ids:
            rows += self.db.all(f"SELECT {RANK_COLUMNS} FROM memories WHERE state = 'live' AND scope_id = ? "
                                f"{order}", (sid, n))
        index = LAST_USED if column == "last_used" else IMPORTANCE
        rows.sort(key=lambda r: (-r[index], -r[0]))
        return rows[:n]

    def _candidates(self, scope_ids, depth, matches, pinned, weights, now):
        """(ranked candidates best first, the bound T on any other item's score)."""
        recent, important = self._top(scope_ids, "last_used", depth), self._top(scope_ids, "importance", depth)
        best = matches[0][1] if matches else 0.0
        relevance = {row[0]: (score / best if best > 0 else 0.0) for row, score in matches}
        skip = {r[0] for r in pinned}
        rows = {}
        for row in [m[0] for m in matches] + recent + important:
            if row[0] not in skip:
                rows[row[0]] = row
        w_rel, w_rec, w_imp = weights
        half_life = self.half_life
        ranked = []
        for mid, row in rows.items():
            rel = relevance.get(mid, 0.0)
            rec = 0.5 ** (max(0.0, now - row[LAST_USED]) / half_life)
            ranked.append(Ranked((w_rel * rel + w_rec * rec + w_imp * row[IMPORTANCE], row, rel, rec)))
        ranked.sort(key=lambda r: (-r[0], -r[1][ID]))
        if len(recent) < depth or len(important) < depth:
            return ranked, 0.0                  # every live item is a candidate
        return ranked, (weights[1] * recency(now, recent[-1][LAST_USED], self.half_life)
                        + weights[2] * important[-1][IMPORTANCE])

    # ---------------------------------------------------------------- extras

    def _demand(self, pinned, words, kept, scope_ids, live_items, mean, fit):
        """Tokens the caller could use: pinned items plus the live items its query matches (every
        live item without a query), counted up to DEMAND_CAP x the items that fit."""
        cap = DEMAND_CAP * fit
        if not words:
            matching = live_items - len(pinned)
        elif kept:
            matching = fts.match_count(self.db, "memories_fts", fts.expression(kept, scope_ids), cap)
        else:
            matching = 0
        return sum(r[TOKENS] for r in pinned) + min(matching, cap) * mean

    def _compacted_hints(self, kept, scope_ids, window):
        """Up to `hints` compacted items matching the query, with their compaction and summary."""
        if not kept or not self.hints:
            return []
        planned, _, _ = fts.plan(self.db, "compacted_fts", kept, scope_ids, self.postings_budget)
        if not planned:
            return []
        where, params = _scope_filter(scope_ids, "m.scope_id")
        rows = self.db.all("SELECT m.id, m.scope_id, m.tokens, m.compaction_id, c.summary_id "
                           "FROM compacted_fts f JOIN memories m ON m.id = f.rowid "
                           "JOIN compactions c ON c.id = m.compaction_id "
                           f"WHERE compacted_fts MATCH ? {where} ORDER BY f.rank LIMIT ?",
                           (fts.expression(planned, scope_ids), *params, self.hints))
        included = {item["id"] for item in window["items"]}
        hints = [{"id": r[0], "scope": self.access.name_of(r[1]), "tokens": r[2], "reason": "compacted",
                  "compaction_id": r[3], "summary_id": r[4], "summary_included": r[4] in included}
                 for r in rows]
        window["left_out_counts"]["compacted"] = len(hints)
        return hints


def _scope_filter(scope_ids, column="scope_id"):
    if scope_ids is None:
        return "", ()
    return f"AND {column} IN ({','.join('?' * len(scope_ids))})", tuple(scope_ids)


def _pack(pinned, ranked, budget, threshold):
    """(included [(row, Ranked or None)], left out [(row, Ranked or None, reason)], exact)."""
    remaining, included, left, exact = budget, [], [], True
    smallest = ITEM_OVERHEAD + 1
    for row in pinned:
        if row[TOKENS] <= remaining:
            included.append((row, None))
            remaining -= row[TOKENS]
        else:
            left.append((row, None, "pinned_over_budget"))
    for n, cand in enumerate(ranked):
        if remaining < smallest:
            left.extend((c.row, c, "lower_score") for c in ranked[n:])
            break
        if threshold > 0 and cand.score <= threshold:
            exact = False                   # an unranked item might belong here
        if cand.tokens <= remaining:
            included.append((cand.row, cand))
            remaining -= cand.tokens
        else:
            left.append((cand.row, cand, "over_budget"))
    return included, left, exact


def _result(included, left, details, access, budget, unranked):
    items = [_item(row, cand, details[row[ID]], access) for row, cand in included]
    counts = {"pinned_over_budget": 0, "over_budget": 0, "lower_score": 0, "compacted": 0,
              "not_ranked": max(0, unranked)}
    for _, _, reason in left:
        counts[reason] += 1
    listed = [_left(row, cand, reason, access) for row, cand, reason in left[:EXPLAIN]]
    return {"budget_tokens": budget, "tokens_used": sum(i["tokens"] for i in items), "items": items,
            "left_out": listed, "left_out_counts": counts, "left_out_listed": len(listed)}


def _item(row, cand, detail, access):
    _, kind, text, tags, pinned = detail
    item = {"id": row[ID], "scope": access.name_of(row[SCOPE]), "kind": kind, "text": text,
            "tags": tags.split() if tags else [], "importance": row[IMPORTANCE], "pinned": bool(pinned),
            "tokens": row[TOKENS], "created_at": row[CREATED], "last_used": row[LAST_USED]}
    if cand is not None:
        item.update(score=round(cand.score, 6), relevance=round(cand.relevance, 6),
                    recency=round(cand.recency, 6))
    return item


def _left(row, cand, reason, access):
    entry = {"id": row[ID], "scope": access.name_of(row[SCOPE]), "tokens": row[TOKENS], "reason": reason}
    if cand is not None:
        entry["score"] = round(cand.score, 6)
    return entry
