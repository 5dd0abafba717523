"""llm.think and ctx.thread: model calls that think with the context store.

The agent sends only what is new (``input``: a user turn; ``tool_results``: the
results of the tool calls the last answer asked for; optionally ``goal_id`` and
``rules``, kept on the thread).  aetherd:

1. finds the caller's thread (``thread`` by name, default ``main``; or
   ``thread_id``, which must be the caller's own: else ``permission_denied``);
2. assembles the window (aether/ctx/assembly.py) within the prompt budget: the
   caller's window (``context.window_tokens``; the endpoint's n_ctx as the broker
   knows it, with the broker's margin; DEFAULT_WINDOW when neither is known) minus
   the room kept for the answer (``max_tokens``) and the offered tools;
3. records the input turn, with what went in and what was left out by reference,
   durably, *before anything is sent*, and folds older turns into the thread's
   summary when the window no longer holds them (extractive; rewritten by the model
   as background broker work when one is configured, on the caller's own budget);
4. sends the window through the broker exactly as ``llm.complete`` does (the
   window check, the spend reserved first, priority, cancellation); with no model
   configured, or the spend exhausted, the call fails (``unavailable``,
   ``budget_exhausted``) and says the input was kept as turn N;
   With ``again: true`` and nothing new, it asks once more for the thread's last
   input that has no answer (one cut by a crash, or answered only by a failure):
   that turn's window is assembled again and no new input turn is written, so a
   restarted agent continues its thread where it was cut;
5. records the answer turn (content, tool calls, tokens; or the failure) and
   answers with the completion plus ``thread`` (ids, turn numbers) and ``window``
   (tokens, faults, what was left out, counted).

Accounting per principal (Meter), rebuilt from the turns when aetherd starts: *resident* (tokens of its last window),
*swapped* (tokens of its thread and its scope's memories that were not in that
window), *faults* (retrievals of a think: memories that are not pinned plus older
turns fetched back), *truncations* (thinks that left something out for room),
*pressure* (the share of its last PRESSURE_THINKS thinks that were truncated).
An agent *thrashes* when each of its last THRASH_THINKS thinks was full (see
assembly.FULL) and faulted: one ``alert`` event when it starts, one when it stops.
"""

import json
import time
from collections import deque

from ... import llm
from ...broker import queue as q
from ...ctx import assembly, threads as th
from ...ctx.errors import ContextError, InvalidArgument
from .. import checks, resummarise
from ..methods import ANY, PUBLIC, Method, obj
from ..protocol import BudgetExhausted, InvalidParams, Unavailable
from ..deferred import Deferred
from . import llm as glue
from .ctx import _mapped, _store, as_abi_error

DEFAULT_WINDOW = 4096          # tokens, when neither the agent's window nor the endpoint's is known
ANSWER_SHARE = 4               # the default answer room: at most a quarter of the window
SUMMARY_BUDGET = 256           # tokens of a thread summary, at most (and a tenth of the window)
PRESSURE_THINKS = 10
THRASH_THINKS = 5
REWRITES = 8                   # summary rewrites waiting for the model, at most


