"""As-of: what a scope held at an earlier time, exactly, across compaction, restore, pins and purges."""

import pytest

from aether.ctx import InvalidArgument, NotFound, PermissionDenied

from ctx_helpers import Clock, open_store


def ids(result):
    return sorted(i["id"] for i in result["items"])


def test_as_of_follows_every_change(tmp_path):
    clock = Clock()
    s = open_store(tmp_path / "c.db", clock, quota_tokens="max", quota_items="max")
    t0 = clock.now
    a = s.remember("agent:a", "alpha")["id"]
    t1 = clock.advance(10)
    b = s.remember("agent:a", "beta", pinned=True)["id"]
    c = s.remember("agent:a", "gamma", importance=0.0)["id"]
    d = s.remember("agent:a", "delta", importance=0.0)["id"]
    t2 = clock.advance(10)
    s.forget("agent:a", a)
    s.pin("agent:a", b, False)
    t3 = clock.advance(10)
    comp = s.compact("agent:a", "agent:a", items_target=1)["compactions"][0]
    t4 = clock.advance(10)
    s.restore("agent:a", comp["id"])
    t5 = clock.advance(10)

    assert ids(s.as_of("agent:a", "agent:a", t0 - 1)) == []
    assert ids(s.as_of("agent:a", "agent:a", t0)) == [a]
    at1 = s.as_of("agent:a", "agent:a", t1)
    assert ids(at1) == [a, b, c, d]
    assert {i["id"]: i["pinned"] for i in at1["items"]}[b] is True
    at2 = s.as_of("agent:a", "agent:a", t2)
    assert ids(at2) == [b, c, d] and {i["id"]: i["pinned"] for i in at2["items"]}[b] is False
    at3 = s.as_of("agent:a", "agent:a", t3)
    assert set(comp["replaced"]) & set(ids(at3)) == set()
    assert comp["summary_id"] in ids(at3)
    at4 = s.as_of("agent:a", "agent:a", t4)
    assert set(comp["replaced"]) <= set(ids(at4)) and comp["summary_id"] not in ids(at4)
    assert ids(s.as_of("agent:a", "agent:a", t5)) == ids(at4)
    assert at1["live_tokens"] == sum(i["tokens"] for i in at1["items"])
    s.close()


def test_pinned_at_creation_is_inferred_from_later_events(tmp_path):
    clock = Clock()
    s = open_store(tmp_path / "c.db", clock)
    m = s.remember("agent:a", "x")["id"]
    t0 = clock.advance(5)
    s.pin("agent:a", m, True)
    assert s.as_of("agent:a", "agent:a", t0 - 1)["items"][0]["pinned"] is False
    assert s.as_of("agent:a", "agent:a", t0)["items"][0]["pinned"] is True
    s.close()


def test_purged_items_show_as_tombstones(tmp_path):
    clock = Clock()
    s = open_store(tmp_path / "c.db", clock)
    m = s.remember("agent:a", "soon gone")["id"]
    t0 = clock.advance(5)
    s.forget("agent:a", m)
    clock.advance(100)
    s.purge("shell", older_than=10)
    assert s.as_of("agent:a", "agent:a", t0)["live_items"] == 0       # forgotten at t0
    before = s.as_of("agent:a", "agent:a", t0 - 1)
    assert before["items"] == [] and before["purged"][0]["id"] == m and before["live_items"] == 1
    s.close()


def test_as_of_checks(tmp_path):
    s = open_store(tmp_path / "c.db")
    s.remember("agent:a", "x")
    with pytest.raises(PermissionDenied):
        s.as_of("agent:b", "agent:a", 0)
    with pytest.raises(NotFound, match="scope shared:q does not exist"):
        s.as_of("shell", "shared:q", 0)
    with pytest.raises(InvalidArgument, match="at: give a time"):
        s.as_of("shell", "agent:a", None)
    limited = s.as_of("shell", "agent:a", s.clock(), limit=1)
    assert limited["truncated"] is False and len(limited["items"]) == 1
    s.close()
