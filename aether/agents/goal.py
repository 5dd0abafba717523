"""goal: an agent that works toward the goal in its manifest, with the model.

It records its goal in its own context scope, then, when a model is
configured, asks it (``llm.complete``: the broker's queue at this agent's
priority, charged to its spend) what to do, runs the tool calls it proposes through ``tool.call``
(confined to the agent's own directory like every agent's), feeds the results
back, and records the outcome when the model says it is done.  Risky tool
calls are not run: an agent has nobody to say yes, so the model is told so.
With no model configured it records the goal as waiting and exits ``done``
(status 125): nothing is guessed.

The conversation is kept within the call's window: tool results are clipped
(RESULT_CHARS), each answer asks for at most MAX_TOKENS, and when the broker says a
turn does not fit (``invalid_params`` with the messages to drop) the oldest tool
exchanges go and the turn is asked again, once; a spent budget, a failing endpoint
or a window that cannot be met ends the goal ``failed`` with the reason.
"""

import json
import os

from ..abi.protocol import AbiError
from ..client import Client

TURNS = 8
DONE = 125
MAX_TOKENS = 256
RESULT_CHARS = 1500
SYSTEM = ("You are an agent on AetherOS with this goal: {goal}\n"
          "Use the tools to make progress; you work inside your own directory {home}. "
          "Risky calls are refused (nobody is there to approve them). When the goal is met or "
          "cannot be met, answer with a short report and no tool call.")


def main(args):
    name = os.environ.get("AETHER_AGENT", "goal")
    with Client() as c:
        me = c.call("agent.inspect", name=name)
        goal = me.get("goal") or " ".join(args)
        if not goal:
            raise SystemExit("goal: no goal in the manifest (goal = \"...\") or the arguments")
        gid = c.call("ctx.create_goal", intent=goal, plan="work toward it with the model")["id"]
        if not (c.call("sys.info").get("llm") or {}).get("configured"):
            c.call("ctx.update_goal", goal_id=gid, status="open",
                   outcome="waiting: no model is configured (aether.llm.endpoint, aether.llm.model)")
            print(f"goal recorded ({goal!r}); no model is configured, so nothing more to do", flush=True)
            return DONE
        outcome, status = work(c, goal, gid)
        c.call("ctx.update_goal", goal_id=gid, status=status, outcome=outcome[:2000])
        print(f"{status}: {outcome}", flush=True)
        return DONE if status == "done" else 1


def work(c, goal, gid):
    tools = [t for t in c.call("tool.list") if not t.get("risky")]
    messages = [{"role": "system", "content": SYSTEM.format(goal=goal, home=os.environ.get("HOME", "."))},
                {"role": "user", "content": goal}]
    for turn in range(1, TURNS + 1):
        try:
            done = ask(c, messages, tools)
        except AbiError as e:
            why = {"budget_exhausted": "its model-token spend is used up",
                   "busy": "the model's queue is full"}.get(e.code, e.code)
            return f"the model failed on turn {turn} ({why}): {e}", "failed"
        calls = done.get("tool_calls") or []
        if not calls:
            return (done.get("content") or "the model stopped without a report").strip(), "done"
        messages.append(_assistant(done))
        for call in calls:
            c.call("ctx.add_step", goal_id=gid, description=f"{call['name']} {json.dumps(call.get('arguments'))}"[:500])
            messages.append({"role": "tool", "tool_call_id": call["id"],
                             "content": run(c, call, {t["name"] for t in tools})})
    return f"no report after {TURNS} turns", "failed"


def run(c, call, offered):
    if call.get("error"):
        return f"not run: {call['error']}"
    if call["name"] not in offered:
        return f"not run: {call['name']} is not one of the tools offered (risky ones are not, for an agent)"
    try:
        if _risky(call):
            return "not run: this call is risky and an agent cannot approve it"
        return _clip(json.dumps(c.call("tool.call", name=call["name"], args=call["arguments"])))
    except AbiError as e:
        return f"error: {e}"


def ask(c, messages, tools):
    """One turn; when it does not fit the window, drop what the broker names and ask once more."""
    try:
        return c.call("llm.complete", messages=messages, tools=tools, max_tokens=MAX_TOKENS)
    except AbiError as e:
        drop = (e.data or {}).get("drop") if e.code == "invalid_params" else None
        if not drop:
            raise
    keep = set(range(len(messages))) - set(drop)
    messages[:] = _whole_exchanges([m for i, m in enumerate(messages) if i in keep])
    return c.call("llm.complete", messages=messages, tools=tools, max_tokens=MAX_TOKENS)


def _whole_exchanges(messages):
    """No tool result without the assistant message that asked for it."""
    asked = {tc["id"] for m in messages if m.get("role") == "assistant" for tc in m.get("tool_calls") or ()}
    return [m for m in messages if m.get("role") != "tool" or m.get("tool_call_id") in asked]


def _clip(text):
    return text if len(text) <= RESULT_CHARS else text[:RESULT_CHARS - 20] + "... (cut)"


def _risky(call):
    from ..tools import is_risky
    try:
        return is_risky(call["name"], call["arguments"])
    except Exception:  # noqa: BLE001 - an unknown tool or bad arguments: tool.call will say why
        return False


def _assistant(done):
    return {"role": "assistant", "content": done.get("content"),
            "tool_calls": [{"id": c["id"], "type": "function",
                            "function": {"name": c["wire_name"], "arguments": c["arguments_json"]}}
                           for c in done["tool_calls"]]}
