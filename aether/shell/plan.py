"""Plans: numbered steps, each one ABI call the shell will make.

A Step names the call (``agent.stop``, or a tool through ``tool.call``), its
parameters, what it does in words, and why it needs a yes when it is risky.
``signature()`` is the canonical one-line form the phrasing corpus in
``tests/shell/corpus.txt`` is written in:

    agent.stop name=sysmon
    files.read path=/etc/hostname
    ctx.journal kind=alert limit=20 newest_first=true

A Plan is what the planner makes of one line: the intent it understood, its
steps, and a note (for example the closest things it can do when it could not
understand the line).  Plans with no steps answer by themselves (help).
"""

import json

from . import risk as risks
from .text import When


class Step:
    __slots__ = ("method", "params", "says", "given_risk", "show", "undo", "then", "call_id")

    def __init__(self, method, params=None, says="", risk=None, show=None, undo=None, then=None):
        self.method, self.params = method, dict(params or {})
        self.says = says              # what the step does, in words
        self.given_risk = risk        # the planner's own words for why it needs a yes
        self.show = show              # which renderer presents the result (default: by method)
        self.undo = undo              # fn(result) -> [Step] that reverse it, or None
        self.then = then              # fn(result) -> [Step] to run next (e.g. forget each match)
        self.call_id = None           # the model's tool-call id, when the model proposed it

    @property
    def risk(self):
        """Why this step needs a yes, or None: the table in risk.py decides, whoever planned it
        (asked each time, so a step whose parameters change is judged on what it will send)."""
        return self.given_risk or risks.of(self.method, self.params)

    @property
    def tool(self):
        """The tool's name for tool.call steps, else None."""
        return self.params.get("name") if self.method == "tool.call" else None

    def call(self, now=None, boot=None):
        """(method, params) to send, with relative times resolved."""
        return self.method, _resolve(self.params, now, boot)

    def signature(self):
        if self.method == "tool.call":
            head, params = self.params["name"], self.params.get("args", {})
        else:
            head, params = self.method, self.params
        return " ".join([head] + [f"{k}={_value(params[k])}" for k in sorted(params)])

    def line(self):
        """How the step is shown in a plan."""
        text = f"{self.signature()}"
        if self.says:
            text += f"  -- {self.says}"
        if self.risk:
            text += f"  [needs yes: {self.risk}]"
        return text

    def __repr__(self):
        return f"Step({self.signature()!r})"


class Plan:
    __slots__ = ("intent", "line", "steps", "note", "answer", "source", "think")

    def __init__(self, intent, line, steps=(), note="", answer=None, source="offline"):
        self.intent, self.line, self.steps = intent, line, list(steps)
        self.note = note              # said before the steps (e.g. what was not understood)
        self.answer = answer          # a reply that needs no call (help, explain)
        self.source = source          # "offline" or "model"
        self.think = None             # a model plan's llm.think: {"thread": ..., "window": ...}

    @property
    def risky(self):
        return [s for s in self.steps if s.risk]

    def signature(self):
        return " ; ".join(s.signature() for s in self.steps)

    def text(self):
        """The plan as the shell shows it before running."""
        lines = [self.note] if self.note else []
        if self.steps:
            lines.append(f"plan ({self.intent}{', from the model' if self.source == 'model' else ''}):")
            lines += [f"  {i}. {s.line()}" for i, s in enumerate(self.steps, 1)]
        return "\n".join(lines)


def _value(v):
    if isinstance(v, When):
        return repr(v)
    if isinstance(v, str) and v and not any(c.isspace() or c in "\"'=;" for c in v):
        return v
    return json.dumps(v, sort_keys=True, default=repr)


def _resolve(value, now, boot):
    if isinstance(value, When):
        return value.resolve(now, boot)
    if isinstance(value, dict):
        return {k: _resolve(v, now, boot) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, now, boot) for v in value]
    return value
