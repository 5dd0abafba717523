"""Results as a person reads them: one function per kind of answer.

``render(step, result)`` picks the function by ``step.show`` (or the method
or tool name) and falls back to indented JSON, so a result is always shown.
The status screen keeps its ``key: value`` lines (``uptime:``, ``memory:``,
``pid1:``, ``mounts:``): tests and ``make bench`` read them.
"""

import json
import time


def render(step, result):
    key = step.show or step.tool or step.method
    fn = why(key[4:]) if key.startswith("why:") else RENDERERS.get(key) or RENDERERS.get(step.tool or step.method)
    try:
        return fn(result) if fn else _json(result)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return _json(result)         # an answer of an unexpected shape is still shown


def _json(result):
    return json.dumps(result, indent=2, sort_keys=True, default=str)


def table(rows, columns):
    if not rows:
        return "(none)"
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def mib(kib_or_bytes, unit="kib"):
    value = kib_or_bytes / 1024 if unit == "kib" else kib_or_bytes / (1 << 20)
    return f"{value:.1f} MiB"


def stamp(ts):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if ts else "-"


# -- the machine


def status(info):
    mem = info["memory"]
    agents = info.get("agents", {})
    ctx = info.get("context", {})
    lines = [
        f"hostname: {info['hostname']}",
        f"kernel: {info['kernel']}",
        f"uptime: {info['uptime_s']:.2f} s",
        f"load: {' '.join(info['load'])}",
        f"memory: {mem['used_kib'] / 1024:.1f} MiB used of {mem['memtotal_kib'] / 1024:.1f} MiB",
        f"processes: {info.get('processes', '?')}",
    ]
    if info.get("pid1"):
        lines.append(f"pid1: {info['pid1']}")
    if info.get("mounts"):
        lines.append(f"mounts: {' '.join(info['mounts'])}")
    if info.get("services"):
        lines.append(f"services: {info['services']}")
    if info.get("data"):
        lines.append(f"data: {info['data']}")
    states = ", ".join(f"{n} {s}" for s, n in sorted(agents.get("by_state", {}).items())) or "none"
    lines.append(f"agents: {agents.get('total', 0)} ({states})")
    if ctx.get("available"):
        pressure = ctx.get("pressure", {}).get("storage", {}).get("max_pressure", 0.0)
        where = "durable" if ctx.get("durable") else "in memory"
        lines.append(f"context: {where}, journal at {ctx.get('journal_head')}, "
                     f"fullest scope at {pressure * 100:.0f}% of quota")
    elif ctx:
        lines.append(f"context: unavailable ({ctx.get('problem')})")
    if "requests" in info:                   # agents' requests for a yes (agent.ask); the privileged see it
        n = info["requests"].get("pending", 0)
        lines.append(f"requests: {n} waiting" + (" (requests lists them; approve N or deny N answers)" if n else ""))
    lines += model_lines(info.get("llm") or {})
    return "\n".join(lines)


def model_lines(llm):
    """The model broker in status: its queue, and per caller calls, tokens, latency and wait."""
    if not llm.get("configured"):
        return []
    queue = llm.get("queue") or {}
    lines = [f"model: {llm.get('model')} at {llm.get('endpoint')}; {queue.get('waiting', 0)} waiting, "
             f"{queue.get('running', 0)} running, circuit {queue.get('circuit', '?')}"]
    for who, s in sorted((llm.get("by_principal") or {}).items()):
        lines.append(f"  {who}: {s['calls']} calls, {s['tokens_in']} tokens in, {s['tokens_out']} out, "
                     f"mean latency {s['mean_latency_s']:.2f} s, mean queue wait {s['mean_queue_wait_s']:.2f} s")
    think = llm.get("think") or {}
    if think.get("by_principal"):
        thrashing = ", ".join(think.get("thrashing") or []) or "none"
        lines.append(f"context pressure: {100 * think.get('pressure', 0):.0f}% of thinks truncated; "
                     f"thrashing: {thrashing}")
        for who, v in sorted(think["by_principal"].items()):
            lines.append(f"  {who}: {v['resident_tokens']} tokens resident, {v['swapped_tokens']} swapped, "
                         f"{v['faults_per_think']} faults a think, {v['truncations']} of {v['thinks']} truncated")
    return lines


