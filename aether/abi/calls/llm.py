"""llm.*: a completion through the OS, from any OpenAI-compatible endpoint, via the broker.

The endpoint, model and key are aetherd's (``aether.llm.*`` settings); callers
never see the key.  Every model call on the machine (agents' ``llm.complete``, the
shell's model planner, compaction rewrites) waits in the broker's one queue
(aether/broker/): interactive first (the privileged shell and the host), then
agents by manifest priority, then background work; fair share and aging within.

Before a call is queued it must fit two numbers (docs/abi.md, "Model calls"):

* the *window*: the prompt estimate plus ``max_tokens`` must fit in the caller's
  ``context.window_tokens`` and in the endpoint's context size (``aether.llm.n_ctx``,
  else what the server says at /props or /v1/models, else what its errors say).
  A call that does not fit is refused naming the numbers and the messages to drop;
  with no ``max_tokens`` given, the default is lowered to fit first;
* the *spend*: the same tokens are reserved on the caller's account (spend.py);
  refused (``budget_exhausted``) when they are not left.  Agents: ``context.spend_tokens``
  per ``context.period``; a local user that is neither root nor an agent:
  ``aether.llm.uid_spend_tokens`` per ``aether.llm.uid_period_s`` (0: refused); the
  shell, the host and the system: counted, not limited.

The answer is the completion plus ``broker``: queue wait, service time, the tokens
charged and whether the server counted them or they were estimated.
"""

import json
import re

from ... import llm
from ...broker import queue as q
from ...broker.broker import Broker, Call
from ...broker.spend import Exhausted, Ledger, LedgerError
from .. import worker
from ..methods import ANY, Method, obj
from ..protocol import BudgetExhausted, InvalidParams, Unavailable

SETTINGS = ("endpoint", "model", "api_key", "timeout", "max_tokens")
MIN_COMPLETION = 16        # tokens: a default max_tokens is lowered to fit the window, not below this
PROMPT_MARGIN = 1.25       # our estimate x this must fit the endpoint's n_ctx (its tokenizer may count more)
MESSAGE_OVERHEAD = 8       # tokens a chat template adds per message, at most (for the endpoint's fit)
SYSTEM = "system"          # the account of aetherd's own calls (compaction rewrites)
N_CTX_SAYS = (re.compile(r"maximum context length is (\d+)"), re.compile(r"context window of (\d+)"),
              re.compile(r"n_ctx[^0-9]{0,20}(\d+)"))


def client(d):
    values = {k: d.config[f"llm.{k}"] for k in SETTINGS if d.config.get(f"llm.{k}") not in (None, "")}
    return llm.Client.from_config(values)


def call_timeout(d):
    """How long a worker asking the model may run: llm.timeout bounds each wait, not the call."""
    return float(d.config.get("llm.timeout") or 120) * 5


# -- the broker on the daemon ----------------------------------------------------------------

def make_broker(d):
    """The daemon's broker, its ledger shared with the supervisor (carving); cancels follow
    closed connections and stopped agents."""
    ledger = getattr(d.supervisor, "ledger", None) or Ledger(log=d.log)
    ledger.log = d.log
    d.supervisor.ledger = ledger
    broker = Broker(d.loop, d.reaper, ledger, d.log, d.events.publish,
                    concurrency=int(d.config.get("llm.concurrency") or 1),
                    bound=int(d.config.get("llm.queue_limit") or q.DEFAULT_BOUND),
                    aging_s=float(d.config.get("llm.aging_s") or q.DEFAULT_AGING),
                    fifo=d.config.get("llm.order") == "fifo", endpoint=d.config.get("llm.endpoint") or "none")
    broker.timeout = call_timeout(d)
    broker.n_ctx = int(d.config.get("llm.n_ctx") or 0) or None
    broker.n_ctx_source = "aether.llm.n_ctx" if broker.n_ctx else None
    d.server.on_close.append(broker.connection_closed)
    d.events.subscribers.append(broker.agent_event)
    d.supervisor.llm_view = lambda principal: broker.stats_view(principal)
    return broker


def attach_store(d):
    """Spend from now on persists in the context store (and what a previous aetherd left counts)."""
    if d.store is None:
        d.log.warning("llm: the context store is not open: model-token spend is kept in memory "
                      "only and starts again when aetherd restarts")
        return
    try:
        for notice in d.broker.ledger.attach(d.store):
            d.log.info(f"llm: {notice}")
    except Exception as e:  # noqa: BLE001 - aetherd runs on; spending stays in memory
        d.log.error(f"llm: cannot load model-token spend from the context store: {e}")
    probe_window(d)


