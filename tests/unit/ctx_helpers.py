"""Shared fixtures of the context-store tests: a fake clock, a fresh store, random operations."""

import pytest
from hypothesis import strategies as st

from aether.ctx import ContextStore

T0 = 1_800_000_000.0


class Clock:
    """A settable clock: store.clock() returns .now; advance() moves it."""

    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    s = ContextStore(tmp_path / "ctx.db", clock=clock)
    yield s
    s.close()


def open_store(path, clock=None, **options):
    """A ContextStore on path with a fake clock (and options)."""
    return ContextStore(path, clock=clock or Clock(), **options)


def fill(store, caller, n, scope=None, text="note number {i} about the disk and the backup", **kw):
    """n memories; returns their ids."""
    return [store.remember(caller, text.format(i=i), scope=scope, **kw)["id"] for i in range(n)]


# Random operations on one agent's scope, for property tests: (op, n) pairs.
OPS = st.lists(st.tuples(st.sampled_from(["remember", "pin", "forget", "compact", "restore", "purge",
                                          "advance"]),
                         st.integers(0, 50)), min_size=5, max_size=40)


def apply(s, clock, op, n):
    """Run one random operation (ContextErrors such as forgetting a compacted item propagate)."""
    mids = [r[0] for r in s.db.all("SELECT id FROM memories ORDER BY id")]
    comps = [r[0] for r in s.db.all("SELECT id FROM compactions ORDER BY id")]
    if op == "remember":
        s.remember("agent:a", f"item {n} " + "word " * (n % 7), importance=(n % 10) / 10, pinned=n % 9 == 0)
    elif op == "pin" and mids:
        s.pin("shell", mids[n % len(mids)], n % 2 == 0)
    elif op == "forget" and mids:
        s.forget("shell", mids[n % len(mids)])
    elif op == "compact":
        s.compact("shell", "agent:a", items_target=n % 5)
    elif op == "restore" and comps:
        s.restore("shell", comps[n % len(comps)])
    elif op == "purge":
        s.purge("shell", older_than=n)
    elif op == "advance":
        clock.advance(n)