class Meter:
    """Context accounting per principal, since aetherd started (the turns keep each think's numbers)."""

    def __init__(self, publish=None):
        self.publish = publish
        self.by = {}

    def note(self, principal, agent, window, swapped):
        s = self.by.setdefault(principal, {"thinks": 0, "resident_tokens": 0, "swapped_tokens": 0, "faults": 0,
                                           "last_faults": 0, "truncations": 0, "thrashing": False,
                                           "recent": deque(maxlen=PRESSURE_THINKS), "at": 0.0})
        truncated = any(e.get("reason") in ("over_budget", "older_than_recent", "summarised",
                                            "pinned_over_budget", "lower_score") for e in window["left_out"])
        s["thinks"] += 1
        s["resident_tokens"], s["swapped_tokens"] = window["tokens"], max(0, swapped)
        s["faults"] += window["faults"]
        s["last_faults"] = window["faults"]
        s["truncations"] += int(truncated)
        s["recent"].append((window["full"], window["faults"], truncated))
        s["at"] = time.time()
        last = list(s["recent"])[-THRASH_THINKS:]
        thrashing = len(last) == THRASH_THINKS and all(full and faults > 0 for full, faults, _ in last)
        if thrashing != s["thrashing"] and self.publish:
            self.publish({"kind": "alert", "source": "context", "agent": agent, "principal": principal,
                          "message": (f"{principal} is thrashing: its last {THRASH_THINKS} thinks each had a full "
                                      "window and fetched context back; raise context.window_tokens, "
                                      "pin less, or shorten its turns") if thrashing else
                          f"{principal} no longer thrashes"})
        s["thrashing"] = thrashing

    def restore(self, store, principal):
        """Rebuild a principal's numbers from its last input turns (after aetherd restarts, the
        turns still hold each think's window), so accounting does not start from zero."""
        if self.by.get(principal) is not None or store is None:
            return
        try:
            rows = store.db.all("SELECT t.body FROM thread_turns t JOIN threads h ON h.id = t.thread_id "
                                "WHERE h.owner = ? AND t.role = 'input' ORDER BY t.id DESC LIMIT ?",
                                (principal, PRESSURE_THINKS))
        except Exception:  # noqa: BLE001 - an unreadable store: the numbers start afresh
            return
        for (body,) in reversed(rows):
            refs = json.loads(body).get("window") or {}
            if "tokens" not in refs:
                continue
            left = [{"reason": r} for r, n in (refs.get("left_out_counts") or {}).items() if n]
            self.note(principal, None, {"left_out": left, "tokens": refs.get("tokens", 0),
                                        "faults": refs.get("faults", 0), "full": bool(refs.get("full"))}, 0)

    def view(self, principal):
        s = self.by.get(principal)
        if s is None:
            return None
        recent = list(s["recent"])
        return {"thinks": s["thinks"], "resident_tokens": s["resident_tokens"], "swapped_tokens": s["swapped_tokens"],
                "faults": s["faults"], "faults_last": s["last_faults"],
                "faults_per_think": round(s["faults"] / s["thinks"], 3), "truncations": s["truncations"],
                "pressure": round(sum(1 for r in recent if r[2]) / len(recent), 3) if recent else 0.0,
                "thrashing": s["thrashing"]}

    def summary(self, caller=None):
        """Pressure for the machine (every principal's mean) and per principal (an agent sees its own)."""
        views = {p: self.view(p) for p in sorted(self.by)}
        pressure = round(sum(v["pressure"] for v in views.values()) / len(views), 3) if views else 0.0
        shown = {p: v for p, v in views.items() if caller is None or caller.privileged or p == caller.principal}
        return {"pressure": pressure, "thrashing": sorted(p for p, v in views.items() if v["thrashing"]),
                "by_principal": shown}


def meter(d):
    m = getattr(d, "think_meter", None)
    if m is None:
        m = d.think_meter = Meter(d.events.publish if getattr(d, "events", None) else None)
        _restore_all(d, m)
        if getattr(d, "supervisor", None) is not None:
            d.supervisor.think_view = m.view
    return m


def _restore_all(d, m):
    """The accounting of every principal with a thread, from the store (aetherd just started)."""
    store = getattr(d, "store", None)
    if store is None:
        return
    try:
        owners = [r[0] for r in store.db.all("SELECT DISTINCT owner FROM threads LIMIT 4096")]
    except Exception:  # noqa: BLE001 - an unreadable store: the numbers start afresh
        return
    publish, m.publish = m.publish, None            # a restart is not news: no thrash alerts for the past
    try:
        for owner in owners:
            m.restore(store, owner)
    finally:
        m.publish = publish


# -- llm.think -----------------------------------------------------------------------------------