def probe_window(d):
    """Ask the server for its context size when no aether.llm.n_ctx is set (in a worker)."""
    broker, c = d.broker, client(d)
    if broker.n_ctx or not c.configured:
        return

    def ask():
        return endpoint_n_ctx(c)

    def done(value, error):
        if error is None and value and not broker.n_ctx:
            broker.n_ctx, broker.n_ctx_source = int(value["n_ctx"]), value["source"]
            d.log.info(f"llm: the endpoint's context window is {broker.n_ctx} tokens ({value['source']})")
        return value, error

    worker.run(d.loop, d.reaper, ask, min(30.0, call_timeout(d)), on_done=done)


def endpoint_n_ctx(c):
    """{n_ctx, source} from the server (llama.cpp's /props, or /v1/models metadata), or None."""
    from ... import httpclient
    base = c.endpoint.rstrip("/")
    root = base[:-3] if base.endswith("/v1") else base
    for url, pick in ((root + "/props", _props_n_ctx), (base + "/models", _models_n_ctx)):
        try:
            with httpclient.request("GET", url, c._headers(False), timeout=min(5.0, c.timeout)) as r:
                data, _ = r.read(1 << 20)
                if r.status == 200:
                    found = pick(json.loads(data))
                    if found:
                        return {"n_ctx": found, "source": url}
        except Exception:  # noqa: BLE001 - any failure: unknown, try the next
            continue
    return None


def _props_n_ctx(answer):
    if not isinstance(answer, dict):
        return None
    for where in (answer, answer.get("default_generation_settings") or {}):
        if isinstance(where, dict) and isinstance(where.get("n_ctx"), int) and where["n_ctx"] > 0:
            return where["n_ctx"]
    return None


def _models_n_ctx(answer):
    for model in (answer.get("data") or []) if isinstance(answer, dict) else []:
        if not isinstance(model, dict):
            continue
        meta = model.get("meta") if isinstance(model.get("meta"), dict) else {}
        for key in ("n_ctx", "max_model_len", "context_length", "context_window"):
            for where in (model, meta):
                if isinstance(where.get(key), int) and where[key] > 0:
                    return where[key]
    return None


# -- who is asking ----------------------------------------------------------------------------

def account_of(d, caller):
    """(principal, class, priority, agent name) of a caller, its spend account open."""
    ledger = d.broker.ledger
    if caller.agent:
        agent = d.supervisor.agents.get(caller.agent)
        if agent is None:
            raise Unavailable(f"agent {caller.agent} is not known to the supervisor")
        if ledger.get(caller.principal) is None:      # declared before the ledger knew it
            ledger.open(caller.principal, agent.manifest.context_spend_tokens, agent.manifest.context_period)
        return caller.principal, q.AGENT, agent.manifest.priority, agent.name
    if caller.privileged:
        if ledger.get(caller.principal) is None:
            ledger.open(caller.principal, None)
        return caller.principal, q.INTERACTIVE, 100, None
    limit = int(d.config.get("llm.uid_spend_tokens") or 0)
    if limit <= 0:
        raise BudgetExhausted(f"{caller.principal} may not call the model: aether.llm.uid_spend_tokens is 0 "
                              "(only root, the shell and agents may); ask the administrator to raise it")
    period = float(d.config.get("llm.uid_period_s") or 86400)
    account = ledger.get(caller.principal)
    if account is None or account.limit != limit or account.period != period:
        ledger.open(caller.principal, limit, period)
    return caller.principal, q.AGENT, 50, None


# -- llm.complete ------------------------------------------------------------------------------

def not_configured(c):
    return Unavailable("no model endpoint is configured: set aether.llm.endpoint=http://HOST:PORT/v1 "
                       "and aether.llm.model=NAME (kernel command line, or /var/lib/aether/config)"
                       + (f" ({c.problem})" if getattr(c, "problem", None) else ""))


def complete(d, caller, params, conn):
    c = client(d)
    if not c.configured:
        raise not_configured(c)
    try:
        principal, klass, priority, agent = account_of(d, caller)
    except LedgerError as e:
        raise Unavailable(str(e)) from None
    messages, tools = params["messages"], params.get("tools")
    try:
        llm.check_messages(messages)
        specs, _ = llm.tool_specs(tools)
    except llm.InvalidRequest as e:
        raise InvalidParams(str(e)) from None
    prompt = llm.estimate_prompt(messages, specs)
    window = window_of(d, caller)
    max_tokens = fit(messages, specs, prompt, params.get("max_tokens"), c.max_tokens, window)
    stream = params.get("stream", d.config.get("llm.stream") == "on")
    request = {"messages": messages, "tools": tools, "stream": stream, "max_tokens": max_tokens,
               "temperature": params.get("temperature"), "tool_choice": params.get("tool_choice")}
    hold = reserve(d, principal, agent, prompt + max_tokens)
    call = Call(principal, klass, priority, asker(c, request), hold, prompt, max_tokens, stream,
                float(params.get("deadline_s") or call_timeout(d)), conn=conn, agent=agent)
    deferred = d.broker.submit(call)
    return _learning(d, deferred)


