"""Intents over the context store: remember, forget, search, the journal, why,
what was compacted, restore, usage and compaction.
"""

import re

from ..plan import Step
from .words import CPU, DELETE, EVERY, FORGET, MEMORY, POLITE, REMEMBER
from .registry import Match, ask_agent, intent


@intent("ctx.remember", "context", "remember a fact or note (in the shell's memory)",
        ["remember that the printer is on 10.0.0.7", "note: backups run at 2am", "make a note that disk 2 is flaky"])
def remember(u, env):
    lead = next((w for w in u.words if w not in POLITE and w not in ("always", "also")), "")
    dont_forget = u.phrase("do not forget") or u.phrase("never forget")
    if lead not in REMEMBER_VERBS and not u.phrase("make a note") and not u.phrase("keep in mind") \
            and not dont_forget:
        return None
    if u.has("what", "do you", "did i", "every") and not u.quoted or u.has("forget") and not dont_forget \
            or u.paths and u.quoted:
        return None
    if u.has(*EVERY) and u.has("record", "log", "save"):
        return None
    text = u.quoted[0] if u.quoted else u.after(
        "remember as a fact that", "remember that", "note that", "make a note that", "make a note",
        "keep in mind that", "record that", "jot down that", "jot down", "note down", "the fact that",
        "as a fact that", ":", "forget that", "remember", "memorise", "memorize", "note", "save", "store", "jot", "pin")
    text = re.sub(r"^(?:that|this)\s+", "", text.strip()).strip()
    if not text or text.lower() in ("this", "that", "it"):
        return Match(2.5, answer="What should I remember? e.g. 'remember that backups run at 2am'.")
    prefix = u.line[: len(u.line) - len(text)].lower() if u.line.endswith(text) else u.line.lower()
    kind = "fact" if "fact" in prefix else "note"
    params = {"text": text, "scope": "user", "kind": kind}
    if re.search(r"\b(pin|pinned|always|important)\b", prefix):
        params["pinned"] = True
    return Match(3.2, [Step("ctx.remember", params, "store it in the shell's memory", undo=_undo_remember)])


REMEMBER_VERBS = ("remember", "memorise", "memorize", "note", "jot", "pin", "save", "store", "record", "keep")


def _undo_remember(result):
    mid = (result or {}).get("id")
    return [Step("ctx.forget", {"memory_id": mid}, f"forget memory {mid}")] if mid else []


@intent("ctx.forget", "context", "forget a memory by number, or the memories about something (needs yes)",
        ["forget memory 12", "forget what I said about the printer", "forget everything about backups"])
def forget(u, env):
    if u.phrase("do not forget") or u.phrase("never forget"):
        return None                                   # that is a remember
    if u.has(*DELETE) and u.has("memory", "memories", "note") and u.integers and not u.paths:
        mid = u.integers[0]
        return Match(3.0, [Step("ctx.forget", {"memory_id": mid}, f"forget memory {mid}",
                                "forgets a memory (recoverable until purged)")])
    if not u.has(*FORGET) or u.agent:
        return None
    if u.has("memory", "note", "fact", "item", "number", "id") and u.integers:
        mid = u.integers[0]
        return Match(3.0, [Step("ctx.forget", {"memory_id": mid}, f"forget memory {mid}",
                                "forgets a memory (recoverable until purged)")])
    about = u.quoted[0] if u.quoted else u.after("about", "regarding", "concerning", "forget that", "forget")
    about = re.sub(r"^(?:the|that|what i said about|everything about)\s+", "", about).strip(" .?")
    if not about:
        return Match(2.0, answer="Forget what? Give a memory number ('forget memory 12') or a subject "
                                 "('forget what I said about the printer').")
    step = Step("ctx.search", {"query": about, "scopes": ["user"], "limit": 20},
                f"find the shell's memories about {about!r}", show="memories")
    step.then = _forget_each
    return Match(2.8, [step], note="I will forget each memory the search finds (you will be asked).")


def _forget_each(result):
    return [Step("ctx.forget", {"memory_id": m["id"]}, f"forget memory {m['id']}: {m['text'][:50]!r}",
                 "forgets a memory (recoverable until purged)", undo=_reremember(m))
            for m in (result or {}).get("items", [])]


def _reremember(m):
    return lambda _result: [Step("ctx.remember", {"text": m["text"], "kind": m.get("kind", "note"),
                                                  "scope": m.get("scope", "user")},
                                 f"remember {m['text'][:40]!r} again")]


@intent("ctx.search", "context", "search the memories you may read, or show what is known about something",
        ["what do you know about the printer?", "search memories for backup", "recall the printer address"])
def search(u, env):
    if u.has(*FORGET) or u.has("every"):
        return None
    asks = u.has("know", "recall", "memories", "search", "remember", "told", "said", "notes", "remembered",
                 "in memory") \
        or u.has("tell", "say", "mention", "mentioned") and u.has("i") \
        or u.has("memory") and u.integers and not u.percents
    if not asks or u.has("compacted", "happened") or u.paths \
            or u.agents and not u.has("search", "memories", "memory", "notes", "remember", "know"):
        return None
    if u.has(*REMEMBER[1:]) and not u.has("what", "search", "recall", "do you", "did i", "know", "memory"):
        return None
    if u.has("ask", "asked", "typed"):
        return None
    if u.has("memory", "recall") and u.integers and not u.has("search", *DELETE):
        mid = u.integers[0]
        return Match(2.6, [Step("ctx.recall", {"memory_id": mid}, f"memory {mid}", show="memory_item")])
    query = u.quoted[0] if u.quoted else u.after("about", "regarding", "for", "recall", "search memories",
                                                 "search", "look up", "on")
    query = re.sub(r"(?i)\s+in (?:my |your )?(?:memory|memories)$", "", query.strip(" ?."))
    query = re.sub(r"(?i)^(?:the|a|an|my)\s+", "", query.strip(" ?."))
    if re.fullmatch(r"(?i)(memories|my memories|everything|anything|all)?", query):
        query = ""
    params = {"query": query, "limit": 20}
    return Match(2.4, [Step("ctx.search", params, f"memories matching {query!r}" if query else "recent memories",
                            show="memories")])