def think(d, caller, params, conn):
    store, c = _store(d), glue.client(d)
    meter(d)                        # made (and rebuilt from the turns) before this think adds one
    again = bool(params.get("again"))
    try:
        if again and (params.get("input") is not None or params.get("tool_results") is not None):
            raise InvalidParams("again asks once more for the thread's last input: give no input or tool_results")
        if not again:
            text, results = th.check_input(params.get("input"), params.get("tool_results"))
        specs, _ = llm.tool_specs(params.get("tools"))
    except llm.InvalidRequest as e:
        raise InvalidParams(str(e)) from None
    except ContextError as e:
        raise as_abi_error(e) from None
    try:
        with store.transaction():
            thread, goal = _thread(store, caller, params)
        budget, max_tokens, numbers = _budget(d, caller, c, params, specs)
        system = _system(d, caller, thread, goal)
        if again:
            n, body = _unanswered(store, thread)
            window = assembly.assemble(store, caller.principal, _before(thread, n), body, system, budget, max_tokens)
            turn = {"n": n}
            _account(d, store, caller, thread, window)
        else:
            body = {"text": text, "tool_results": results, "goal_id": thread.goal_id}
            window = assembly.assemble(store, caller.principal, thread, body, system, budget, max_tokens)
            turn = _record_input(d, store, caller, thread, body, window)
    except ContextError as e:
        raise as_abi_error(e) from None
    where = {"thread_id": thread.id, "thread": thread.name, "input_turn": turn["n"], **({"again": True} if again else {})}
    if not c.configured:
        e = glue.not_configured(c)
        raise Unavailable(f"{e}; the input was recorded as turn {turn['n']} of thread {thread.id}", where)
    return _send(d, caller, conn, c, params, specs, window, max_tokens, numbers, thread, where)


def _unanswered(store, thread):
    """(n, body) of the thread's last input when nothing answered it since (or only failures did)."""
    threads, n = th.of(store), thread.turns
    while n >= 1:
        role, body, _ = threads.bodies(thread.id, [n])[n]
        if role == "input":
            return n, {k: body.get(k) for k in ("text", "tool_results", "goal_id")}
        if not body.get("error"):
            break
        n -= 1
    raise InvalidArgument(f"thread {thread.id} has no unanswered input to ask again for (its last turn, "
                          f"{thread.turns}, {'is an answer' if thread.turns else 'does not exist'}); "
                          "send the new input instead")


def _before(thread, n):
    """The thread as it stood before turn n (for assembling turn n's window again)."""
    return th.Thread(tuple(thread[:6]) + (n - 1,) + tuple(thread[7:]))


def _thread(store, caller, params):
    """(thread, goal view or None): the caller's thread, with its rules and goal kept."""
    threads = th.of(store)
    if params.get("thread_id") is not None:
        thread = threads.get(caller.principal, params["thread_id"])
    else:
        thread = threads.open(caller.principal, params.get("thread") or "main")
    goal_id = params.get("goal_id")
    if goal_id is not None:
        store.goal(caller.principal, goal_id, history=False)      # the caller must be able to read it
    thread = threads.set_rules(thread, params.get("rules"), goal_id)
    goal = store.goal(caller.principal, thread.goal_id, history=False) if thread.goal_id else None
    return thread, goal


def _system(d, caller, thread, goal):
    """The system text: the agent's rules, then its goal (the thread's goal, else its manifest's)."""
    parts = [thread.rules or "You are an agent on AetherOS. Earlier context is given below when it bears "
                             "on the new input; answer the new input."]
    if goal is not None:
        steps = "; ".join(f"{s['n']}. {s['description'][:200]} ({s['status']})" for s in goal.get("steps", [])[:20])
        parts.append(f"Goal {goal['id']} ({goal['status']}): {goal['intent'][:2000]}" +
                     (f"\nPlan: {goal['plan'][:1000]}" if goal.get("plan") else "") +
                     (f"\nSteps: {steps}" if steps else ""))
    elif caller.agent:
        agent = d.supervisor.agents.get(caller.agent)
        manifest_goal = getattr(getattr(agent, "manifest", None), "goal", None)
        if manifest_goal:
            parts.append(f"Goal: {str(manifest_goal)[:2000]}")
    return "\n\n".join(parts)