def memory(info):
    mem = info["memory"]
    lines = [f"memory: {mem['used_kib'] / 1024:.1f} MiB used of {mem['memtotal_kib'] / 1024:.1f} MiB",
             f"available: {mem.get('memavailable_kib', 0) / 1024:.1f} MiB"]
    psi = (info.get("pressure") or {}).get("memory")
    if psi:
        lines.append(f"pressure: some avg10 {psi['some']['avg10']}%  full avg10 "
                     f"{psi.get('full', {}).get('avg10', 0)}%")
    return "\n".join(lines)


def cpu(info):
    lines = [f"cpus: {info['cpus']}", f"load: {' '.join(info['load'])} (1, 5, 15 min)"]
    psi = (info.get("pressure") or {}).get("cpu")
    if psi:
        lines.append(f"pressure: some avg10 {psi['some']['avg10']}%")
    return "\n".join(lines)


def processes(result):
    rows = result.get("processes", []) if isinstance(result, dict) else result
    shown = [{"pid": r["pid"], "ppid": r.get("ppid"), "mem": mib(r.get("rss_bytes", 0), "bytes"),
              "agent": r.get("agent"), "command": (r.get("cmdline") or "")[:60]} for r in rows]
    return table(shown, ["pid", "ppid", "mem", "agent", "command"])


def disks(result):
    shown = [{"mount": r["mount_point"], "type": r.get("fstype"), "size": mib(r.get("total_bytes", 0), "bytes"),
              "free": mib(r.get("available_bytes", 0), "bytes"), "used": f"{r.get('use_percent', 0):.0f}%"}
             for r in result["filesystems"]]
    return table(shown, ["mount", "type", "size", "free", "used"])


def interfaces(result):
    shown = [{"name": r["name"], "state": r.get("state"),
              "addresses": " ".join(f"{a['address']}/{a['prefix']}" for a in r.get("ipv4", []) + r.get("ipv6", []))}
             for r in result["interfaces"]]
    return table(shown, ["name", "state", "addresses"])


def routes(result):
    gateways = result.get("default_gateways") or []
    head = ("default gateway: " + ", ".join(str(g.get("gateway", g)) if isinstance(g, dict) else str(g)
                                          for g in gateways)) if gateways else "no default gateway: offline"
    return head + "\n" + table(result.get("routes", []), ["destination", "gateway", "interface"])


def clock(result):
    return "\n".join([f"time: {result['utc']} (UTC)", f"local: {result['local']} ({result['timezone']['name']})",
                      f"uptime: {result['uptime']:.0f} s"])


# -- agents


def agent_list(rows):
    return table(rows, ["name", "state", "pid", "parent", "starts", "last_exit", "reason"])


def spawned(a):
    return f"{a['name']}: {a['state']}" + (f" (pid {a['pid']})" if a.get("pid") else "") + \
        (f"; goal: {a['goal']}" if a.get("goal") else "")


def acted(a):
    return f"{a['name']}: {a['state']}" + (f" ({a['reason']})" if a.get("reason") else "")


def limits(result):
    lim = result["limits"]
    cpu = f"{lim['cpu'] * 100:g}% of a CPU" if lim.get("cpu") else "no CPU limit"
    return (f"{result['name']}: memory {lim['memory_bytes'] >> 20} MiB, {cpu}, {lim['pids']} processes"
            + ("" if lim.get("enforced", True) else " (not enforced here: no cgroup v2)"))


def agent_logs(result):
    lines = result.get("lines", [])
    return "\n".join(lines) if lines else f"({result.get('name')} has printed nothing yet)"


