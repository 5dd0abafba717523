"""Durable agents and resumable goals on the host (issue 11), against tests/fake_openai.py.

* aetherd killed with SIGKILL: the agents spawned through the ABI (one the way the shell
  spawns a watch agent, a child with a carved spend) come back in the next aetherd with
  their lineage, owner and spend; one stopped on purpose stays stopped, one removed is gone,
  one with restart = never is not started again and says why.
* The goal agent killed with SIGKILL during step 3 of a 5-step goal: restarted per its
  policy, it resumes from its last committed turn, every tool call is journalled once,
  and the goal reaches done.
"""

import json
import os
import signal

import pytest

from tests.fake_openai import Reply

from .conftest import sleep_until
from .test_broker import aetherd, model  # noqa: F401 - fixtures, shared

pytestmark = pytest.mark.host
HI = [{"role": "user", "content": "hi"}]


def sh(name, script, **extra):
    return {"name": name, "program": "/bin/sh", "args": ["-c", script], **extra}


def state(c, name):
    return c.call("agent.inspect", name=name)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] not in "ZX"
    except OSError:
        return False


def test_abi_spawned_agents_survive_an_aetherd_crash(aetherd):  # noqa: F811
    d = aetherd()
    c = d.connect()
    c.call("agent.spawn", manifest=sh("keeper", "sleep 300", context={"spend_tokens": 5000}))
    # the shell's watch intent spawns exactly this (aether/shell/intents/watching.py)
    c.call("agent.spawn", manifest={"name": "watch-memory-above-99", "goal": "alert when memory.used_percent > 99",
                                    "program": "aether.builtin.watch:main",
                                    "args": ["memory.used_percent > 99"], "restart": "on-failure"})
    c.call("agent.spawn", parent="keeper", manifest={
        "name": "helper", "program": "tests.host.broker_entries:concurrent", "restart": "on-failure",
        "args": ["out.json", json.dumps({"calls": [{"tag": "a", "params": {"messages": HI, "max_tokens": 10}}]})],
        "context": {"spend_tokens": 1000}})
    c.call("agent.spawn", manifest=sh("paused", "sleep 300"))
    c.call("agent.spawn", manifest=sh("gone", "sleep 300"))
    c.call("agent.spawn", manifest=sh("oneshot", "sleep 300", restart="never"))
    for name in ("keeper", "watch-memory-above-99", "paused", "gone", "oneshot"):
        sleep_until(lambda name=name: state(c, name)["state"] == "running", 20)
    sleep_until(lambda: state(c, "helper")["state"] == "exited", 30)
    c.call("agent.stop", name="paused")
    c.call("agent.stop", name="gone")
    sleep_until(lambda: state(c, "gone")["state"] == "stopped", 20)
    c.call("agent.remove", name="gone")
    before = {n: state(c, n) for n in ("keeper", "helper", "watch-memory-above-99", "oneshot")}
    assert before["helper"]["context"]["used_tokens"] == 18
    d.stop(signal.SIGKILL)                         # a crash: nothing is stopped in order
    d.start()
    c = d.connect()
    names = {a["name"] for a in c.call("agent.list")}
    assert {"keeper", "helper", "watch-memory-above-99", "paused", "oneshot"} <= names and "gone" not in names
    for name in ("keeper", "watch-memory-above-99"):
        now = sleep_until(lambda name=name: (s := state(c, name))["state"] == "running" and s, 20)
        assert now["pid"] != before[name]["pid"] and not alive(before[name]["pid"]), (name, d.log())
        assert now["lineage"] == before[name]["lineage"] and now["owner"] == before[name]["owner"]
        assert now["spawned_by"] == before[name]["spawned_by"] and now["starts"] == before[name]["starts"] + 1
    helper = state(c, "helper")
    assert helper["state"] == "exited" and helper["lineage"] == ["keeper", "helper"]
    assert helper["owner"] == "agent:keeper" and helper["parent"] == "keeper"
    assert helper["context"]["used_tokens"] == 18 and helper["context"]["spend_tokens"] == 1000
    keeper = state(c, "keeper")
    assert keeper["children"] == ["helper"] and keeper["context"]["carved_tokens"] == 1000
    assert state(c, "paused")["state"] == "stopped" and "on purpose" in state(c, "paused")["reason"]
    oneshot = state(c, "oneshot")
    assert oneshot["state"] == "failed" and "restart = never" in oneshot["reason"]
    assert not alive(before["oneshot"]["pid"])
    # a clean stop brings the running ones back too, and the next crash once more
    d.stop()
    d.start()
    c = d.connect()
    sleep_until(lambda: state(c, "keeper")["state"] == "running", 20)
    assert state(c, "paused")["state"] == "stopped" and state(c, "helper")["state"] == "exited"


STEPS = 5
GOAL = "list your directory five times, then report"


def step(k):
    return Reply(content=None, tool_calls=[{"id": f"call_{k}", "name": "files_list",
                                            "arguments": json.dumps({"path": "."})}])


def tool_entries(c, principal):
    return [e for e in c.call("ctx.journal", kind="tool.call", limit=1000)
            if e["actor"] == principal]


def test_a_goal_agent_killed_during_step_3_of_5_resumes_and_finishes(aetherd, model):  # noqa: F811
    d = aetherd()
    c = d.connect()
    # answers 1-3 ask for tool calls 1-3; the think that carries call 3's result is held,
    # and the agent is killed while it waits: step 3 ran, its result is not yet heard
    model.queue(step(1), step(2), step(3), Reply("never heard", delay=30))
    c.call("agent.spawn", manifest={"name": "worker", "goal": GOAL, "program": "aether.builtin.goal:main",
                                    "restart": "on-failure", "backoff": {"initial": "0.2s"}})
    sleep_until(lambda: len(model.requests) >= 4, 30)
    first = state(c, "worker")
    assert len(tool_entries(c, "agent:worker")) == 3
    os.kill(first["pid"], signal.SIGKILL)
    model.queue(step(4), step(5), Reply("Listed it five times; the directory holds only the agent's own files."))
    sleep_until(lambda: state(c, "worker")["state"] in ("exited", "failed") and
                state(c, "worker")["pid"] != first["pid"], 60)
    final = state(c, "worker")
    assert final["state"] == "exited", final
    calls = tool_entries(c, "agent:worker")
    assert len(calls) == STEPS                                     # every call exactly once
    assert len({e["body"]["call_id"] for e in calls}) == STEPS
    goal = next(g for g in c.call("ctx.goals", scope="agent:worker") if g["intent"] == GOAL)
    assert goal["status"] == "done" and goal["outcome"].startswith("Listed it five times")
    full = c.call("ctx.goal", goal_id=goal["id"])
    assert len(full["steps"]) == STEPS and all(s["status"] == "done" for s in full["steps"])
    # the thread continued where it was cut: one input turn for call 3's result, asked again
    thread_id = int(calls[0]["body"]["call_id"].split(":")[0])       # <thread>:<turn>:<index>
    page = c.call("ctx.thread", thread_id=thread_id, verify=True)
    roles = [t["role"] for t in page["turns"]]
    inputs_with_results = [t for t in page["turns"] if t["role"] == "input" and t["body"].get("tool_results")]
    assert len(inputs_with_results) == STEPS and page["chain"]["ok"]
    assert roles.count("input") == STEPS + 1, roles
    assert "resuming goal" in json.dumps(c.call("agent.logs", name="worker"))
