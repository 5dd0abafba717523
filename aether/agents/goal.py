"""goal: an agent that works toward the goal in its manifest, with the model.

It records its goal in its own context scope, then, when a model is
configured, asks it (``llm.complete``, charged to this agent's context
budget) what to do, runs the tool calls it proposes through ``tool.call``
(confined to the agent's own directory like every agent's), feeds the results
back, and records the outcome when the model says it is done.  Risky tool
calls are not run: an agent has nobody to say yes, so the model is told so.
With no model configured it records the goal as waiting and exits ``done``
(status 125): nothing is guessed.
"""

import json
import os

from ..abi.protocol import AbiError
from ..client import Client

TURNS = 8
DONE = 125
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
            done = c.call("llm.complete", messages=messages, tools=tools)
        except AbiError as e:
            return f"the model failed on turn {turn}: {e}", "failed"
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
        return json.dumps(c.call("tool.call", name=call["name"], args=call["arguments"]))[:4000]
    except AbiError as e:
        return f"error: {e}"


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