def agent_inspect(a):
    keep = ("name", "state", "reason", "pid", "parent", "children", "goal", "program", "starts", "restarts",
            "last_exit", "last_error", "limits", "usage")
    lines = []
    for k in keep:
        if k in a and a[k] not in (None, [], {}):
            v = a[k]
            lines.append(f"{k}: {json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v}")
    return "\n".join(lines) or _json(a)


def why(name):
    def show(entries):
        mine = [e for e in entries if (e.get("body") or {}).get("agent") == name]
        if not mine:
            return f"The journal has no state changes of {name}."
        lines = [f"{name}'s state changes, newest first:"]
        for e in mine[:15]:
            b = e["body"]
            extra = "".join(f", {k} {b[k]}" for k in ("last_exit", "last_error") if b.get(k) not in (None, ""))
            lines.append(f"  {stamp(e['ts'])}  {b.get('state')}: {b.get('reason') or '-'}{extra}")
        return "\n".join(lines)
    return show


# -- context


QUIET = ("goal.step", "goal.update")       # the shell's own bookkeeping: counted, not listed


def journal(entries):
    if not entries:
        return "(nothing in the journal for that)"
    lines, quiet = [], 0
    for e in entries:
        if e["kind"] in QUIET:
            quiet += 1
            continue
        body = e.get("body")
        if e["kind"] == "goal.create" and isinstance(body, dict):
            text = f"intent: {body.get('intent')}"
        else:
            text = body if isinstance(body, str) else json.dumps(body, sort_keys=True)
        lines.append(f"{e['seq']:>6} {stamp(e['ts'])} {e['actor']:<8} {e['kind']:<14} {text[:90]}")
    if quiet:
        lines.append(f"({quiet} goal step and status updates not shown; 'history' lists the intents)")
    return "\n".join(lines)


def alerts(entries):
    if not entries:
        return "No alerts."
    lines = []
    for e in entries:
        b = e.get("body") or {}
        lines.append(f"{stamp(e['ts'])}  {b.get('level', '?'):<8} {b.get('source') or b.get('agent') or '-'}: "
                     f"{b.get('message', '')}")
    return "\n".join(lines)


def memories(result):
    items = result.get("items", []) if isinstance(result, dict) else result
    if not items:
        return "I have no memories about that."
    return "\n".join(f"  #{m['id']} [{m['scope']}, {m['kind']}{', pinned' if m.get('pinned') else ''}] "
                     f"{m['text']}" for m in items)


def memory_item(m):
    return f"#{m['id']} [{m['scope']}, {m['kind']}, {m['state']}] {m['text']}"


def remembered(result):
    return f"Remembered as memory #{result['id']} in {result['scope']} ({result['tokens']} tokens)."


def history(goals):
    if not goals:
        return "No history yet."
    return "\n".join(f"  {stamp(g['created_at'])}  {g['status']:<9} {g['intent']}" for g in reversed(goals))


def goals_table(goals):
    return table([{"id": g["id"], "scope": g["scope"], "status": g["status"], "intent": g["intent"][:50],
                   "outcome": (g.get("outcome") or "")[:40]} for g in goals],
                 ["id", "scope", "status", "intent", "outcome"])


def compacted(rows):
    if not rows:
        return "Nothing was compacted in that time."
    return table([{"id": r["id"], "scope": r["scope"], "when": stamp(r["created_at"]), "items": r["items"],
                   "tokens": f"{r['tokens']}->{r.get('summary_tokens')}", "by": r.get("summariser"),
                   "restored": "yes" if r.get("restored_at") else ""} for r in rows],
                 ["id", "scope", "when", "items", "tokens", "by", "restored"]) + \
        "\n('restore compaction ID' brings the originals back.)"


def usage(result):
    return table([{"scope": r["scope"], "items": r["live"]["items"], "tokens": r["live"]["tokens"],
                   "quota": r["quota"]["tokens"], "compacted/forgotten": r["retained"]["items"],
                   "pressure": f"{100 * r.get('storage_pressure', 0):.0f}%"} for r in result["scopes"]],
                 ["scope", "items", "tokens", "quota", "compacted/forgotten", "pressure"])


