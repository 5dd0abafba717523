"""Intents the shell answers itself (the session): help, explain, undo, history,
goals.
"""

from ..plan import Step
from .registry import Match, intent


@intent("help", "shell", "what the shell understands; 'help TOPIC' for one topic",
        ["help", "what can you do?", "help agents"])
def help_(u, env):
    if u.has("help", "commands", "?") or u.phrase("what can you do") or u.phrase("how do i") \
            or u.phrase("what can i") or u.line.strip() == "?":
        return Match(1.8 + (1 if u.words and u.words[0] in ("help", "?") else 0))
    return None


@intent("explain", "shell", "explain the last plan: what each step did and why",
        ["explain", "explain the last plan", "what did you just do?"])
def explain(u, env):
    if u.has("explain") and not u.agent or u.phrase("what did you just do") or u.phrase("why did you") \
            or u.has("plan") and u.has("last", "that", "previous") and u.has("what", "why", "do", "did"):
        return Match(2.6)
    return None


@intent("undo", "shell", "reverse the last plan's reversible steps (asks first)",
        ["undo", "undo that", "take that back"])
def undo(u, env):
    if u.has("undo", "revert", "reverse") and not u.has("compaction") or u.phrase("take that back") \
            or u.phrase("roll back") or u.phrase("rollback"):
        return Match(3.0)
    return None


@intent("history", "shell", "the intents typed before (kept across reboots), with their outcomes",
        ["history", "what did I ask before?", "show my previous commands"])
def history(u, env):
    if u.has("history") and not u.has("journal", "system", "happened", "machine") or \
            u.has("asked", "typed", "ask") and not u.has("can") or u.has("commands") and u.has(
                "previous", "past", "my", "earlier", "old", "last"):
        return Match(2.5, [Step("ctx.goals", {"scope": "user", "limit": 20}, "the shell's recent intents",
                                show="history")])
    return None


@intent("goals", "context", "goals recorded in the context store (the shell's and agents'), with status",
        ["show goals", "list open goals", "which goals failed?"])
def goals(u, env):
    if not u.has("goal", "goals", "plans") or u.has("spawn", "agent", "new", "create"):
        return None
    params = {"limit": 20}
    for status in ("failed", "done", "active", "abandoned", "open"):
        if u.has(status):
            params["status"] = status
    return Match(2.3, [Step("ctx.goals", params, "recorded goals")])
