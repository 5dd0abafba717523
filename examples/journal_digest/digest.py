"""journal-digest: summarise the day's journal into one memory (an aether.sdk example).

    args: [--every SECONDS] [--once] [--day YYYY-MM-DD]

Every ``--every`` seconds (and at start) it reads the journal entries of the day
(UTC) from every scope it may read (``ctx.journal``: its own, and any scope granted
to it; grant it ``system`` to digest the machine's own record), counts what
happened (entries by kind, agents that restarted or failed, alerts, requests to a
person, boots), and writes one ``summary`` memory tagged ``digest`` and
``day-YYYY-MM-DD``, replacing the day's earlier digest.  With a model configured
the memory leads with the model's summary of those counts (``think()``); without
one, or when the model cannot answer, the digest is extractive and the memory says
so.  Text taken from the journal is clipped and stripped of control characters.
"""

import re
import time

from aether import sdk

PAGE = 500                 # entries per ctx.journal call
MAX_ENTRIES = 20000        # entries one digest reads at most
MAX_DAYS_KEPT = 31         # digests remembered in the state (to replace a day's earlier one)
EXAMPLES = 5               # alert messages and failures quoted
CLIP = 120
DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
PROMPT = ("Summarise this day's journal of an AetherOS machine for its operator in at most five "
          "sentences. Name the agents that failed or restarted and the alerts that matter.\n\n")


def parse(args):
    opts, it = {"every": 3600.0, "once": False, "day": None}, iter(args)
    for arg in it:
        if arg == "--every":
            opts["every"] = float(next(it, "3600"))
        elif arg == "--once":
            opts["once"] = True
        elif arg == "--day":
            opts["day"] = next(it, None)
        else:
            raise SystemExit(f"journal-digest: unknown argument {arg!r}; usage: [--every S] [--once] [--day YYYY-MM-DD]")
    if opts["every"] < 10:
        raise SystemExit("journal-digest: --every is at least 10 seconds")
    return opts


def day_bounds(day=None, now=None):
    """(YYYY-MM-DD, start, end) of a UTC day, as epoch seconds, by plain arithmetic: neither
    the local time zone nor the locale enters (epoch days are 86400 s)."""
    if day is None:
        now = time.time() if now is None else now
        return time.strftime("%Y-%m-%d", time.gmtime(now)), now - now % 86400, now - now % 86400 + 86400
    m = DATE.fullmatch(day)
    if not m or not 1 <= int(m[2]) <= 12 or not 1 <= int(m[3]) <= 31:
        raise SystemExit(f"journal-digest: --day {day!r} is not a date like 2026-12-07")
    start = _days_from_epoch(int(m[1]), int(m[2]), int(m[3])) * 86400
    return day, start, start + 86400


def _days_from_epoch(y, m, d):
    """Days from 1970-01-01 to a date of the proleptic Gregorian calendar."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def read_day(agent, start, end):
    """The day's entries the agent may read, oldest first, at most MAX_ENTRIES; and whether that cut them."""
    entries, after = [], 0
    while len(entries) < MAX_ENTRIES:
        page = agent.call("ctx.journal", since=start, until=end, after_seq=after, limit=PAGE)
        entries.extend(page)
        agent.alive()
        if len(page) < PAGE:
            return entries, False
        after = page[-1]["seq"]
    return entries[:MAX_ENTRIES], True


def clean(text):
    """Journal text made safe to quote: one line, printable, clipped."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return " ".join(text.split())[:CLIP]


def facts(entries, cut=False):
    """The day's counts, as lines of text (the extractive digest)."""
    if not entries:
        return ["no journal entries this day in the scopes this agent may read"]
    kinds, agents, alerts, asks, scopes = {}, {}, {}, {}, set()
    for e in entries:
        kind, body = e.get("kind", "?"), e.get("body") or {}
        kinds[kind] = kinds.get(kind, 0) + 1
        scopes.add(e.get("scope"))
        if kind == "agent.state" and body.get("state") in ("backoff", "failed"):
            a = agents.setdefault(clean(body.get("agent")), {"backoff": 0, "failed": 0, "why": ""})
            a[body["state"]] += 1
            a["why"] = clean(body.get("last_error") or body.get("reason") or "")
        elif kind == "alert":
            key = (body.get("level") or "info", clean(body.get("message")))
            alerts[key] = alerts.get(key, 0) + 1
        elif kind == "agent.answer":
            asks[body.get("state")] = asks.get(body.get("state"), 0) + 1
    lines = [f"{len(entries)} entries (seq {entries[0]['seq']}-{entries[-1]['seq']}"
             + (f", the first {MAX_ENTRIES} only" if cut else "") + f", from {len(scopes)} scopes): "
             + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))[:10])]
    if kinds.get("boot"):
        lines.append(f"boots: {kinds['boot']}")
    for name, a in sorted(agents.items(), key=lambda kv: -(kv[1]["failed"] * 100 + kv[1]["backoff"]))[:EXAMPLES]:
        lines.append(f"agent {name}: restarted {a['backoff']} times" + (", failed" if a["failed"] else "")
                     + (f" ({a['why']})" if a["why"] else ""))
    if alerts:
        order = {"critical": 0, "warning": 1}
        top = sorted(alerts.items(), key=lambda kv: (order.get(kv[0][0], 2), -kv[1]))[:EXAMPLES]
        lines.append(f"alerts: {sum(alerts.values())}; " + "; ".join(f"{lvl} {msg!r} x{n}" for (lvl, msg), n in top))
    if asks or kinds.get("agent.ask"):
        lines.append(f"requests to a person: {kinds.get('agent.ask', 0)} asked; "
                     + ", ".join(f"{n} {s}" for s, n in sorted(asks.items())))
    return lines


def summarise(agent, lines):
    """(text, how): the model's summary of the facts, or None and why not."""
    if not agent.has_model():
        return None, "extractive: no model is configured, so these are the day's counts, not a model's summary"
    try:
        thought = agent.think(PROMPT + "\n".join(lines), thread="journal-digest", max_tokens=300)
    except sdk.AbiError as e:
        return None, f"extractive: the model could not answer ({e.code}: {clean(e)})"
    if not thought.strip():
        return None, "extractive: the model answered nothing"
    return thought.strip()[:2000], "summarised by the model from the counts below"


def digest(agent, day=None):
    """Write the day's digest memory (replacing the day's earlier one); its text."""
    day, start, end = day_bounds(day)
    entries, cut = read_day(agent, start, end)
    lines = facts(entries, cut)
    summary, how = summarise(agent, lines)
    text = "\n".join([f"Journal digest for {day} (UTC), {how}.", *([summary, ""] if summary else []),
                      *(f"- {line}" for line in lines)])
    days = agent.state.setdefault("days", {})
    if day in days:
        try:
            agent.call("ctx.forget", memory_id=days[day])
        except sdk.NotFound:
            pass
    days[day] = agent.remember(text, kind="summary", tags=["digest", f"day-{day}"], importance=0.6)
    for old in sorted(days)[:-MAX_DAYS_KEPT]:
        del days[old]
    agent.log(f"digest for {day}: {len(entries)} entries, memory {days[day]} ({how.split(':')[0]})")
    return text


def main(args):
    opts = parse(args)

    def step(agent):
        digest(agent, opts["day"])
        return sdk.DONE if opts["once"] else None
    return sdk.run(step, every=None if opts["once"] else opts["every"], args=args)