def _budget(d, caller, c, params, specs):
    """(prompt budget, max_tokens, the window numbers): what the assembled prompt may use."""
    numbers = glue.window_of(d, caller)
    limits = [n for n in (numbers["agent_window_tokens"],) if n]
    if numbers["endpoint_n_ctx"]:
        limits.append(int(numbers["endpoint_n_ctx"] / glue.PROMPT_MARGIN))
    window = min(limits) if limits else DEFAULT_WINDOW
    asked = params.get("max_tokens")
    max_tokens = asked if asked is not None else max(glue.MIN_COMPLETION, min(c.max_tokens, window // ANSWER_SHARE))
    tools = llm.estimate_tokens(json.dumps(specs, ensure_ascii=False)) if specs else 0
    budget = window - max_tokens - tools - (glue.MESSAGE_OVERHEAD * 16 if numbers["endpoint_n_ctx"] else 0)
    if budget < 64:
        raise InvalidParams(f"the window leaves no room for a prompt: {window} tokens, {max_tokens} kept for the "
                            f"answer and {tools} for the offered tools; lower max_tokens, offer fewer tools or "
                            "raise context.window_tokens", {"window_tokens": window, "max_tokens": max_tokens})
    return budget, max_tokens, numbers


def _record_input(d, store, caller, thread, body, window):
    """Write the input turn (durably) with its window's references, and compact older turns."""
    threads = th.of(store)
    messages = th.input_messages(body, set())
    with store.transaction():
        turn = threads.record(thread.id, "input", {**body, "window": assembly.refs(window)},
                              th.searchable("input", body), assembly.turn_tokens(messages), caller.principal)
    oldest = window["recent"][0] if window["recent"] else thread.turns + 1
    made = None
    if oldest > 1:
        budget = max(32, min(SUMMARY_BUDGET, window["budget_tokens"] // 10))
        with store.transaction():
            made = threads.compact(thread.id, oldest, budget, store.estimator, store.summariser)
        if made is not None:
            _rewrite(d, store, caller, thread.id, made)
    _account(d, store, caller, thread, window)
    return turn


def _account(d, store, caller, thread, window):
    home = store.access.lookup(caller.principal)
    memory_tokens = 0
    if home is not None:
        row = store.db.one("SELECT live_tokens FROM scopes WHERE id = ?", (home[0],))
        memory_tokens = row[0] if row else 0
    in_window = sum(m[3] for m in window["memories"])
    turns = store.db.one("SELECT tokens FROM threads WHERE id = ?", (thread.id,))[0]
    shown = sum(t for _, _, t in th.of(store).bodies(thread.id, window["recent"] + window["relevant"]).values())
    meter(d).note(caller.principal, caller.agent, window, turns - shown + max(0, memory_tokens - in_window))


def _send(d, caller, conn, c, params, specs, window, max_tokens, numbers, thread, where):
    """Through the broker, as llm.complete: fitted, reserved, queued; the answer recorded after."""
    messages = window["messages"]
    try:
        principal, klass, priority, agent = glue.account_of(d, caller)
    except glue.LedgerError as e:
        raise Unavailable(str(e), where) from None
    prompt = llm.estimate_prompt(messages, specs)
    try:
        max_tokens = glue.fit(messages, specs, prompt, max_tokens, max_tokens, numbers)
        hold = glue.reserve(d, principal, agent, prompt + max_tokens)
    except (InvalidParams, BudgetExhausted, Unavailable) as e:
        _record_answer(d, thread, caller, {"error": {"code": e.code, "message": str(e)[:2000]}})
        raise type(e)(f"{e} (the input was recorded as turn {where['input_turn']} of thread {thread.id})",
                      {**(e.data or {}), **where}) from None
    stream = params.get("stream", d.config.get("llm.stream") == "on")
    request = {"messages": messages, "tools": params.get("tools"), "stream": stream, "max_tokens": max_tokens,
               "temperature": params.get("temperature"), "tool_choice": params.get("tool_choice")}
    call = glue.Call(principal, klass, priority, glue.asker(c, request), hold, prompt, max_tokens, stream,
                     float(params.get("deadline_s") or glue.call_timeout(d)), conn=conn, agent=agent)
    relay = Deferred()
    summary = {k: window[k] for k in ("tokens", "budget_tokens", "faults", "full")}
    summary.update(left_out_counts=window["counts"], memories=len(window["memories"]),
                   recent=len(window["recent"]), relevant=len(window["relevant"]))

    def done(value, error):
        if error is not None:
            _record_answer(d, thread, caller, {"error": {"code": getattr(error, "code", "internal"),
                                                         "message": str(error)[:2000]}})
            data = {**(getattr(error, "data", None) or {}), **where}
            relay.fail(type(error)(str(error), data) if hasattr(error, "code") else error)
            return
        answer = _record_answer(d, thread, caller, _answer_body(value))
        relay.resolve({**value, "thread": {**where, "answer_turn": answer}, "window": summary})
    glue._learning(d, d.broker.submit(call)).bind(done)
    return relay


def _answer_body(value):
    calls = [{k: c.get(k) for k in ("id", "name", "wire_name", "arguments_json")} for c in value.get("tool_calls") or []]
    content = value.get("content")
    return {"content": content[:th.MAX_ANSWER] if isinstance(content, str) else None, "tool_calls": calls[:64],
            "usage": value.get("usage"), "finish_reason": value.get("finish_reason")}


def _record_answer(d, thread, caller, body):
    """The answer turn's number (None when it could not be written: the log says why)."""
    store = d.store
    try:
        with store.transaction():
            return th.of(store).record(thread.id, "answer", body, th.searchable("answer", body),
                                       assembly.turn_tokens(th.answer_messages(body)), caller.principal)["n"]
    except ContextError as e:
        d.log.error(f"llm.think: the answer for thread {thread.id} could not be recorded: {e}")
        return None


def _rewrite(d, store, caller, thread_id, made):
    """Ask the model (background, through the broker) to rewrite an extractive thread summary, on
    the thread owner's account: an agent's rewrites spend its own model budget, not the system's
    (else every think that compacts would spend the machine's model time at no cost to it)."""
    if not glue.client(d).configured or not made["text"]:
        return
    pending = getattr(d, "think_rewrites", None)
    if pending is None:
        pending = d.think_rewrites = set()
    if thread_id in pending or len(pending) >= REWRITES:
        return
    room = max(resummarise.MIN_BUDGET, made["tokens"])
    messages = [{"role": "system", "content": resummarise.SYSTEM_PROMPT},
                {"role": "user", "content": f"Summarise this conversation so far in at most {room * 3 // 4} words."
                                            f"\n\n{made['text'][:8000]}"}]
    try:
        deferred = _submit_rewrite(d, caller, messages, 2 * room)
    except Exception as e:  # noqa: BLE001 - the extractive summary stays
        d.log.info(f"llm.think: thread {thread_id}'s summary stays extractive: {e}")
        return
    pending.add(thread_id)

    def done(value, error):
        pending.discard(thread_id)
        text = (value or {}).get("content") if error is None else None
        if not text or not text.strip() or (value or {}).get("finish_reason") == "length":
            return
        newest = th.of(store).summary(thread_id)
        if newest is None or newest["through_n"] != made["through_n"]:
            return                          # a newer summary was made meanwhile: keep it
        try:
            with store.transaction():
                th.of(store).add_summary(thread_id, made["through_n"], text.strip(), store.estimator.count(text),
                                         f"model:{glue.client(d).model or 'unnamed'}")
        except ContextError as e:
            d.log.error(f"llm.think: cannot keep the model's summary of thread {thread_id}: {e}")
    deferred.bind(done)


def _submit_rewrite(d, caller, messages, max_tokens):
    """The rewrite's Deferred: the privileged's as aetherd's own work, an agent's reserved on its account."""
    if caller.privileged or not caller.agent:
        return glue.submit_internal(d, messages, max_tokens, temperature=0)
    principal, _, priority, agent = glue.account_of(d, caller)
    prompt = llm.estimate_prompt(messages, [])
    max_tokens = glue.fit(messages, [], prompt, max_tokens, max_tokens, glue.window_of(d, caller))
    hold = glue.reserve(d, principal, agent, prompt + max_tokens)
    request = {"messages": messages, "tools": None, "stream": False, "max_tokens": max_tokens,
               "temperature": 0, "tool_choice": None}
    call = glue.Call(principal, q.BACKGROUND, priority, glue.asker(glue.client(d), request), hold, prompt,
                     max_tokens, False, glue.call_timeout(d), agent=agent)
    return glue._learning(d, d.broker.submit(call))


# -- ctx.thread ----------------------------------------------------------------------------------

def thread(d, caller, params, conn):
    """The caller's threads; one thread's turns (paged); or one turn with its window resolved."""
    store = _store(d)
    threads = th.of(store)
    try:
        if params.get("thread_id") is None and params.get("thread") is None:
            return {"threads": threads.list(caller.principal)}
        if params.get("thread_id") is not None:
            t = threads.get(caller.principal, params["thread_id"], write=False)
        else:
            t = threads.open(caller.principal, params["thread"], create=False)
        if params.get("turn") is not None:
            return explain(store, caller, t, params["turn"])
        page = threads.page(t.id, params.get("after_n", 0), params.get("limit", 100))
        result = {"thread": t.view(), **page, "summaries": threads.summaries(t.id)}
    except ContextError as e:
        raise as_abi_error(e) from None
    if not params.get("verify"):
        return result
    chain = checks.of(d, _mapped).join(("thread", t.id), lambda: threads.verify_steps(t.id),
                                       caller.principal, f"check of thread {t.id}'s chain",
                                       caller.privileged)
    return checks.then(chain, lambda found: {**result, "chain": found})


def explain(store, caller, t, n):
    """Turn n, and for an input turn exactly what went into its window (references resolved)."""
    threads = th.of(store)
    turn = threads.turn(t.id, n)
    refs = turn["body"].get("window") if turn["role"] == "input" else None
    if not refs:
        return {"thread": t.view(), "turn": turn}
    memories = []
    for mid in refs.get("memories") or []:
        row = store.db.one("SELECT id, kind, text, pinned, state, scope_id FROM memories WHERE id = ?", (mid,))
        scope = store.access.name_of(row[5]) if row else None
        if row and (scope is None or store.access.mode(caller.principal, scope) is None):
            memories.append({"id": row[0], "unreadable": True})     # its grant was taken back since
        elif row:
            memories.append({"id": row[0], "kind": row[1], "text": (row[2] or "")[:2000], "pinned": bool(row[3]),
                             "state": row[4]})
    numbers = list(refs.get("relevant") or [])
    if refs.get("recent"):
        numbers += list(range(refs["recent"][0], refs["recent"][1] + 1))
    bodies = threads.bodies(t.id, numbers[:200])
    shown = [{"n": k, "role": bodies[k][0], "text": th.searchable(bodies[k][0], bodies[k][1])[:2000],
              "why": "relevant" if k in (refs.get("relevant") or []) else "recent"} for k in sorted(bodies)]
    summary = None
    if refs.get("summary"):
        row = store.db.one("SELECT id, through_n, text, summariser FROM thread_summaries WHERE id = ?",
                           (refs["summary"],))
        summary = {"id": row[0], "through_n": row[1], "text": row[2], "summariser": row[3]} if row else None
    return {"thread": t.view(), "turn": turn,
            "window": {"memories": memories, "summary": summary, "turns": shown, "left_out": refs.get("left_out"),
                       "left_out_counts": refs.get("left_out_counts"), "tokens": refs.get("tokens"),
                       "budget_tokens": refs.get("budget_tokens"), "faults": refs.get("faults")}}


def summary(d, caller=None):
    """For sys.info: context pressure for the machine and per principal."""
    m = getattr(d, "think_meter", None)
    return m.summary(caller) if m is not None else {"pressure": 0.0, "thrashing": [], "by_principal": {}}


STR = {"type": "string", "maxLength": 200}
ID = {"type": "integer", "minimum": 1}
METHODS = [
    Method("llm.think", think,
           obj([], input={"type": "string", "maxLength": th.MAX_TEXT},
               tool_results={"type": "array", "maxItems": th.MAX_RESULTS, "items": {"type": "object"}},
               thread={"type": "string", "minLength": 1, "maxLength": th.MAX_NAME}, thread_id=ID, goal_id=ID,
               rules={"type": "string", "maxLength": th.MAX_RULES}, tools={"type": "array", "maxItems": 128},
               max_tokens={"type": "integer", "minimum": 1, "maximum": 1_000_000},
               temperature={"type": "number", "minimum": 0, "maximum": 2},
               tool_choice={"type": ["string", "object"]}, stream={"type": "boolean"},
               deadline_s={"type": "number", "minimum": 0.1, "maximum": 86400}, again={"type": "boolean"}), ANY,
           "a model call that thinks with the store: send only what is new; aetherd assembles the window "
           "from the thread, the goal and the memories, records the turn, and sends it through the broker"),
    Method("ctx.thread", thread,
           obj(thread_id=ID, thread={"type": "string", "minLength": 1, "maxLength": th.MAX_NAME},
               turn=ID, after_n={"type": "integer", "minimum": 0},
               limit={"type": "integer", "minimum": 1, "maximum": 1000}, verify={"type": "boolean"}), PUBLIC,
           "the caller's threads; a thread's turns (paged); with turn=N, what went into that think's window "
           "and what was left out"),
]