def reserve(d, principal, agent, tokens):
    try:
        return d.broker.ledger.reserve(principal, tokens)
    except Exhausted as e:
        account = d.broker.ledger.get(principal)
        if account is not None and not account.ran_out and (account.available() or 0) <= 0:
            account.ran_out = True
            d.events.publish({"kind": "alert", "source": "llm", "agent": agent, "principal": principal,
                              "message": f"{principal} has spent its model tokens; its calls are refused"})
        raise BudgetExhausted(str(e), e.data) from None
    except LedgerError as e:
        raise Unavailable(str(e)) from None


def asker(c, request):
    """The worker's work: ask the model; the completion, or the failure and what it spent."""
    def run(report):
        import time
        meter = llm.TokenBudget(1 << 62)
        seen = {"chars": 0, "at": 0.0}

        def delta(text):
            seen["chars"] += len(text)
            now = time.monotonic()
            if now - seen["at"] >= 0.1:
                seen["at"] = now
                report({"chars": seen["chars"]})
        try:
            done = c.complete(request["messages"], tools=request["tools"], stream=request["stream"],
                              max_tokens=request["max_tokens"], temperature=request["temperature"],
                              tool_choice=request["tool_choice"], budget=meter,
                              on_delta=delta if request["stream"] else None)
        except llm.LLMError as e:
            return {"failure": e.to_dict(), "spent": meter.used}
        return {"completion": done.to_dict()}
    return run


def _learning(d, deferred):
    """Relay the answer; a server that says its context size in an error teaches it to the broker."""
    from ..deferred import Deferred
    relay = Deferred()

    def done(value, error):
        if error is not None:
            learned = _n_ctx_in(str(error))
            if learned and learned != d.broker.n_ctx and d.broker.n_ctx_source != "aether.llm.n_ctx":
                d.broker.n_ctx, d.broker.n_ctx_source = learned, "the server's error"
                d.log.info(f"llm: the endpoint's context window is {learned} tokens (from its error); "
                           "later calls are fitted to it (set aether.llm.n_ctx to say so)")
                error = type(error)(f"{error} (the endpoint's window is {learned} tokens; the broker fits "
                                    "later calls to it)", getattr(error, "data", None))
            relay.fail(error)
        else:
            relay.resolve(value)
    deferred.bind(done)
    return relay


def _n_ctx_in(text):
    for pattern in N_CTX_SAYS:
        m = pattern.search(text)
        if m and 64 <= int(m.group(1)) <= 100_000_000:
            return int(m.group(1))
    return None


# -- the window ------------------------------------------------------------------------------

def window_of(d, caller):
    """{tokens, agent, endpoint, source}: the most one call of this caller may carry."""
    agent = d.supervisor.agents.get(caller.agent) if caller.agent else None
    mine = getattr(agent.manifest, "context_window_tokens", None) if agent else None
    n_ctx = d.broker.n_ctx
    return {"agent_window_tokens": mine, "endpoint_n_ctx": n_ctx, "endpoint_source": d.broker.n_ctx_source}


def fit(messages, specs, prompt, asked, default, window):
    """The max_tokens to send, or InvalidParams naming the numbers and what to drop."""
    limits = []
    if window["agent_window_tokens"]:
        limits.append((window["agent_window_tokens"], prompt, "context.window_tokens"))
    if window["endpoint_n_ctx"]:
        padded = int(prompt * PROMPT_MARGIN) + MESSAGE_OVERHEAD * len(messages)
        limits.append((window["endpoint_n_ctx"], padded, f"the endpoint's context size "
                                                         f"({window['endpoint_source']})"))
    max_tokens = asked if asked is not None else default
    for allowed, carried, what in limits:
        room = allowed - carried
        if asked is None and max_tokens > room >= MIN_COMPLETION:
            max_tokens = room                       # the default completion length, lowered to fit
        if carried + max_tokens > allowed:
            drop = droppable(messages, carried + max(max_tokens, MIN_COMPLETION) - allowed,
                             carried / max(1, prompt))
            raise InvalidParams(too_big(specs, carried, max_tokens, allowed, what, drop),
                                {"prompt_tokens": carried, "max_tokens": max_tokens, "window_tokens": allowed,
                                 "drop": drop})
    return max_tokens


