"""llm.*: a completion through the OS, from any OpenAI-compatible endpoint.

The endpoint, model and key are aetherd's (``aether.llm.*`` settings); callers
never see the key.  An agent's tokens are charged to its context budget, and a
call its remaining budget cannot cover is refused before anything is sent
(it fails closed).  With no endpoint configured the call says so.  The
request runs in a forked worker (aether/abi/worker.py).
"""

from ... import llm
from .. import worker
from ..methods import ANY, Method, obj
from ..protocol import BudgetExhausted, Unavailable

SETTINGS = ("endpoint", "model", "api_key", "timeout", "max_tokens")


def client(d):
    values = {k: d.config[f"llm.{k}"] for k in SETTINGS if d.config.get(f"llm.{k}") not in (None, "")}
    return llm.Client.from_config(values)


def complete(d, caller, params, conn):
    c = client(d)
    if not c.configured:
        raise Unavailable("no model endpoint is configured: set aether.llm.endpoint=http://HOST:PORT/v1 "
                          "and aether.llm.model=NAME (kernel command line, or /var/lib/aether/config)"
                          + (f" ({c.problem})" if getattr(c, "problem", None) else ""))
    agent = d.supervisor.agents.get(caller.agent) if caller.agent else None
    remaining = None
    if agent is not None:
        remaining = agent.manifest.context_budget_tokens - agent.tokens_used
        if remaining <= 0:
            raise BudgetExhausted(f"{agent.name} has used its whole context budget "
                                  f"({agent.manifest.context_budget_tokens} tokens); nothing was sent")

    stream = params.get("stream", d.config.get("llm.stream") == "on")

    def run():
        budget = llm.TokenBudget(remaining) if remaining is not None else None
        try:
            done = c.complete(params["messages"], tools=params.get("tools"), stream=stream,
                              max_tokens=params.get("max_tokens"),
                              temperature=params.get("temperature"),
                              tool_choice=params.get("tool_choice"), budget=budget)
        except llm.BudgetExceeded as e:
            raise BudgetExhausted(str(e), {"charged": budget.used if budget else 0}) from None
        except llm.LLMError as e:
            raise Unavailable(f"{e.code}: {e}", {"charged": budget.used if budget else 0,
                                                  **e.to_dict()}) from None
        return {"completion": done.to_dict(), "charged": budget.used if budget else None}

    def charge(value, error):
        used = (value or {}).get("charged") if error is None else (getattr(error, "data", None) or {}).get("charged")
        if agent is not None and used:
            agent.tokens_used += int(used)
        elif agent is None and error is None:        # the shell and the host: counted, not limited
            total = ((value or {}).get("completion") or {}).get("usage", {}).get("total_tokens") or 0
            d.llm_tokens[caller.principal] = d.llm_tokens.get(caller.principal, 0) + int(total)
        return ((value or {}).get("completion") if error is None else None), error

    return worker.run(d.loop, d.reaper, run, call_timeout(d), on_done=charge)


def call_timeout(d):
    """How long a worker asking the model may run: llm.timeout bounds each wait, not the call."""
    return float(d.config.get("llm.timeout") or 120) * 5


def usage(d, caller, params, conn):
    agent = d.supervisor.agents.get(caller.agent) if caller.agent else None
    if agent is None:
        return {"principal": caller.principal, "budget_tokens": None,
                "used_tokens": d.llm_tokens.get(caller.principal, 0)}
    return {"principal": caller.principal, "budget_tokens": agent.manifest.context_budget_tokens,
            "used_tokens": agent.tokens_used}


MESSAGES = {"type": "array", "minItems": 1, "maxItems": 500, "items": {"type": "object"}}
METHODS = [
    Method("llm.complete", complete,
           obj(["messages"], messages=MESSAGES, tools={"type": "array", "maxItems": 128},
               max_tokens={"type": "integer", "minimum": 1, "maximum": 1_000_000},
               temperature={"type": "number", "minimum": 0, "maximum": 2},
               tool_choice={"type": ["string", "object"]}, stream={"type": "boolean"}), ANY,
           "a chat completion from the configured endpoint; tokens are charged to the calling "
           "agent's context budget, refused when it cannot cover the call"),
    Method("llm.usage", usage, obj(), ANY, "the caller's context budget and the tokens it has used"),
]
