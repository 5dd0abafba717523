"""Think windows: what ``llm.think`` sends the model, assembled from a thread and the store.

The agent sends only what is new; the window is built, in this order, within
``budget`` tokens (the agent's window minus the room kept for the answer):

1. **Required**: the system text (the agent's rules and goal) and the new input.
   If these alone do not fit, the think is refused naming the numbers.
2. **Memories** (at most MEMORY_SHARE of what is left): ``ContextStore.window``
   for the new input, the ranking ``ctx.window`` has: pinned first, then
   relevance, recency and importance.  An agent's come from its own scopes and
   those a person granted it (not from a grant by another agent, which nobody
   asked for); the shell's and the host's only from the user's and the system's
   scopes (``memory_scopes``): they may read every agent's scope, and a memory an
   agent planted there must not reach a privileged prompt.
3. **Summary** (at most SUMMARY_SHARE): the newest summary of the older turns.
4. **Recent turns**, verbatim, newest first while they fit, leaving
   RELEVANT_SHARE for step 5: a contiguous tail of the thread.
5. **Relevant older turns**: the RELEVANT_K best full-text matches of the new
   input among the turns before that tail (BM25 in ``turns_fts``, the query
   planned like ``ctx.window``'s), packed into what is left.

Every piece is counted with the estimate the broker checks calls with
(aether/llm/wire.py: 4 characters a token, of the JSON); the assembled messages are
measured once more and the oldest recent turns dropped until they fit.

The result says, by reference, what went in (memory ids, turn numbers, the
summary id) and what was left out and why: ``older_than_recent`` /
``summarised`` (ranges of turns), ``over_budget`` (a matching turn, a memory,
the summary), and the memories' own reasons from ``ctx.window``.  *Faults* are
the retrievals of a think: memories that are not pinned plus older turns fetched
back by relevance.  Costs do not grow with the thread: the tail is read in
pages from its end, the matches are LIMITed and the term planner bounds BM25.
"""

import json

from . import access as acl
from . import terms as fts
from . import threads as th
from .errors import InvalidArgument

PRIVILEGED_SCOPES = ("user", "system")   # a privileged caller's memories come from these only
MEMORY_SHARE = 0.30
SUMMARY_SHARE = 0.15
RELEVANT_SHARE = 0.20
RELEVANT_K = 16
PAGE = 64                      # turns read per step while walking back from the end
LISTED = 20                    # left-out entries listed one by one, at most
FULL = 0.9                     # a window this full (or with anything left out for room) is "full"
MESSAGE_OVERHEAD = 2           # tokens a message's JSON wrapping costs beyond its content


def cost(value):
    """Tokens a message, text or list costs, the way aether/llm/wire.py estimates a prompt."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return (len(text) + 3) // 4 + 1


def turn_tokens(messages):
    """What a turn's messages cost (stored with the turn)."""
    return sum(cost(m) + MESSAGE_OVERHEAD for m in messages)


class Window(dict):
    """The assembled window: messages, refs, left_out, tokens, faults, full, demand_tokens."""


def assemble(store, caller, thread, new_body, system_text, budget, max_tokens=0):
    """The Window for one think on thread (a threads.Thread) with new_body (an input body)."""
    threads = th.of(store)
    last = threads.bodies(thread.id, [thread.turns]).get(thread.turns) if thread.turns else None
    answered = {c["id"] for c in (last[1].get("tool_calls") or [])} if last and last[0] == "answer" else set()
    new_messages = th.input_messages(new_body, answered)
    system_base = {"role": "system", "content": system_text}
    required = cost(system_base) + turn_tokens(new_messages)
    if required > budget:
        raise InvalidArgument(f"the think does not fit the window: the rules, goal and new input alone are "
                              f"about {required} tokens and the window leaves {budget} for the prompt "
                              f"({max_tokens} kept for the answer); send a shorter input, fewer tool "
                              "results, shorter rules, or raise context.window_tokens")
    rest = budget - required
    left_out, counts = [], {}
    query = " ".join(filter(None, [new_body.get("text") or ""] +
                            [r["content"][:2000] for r in new_body.get("tool_results") or ()]))[:2000]
    memories, mem_tokens, mem_faults = _memories(store, caller, query, int(rest * MEMORY_SHARE), left_out, counts)
    rest -= mem_tokens
    summary = threads.summary(thread.id)
    summary_tokens = 0
    if summary and summary["text"]:
        summary_tokens = cost(summary["text"]) + 8
        if summary_tokens > min(rest, int((budget - required) * SUMMARY_SHARE) + 1):
            left_out.append({"summary": summary["id"], "tokens": summary_tokens, "reason": "over_budget"})
            summary, summary_tokens = None, 0
    else:
        summary = None
    rest -= summary_tokens
    recent = _recent(store, thread, rest - int((budget - required) * RELEVANT_SHARE))
    rest -= sum(t for _, t in recent)
    oldest = recent[0][0] if recent else thread.turns + 1
    relevant = _relevant(store, thread, query, oldest, rest, left_out, counts)
    rest -= sum(t for _, t in relevant)
    window = Window(system=system_base, memories=memories, summary=summary, recent=[n for n, _ in recent],
                    relevant=[n for n, _ in relevant], left_out=left_out, counts=counts, new_body=new_body)
    _older_ranges(window, oldest, summary, thread)
    _render(window, threads, thread, answered)
    _fit(window, threads, thread, answered, budget)
    window["faults"] = mem_faults + len(window["relevant"])
    window["budget_tokens"] = budget
    window["full"] = window["tokens"] >= FULL * budget or any(
        counts.get(k) for k in ("over_budget", "older_than_recent", "summarised", "memory_over_budget",
                                "memory_lower_score", "memory_pinned_over_budget"))
    return window


