"""Export to one file, import on another machine: verified, renumbered, conflict-aware."""

import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings

from aether.ctx import Conflict, ContextError, ExportFormatError, PermissionDenied

from ctx_helpers import OPS, Clock, apply, open_store


def populated(path, clock=None):
    clock = clock or Clock()
    s = open_store(path, clock, quota_items=12)
    s.append("system", "boot", {"uptime": 1.5})
    for i in range(16):
        clock.advance(60)
        s.remember("agent:a", f"agent a observation {i} on the cooling loop", importance=0.1 + i / 40,
                   tags=["cooling"])
    pin = s.remember("agent:a", "never power off the rack", pinned=True)["id"]
    s.forget("agent:a", s.remember("agent:a", "wrong belief")["id"])
    goal = s.create_goal("agent:a", "keep the rack cool", plan="watch sensors", steps=["read", "act"])
    s.update_step("agent:a", goal["id"], 1, "done", "sensors read")
    s.remember("agent:b", "agent b secret")
    s.create_scope("agent:a", "shared:team")
    s.remember("agent:a", "team note", scope="shared:team")
    s.grant("agent:a", "shared:team", "agent:b")
    return s, pin, goal


def snapshot(s, scope):
    items = sorted((i["text"], i["kind"], i["state"], i["pinned"], i["created_at"])
                   for i in s.search("shell", "", scopes=[scope], limit=1000)["items"])
    compacted = sorted(c["tokens"] for c in s.compacted("shell", scope))
    return items, compacted, s.usage("shell", scope)["live"]


def test_scope_round_trip(tmp_path):
    a, pin, goal = populated(tmp_path / "a.db")
    out = a.export("agent:a", tmp_path / "a.ctx", scopes=["agent:a"])
    assert out["counts"]["memory"] >= 18 and out["counts"]["compaction"] >= 1 and out["counts"]["goal"] == 1
    b = open_store(tmp_path / "b.db")
    b.append("system", "boot", {"other": "machine"})
    result = b.import_("shell", tmp_path / "a.ctx")
    assert result["scopes_created"] == ["agent:a"]
    assert snapshot(a, "agent:a") == snapshot(b, "agent:a")
    # as-of works on the new machine with the original times
    t = a.clock()
    assert sorted(i["text"] for i in a.as_of("shell", "agent:a", t)["items"]) == \
        sorted(i["text"] for i in b.as_of("shell", "agent:a", t)["items"])
    # ids are renumbered but references follow
    restored_goal = b.goals("shell", "agent:a")[0]
    assert restored_goal["intent"] == "keep the rack cool"
    steps = b.goal("shell", restored_goal["id"])["steps"]
    assert steps[0]["status"] == "done" and steps[0]["journal_seq"] > 0
    c = b.compacted("shell", "agent:a")[0]
    assert b.recall("shell", c["summary_id"])["kind"] == "summary"
    b.restore("shell", c["id"])
    # journal entries came along with their origin, appended to the local chain
    imported = [e for e in b.journal("shell", scope="agent:a") if e.get("origin")]
    assert imported and all(e["origin"].startswith(a.store_id + ":") for e in imported)
    assert b.verify("shell")["ok"]
    assert b.journal("shell", kind="ctx.import")[0]["body"]["source"] == a.store_id
    a.close()
    b.close()


def test_full_export_round_trip_and_idempotent_merge(tmp_path):
    a, _, _ = populated(tmp_path / "a.db")
    a.export("shell", tmp_path / "all.ctx")
    b = open_store(tmp_path / "b.db")
    b.import_("shell", tmp_path / "all.ctx")
    for scope in ("agent:a", "agent:b", "shared:team"):
        assert snapshot(a, scope) == snapshot(b, scope)
    assert [g["grantee"] for g in b.grants("shell", "shared:team")] == ["agent:b"]
    with pytest.raises(Conflict, match="exist here: agent:a, agent:b, shared:team"):
        b.import_("shell", tmp_path / "all.ctx")
    before = b.usage("shell")["system"]
    again = b.import_("shell", tmp_path / "all.ctx", on_conflict="merge")
    assert again["counts"]["memory"] == 0 and again["counts"]["journal"] == 0
    assert b.usage("shell")["system"] == before
    a.close()
    b.close()


def test_rename_on_import(tmp_path):
    a, _, _ = populated(tmp_path / "a.db")
    a.export("shell", tmp_path / "a.ctx", scopes=["agent:a"])
    a.import_("shell", tmp_path / "a.ctx", rename={"agent:a": "agent:a2"})
    assert snapshot(a, "agent:a")[0] == snapshot(a, "agent:a2")[0]
    a.close()


