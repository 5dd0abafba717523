"""The journal: append-only, hash-chained, verifiable; tampering is found at the right entry."""

import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aether.ctx import InvalidArgument, PermissionDenied, StoreError
from aether.ctx import journal as jr
from aether.ctx.migrations import GENESIS
from aether.ctx.store import Store

from ctx_helpers import Clock, open_store
import ctx_helpers

clock, store = ctx_helpers.clock, ctx_helpers.store      # fixtures


def test_append_returns_seq_hash_and_time(store, clock):
    first = store.append("system", "boot", {"uptime": 1.25})
    clock.advance(1)
    second = store.append("agent:a", "work.call", {"tool": "ls", "args": ["-l"]})
    assert (first["seq"], second["seq"]) == (1, 2)
    assert second["ts"] == first["ts"] + 1
    assert first["hash"] == jr.entry_hash(GENESIS, 1, first["ts"], "system", "system", "boot", None, None,
                                          '{"uptime":1.25}')
    entries = store.journal("shell")
    assert [e["seq"] for e in entries] == [1, 2]
    assert entries[1]["actor"] == "agent:a" and entries[1]["scope"] == "agent:a"
    assert entries[1]["body"] == {"tool": "ls", "args": ["-l"]}


def test_verify_ok_and_head(store):
    for n in range(5):
        store.append("system", "tick", {"n": n})
    result = store.verify("shell")
    assert result["ok"] and result["entries"] == 5 and result["head"]["seq"] == 5


def test_empty_journal_verifies(store):
    assert store.verify("agent:x") == {"ok": True, "entries": 0, "head": {"seq": 0, "hash": GENESIS},
                                       "digests": {"ok": True, "checked": 0, "mismatched": 0, "rows": []}}


def test_triggers_refuse_update_and_delete(store):
    store.append("system", "boot")
    with pytest.raises(StoreError, match="append-only"):
        store.db.execute("UPDATE journal SET kind = 'x'")
    with pytest.raises(StoreError, match="append-only"):
        store.db.execute("DELETE FROM journal")


