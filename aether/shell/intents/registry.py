"""The registry of intents: ``@intent`` records an intent with its topic, help
text and examples in INTENTS; Match is what an intent returns; ``tool`` and
``ask_agent`` are the steps and questions intents share.
"""

from ..plan import Step

INTENTS: dict[str, "Intent"] = {}


class Intent:
    __slots__ = ("name", "topic", "help", "examples", "match")

    def __init__(self, name, topic, help_text, examples, match):
        self.name, self.topic, self.help, self.examples, self.match = name, topic, help_text, examples, match


class Match:
    __slots__ = ("score", "steps", "note", "answer")

    def __init__(self, score, steps=(), note="", answer=None):
        self.score, self.steps, self.note, self.answer = score, list(steps), note, answer


def intent(name, topic, help_text, examples):
    def register(fn):
        INTENTS[name] = Intent(name, topic, help_text, examples, fn)
        return fn
    return register


def ask_agent(u, what, env):
    """A Match that asks which agent, when the line names none."""
    names = ", ".join(sorted(env.get("agents", ()))) or "none are declared"
    return Match(1.5, note=f"Which agent should I {what}? Name one: {names}.",
                 answer=f"Which agent should I {what}? Name one: {names}.")


def tool(name, says="", risk=None, show=None, undo=None, **args):
    return Step("tool.call", {"name": name, "args": args}, says, risk, show or name, undo)
