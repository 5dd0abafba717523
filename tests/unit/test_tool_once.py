"""tool.call with a call_id: at most one run per (caller, call_id), one journal entry, replays
answered from the ledger, calls a crash left in doubt, and the ledger's bounds."""

import os

import pytest

from aether.abi.calls import tool
from aether.abi.identity import Caller
from aether.abi.protocol import Conflict, InvalidParams, NotFound
from aether.ctx import ContextStore
from aether.ctx import toolcalls

SHELL = Caller("shell", uid=0, privileged=True)


class D:
    def __init__(self, store):
        self.store, self.store_problem = store, None
        self.supervisor = type("S", (), {"agents": {}})()
        self.log = type("L", (), {"error": print, "info": print})()


@pytest.fixture
def d():
    s = ContextStore(":memory:")
    yield D(s)
    s.close()


def call(d, name, args, call_id, caller=SHELL):
    return tool.call(d, caller, {"name": name, "args": args, "call_id": call_id}, None)


def entries(d, call_id=None):
    rows = d.store.journal("shell", kind="tool.call", limit=1000)
    return [r for r in rows if call_id is None or r["body"]["call_id"] == call_id]


def test_a_call_asked_for_twice_runs_once_and_is_journalled_once(d, tmp_path):
    path = str(tmp_path / "out.txt")
    first = call(d, "files.write", {"path": path, "content": "one"}, "step-1")
    assert first["replayed"] is False and first["journal_seq"]
    os.unlink(path)                       # if it ran again, the file would come back
    again = call(d, "files.write", {"path": path, "content": "one"}, "step-1")
    assert again["replayed"] is True and again["result"] == first["result"]
    assert not os.path.exists(path)
    assert len(entries(d, "step-1")) == 1
    assert entries(d, "step-1")[0]["body"]["tool"] == "files.write"


def test_the_same_call_id_for_another_call_is_a_conflict(d, tmp_path):
    call(d, "files.list", {"path": str(tmp_path)}, "c")
    with pytest.raises(Conflict, match="another call"):
        call(d, "files.list", {"path": "/"}, "c")
    with pytest.raises(Conflict, match="another call"):
        call(d, "clock.now", {}, "c")


def test_a_failed_call_is_recorded_and_replayed_as_the_same_error(d, tmp_path):
    missing = str(tmp_path / "nothing-here")
    with pytest.raises(NotFound) as first:
        call(d, "files.read", {"path": missing}, "r")
    assert first.value.data["replayed"] is False
    (tmp_path / "nothing-here").write_text("now it exists")
    with pytest.raises(NotFound) as again:
        call(d, "files.read", {"path": missing}, "r")
    assert again.value.data["replayed"] is True
    assert len(entries(d, "r")) == 1 and entries(d, "r")[0]["body"]["ok"] is False


def test_bad_arguments_are_refused_before_anything_is_recorded(d):
    with pytest.raises(InvalidParams):
        call(d, "files.read", {"nope": 1}, "bad")
    assert toolcalls.of(d.store).get("shell", "bad") is None


def test_callers_have_their_own_call_ids(d, tmp_path):
    (tmp_path / "f").write_text("x")
    other = Caller("host", uid=0, privileged=True)
    a = call(d, "files.read", {"path": str(tmp_path / "f")}, "same")
    b = call(d, "files.read", {"path": str(tmp_path / "f")}, "same", caller=other)
    assert a["replayed"] is False and b["replayed"] is False


def crashed_mid_call(d, name, args, call_id, owner="shell"):
    """A 'started' row left by an aetherd that is gone (another instance mark)."""
    with d.store.transaction():
        toolcalls.of(d.store).begin(owner, call_id, name, args, "a-gone-aetherd", rerun_in_doubt=False)


def test_a_risky_call_left_in_doubt_is_not_run_again(d, tmp_path):
    path = str(tmp_path / "doubt.txt")
    crashed_mid_call(d, "files.write", {"path": path, "content": "x"}, "w")
    with pytest.raises(Conflict, match="in doubt") as e:
        call(d, "files.write", {"path": path, "content": "x"}, "w")
    assert e.value.data["in_doubt"] is True and not os.path.exists(path)
    assert entries(d, "w") == []


def test_a_call_that_changes_nothing_left_in_doubt_runs_again(d, tmp_path):
    (tmp_path / "f").write_text("hello")
    args = {"path": str(tmp_path / "f")}
    crashed_mid_call(d, "files.read", args, "read")
    done = call(d, "files.read", args, "read")
    assert done["replayed"] is False and "hello" in str(done["result"])
    assert len(entries(d, "read")) == 1


def test_call_ids_are_bounded_and_checked():
    with pytest.raises(Exception, match="call_id"):
        toolcalls.check_call_id("x" * (toolcalls.MAX_CALL_ID + 1))
    with pytest.raises(Exception, match="call_id"):
        toolcalls.check_call_id("line\nbreak")
    schema = next(m for m in tool.METHODS if m.name == "tool.call").params
    assert schema["properties"]["call_id"]["maxLength"] == toolcalls.MAX_CALL_ID


def test_the_ledger_keeps_the_newest_rows_per_owner_and_counts_them_as_disk(d, monkeypatch):
    monkeypatch.setattr(toolcalls, "KEEP", 5)
    agent = "agent:a"
    before = d.store.disk_bytes(agent)
    ledger = toolcalls.of(d.store)
    for i in range(12):
        with d.store.transaction():
            ledger.begin(agent, f"c{i}", "clock.now", {}, "me", rerun_in_doubt=True)
            ledger.finish(agent, f"c{i}", "clock.now", {}, {"result": {"now": i}}, "system")
    kept = d.store.db.one("SELECT count(*) FROM tool_calls WHERE owner = ?", (agent,))[0]
    assert kept == 5                      # the newest KEEP
    assert ledger.get(agent, "c0") is None and ledger.get(agent, "c11")["status"] == "done"
    assert d.store.disk_bytes(agent) > before


def test_an_outcome_too_large_to_keep_is_recorded_as_ran(d, monkeypatch, tmp_path):
    monkeypatch.setattr(toolcalls, "MAX_OUTCOME_BYTES", 64)
    (tmp_path / "big").write_text("y" * 500)
    args = {"path": str(tmp_path / "big")}
    assert call(d, "files.read", args, "big")["replayed"] is False
    with pytest.raises(Conflict, match="too large to keep"):
        call(d, "files.read", args, "big")
    assert len(entries(d, "big")) == 1
