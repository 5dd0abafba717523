"""Group commit: several writes, one transaction, one fsync; one op's error stays its own."""

import pytest

from aether.ctx import InvalidArgument, PermissionDenied, StoreFullError

import ctx_helpers

clock, store = ctx_helpers.clock, ctx_helpers.store      # fixtures


def test_run_batch_isolates_errors(store):
    results = store.run_batch([
        ("append", {"caller": "agent:a", "kind": "note", "body": {"n": 1}}),
        ("remember", {"caller": "agent:a", "text": "batched memory"}),
        ("remember", {"caller": "agent:b", "text": "intrusion", "scope": "agent:a"}),
        ("remember", {"caller": "agent:a", "text": ""}),
        ("append", {"caller": "agent:a", "kind": "note", "body": {"n": 2}}),
        ("drop_everything", {}),
        ("append", {"caller": "agent:a", "nonsense": 1}),
    ])
    oks = [ok for ok, _ in results]
    assert oks == ["ok", "ok", "error", "error", "ok", "error", "error"]
    assert isinstance(results[2][1], PermissionDenied)
    assert isinstance(results[3][1], InvalidArgument)
    assert "batchable calls are" in str(results[5][1])
    assert [e["body"]["n"] for e in store.journal("agent:a")] == [1, 2]
    assert results[4][1]["seq"] == 2
    assert store.verify("shell")["ok"]


def test_transaction_groups_writes_and_rolls_back_together(store):
    with store.transaction():
        store.append("agent:a", "note", {"n": 1})
        store.remember("agent:a", "x")
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.append("agent:a", "note", {"n": 2})
            store.remember("agent:a", "y")
            raise RuntimeError("the caller changed its mind")
    assert [e["body"]["n"] for e in store.journal("agent:a")] == [1]
    assert store.usage("agent:a", "agent:a")["live"]["items"] == 1
    assert store.append("agent:a", "note", {"n": 3})["seq"] == 2      # the chain continues at the head


def test_a_store_error_aborts_the_whole_batch(store, monkeypatch):
    calls = {"n": 0}
    original = store.append

    def flaky(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise StoreFullError("disk full (simulated)")
        return original(**kwargs)
    monkeypatch.setattr(store, "append", flaky)
    with pytest.raises(StoreFullError):
        store.run_batch([("append", {"caller": "agent:a", "kind": "note"})] * 3)
    assert store.journal("agent:a") == []


def test_bad_ops_argument(store):
    with pytest.raises(InvalidArgument, match="give a list"):
        store.run_batch("append")