def refs(window):
    """What went into the window and what was left out, by reference (kept with the input turn)."""
    recent = window["recent"]
    return {"memories": [m[0] for m in window["memories"]], "pinned": [m[0] for m in window["memories"] if m[1]],
            "summary": window["summary"]["id"] if window["summary"] else None,
            "summary_through": window["summary"]["through_n"] if window["summary"] else None,
            "recent": [recent[0], recent[-1]] if recent else None, "relevant": window["relevant"],
            "left_out": window["left_out"][:3 * LISTED], "left_out_counts": window["counts"],
            "tokens": window["tokens"], "budget_tokens": window["budget_tokens"], "faults": window["faults"],
            "full": window["full"]}


def memory_scopes(store, caller):
    """The scopes a think's memories come from.  For an agent: its own scope, the scopes it owns,
    and those a person (the shell or the host) granted it; not a scope another agent granted it,
    since any agent may grant its scope to anyone unasked, and its pinned memories would then
    instruct the grantee (it still reads them when it asks: ctx.search, ctx.window).  For the shell
    and the host, which may read every scope, only the user's and the system's, so that no memory
    an agent planted in its own scope reaches a privileged caller's prompt."""
    if acl.privileged(caller) or caller == "host":
        return [name for name in PRIVILEGED_SCOPES if store.access.lookup(name) is not None]
    names = set(store.access.owned(caller))
    if caller.startswith("agent:"):
        names.add(caller)
    granted = store.db.all("SELECT s.name, g.granted_by FROM grants g JOIN scopes s ON s.id = g.scope_id "
                           "WHERE g.grantee = ?", (caller,))
    names |= {name for name, by in granted if acl.privileged(by)}
    return sorted(name for name in names if store.access.lookup(name) is not None)


def _memories(store, caller, query, budget, left_out, counts):
    """(included [(id, pinned, text, tokens)], tokens, faults) from ctx.window's ranking."""
    if budget < 16:
        return [], 0, 0
    scopes = memory_scopes(store, caller)
    if scopes == []:
        return [], 0, 0
    w = store.window(caller, query=query, budget_tokens=budget, scopes=scopes)
    included, used = [], 0
    for item in w["items"]:
        line = f"- [memory {item['id']}] {item['text']}"
        tokens = cost(line)
        if used + tokens > budget:
            left_out.append({"memory": item["id"], "tokens": tokens, "reason": "over_budget"})
            counts["over_budget"] = counts.get("over_budget", 0) + 1
            continue
        included.append((item["id"], item["pinned"], line, tokens))
        used += tokens
    for entry in w["left_out"][:LISTED]:
        left_out.append({"memory": entry["id"], "tokens": entry["tokens"], "reason": entry["reason"]})
    for reason, n in w["left_out_counts"].items():
        if n:
            counts[f"memory_{reason}"] = n
    return included, used + (8 if included else 0), sum(1 for i in included if not i[1])


def _recent(store, thread, budget):
    """[(n, tokens)] of the newest turns that fit budget, oldest first (a contiguous tail)."""
    out, used, n = [], 0, thread.turns
    while n >= 1:
        rows = store.db.all("SELECT n, tokens FROM thread_turns WHERE thread_id = ? AND n <= ? "
                            "ORDER BY n DESC LIMIT ?", (thread.id, n, PAGE))
        if not rows:
            break
        for number, tokens in rows:
            if used + tokens > budget:
                out.reverse()
                return out
            out.append((number, tokens))
            used += tokens
        n = rows[-1][0] - 1
    out.reverse()
    return out