def test_damaged_files_are_refused_before_writing(tmp_path):
    a, _, _ = populated(tmp_path / "a.db")
    a.export("shell", tmp_path / "a.ctx", scopes=["agent:a"])
    raw = (tmp_path / "a.ctx").read_bytes()
    b = open_store(tmp_path / "b.db")
    (tmp_path / "cut.ctx").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ExportFormatError, match="fails its checksum|is not JSON"):
        b.import_("shell", tmp_path / "cut.ctx")
    lines = raw.split(b"\n")
    lines[3] = lines[3].replace(b"cooling", b"heating")
    (tmp_path / "edit.ctx").write_bytes(b"\n".join(lines))
    with pytest.raises(ExportFormatError, match="fails its checksum"):
        b.import_("shell", tmp_path / "edit.ctx")
    (tmp_path / "junk.ctx").write_text("hello\nworld\n")
    with pytest.raises(ExportFormatError):
        b.import_("shell", tmp_path / "junk.ctx")
    assert b.usage("shell")["scopes"] == []
    a.close()
    b.close()


def test_deep_and_overlong_lines_are_refused_with_a_reason(tmp_path, monkeypatch):
    """A crafted file: JSON nested past the recursion limit, or one endless line."""
    from aether.ctx import export
    b = open_store(tmp_path / "b.db")
    (tmp_path / "deep.ctx").write_text("[" * 100_000 + "]" * 100_000 + "\n{}\n")
    with pytest.raises(ExportFormatError, match="nested too deeply"):
        b.import_("shell", tmp_path / "deep.ctx")
    monkeypatch.setattr(export, "MAX_RECORD", 1000)
    (tmp_path / "long.ctx").write_text('{"a": "' + "x" * 5000 + '"}\n{}\n')
    with pytest.raises(ExportFormatError, match="longer than 1000 bytes"):
        b.import_("shell", tmp_path / "long.ctx")
    assert b.usage("shell")["scopes"] == []
    b.close()


def test_a_forged_journal_entry_with_a_fixed_checksum_is_refused(tmp_path):
    a, _, _ = populated(tmp_path / "a.db")
    a.export("shell", tmp_path / "a.ctx")
    lines = (tmp_path / "a.ctx").read_text().splitlines()
    records = [json.loads(line) for line in lines[:-1]]
    for r in records:
        if r.get("type") == "journal" and r["kind"] == "boot":
            r["body"] = '{"uptime":99}'
    body = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)
    trailer = {"type": "end", "records": len(records), "sha256": hashlib.sha256(body.encode()).hexdigest()}
    (tmp_path / "forged.ctx").write_text(body + json.dumps(trailer) + "\n")
    b = open_store(tmp_path / "b.db")
    with pytest.raises(ExportFormatError, match="content does not match its hash"):
        b.import_("shell", tmp_path / "forged.ctx")
    a.close()
    b.close()


def test_export_and_import_permissions(tmp_path):
    a, _, _ = populated(tmp_path / "a.db")
    with pytest.raises(PermissionDenied, match="may export only scopes it can read"):
        a.export("agent:a", tmp_path / "x.ctx")
    with pytest.raises(PermissionDenied):
        a.export("agent:a", tmp_path / "x.ctx", scopes=["agent:b"])
    a.export("agent:b", tmp_path / "team.ctx", scopes=["shared:team"])      # b has a read grant
    with pytest.raises(PermissionDenied, match="only the shell or system imports"):
        a.import_("agent:a", tmp_path / "team.ctx")
    assert not (tmp_path / "x.ctx").exists() and not (tmp_path / "x.ctx.tmp").exists()
    a.close()


def everything(s):
    """Each memory and compaction of the store, without ids (which an import renumbers)."""
    memories = sorted(s.db.all("SELECT kind, text, tags, importance, pinned, tokens, digest, created_at, "
                               "state, state_at FROM memories"), key=repr)
    events = sorted(s.db.all("SELECT m.digest, e.ts, e.event FROM memory_events e JOIN memories m "
                             "ON m.id = e.memory_id"), key=repr)
    compactions = sorted(s.db.all("SELECT created_at, items, tokens, summary_tokens, restored_at, purged_at "
                                  "FROM compactions"), key=repr)
    return memories, events, compactions, counters(s)


def counters(s):
    return [(u["scope"], u["live"], u["retained"]) for u in s.usage("shell")["scopes"]]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_export_import_round_trips(tmp_path_factory, ops):
    where = tmp_path_factory.mktemp("x")
    clock = Clock()
    a = open_store(where / "a.db", clock, quota_items=12)
    b = open_store(where / "b.db", Clock())
    try:
        for op, n in ops:
            try:
                apply(a, clock, op, n)
            except ContextError:
                pass
        a.export("shell", where / "a.ctx")
        b.import_("shell", where / "a.ctx")
        assert everything(a) == everything(b)
        assert b.verify("shell")["ok"] and b.db.integrity_check() == "ok"
    finally:
        a.close()
        b.close()
