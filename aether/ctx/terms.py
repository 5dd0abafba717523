"""From a natural-language query to an FTS5 match expression, with a cost bound.

``terms(query)`` keeps the query's words in FTS5's sense (unicode61: runs of
letters and digits, case-folded), minus a short list of English stop words,
at most MAX_TERMS of them, in order of first appearance.

``plan(db, index, words, scope_ids, postings_budget)`` decides which of them
go into the MATCH expression.  FTS5 computes bm25() for every row that
matches (about 2 us a row on the host), so a term that occurs in a large
share of the items costs the most and, because its inverse document
frequency is low, changes the ranking least.  The planner counts each
term's matching rows in the searched scopes, stopping at CAP =
2 x postings_budget (a capped count reads row ids only: about 0.4 ms for
8,000 rows), and keeps terms from the rarest up while their counts add up to
at most ``postings_budget``.  The rarest term is kept even alone over the
budget as long as its count stays under CAP; when every term reaches CAP,
relevance is skipped and the window ranks by recency and importance alone.
A term that matches nothing is dropped as ``no_match``.  Every dropped term
is reported with its count and reason (``too_common``, with ``items`` = CAP
meaning "at least"), so a caller sees exactly what the ranking used.
"""

import re

MAX_TERMS = 16
DEFAULT_POSTINGS_BUDGET = 3000

STOP_WORDS = frozenset("""
a about above after again all also am an and any are as at be been before being below between
both but by can could did do does doing down during each few for from further had has have having
he her here hers him his how i if in into is it its itself just me more most my no nor not now of
off on once only or other our ours out over own same she should so some such than that the their
theirs them then there these they this those through to too under until up very was we were what
when where which while who whom why will with would you your yours
""".split())

_WORD = re.compile(r"[^\W_]+")     # unicode61: letters and digits; "_" separates


def terms(query):
    """The distinct searchable words of query, stop words removed, in order, at most MAX_TERMS."""
    seen, out = set(), []
    for word in _WORD.findall(query.casefold()):
        if word in STOP_WORDS or word in seen:
            continue
        seen.add(word)
        out.append(word)
        if len(out) == MAX_TERMS:
            break
    return out


def quote(term):
    """An FTS5 string literal for one term."""
    return '"' + term.replace('"', '""') + '"'


def expression(kept, scope_ids=None):
    """The MATCH expression: any kept term, within the given scopes (None: all)."""
    expr = " OR ".join(quote(t) for t in kept)
    if scope_ids is not None:
        expr = f"({expr}) AND sid:({' OR '.join(f's{i}' for i in scope_ids)})"
    return expr


def match_count(db, index, expr, cap):
    """Rows of the FTS5 table `index` matching expr, counted up to cap."""
    return db.one(f"SELECT count(*) FROM (SELECT rowid FROM {index} WHERE {index} MATCH ? LIMIT ?)",
                  (expr, cap))[0]


def plan(db, index, words, scope_ids=None, postings_budget=DEFAULT_POSTINGS_BUDGET):
    """(kept, dropped, counts): terms to match, [(term, items, reason)] left out, and every term's
    count of matching rows in the scopes (capped at 2 x postings_budget)."""
    cap = 2 * postings_budget
    counts = {}
    for word in words:
        count = match_count(db, index, expression([word]), cap)
        if count >= cap and scope_ids is not None:      # common overall: is it common here too?
            count = match_count(db, index, expression([word], scope_ids), cap)
        counts[word] = count
    kept, dropped, rows = [], [], 0
    for word in sorted(words, key=lambda w: (counts[w], words.index(w))):
        count = counts[word]
        if count == 0:
            dropped.append((word, 0, "no_match"))
        elif rows + count <= postings_budget or (not kept and count < cap):
            kept.append(word)
            rows += count
        else:
            dropped.append((word, count, "too_common"))
    kept.sort(key=words.index)
    dropped.sort(key=lambda d: words.index(d[0]))
    return kept, dropped, counts