def _relevant(store, thread, query, before, budget, left_out, counts):
    """[(n, tokens)] of the best-matching turns before `before` that fit budget, by turn number."""
    words = fts.terms(query)
    if before <= 1 or not words or budget <= 0:
        return []
    kept, _dropped, _ = fts.plan(store.db, "turns_fts", words, [thread.id])
    if not kept:
        return []
    rows = store.db.all("SELECT t.n, t.tokens FROM turns_fts f JOIN thread_turns t ON t.id = f.rowid "
                        "WHERE turns_fts MATCH ? AND t.thread_id = ? AND t.n < ? ORDER BY f.rank LIMIT ?",
                        (fts.expression(kept, [thread.id]), thread.id, before, RELEVANT_K))
    chosen, used = [], 0
    for n, tokens in rows:
        tokens += MESSAGE_OVERHEAD + 4
        if used + tokens <= budget:
            chosen.append((n, tokens))
            used += tokens
        else:
            counts["over_budget"] = counts.get("over_budget", 0) + 1
            if len(left_out) < 3 * LISTED:
                left_out.append({"turn": n, "tokens": tokens, "reason": "over_budget"})
    chosen.sort()
    return chosen


def _older_ranges(window, oldest, summary, thread):
    """Count the turns before the recent tail that are not in the window, as ranges with a reason."""
    fetched = len(window["relevant"])
    through = min(summary["through_n"], oldest - 1) if summary else 0
    if through >= 1:
        inside = sum(1 for n in window["relevant"] if n <= through)
        window["left_out"].append({"turns": [1, through], "count": through - inside, "reason": "summarised",
                                   "summary": summary["id"]})
        window["counts"]["summarised"] = through - inside
        fetched -= inside
    if oldest - 1 > through:
        window["left_out"].append({"turns": [through + 1, oldest - 1], "count": oldest - 1 - through - fetched,
                                   "reason": "older_than_recent"})
        window["counts"]["older_than_recent"] = oldest - 1 - through - fetched


def _render(window, threads, thread, answered):
    """The chat messages: one system message (rules, goal, memories, summary, relevant turns), the
    recent turns verbatim, the new input."""
    sections = [window["system"]["content"]]
    if window["memories"]:
        sections.append("Memories (pinned first, then the most relevant):\n" +
                        "\n".join(line for _, _, line, _ in window["memories"]))
    if window["summary"]:
        sections.append(f"Summary of turns 1-{window['summary']['through_n']}:\n{window['summary']['text']}")
    bodies = threads.bodies(thread.id, window["relevant"] + window["recent"])
    if window["relevant"]:
        lines = []
        for n in window["relevant"]:
            role, body, _ = bodies[n]
            lines.append(f"[turn {n}, {'the user / tools' if role == 'input' else 'you'}] "
                         f"{th.searchable(role, body)}")
        sections.append("Earlier turns that bear on this:\n" + "\n".join(lines))
    messages = [{"role": "system", "content": "\n\n".join(s for s in sections if s)}]
    asked = set()
    for n in window["recent"]:
        role, body, _ = bodies[n]
        if role == "answer":
            messages += th.answer_messages(body)
            asked = {c["id"] for c in body.get("tool_calls") or ()}
        else:
            messages += th.input_messages(body, asked)
            asked = set()
    if thread.turns not in window["recent"]:
        answered = set()                # the call that asked for these results is not shown
    window["messages"] = messages + th.input_messages(window["new_body"], answered)
    window["tokens"] = sum(cost(m) + MESSAGE_OVERHEAD for m in window["messages"])


def _fit(window, threads, thread, answered, budget):
    """Drop the oldest recent turns until the measured messages fit budget (the estimates of the
    pieces can differ a little from the whole's)."""
    while window["tokens"] > budget and window["recent"]:
        dropped = window["recent"].pop(0)
        window["counts"]["older_than_recent"] = window["counts"].get("older_than_recent", 0) + 1
        window["left_out"].append({"turns": [dropped, dropped], "count": 1, "reason": "older_than_recent"})
        _render(window, threads, thread, answered)
    while window["tokens"] > budget and window["relevant"]:
        window["left_out"].append({"turn": window["relevant"].pop(), "reason": "over_budget"})
        _render(window, threads, thread, answered)
