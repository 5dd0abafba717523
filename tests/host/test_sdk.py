"""aether.sdk agents and agent.ask under a real aetherd on the host (tests/host/sdk_entries.py).

* the ten-line agent runs, heartbeats (never restarted as silent), logs into agent.logs,
  remembers, stops gracefully on agent.stop with its state saved, and carries on after a start;
* agent.ask approved and denied by the shell's principal, the agent blocked until then; a
  timeout answers timeout; an agent that stops has its request cancelled;
* the attack: an agent cannot approve or deny its own request or another's, nor list them;
* a parent spawns a child and waits for it.
"""

import json

import pytest

from .conftest import sleep_until
from .test_broker import Aetherd

pytestmark = pytest.mark.host


@pytest.fixture
def d(tmp_path):
    daemon = Aetherd(tmp_path, "")
    yield daemon
    daemon.stop()


def entry(name, fn, *args, **extra):
    return {"name": name, "program": f"tests.host.sdk_entries:{fn}", "args": list(args), **extra}


def logs(c, name):
    return c.call("agent.logs", name=name, lines=500)["lines"]


def logged(c, name, text, timeout=20):
    return sleep_until(lambda: next((line for line in logs(c, name) if text in line), None), timeout)


def pending(c):
    return c.call("agent.requests")["pending"]


def test_the_ten_line_agent(d):
    c = d.connect()
    c.call("agent.spawn", manifest=entry("ticker", "ticker", "0.3", heartbeat="1s", restart="on-failure"))
    logged(c, "ticker", "tick 12:", 30)                  # 3.6 s: past three heartbeat intervals
    info = c.call("agent.inspect", name="ticker")
    assert info["state"] == "running" and info["starts"] == 1, info        # never silent
    memories = c.call("ctx.search", query="load", scopes=["agent:ticker"])["items"]
    assert any("at tick 3" in m["text"] for m in memories)
    c.call("agent.stop", name="ticker")
    sleep_until(lambda: c.call("agent.inspect", name="ticker")["state"] == "stopped", 20)
    assert c.call("agent.inspect", name="ticker")["last_exit"] == 0
    assert "info: stopped: told to stop; state saved" in logs(c, "ticker")
    saved = json.loads((d.data / "home" / "ticker" / "state.json").read_text())
    last = max(int(line.split()[2].rstrip(":")) for line in logs(c, "ticker") if line.startswith("info: tick "))
    assert saved["seen"] == last
    c.call("agent.start", name="ticker")
    logged(c, "ticker", f"tick {last + 1}:")              # carries on from its saved state


def test_approved_and_denied_from_the_shell(d):
    c = d.connect()
    c.call("agent.spawn", manifest=entry("yes-agent", "asker", "make a file", restart="never"))
    c.call("agent.spawn", manifest=entry("no-agent", "asker", "make another file", restart="never"))
    sleep_until(lambda: len(pending(c)) == 2, 20)
    by_agent = {r["agent"]: r for r in pending(c)}
    assert by_agent["yes-agent"]["step"] == "make a file" and by_agent["yes-agent"]["why"] == "the test wants to know"
    assert c.call("agent.inspect", name="yes-agent")["state"] == "running"      # blocked, waiting
    c.call("agent.approve", id=by_agent["yes-agent"]["id"], note="fine")
    c.call("agent.deny", id=by_agent["no-agent"]["id"], note="no thanks")
    assert "approved by shell note fine" in logged(c, "yes-agent", "answer")
    assert "denied by shell note no thanks" in logged(c, "no-agent", "answer")
    sleep_until(lambda: c.call("agent.inspect", name="no-agent")["state"] == "exited", 20)
    assert [p.name for p in (d.data / "home" / "yes-agent").glob("done-*")] == [f"done-{by_agent['yes-agent']['id']}"]
    assert not list((d.data / "home" / "no-agent").glob("done-*"))            # denied: never run
    journal = c.call("ctx.journal", scope="agent:no-agent", kind="agent.answer")
    assert [(e["actor"], e["body"]["state"], e["body"]["by"]) for e in journal] == [("system", "denied", "shell")]
    assert [e["body"]["step"] for e in c.call("ctx.journal", scope="agent:yes-agent", kind="agent.ask")] == ["make a file"]


def test_timeout_and_cancel(d):
    c = d.connect()
    c.call("agent.spawn", manifest=entry("slow", "asker", "wait for me", "5", restart="never"))
    assert "timeout by None" in logged(c, "slow", "answer", 30)
    assert not list((d.data / "home" / "slow").glob("done-*"))
    c.call("agent.spawn", manifest=entry("quitter", "asker", "never mind", restart="never"))
    rid = sleep_until(lambda: [r["id"] for r in pending(c) if r["agent"] == "quitter"], 20)[0]
    c.call("agent.stop", name="quitter")
    sleep_until(lambda: not pending(c), 20)
    gone = next(r for r in c.call("agent.requests")["settled"] if r["id"] == rid)
    assert gone["state"] == "cancelled"
    from aether.abi.protocol import Conflict
    with pytest.raises(Conflict):
        c.call("agent.approve", id=rid)


def test_an_agent_cannot_answer_requests(d):
    c = d.connect()
    c.call("agent.spawn", manifest=entry("victim", "asker", "the victim's step", restart="never"))
    victim = sleep_until(lambda: [r["id"] for r in pending(c) if r["agent"] == "victim"], 20)[0]
    c.call("agent.spawn", manifest=entry("attacker", "attacker", str(victim), restart="never"))
    mine = json.loads(logged(c, "attacker", "mine ").split("mine ", 1)[1])
    lines = [line for line in logs(c, "attacker") if line.startswith("info: attack ")]
    assert lines == ["info: attack agent.approve: permission_denied", "info: attack agent.deny: permission_denied",
                     "info: attack agent.approve: permission_denied", "info: attack agent.requests: permission_denied",
                     "info: attack agent.answer_of: not_found"], lines
    assert mine["state"] == "pending" and mine["agent"] == "attacker"
    assert {r["id"]: r["state"] for r in pending(c)} == {victim: "pending", mine["id"]: "pending"}


def test_children_are_spawned_and_waited_for(d):
    c = d.connect()
    c.call("agent.spawn", manifest=entry("sdk-parent", "parent", restart="never"))
    line = logged(c, "sdk-parent", "child ")
    assert line.endswith(" 3") and c.call("agent.inspect", name="sdk-child")["parent"] == "sdk-parent"
    assert logs(c, "sdk-child") == ["child ran"]


def test_an_agent_that_polls_gets_its_answer(d):
    c = d.connect()
    c.call("agent.spawn", manifest=entry("poller", "poller", "a polled step", restart="never"))
    rid = int(logged(c, "poller", "asked ").split()[-1])
    assert [r["step"] for r in pending(c)] == ["a polled step"]
    c.call("agent.deny", id=rid)
    assert logged(c, "poller", "polled answer").endswith(f"polled answer {rid}: denied by shell")


def test_log_print_and_logging_all_land_in_agent_logs_at_once(d):
    c = d.connect()
    c.call("agent.spawn", manifest=entry("talker", "talker"))
    sleep_until(lambda: len(logs(c, "talker")) >= 3, 20)       # while it runs: nothing waits in a buffer
    assert set(logs(c, "talker")) == {"info: via log", "via print", "WARNING: via logging"}
