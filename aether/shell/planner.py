"""The offline planner: one typed line in, one Plan out, no network, no model.

    plan("stop sysmon", agents=["sysmon", "watch"])
        -> Plan(intent="agent.stop", steps=[agent.stop name=sysmon])

Every registered intent scores the line (aether/shell/intents/) and the
best one above ``THRESHOLD`` plans it.  A line no intent is sure of gets the
closest things the shell can do, ranked by the words it shares with each
intent's help and examples, never a traceback.
"""

import re

from . import intents, risk as risks
from .intents import INTENTS
from .plan import Plan
from .text import Utterance

THRESHOLD = 1.5
LEAD_PENALTY = 1.0
SUGGESTIONS = 3
FILLER = {"the", "a", "an", "to", "of", "me", "my", "is", "are", "what", "please", "and", "for", "it", "i",
          "in", "on", "you", "do", "can", "show", "how", "that", "with", "be", "this", "s", "now", "all", "many",
          "much", "does", "did", "have", "has", "there", "was", "were", "will", "current", "currently", "some",
          "most", "more", "our", "your", "its", "their", "am", "hey", "ok", "okay", "so", "then", "right"}


def plan(line, agents=()):
    """The Plan for one line; ``agents`` are the names the machine knows."""
    u = Utterance(line, agents)
    env = {"agents": list(agents)}
    if not u.words and not u.paths and not u.urls and not u.quoted:
        return Plan("help", line) if line.strip() == "?" else Plan("empty", line)
    ranked = []
    for n, (name, entry) in enumerate(INTENTS.items()):
        match = entry.match(u, env)
        if match is not None:
            ranked.append((-match.score, n, name, match))
    ranked.sort(key=lambda r: r[:2])          # best first; a tie goes to the intent registered first
    penalty = LEAD_PENALTY if ranked and _unknown_lead(u) else 0   # "frobnicate the memory": a guess
    missing = []
    for _score, _n, name, match in ranked:
        if match.score - penalty < THRESHOLD:
            break
        absent = missing_agents(match.steps, agents)
        if absent:                            # a risky step on an agent that does not exist: not this
            missing += [a for a in absent if a not in missing]
            continue
        return Plan(name, line, match.steps, match.note, match.answer)
    if missing:
        return Plan("not_found", line, note=not_found(missing, agents), answer=not_found(missing, agents))
    return Plan("unknown", line, note=closest(u), answer=closest(u))


def missing_agents(steps, agents):
    """Agents that risky steps act on and the machine does not know."""
    known = set(agents)
    return [name for s in steps if s.risk for kind, name in risks.objects(s.method, s.params)
            if kind == "agent" and name not in known]


def not_found(names, agents):
    """What to say instead of proposing a risky step on agents that do not exist."""
    shown = ", ".join(repr(n) for n in names)
    have = ", ".join(sorted(agents)) or "none"
    return (f"There is no agent named {shown}, so I planned nothing. The agents are: {have}. "
            "'list agents' shows them all, stopped ones too.")


def closest(u, n=SUGGESTIONS):
    """What to say when nothing matched: the intents that share most words with the line."""
    words = {w for w in u.words if w not in FILLER}
    ranked = []
    for entry in INTENTS.values():
        vocabulary = set(re.findall(r"[a-z]+", (entry.help + " " + " ".join(entry.examples)).lower()))
        shared = len(words & vocabulary)
        if shared:
            ranked.append((shared, entry.name, entry))
    ranked.sort(key=lambda r: (-r[0], r[1]))
    shown = repr(u.line if len(u.line) <= 60 else u.line[:57] + "...")
    if not ranked:
        return (f"I don't know how to do {shown}. Type 'help' to see what I understand, "
                "e.g. 'status', 'list agents', 'remember that ...'.")
    lines = [f"I don't know how to do {shown}. The closest things I can do:"]
    for _score, _name, entry in ranked[:n]:
        lines.append(f"  {entry.examples[0]:<36} {entry.help}")
    lines.append("Type 'help' for everything I understand.")
    return "\n".join(lines)


def help_text(topic=""):
    """The help screen, or one topic's (a topic name or an intent name)."""
    topic = topic.strip().lower()
    topics = {}
    for entry in INTENTS.values():
        topics.setdefault(entry.topic, []).append(entry)
    chosen = {t: e for t, e in topics.items() if not topic or topic in (t, t.rstrip("s"))
              or any(topic == x.name or topic in x.name.split(".") for x in e)}
    if topic and not chosen:
        return f"No help topic {topic!r}. Topics: {', '.join(topics)}. Type 'help' for all of them."
    lines = ["Type what you want in plain words; I show the plan, ask before anything risky, then run it."]
    if not topic:
        lines.append("Commands such as help, status, poweroff and reboot work too.")
    for name, entries in chosen.items():
        lines.append(f"\n{name}:")
        for entry in entries:
            if topic and topic not in (name, name.rstrip("s")) and topic != entry.name \
                    and topic not in entry.name.split("."):
                continue
            lines.append(f"  {entry.examples[0]:<40} {entry.help}")
            if topic:
                lines += [f"  {'':<4}also: {ex}" for ex in entry.examples[1:]]
    if not topic:
        lines.append(f"\nhelp TOPIC for more examples ({', '.join(topics)}). Ctrl-C cancels a running plan.")
    return "\n".join(lines)


def _vocabulary():
    """Every word the intents look for: their word lists, help, examples and the literals in their code."""
    words = set(FILLER)
    for module in intents.MODULES:
        for value in vars(module).values():
            if isinstance(value, tuple) and all(isinstance(w, str) for w in value):
                words.update(w for phrase in value for w in phrase.split())
    for entry in INTENTS.values():
        words.update(re.findall(r"[a-z]+", (entry.help + " " + " ".join(entry.examples)).lower()))
        words.update(_literals(entry.match.__code__))
    return words


def _literals(code):
    for const in code.co_consts:
        if isinstance(const, str):
            yield from re.findall(r"[a-z]+", const)
        elif isinstance(const, tuple):
            for c in const:
                if isinstance(c, str):
                    yield from re.findall(r"[a-z]+", c)
        elif hasattr(const, "co_consts"):
            yield from _literals(const)


VOCABULARY = _vocabulary()


def _unknown_lead(u):
    """The line's first real word is one no intent knows (the verb, usually): the match is a guess."""
    for w in u.words:
        if w in intents.words.POLITE:
            continue
        return w.isalpha() and w not in VOCABULARY and w not in u.agents
    return False