def tamper(path, sql, params=()):
    """Change the file as an attacker with raw access would: without the store's triggers."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER journal_no_update")
    conn.execute("DROP TRIGGER journal_no_delete")
    conn.execute(sql, params)
    conn.commit()
    conn.close()


@pytest.fixture
def journalled(tmp_path):
    path = tmp_path / "c.db"
    s = open_store(path)
    for n in range(8):
        s.append("agent:a" if n % 2 else "system", "event", {"n": n, "text": f"entry {n}"}, )
    s.close()
    return path


def verify(path, **kw):
    db = Store(path)
    try:
        return jr.verify(db, **kw)
    finally:
        db.close()


FIELDS = ["ts", "actor", "scope", "kind", "goal_id", "body", "origin", "prev_hash", "hash"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=st.integers(1, 8), field=st.sampled_from(FIELDS), position=st.integers(0, 200),
       delta=st.integers(1, 126))
def test_any_single_change_is_found_at_its_entry(journalled, tmp_path_factory, seq, field, position, delta):
    path = tmp_path_factory.mktemp("t") / "c.db"
    path.write_bytes(journalled.read_bytes())
    conn = sqlite3.connect(path)
    value = conn.execute(f"SELECT {field} FROM journal WHERE seq = ?", (seq,)).fetchone()[0]
    conn.close()
    if isinstance(value, str):
        raw = bytearray(value.encode())
        i = position % len(raw)
        raw[i] = 1 + (raw[i] - 1 + delta) % 127        # one byte changed, still ASCII text, never NUL
        new = raw.decode()
    elif isinstance(value, float):
        new = value + delta / 1000
    else:
        new = (value or 0) + delta
    tamper(path, f"UPDATE journal SET {field} = ? WHERE seq = ?", (new, seq))
    result = verify(path)
    assert result["ok"] is False
    assert result["seq"] == seq, result


def test_a_deleted_entry_is_found(journalled):
    tamper(journalled, "DELETE FROM journal WHERE seq = 4")
    result = verify(journalled)
    assert result == {"ok": False, "seq": 5, "reason": "entry 5 follows entry 3: 1 entries are missing"}


def test_a_rewritten_tail_is_found_against_a_recorded_head(journalled):
    head = verify(journalled)["head"]
    tamper(journalled, "DELETE FROM journal WHERE seq >= 7")
    assert verify(journalled)["ok"] is True                  # the chain alone cannot see a cut tail
    cut = verify(journalled, expected_head=head)
    assert cut["ok"] is False and "tail was cut off" in cut["reason"]


def test_expected_head_must_match(journalled):
    head = verify(journalled)["head"]
    assert verify(journalled, expected_head=head)["ok"]
    bad = verify(journalled, expected_head={"seq": 3, "hash": "0" * 64})
    assert bad["ok"] is False and bad["seq"] == 3
    with pytest.raises(InvalidArgument, match="expected_head"):
        verify(journalled, expected_head={"seq": "x"})


def test_query_filters_and_access(store, clock):
    store.append("system", "boot")
    store.append("agent:a", "work.call", {"n": 1})      # tool.call is aetherd's own (RESERVED_KINDS)
    clock.advance(10)
    store.append("agent:b", "work.call", {"n": 2})
    store.append("agent:a", "note", {"n": 3})
    assert [e["seq"] for e in store.journal("agent:a")] == [2, 4]
    assert [e["seq"] for e in store.journal("shell", kind="work.call")] == [2, 3]
    assert [e["seq"] for e in store.journal("shell", since=clock.now)] == [3, 4]
    assert [e["seq"] for e in store.journal("shell", after_seq=2, limit=1)] == [3]
    assert [e["seq"] for e in store.journal("shell", newest_first=True, limit=2)] == [4, 3]
    with pytest.raises(PermissionDenied, match="agent:a may not read scope agent:b"):
        store.journal("agent:a", scope="agent:b")


def test_agents_cannot_write_others_or_reserved_kinds(store):
    with pytest.raises(PermissionDenied, match="agent:a may not write to scope agent:b"):
        store.append("agent:a", "note", scope="agent:b")
    with pytest.raises(PermissionDenied, match="written by the store and aetherd themselves"):
        store.append("agent:a", "ctx.compact")
    for forged in ("tool.call", "agent.answer", "agent.state"):     # a tool call's or a person's record
        with pytest.raises(PermissionDenied, match="name your own kind"):
            store.append("agent:a", forged, body={"ok": True})
    assert store.append("system", "ctx.note")["seq"] == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "Bad Kind"}, "kind='Bad Kind': must be a lower-case event name"),
    ({"kind": "x", "body": {"a": float("nan")}}, "body: must be JSON data"),
    ({"kind": "x", "body": {1: object()}}, "body: must be JSON data"),
    ({"kind": "x", "body": "y" * 300_000}, "the limit is 262144"),
    ({"kind": "x", "goal_id": 99}, "goal 99 does not exist"),
    ({"kind": "x", "scope": "bogus"}, "scope='bogus': must be 'system', 'user'"),
])
def test_bad_appends_say_what_is_wrong(store, kwargs, message):
    with pytest.raises(Exception, match=message):
        store.append("agent:a", **kwargs)


def test_bad_caller_is_named(store):
    with pytest.raises(InvalidArgument, match=r"caller='root': must be 'system', 'host', 'shell'"):
        store.append("root", "note")


def test_canonical_body_is_stable():
    assert jr.canonical({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'


def test_clock_going_backwards_is_recorded_not_refused(tmp_path):
    clock = Clock()
    s = open_store(tmp_path / "c.db", clock)
    s.append("system", "a")
    clock.advance(-100)
    s.append("system", "b")
    assert s.verify("shell")["ok"]
    s.close()