def droppable(messages, excess, scale=1.0):
    """Indices of the oldest messages (after a leading system prompt, never the last) whose
    removal frees ``excess`` tokens; [] when dropping whole messages cannot."""
    first = 1 if messages and messages[0].get("role") == "system" else 0
    freed, drop = 0, []
    for i in range(first, len(messages) - 1):
        if freed >= excess:
            break
        freed += int(llm.estimate_tokens(json.dumps(messages[i], ensure_ascii=False)) * scale) + 1
        drop.append(i)
    return drop if freed >= excess else []


def too_big(specs, carried, max_tokens, allowed, what, drop):
    advice = (f"drop messages {', '.join(map(str, drop))} (the oldest after the system prompt)" if drop
              else "shorten the messages" + (f" or offer fewer tools ({len(specs)} offered)" if specs else ""))
    return (f"the call does not fit the window: it carries about {carried} prompt tokens and asks for "
            f"{max_tokens} more ({carried + max_tokens} in all), and {what} allows {allowed}; "
            f"{advice}, or lower max_tokens; nothing was sent")


# -- internal callers (compaction rewrites) ----------------------------------------------------

def submit_internal(d, messages, max_tokens, temperature=None, klass=q.BACKGROUND):
    """A model call of aetherd's own, through the broker (account ``system``, counted); a Deferred."""
    c = client(d)
    if not c.configured:
        raise not_configured(c)
    ledger = d.broker.ledger
    if ledger.get(SYSTEM) is None:
        ledger.open(SYSTEM, None)
    prompt = llm.estimate_prompt(messages, [])
    max_tokens = fit(messages, [], prompt, max_tokens, max_tokens, {"agent_window_tokens": None,
                     "endpoint_n_ctx": d.broker.n_ctx, "endpoint_source": d.broker.n_ctx_source})
    request = {"messages": messages, "tools": None, "stream": False, "max_tokens": max_tokens,
               "temperature": temperature, "tool_choice": None}
    hold = ledger.reserve(SYSTEM, prompt + max_tokens)
    call = Call(SYSTEM, klass, 0, asker(c, request), hold, prompt, max_tokens, False, call_timeout(d))
    return _learning(d, d.broker.submit(call))


# -- views ----------------------------------------------------------------------------------------

def usage(d, caller, params, conn):
    c = client(d)
    principal = caller.principal
    if c.configured or caller.agent or caller.privileged:
        try:
            account_of(d, caller)
        except (BudgetExhausted, Unavailable, LedgerError):
            pass
    spend = d.broker.ledger.view(principal) or {"spend_tokens": 0, "used_tokens": 0, "reserved_tokens": 0,
                                                 "available_tokens": 0, "period_s": None}
    window = window_of(d, caller)
    return {"principal": principal, "window": window, "spend": spend,
            "spend_tokens": spend["spend_tokens"], "used_tokens": spend["used_tokens"],
            "reserved_tokens": spend["reserved_tokens"], "period_s": spend["period_s"],
            "calls": d.broker.stats_view(principal)}


def queue(d, caller, params, conn):
    """Who waits for the model, for how long and why, and what runs; an agent sees its own
    calls in full and the others' only as their place in the queue."""
    def sees(principal):
        return caller.privileged or principal == caller.principal
    view = d.broker.view(sees)
    view["endpoint"] = {"n_ctx": d.broker.n_ctx, "n_ctx_source": d.broker.n_ctx_source,
                        "configured": client(d).configured}
    return view


def summary(d, caller=None):
    """For sys.info (status): per principal calls, tokens, mean latency and queue wait (every
    principal for the shell and the host; an agent sees its own)."""
    broker = getattr(d, "broker", None)
    if broker is None:
        return {}
    mine = caller is None or caller.privileged
    return {"queue": {"waiting": len(broker.queue), "running": len(broker.running),
                      "circuit": broker.circuit.state},
            "by_principal": {p: s.view() for p, s in sorted(broker.stats.items())
                             if mine or p == caller.principal}}


MESSAGES = {"type": "array", "minItems": 1, "maxItems": 500, "items": {"type": "object"}}
METHODS = [
    Method("llm.complete", complete,
           obj(["messages"], messages=MESSAGES, tools={"type": "array", "maxItems": 128},
               max_tokens={"type": "integer", "minimum": 1, "maximum": 1_000_000},
               temperature={"type": "number", "minimum": 0, "maximum": 2},
               tool_choice={"type": ["string", "object"]}, stream={"type": "boolean"},
               deadline_s={"type": "number", "minimum": 0.1, "maximum": 86400}), ANY,
           "a chat completion through the model broker; must fit the caller's window, and its tokens "
           "(prompt estimate + max_tokens) are reserved on the caller's spend before it is queued"),
    Method("llm.usage", usage, obj(), ANY,
           "the caller's window and spend: limit, period, used, reserved, and its calls"),
    Method("llm.queue", queue, obj(), ANY, "the model broker's queue: who waits, how long and why; what runs"),
]
