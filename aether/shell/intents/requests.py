"""Intents that answer agents' requests (agent.ask): list them, approve one, deny one.

These are planned offline only (the session never hands them to the model planner,
whose menu has no agent.approve either): a yes reaches an agent only from a person's
own words.  ``approve N`` still asks "Run it?" first (aether/shell/risk.py): it lets
an agent do what it asked.  The renderers for their answers register here, and
``prompt_part`` is what the prompt shows (``status`` shows sys.info's count: render.py).
"""

from ..plan import Step
from ..render import RENDERERS, stamp, table
from .registry import Match, intent

REQUEST_WORDS = ("request", "requests", "asks", "asked", "asking", "questions", "approvals", "pending")
INTENT_NAMES = ("requests", "approve", "deny")


def _number(u):
    return u.integers[0] if len(u.integers) == 1 and u.integers[0] >= 1 else None


@intent("requests", "requests", "requests from agents waiting for a person's yes, and the last answered",
        ["requests", "show pending requests", "what are the agents asking?"])
def requests(u, env):
    if not u.has(*REQUEST_WORDS) or u.has("approve", "deny", "allow", "refuse", "reject", "grant"):
        return None
    score = 2.0 + (0.5 if u.has("pending", "waiting", "show", "list", "any") else 0) \
        + (1.0 if u.has("asking", "asks", "asked") else 0)     # "what are the agents asking?"
    if u.agent or u.has("model", "llm", "broker", "queue"):
        score -= 2
    return Match(score, [Step("agent.requests", says="requests waiting for a person", show="requests")])


def _answer(u, verbs, method, state):
    if not u.has(*verbs) or u.agent or u.paths or u.urls:
        return None
    n = _number(u)
    if n is None:
        return Match(1.5, note=f"Which request? Say {verbs[0]} N; requests lists them.",
                     answer=f"Which request? Say {verbs[0]} N; requests lists them.")
    return Match(3.0 + (0.5 if u.has(*REQUEST_WORDS) else 0),
                 [Step(method, {"id": n}, f"{state} request {n} (requests shows what it asks)",
                       show="answered")])


@intent("approve", "requests", "say yes to an agent's request N (asks first)",
        ["approve 1", "approve request 2", "yes to request 3", "allow request 1"])
def approve(u, env):
    if u.has("deny", "refuse", "reject", "no"):
        return None
    if u.has("yes", "allow", "grant") and not u.has(*REQUEST_WORDS):
        return None
    return _answer(u, ("approve", "yes", "allow", "grant", "accept"), "agent.approve", "approve")


@intent("deny", "requests", "say no to an agent's request N: the step is not run",
        ["deny 1", "deny request 2", "refuse request 3", "reject 1"])
def deny(u, env):
    if u.has("no") and not u.has(*REQUEST_WORDS):
        return None
    return _answer(u, ("deny", "refuse", "reject", "decline", "no"), "agent.deny", "deny")


# -- what the person reads --------------------------------------------------------------------------

def pending(info):
    """How many requests wait for a person, from sys.info (0 when it does not say)."""
    return int((info.get("requests") or {}).get("pending", 0) or 0)


def prompt_part(info):
    """The prompt's part for requests ("1 request"), or None."""
    n = pending(info)
    return f"{n} request{'s' if n != 1 else ''}" if n else None


def render_requests(result):
    waiting = result.get("pending") or []
    lines = []
    for r in waiting:
        lines.append(f"{r['id']}. {r['agent']} asks: {r['step']}")
        lines += [f"   why: {line}" for line in r["why"].splitlines()]
        lines += [f"   {line}" for line in (r.get("details") or "").splitlines()[:40]]
        lines.append(f"   (expires in {r.get('expires_in_s', 0):.0f} s; approve {r['id']} or deny {r['id']})")
    if not waiting:
        lines.append("no requests waiting")
    settled = result.get("settled") or []
    if settled:
        lines += ["", "answered:", table([{**r, "at": stamp(r.get("answered_at"))} for r in settled[:10]],
                                         ["id", "agent", "step", "state", "by", "at"])]
    return "\n".join(lines)


def render_answered(r):
    note = f" ({r['note']})" if r.get("note") else ""
    return f"request {r['id']} of {r['agent']} ({r['step']}): {r['state']}{note}"


RENDERERS.update({"requests": render_requests, "answered": render_answered})