@intent("ctx.journal", "context", "what happened: the journal since boot, yesterday, or in the last hour",
        ["what happened since boot", "show the journal for the last hour", "what did the system do yesterday"])
def journal(u, env):
    if not (u.has("happened", "journal", "history", "events", "occurred", "done", "did", "changed")
            or u.phrase("going on") and u.since()):
        return None
    if u.has("why", "compacted", "compaction") or u.agent and u.has("restart", "restarted"):
        return None
    if u.has("my", "intents", "i", "asked", "typed", "commands") and u.has("history", "asked", "typed", "did"):
        return None
    since = u.since()
    params = {"limit": 50, "newest_first": True}
    if since is not None:
        params["since"] = since
    score = 2.0 + (0.8 if since is not None else 0) + (0.3 if u.has("happened", "journal") else 0)
    if u.has("alert", "alerts"):
        params["kind"] = "alert"
    elif u.agent:
        params["kind"] = "agent.state"
    return Match(score, [Step("ctx.journal", params, "journal entries" + (f" {since}" if since else ""),
                              show="journal")])


@intent("why.restart", "context", "why an agent restarted, failed or stopped: its exits and state changes",
        ["why did sysmon restart?", "why is the watch agent failing", "what made sysmon stop"])
def why(u, env):
    if not (u.has("why") or u.phrase("what made") or u.phrase("what caused") or u.phrase("reason")):
        return None
    if not u.agent:
        return ask_agent(u, "explain", env) if u.has("restart", "restarted", "fail", "failed", "crash",
                                                     "crashed", "died", "stop", "stopped") else None
    return Match(3.2, [Step("agent.inspect", {"name": u.agent}, f"{u.agent}'s restarts and last exit"),
                       Step("ctx.journal", {"kind": "agent.state", "limit": 200, "newest_first": True},
                            f"{u.agent}'s state changes", show=f"why:{u.agent}")])


@intent("ctx.compacted", "context", "what compaction replaced (and when), to get it back with restore",
        ["what was compacted yesterday?", "show compactions", "what got summarised in the last day"])
def compacted(u, env):
    if not u.has("compacted", "compaction", "compactions", "summarised", "summarized", "compacting", "compact"):
        return None
    if u.has("restore", "undo", "back") or u.has("compact") and not u.has("what", "show", "list"):
        return None
    params = {"limit": 100}
    since = u.since()
    if since is not None:
        params["since"] = since
    return Match(2.8, [Step("ctx.compacted", params, "compactions" + (f" {since}" if since else ""))])


@intent("ctx.restore", "context", "bring back what a compaction replaced",
        ["restore compaction 3", "bring back what compaction 7 summarised", "uncompact 2"])
def restore(u, env):
    if not (u.has("restore", "uncompact", "undo") or u.phrase("bring back") or u.phrase("get back")) \
            or not u.has("compaction", "compacted", "uncompact", "summarised", "summarized") or not u.integers:
        return None
    cid = u.integers[0]
    return Match(3.0, [Step("ctx.restore", {"compaction_id": cid}, f"bring compaction {cid}'s originals back")])


@intent("ctx.usage", "context", "context use against quota, and context pressure",
        ["context usage", "how full is the context store", "show context pressure"])
def ctx_usage(u, env):
    if not u.has("context", "ctx", "quota", "quotas", "tokens", "pressure") or u.has("when", "every"):
        return None
    if u.has(*CPU, *MEMORY, "io", "disk") and not u.has("context", "ctx", "tokens", "quota"):
        return None
    if u.has("memory") and not u.has("context", "ctx"):
        return None
    return Match(2.2, [Step("ctx.usage", {}, "items and tokens per scope"),
                       Step("ctx.pressure", {}, "context pressure")])


@intent("ctx.compact", "context", "compact a scope now (originals stay recoverable)",
        ["compact the shell's memories", "compact scope agent:sysmon"])
def compact(u, env):
    if not u.has("compact", "compress", "shrink", "squash") or u.has("what", "show", "list", "restore"):
        return None
    m = re.search(r"\bscope\s+([\w:.\-]+)", u.line)
    scope = m.group(1) if m else (f"agent:{u.agent}" if u.agent else "user")
    return Match(2.5, [Step("ctx.compact", {"scope": scope}, f"compact {scope} down to its quota")])


@intent("ctx.thread", "context", "a thread's turns, or exactly what went into one think's window and what was "
        "left out", ["explain turn 3 of thread 1", "show thread 2", "what went into turn 5 of thread 2?"])
def thread(u, env):
    found = re.search(r"\bthread\s+(\d+)\b", u.lowered)
    if not found:
        return None
    params = {"thread_id": int(found.group(1))}
    turn = re.search(r"\bturn\s+(\d+)\b", u.lowered)
    if turn:
        params["turn"] = int(turn.group(1))
        return Match(3.2, [Step("ctx.thread", params, f"what went into turn {turn.group(1)} of thread "
                                                       f"{found.group(1)}", show="thread")])
    return Match(3.0, [Step("ctx.thread", params, f"the turns of thread {found.group(1)}", show="thread")])
