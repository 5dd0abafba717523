"""Attacks on agent.ask (aether/abi/calls/ask.py) by a hostile agent: its children fill the book
that every agent shares, and characters that change what the person reads."""

import types

import pytest

from aether.abi import identity
from aether.abi.calls import ask as asks
from aether.abi.calls import table
from aether.abi.protocol import Busy, InvalidParams
from aether.events import Events

METHODS = table()


def agent(name):
    return identity.Caller(f"agent:{name}", 2, 10000, 10000, agent=name)


class Clock:
    def now(self):
        return 100.0

    def call_later(self, delay, fn):
        pass


@pytest.fixture
def d():
    d = types.SimpleNamespace(loop=Clock(), events=Events(), journaled=[])
    d.supervisor = types.SimpleNamespace(agents={"goal": types.SimpleNamespace(parent=None, lineage=["goal"]),
                                                 "evil": types.SimpleNamespace(parent=None, lineage=["evil"])})
    for i in range(32):
        d.supervisor.agents[f"evil-{i}"] = types.SimpleNamespace(parent="evil", lineage=["evil", f"evil-{i}"])
    d.journal = lambda kind, body, scope=None: d.journaled.append((kind, body, scope))
    return d


def ask(d, name, step="a step", why="a reason", **extra):
    return METHODS["agent.ask"].call(d, agent(name), {"step": step, "why": why, "wait": False,
                                                      "timeout_s": 86400, **extra}, None)


def test_one_agents_children_cannot_fill_the_book_every_agent_shares(d):
    """MAX_PER_AGENT held each agent, but an agent may spawn children (up to 1,000 names), each with
    its own 4 waiting and 60 an hour: 16 children filled MAX_PENDING (64) for a day, and every
    other agent's ask (the goal agent's yes for a risky call) answered busy."""
    for i in range(32):
        for _ in range(asks.MAX_PER_AGENT):
            try:
                ask(d, f"evil-{i}")
            except Busy:
                pass
    ask(d, "goal", step="files.delete notes/old")       # not busy: the other tree has its own room
    waiting = asks.book(d).pending.values()
    assert sum(1 for r in waiting if r.agent.startswith("evil")) < asks.MAX_PENDING


def test_one_agents_children_cannot_multiply_its_asks_an_hour(d):
    """MAX_PER_HOUR held each agent, but every ask is two journal entries written as system (counted
    against no agent's disk quota, nor the system's reserve): an agent whose children each ask 60
    times an hour, then stop (their requests cancelled), writes without bound into the journal."""
    accepted = 0
    for i in range(32):
        child = f"evil-{i}"
        for _ in range(asks.MAX_PER_HOUR):
            try:
                ask(d, child, details="x" * 4000)
                accepted += 1
            except Busy:
                break
        d.events.publish({"kind": "agent.state", "agent": child, "state": "stopped", "reason": "done"})
    assert accepted <= asks.MAX_PER_HOUR, f"{accepted} asks in an hour from one agent's tree"
    assert len([j for j in d.journaled if j[0] == "agent.ask"]) == accepted


@pytest.mark.parametrize("ch", ["\u2028", "\u2029", "\u061c", "\u200b", "\ufeff", "\u2060", "\u00ad"])
def test_characters_a_person_cannot_see_or_that_break_lines_are_refused(d, ch):
    """check_text refused C0/C1 controls and eleven direction characters, but not line and
    paragraph separators (the shell's splitlines() breaks a line there), the Arabic letter mark
    (a direction mark too), or zero-width and soft-hyphen characters that make two different
    texts look the same to the person."""
    with pytest.raises(InvalidParams, match="character"):
        ask(d, "goal", step=f"delete notes{ch}/old")
