"""The broker against the real model server (tests/realmodel.py): eight agents at once, and the
goal agent with the real model.  What is tested is what AetherOS sends, queues, counts and
cancels, not the quality of a 135M model's answers."""

import json
import time

import pytest

from .conftest import sleep_until
from .test_real_model import host_aetherd, requests_seen  # noqa: F401 - the fixture, shared

pytestmark = pytest.mark.host
ASK = [{"role": "user", "content": "Name one colour."}]


def spawn_caller(c, name, max_tokens=16):
    c.call("agent.spawn", manifest={
        "name": name, "program": "tests.host.broker_entries:concurrent", "restart": "never",
        "context": {"spend_tokens": 5000},
        "args": ["out.json", json.dumps({"calls": [{"tag": name, "params": {"messages": ASK,
                                                                             "max_tokens": max_tokens}}],
                                         "timeout": 170})]})


def outcome(d, c, name):
    sleep_until(lambda: c.call("agent.inspect", name=name)["state"] in ("exited", "failed"), 180, 0.2)
    for home in ("home", "agents"):
        path = d.data / home / name / "out.json"
        if path.exists():
            return json.loads(path.read_text())[0]
    raise AssertionError(c.call("agent.logs", name=name))


def test_eight_agents_at_once_through_the_broker(model_server, host_aetherd):  # noqa: F811
    d = host_aetherd()
    d.data = __import__("pathlib").Path(d.sock).parents[1] / "data"
    c = d.client
    before = requests_seen(model_server)
    names = [f"caller-{i}" for i in range(8)]
    for name in names:
        spawn_caller(c, name)
    peak = 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        view = c.call("llm.queue")
        peak = max(peak, len(view["running"]))
        assert len(view["running"]) <= view["concurrency"] == 1
        if all(c.call("agent.inspect", name=n)["state"] in ("exited", "failed") for n in names):
            break
        time.sleep(0.1)
    results = [outcome(d, c, n) for n in names]
    assert [r[0] for r in results] == ["ok"] * 8, results
    for _code, answer, _ in results:
        assert answer["content"].strip() and answer["broker"]["counted"] == "server"
        assert answer["usage"]["estimated"] is False and answer["usage"]["completion_tokens"] <= 16
    waits = sorted(r[1]["broker"]["queue_wait_s"] for r in results)
    service = max(r[1]["broker"]["service_s"] for r in results)
    assert waits[-1] >= 5 * min(r[1]["broker"]["service_s"] for r in results)   # they waited their turn
    assert waits[-1] <= 8 * service + 5
    assert requests_seen(model_server) - before == 8
    for name, (_, answer, _) in zip(names, results):
        seen = c.call("agent.inspect", name=name)["context"]
        assert seen["used_tokens"] == answer["usage"]["total_tokens"] and seen["reserved_tokens"] == 0
        assert seen["llm"]["calls"] == 1 and seen["llm"]["tokens_out"] == answer["usage"]["completion_tokens"]
    assert peak == 1


def test_the_goal_agent_reaches_its_goal_or_fails_clearly(model_server, host_aetherd):  # noqa: F811
    d = host_aetherd()
    c = d.client
    c.call("agent.spawn", manifest={"name": "goal", "program": "aether.builtin.goal:main", "restart": "never",
                                    "goal": "Write the word hello into a file named hello.txt.",
                                    "context": {"spend_tokens": 60000}})

    def finished():                                    # a risky call it asks a person for is denied
        for r in c.call("agent.requests")["pending"]:
            c.call("agent.deny", id=r["id"], note="not in this test")
        return c.call("agent.inspect", name="goal")["state"] in ("exited", "failed")
    sleep_until(finished, 300, 0.5)
    me = c.call("agent.inspect", name="goal")
    goals = c.call("ctx.goals", scope="agent:goal")
    assert goals, c.call("agent.logs", name="goal")
    goal = goals[0]
    logs = "\n".join(c.call("agent.logs", name="goal")["lines"])
    assert "Traceback" not in logs, logs
    if goal["status"] == "done":
        assert me["last_exit"] == 125 and goal["outcome"].strip()
    else:                                              # failing is allowed; failing unclearly is not
        assert goal["status"] == "failed" and me["last_exit"] == 1, (goal, logs)
        assert any(why in goal["outcome"] for why in ("no report after", "the model failed (")), goal
    assert me["context"]["llm"]["calls"] >= 1 and me["context"]["used_tokens"] > 0
    assert me["context"]["reserved_tokens"] == 0


def test_think_with_the_real_server_records_both_turns_and_real_usage(model_server, host_aetherd):  # noqa: F811
    d = host_aetherd()
    c = d.client
    c.call("ctx.remember", text="The backup server is called orca.", scope="user")
    before = requests_seen(model_server)
    first = c.think("What is the backup server called?", rules="Answer in one short sentence.", max_tokens=24)
    assert isinstance(first["content"], str) and first["content"].strip()
    assert first["usage"]["estimated"] is False and first["usage"]["completion_tokens"] <= 24
    second = c.think("Say that again.", max_tokens=24)
    assert requests_seen(model_server) - before == 2
    assert second["window"]["recent"] == 2 and second["thread"]["answer_turn"] == 4
    page = c.call("ctx.thread", thread="main", verify=True)
    assert [t["role"] for t in page["turns"]] == ["input", "answer", "input", "answer"] and page["chain"]["ok"]
    explained = c.call("ctx.thread", thread="main", turn=1)
    assert any("orca" in m["text"] for m in explained["window"]["memories"])   # the memory went in, by id
    assert explained["window"]["tokens"] <= explained["window"]["budget_tokens"] <= model_server.n_ctx