def pressure(result):
    return "\n".join(["context pressure (" + result.get("principal", "?") + "):"] +
                     [f"  {line}" for line in result.get("psi", [])])


def file_list(result):
    rows = result["entries"]
    return table([{"name": r["name"] + ("/" if r.get("type") == "dir" else ""), "type": r.get("type"),
                   "size": r.get("size"), "mode": r.get("mode")} for r in rows], ["name", "type", "size", "mode"])


def file_read(result):
    text = result.get("content", "")
    more = "" if result.get("eof", True) else f"\n... (more from offset {result.get('next_offset')})"
    return text.rstrip("\n") + more


def power(result):
    return f"{result.get('action', 'power')}: PID 1 is shutting the machine down."


def thread(result):
    """ctx.thread: a page of turns, or one turn with what went into its window and what was left out."""
    t = result.get("thread") or {}
    head = f"thread {t.get('thread_id')} ({t.get('name')}, {t.get('owner')}): {t.get('turns')} turns"
    if "turn" not in result:
        rows = [f"  {x['n']:>4}  {x['role']:<6} {_turn_text(x)}" for x in result.get("turns", [])]
        return "\n".join([head] + rows)
    turn = result["turn"]
    lines = [head, f"turn {turn['n']} ({turn['role']}): {_turn_text(turn)}"]
    window = result.get("window")
    if not window:
        return "\n".join(lines + ["(an answer turn: its window is the input turn's before it)"
                                  if turn["role"] == "answer" else "(no window was recorded for it)"])
    lines.append(f"its window: {window.get('tokens')} of {window.get('budget_tokens')} tokens, "
                 f"{window.get('faults')} faults")
    for m in window.get("memories") or []:
        lines.append(f"  memory {m['id']}{' (pinned)' if m.get('pinned') else ''}: {m['text'][:100]}")
    if window.get("summary"):
        lines.append(f"  summary of turns 1-{window['summary']['through_n']}: {window['summary']['text'][:100]}")
    for x in window.get("turns") or []:
        lines.append(f"  turn {x['n']} ({x['why']}): {x['text'][:100]}")
    counts = window.get("left_out_counts") or {}
    left = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in sorted(counts.items()) if n) or "nothing"
    lines.append(f"left out: {left}")
    return "\n".join(lines)


def _turn_text(turn):
    body = turn.get("body") or {}
    if turn.get("role") == "input":
        text = body.get("text") or ""
        results = body.get("tool_results") or []
        return (text[:80] + (f" [+{len(results)} tool results]" if results else "")).strip()
    if body.get("error"):
        return f"failed: {body['error'].get('message', '')[:80]}"
    calls = body.get("tool_calls") or []
    return ((body.get("content") or "")[:80] + (f" [asked for {', '.join(c['name'] for c in calls)}]"
                                                if calls else "")).strip()


RENDERERS = {
    "status": status, "memory": memory, "cpu": cpu, "sys.processes": processes, "processes.list": processes,
    "disk.usage": disks, "network.interfaces": interfaces, "network.routes": routes, "clock.now": clock,
    "agent.list": agent_list, "agent.spawn": spawned, "agent.start": acted, "agent.stop": acted,
    "agent.restart": acted, "agent.set_limits": limits, "agent.remove": lambda r: f"removed {r['removed']}",
    "ctx.forget": lambda r: f"forgot memory #{r.get('id', r.get('memory_id', '?'))}", "agent.logs": agent_logs, "agent.inspect": agent_inspect,
    "journal": journal, "ctx.journal": journal, "alerts": alerts, "memories": memories,
    "memory_item": memory_item, "ctx.remember": remembered, "history": history, "ctx.goals": goals_table,
    "ctx.compacted": compacted, "thread": thread, "ctx.thread": thread, "ctx.usage": usage, "ctx.pressure": pressure, "files.list": file_list,
    "files.read": file_read, "sys.power": power,
}

