"""agent.ask and its answers (aether/abi/calls/ask.py) against a fake aetherd: every call goes
through the real method table, so access levels and schemas are the ones served."""

import types

import pytest

from aether.abi import identity
from aether.abi.calls import ask as asks
from aether.abi.calls import table
from aether.abi.protocol import Busy, Conflict, InvalidParams, NotFound, PermissionDenied
from aether.abi.server import Deferred
from aether.events import Events

METHODS = table()
SHELL = identity.Caller("shell", 1, 0, 0, privileged=True)
HOST = identity.HOST
LOCAL = identity.Caller("uid:1000", 3, 1000, 1000)


def agent(name):
    return identity.Caller(f"agent:{name}", 2, 10000, 10000, agent=name)


class Clock:
    def __init__(self):
        self.t, self.timers = 100.0, []

    def now(self):
        return self.t

    def call_later(self, delay, fn):
        self.timers.append((self.t + delay, fn))

    def advance(self, seconds):
        self.t += seconds
        due = [t for t in self.timers if t[0] <= self.t]
        self.timers = [t for t in self.timers if t[0] > self.t]
        for _, fn in sorted(due, key=lambda t: t[0]):
            fn()


@pytest.fixture
def d():
    d = types.SimpleNamespace(loop=Clock(), events=Events(), journaled=[])
    d.supervisor = types.SimpleNamespace(agents={n: types.SimpleNamespace(parent=None) for n in ("a", "b")})
    d.journal = lambda kind, body, scope=None: d.journaled.append((kind, body, scope))
    return d


def call(d, caller, method, **params):
    return METHODS[method].call(d, caller, params, None)


def settled(deferred):
    got = []
    deferred.bind(lambda value, error: got.append(error or value))
    return got


def test_ask_blocks_until_a_person_approves(d):
    waiting = call(d, agent("a"), "agent.ask", step="delete /x", why="it is old")
    assert isinstance(waiting, Deferred)
    got = settled(waiting)
    listed = call(d, SHELL, "agent.requests")["pending"]
    assert [(r["id"], r["agent"], r["step"], r["state"]) for r in listed] == [(1, "a", "delete /x", "pending")]
    answer = call(d, SHELL, "agent.approve", id=1, note="go ahead")
    assert answer["state"] == "approved" and answer["by"] == "shell"
    assert got[0]["approved"] is True and got[0]["note"] == "go ahead"
    assert call(d, SHELL, "agent.requests")["pending"] == []
    kinds = [(k, b["state"] if "state" in b else b["step"], s) for k, b, s in d.journaled]
    assert kinds == [("agent.ask", "delete /x", "agent:a"), ("agent.answer", "approved", "agent:a")]


def test_denied_and_polled(d):
    req = call(d, agent("a"), "agent.ask", step="reboot", why="kernel update", wait=False)
    assert req["state"] == "pending" and req["approved"] is False and req["expires_in_s"] == 300
    call(d, HOST, "agent.deny", id=req["id"], note="not now")
    polled = call(d, agent("a"), "agent.answer_of", id=req["id"])
    assert (polled["state"], polled["approved"], polled["by"], polled["note"]) == ("denied", False, "host", "not now")
    with pytest.raises(Conflict, match="already denied"):
        call(d, SHELL, "agent.approve", id=req["id"])      # an answer is final


def test_timeout_is_never_a_yes(d):
    got = settled(call(d, agent("a"), "agent.ask", step="s", why="w", timeout_s=10))
    d.loop.advance(9)
    assert got == []
    d.loop.advance(2)
    assert got[0]["state"] == "timeout" and got[0]["approved"] is False
    with pytest.raises(Conflict, match="already timeout"):
        call(d, SHELL, "agent.approve", id=1)
    assert d.journaled[-1][1]["state"] == "timeout"


def test_an_agent_that_stops_has_its_requests_cancelled(d):
    got = settled(call(d, agent("a"), "agent.ask", step="s", why="w"))
    call(d, agent("b"), "agent.ask", step="t", why="w", wait=False)
    d.events.publish({"kind": "agent.state", "agent": "a", "state": "stopping", "reason": "request"})
    assert got[0]["state"] == "cancelled" and "stopping" in got[0]["note"]
    assert [r["agent"] for r in call(d, SHELL, "agent.requests")["pending"]] == ["b"]
    with pytest.raises(Conflict):
        call(d, SHELL, "agent.approve", id=1)


# -- attacks ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["agent.approve", "agent.deny"])
def test_an_agent_cannot_answer_its_own_request_or_anyones(d, method):
    mine = call(d, agent("a"), "agent.ask", step="s", why="w", wait=False)["id"]
    theirs = call(d, agent("b"), "agent.ask", step="t", why="w", wait=False)["id"]
    for rid in (mine, theirs):
        for who in (agent("a"), LOCAL):
            with pytest.raises(PermissionDenied):
                call(d, who, method, id=rid)
    assert len(call(d, SHELL, "agent.requests")["pending"]) == 2


def test_an_agent_sees_only_its_own_requests(d):
    theirs = call(d, agent("b"), "agent.ask", step="secret step", why="w", wait=False)["id"]
    with pytest.raises(PermissionDenied):
        call(d, agent("a"), "agent.requests")
    with pytest.raises(NotFound) as e:
        call(d, agent("a"), "agent.answer_of", id=theirs)
    assert "secret" not in str(e.value) and str(theirs) not in str(e.value).split("known:")[1]
    with pytest.raises(NotFound):
        call(d, agent("a"), "agent.answer_of", id=theirs, wait=True)
    with pytest.raises(PermissionDenied):
        call(d, LOCAL, "agent.answer_of", id=theirs)
    events = [e for e in d.events.ring if e["kind"] == "agent.ask"]
    assert not any(agent("a").sees(e) for e in events) and all(agent("b").sees(e) for e in events)


def test_only_agents_ask(d):
    for who in (SHELL, LOCAL):
        with pytest.raises(PermissionDenied):
            call(d, who, "agent.ask", step="s", why="w")


def test_caps_per_agent_total_and_rate(d):
    for _ in range(asks.MAX_PER_AGENT):
        call(d, agent("a"), "agent.ask", step="s", why="w", wait=False)
    with pytest.raises(Busy, match="already has 4"):
        call(d, agent("a"), "agent.ask", step="s", why="w", wait=False)
    call(d, agent("b"), "agent.ask", step="s", why="w", wait=False)     # another agent is not starved
    for rid in range(1, 5):
        call(d, SHELL, "agent.deny", id=rid)
    d.supervisor.agents.update({f"x{i}": types.SimpleNamespace(parent=None) for i in range(20)})
    with pytest.raises(Busy, match="across the machine"):
        for i in range(20):
            for _ in range(4):
                call(d, agent(f"x{i}"), "agent.ask", step="s", why="w", wait=False)
    assert len(d.asks.pending) == asks.MAX_PENDING


def test_rate_per_hour(d):
    for i in range(asks.MAX_PER_HOUR):
        call(d, agent("a"), "agent.ask", step="s", why="w", wait=False)
        call(d, SHELL, "agent.deny", id=i + 1)
    with pytest.raises(Busy, match="in the last hour"):
        call(d, agent("a"), "agent.ask", step="s", why="w", wait=False)
    d.loop.advance(3601)
    call(d, agent("a"), "agent.ask", step="s", why="w", wait=False)


def test_waiters_per_request_are_bounded(d):
    rid = call(d, agent("a"), "agent.ask", step="s", why="w", wait=False)["id"]
    for _ in range(asks.MAX_WAITERS):
        call(d, agent("a"), "agent.answer_of", id=rid, wait=True)
    with pytest.raises(Busy):
        call(d, agent("a"), "agent.answer_of", id=rid, wait=True)


@pytest.mark.parametrize("field,text", [("step", "ok\x1b[2K\rapproved"), ("step", "two\nlines"),
                                        ("why", "bell\x07"), ("why", "rtl \u202e evil"),
                                        ("details", "c1 \x9b31m")])
def test_text_that_would_mislead_the_console_is_refused(d, field, text):
    params = {"step": "s", "why": "w", field: text, "wait": False}
    with pytest.raises(InvalidParams, match="control or direction"):
        call(d, agent("a"), "agent.ask", **params)
    assert not d.journaled


def test_lengths_and_timeouts_are_bounded(d):
    for params in ({"step": "x" * (asks.STEP_CHARS + 1), "why": "w"},
                   {"step": "s", "why": "w" * (asks.WHY_CHARS + 1)},
                   {"step": "s", "why": "w", "timeout_s": 1}, {"step": "s", "why": "w", "timeout_s": 1e9},
                   {"step": "   ", "why": "w"}, {"step": "s", "why": "w", "agent": "b"}):
        with pytest.raises(InvalidParams):
            call(d, agent("a"), "agent.ask", wait=False, **params)
    assert call(d, agent("a"), "agent.ask", step="s", why="line one\nline two", wait=False)["why"].count("\n") == 1


def test_settled_requests_kept_are_bounded(d):
    d.supervisor.agents.update({f"x{i}": types.SimpleNamespace(parent=None) for i in range(100)})
    n = 0
    for i in range(100):
        for _ in range(3):
            n += 1
            call(d, agent(f"x{i}"), "agent.ask", step="s", why="w", wait=False)
            call(d, SHELL, "agent.deny", id=n)
    assert len(d.asks.settled) == asks.MAX_SETTLED
    assert call(d, SHELL, "agent.requests", limit=5)["settled"][0]["id"] == n
