"""Compaction: over quota -> summaries, exactly recorded, restorable, purged only by retention."""

import pytest

from aether.ctx import Conflict, InvalidArgument, NotFound, PermissionDenied
from aether.ctx.compaction import ExtractiveSummariser
from aether.ctx.tokens import DEFAULT

from ctx_helpers import Clock, open_store

DAY = 86400.0


def crowded(tmp_path, n=30, quota_items=20, **options):
    clock = Clock()
    s = open_store(tmp_path / "c.db", clock, quota_items=quota_items, **options)
    ids = []
    for i in range(n):
        clock.advance(3600)
        ids.append(s.remember("agent:a", f"Reading {i}: the pump pressure was {100 + i} kPa. "
                                         f"Operator {i % 3} logged it.", kind="observation",
                              importance=0.9 if i % 10 == 0 else 0.2)["id"])
    return s, clock, ids


def test_over_quota_compacts_low_value_items(tmp_path):
    s, clock, ids = crowded(tmp_path)
    usage = s.usage("agent:a", "agent:a")
    assert usage["live"]["items"] <= 20                     # under quota again
    compactions = s.compacted("agent:a")
    assert compactions, "a compaction ran"
    replaced = sorted(m for c in compactions for m in c["replaced"])
    important = {ids[0], ids[10], ids[20]}
    assert not important & set(replaced)                   # low importance went first
    assert ids[-1] not in replaced                           # and the newest stayed
    c = compactions[-1]
    assert c["state"] == "compacted" and c["summariser"] == "extractive-v1"
    assert c["tokens"] == sum(s.recall("shell", m)["tokens"] for m in c["replaced"])
    summary = s.recall("agent:a", c["summary_id"])
    assert summary["kind"] == "summary" and f"restore compaction {c['id']}" in summary["text"]
    assert summary["tokens"] <= 400 + 8
    for m in c["replaced"]:
        item = s.recall("agent:a", m)
        assert item["state"] == "compacted" and item["compaction_id"] == c["id"] and item["text"]
    entry = s.journal("shell", kind="ctx.compact")[0]
    assert entry["body"]["compaction"] == compactions[-1]["id"] and entry["body"]["items"]
    assert usage["retained"]["items"] == len(replaced)
    s.close()


def test_restore_brings_originals_back_and_retires_the_summary(tmp_path):
    s, clock, _ = crowded(tmp_path)
    c = s.compacted("agent:a")[0]                      # the newest: its summary is live
    clock.advance(60)
    out = s.restore("agent:a", c["id"])
    assert out == {"compaction": c["id"], "restored": c["replaced"], "summary_retired": c["summary_id"]}
    for m in c["replaced"]:
        item = s.recall("agent:a", m)
        assert item["state"] == "live"
    assert s.recall("agent:a", c["summary_id"])["state"] == "forgotten"
    assert s.compacted("agent:a", since=c["created_at"])[0]["state"] == "restored"
    with pytest.raises(Conflict, match="already restored"):
        s.restore("agent:a", c["id"])
    with pytest.raises(NotFound, match="compaction 999 does not exist"):
        s.restore("agent:a", 999)
    with pytest.raises(PermissionDenied):
        s.restore("agent:b", c["id"])
    assert [e["kind"] for e in s.journal("shell", kind="ctx.restore")] == ["ctx.restore"]
    s.close()


def test_nested_compaction_must_be_restored_outside_in(tmp_path):
    clock = Clock()
    s = open_store(tmp_path / "c.db", clock, quota_tokens="max", quota_items="max")
    for i in range(8):
        clock.advance(60)
        s.remember("agent:a", f"small fact {i} about valves", importance=0.1)
    inner = s.compact("agent:a", "agent:a", items_target=2)["compactions"]
    assert inner
    outer = s.compact("agent:a", "agent:a", items_target=1)["compactions"]
    nested = [c for c in inner if c["summary_id"] in {m for o in outer for m in o["replaced"]}]
    assert nested, "the second compaction took in the first one's summary"
    with pytest.raises(Conflict, match="was itself compacted by compaction"):
        s.restore("agent:a", nested[0]["id"])
    s.restore("agent:a", outer[0]["id"])
    s.restore("agent:a", nested[0]["id"])
    assert s.usage("agent:a", "agent:a")["live"]["items"] == 8
    s.close()


def test_purge_needs_a_policy_and_keeps_tombstones(tmp_path):
    s, clock, _ = crowded(tmp_path)
    c = s.compacted("agent:a")[-1]
    forgotten = s.remember("agent:a", "to be forgotten")["id"]
    s.forget("agent:a", forgotten)
    with pytest.raises(InvalidArgument, match="no retention policy is set"):
        s.purge("shell")
    with pytest.raises(PermissionDenied, match="may purge only a scope it owns"):
        s.purge("agent:a", older_than=0)
    assert s.purge("shell", older_than=30 * DAY)["purged_items"] == 0      # nothing that old yet
    s.set_retention("shell", 7 * DAY)
    clock.advance(8 * DAY)
    out = s.purge("shell")
    assert out["purged_items"] >= len(c["replaced"]) + 1 and c["id"] in out["compactions"]
    tomb = s.recall("shell", c["replaced"][0])
    assert tomb["state"] == "purged" and tomb["text"] is None and len(tomb["digest"]) == 64
    assert s.recall("shell", forgotten)["state"] == "purged"
    with pytest.raises(Conflict, match="was purged"):
        s.restore("shell", c["id"])
    assert s.journal("shell", kind="ctx.purge")[0]["body"]["items"] == out["purged_items"]
    assert s.usage("agent:a", "agent:a")["retained"]["items"] == 0
    assert s.db.integrity_check() == "ok"
    s.close()


def test_pinned_items_are_never_compacted(tmp_path):
    clock = Clock()
    s = open_store(tmp_path / "c.db", clock, quota_items=5)
    pinned = [s.remember("agent:a", f"rule {i}", pinned=True, importance=0.0)["id"] for i in range(3)]
    for i in range(10):
        clock.advance(60)
        s.remember("agent:a", f"chatter {i}", importance=0.0)
    replaced = {m for c in s.compacted("agent:a") for m in c["replaced"]}
    assert replaced and not replaced & set(pinned)
    s.close()


def test_extractive_summary_is_deterministic_and_within_budget():
    items = [{"text": "The pump failed at noon. The operator restarted the pump. Lunch was served."},
             {"text": "Pressure in the pump rose again. Nobody noticed the lunch menu."},
             {"text": "The pump was replaced on Friday."}]
    summariser = ExtractiveSummariser()
    a = summariser.summarise(items, 20, DEFAULT)
    assert a == summariser.summarise(items, 20, DEFAULT)
    assert DEFAULT.count(a) <= 20 + 3
    assert "pump" in a.lower()
    assert summariser.summarise([{"text": "word " * 200}], 10, DEFAULT).endswith("...")


class Failing:
    name = "model-x"

    def summarise(self, items, budget, estimator):
        raise RuntimeError("the model is down")


class Upper:
    name = "upper-v1"

    def summarise(self, items, budget, estimator):
        return " ".join(i["text"].upper() for i in items)[:200]


def test_pluggable_summariser_and_fallback(tmp_path):
    s, _, _ = crowded(tmp_path, summariser=Upper())
    c = s.compacted("agent:a")[-1]
    assert c["summariser"] == "upper-v1" and "READING" in s.recall("agent:a", c["summary_id"])["text"]
    s.close()
    (tmp_path / "b").mkdir()
    s, _, _ = crowded(tmp_path / "b", summariser=Failing())
    c = s.compacted("agent:a")[-1]
    assert c["summariser"] == "extractive-v1"
    s.close()
    with pytest.raises(InvalidArgument, match="summariser=.*needs a str attribute 'name'"):
        open_store(tmp_path / "x.db", summariser=object())


def test_lowering_a_quota_compacts_at_once(tmp_path):
    s, _, _ = crowded(tmp_path, quota_items="max")
    assert s.usage("agent:a", "agent:a")["live"]["items"] == 30
    out = s.set_quota("shell", "agent:a", items=10)
    assert out["live"]["items"] <= 10 and out["compactions"]
    with pytest.raises(PermissionDenied, match="only the shell or system sets them"):
        s.set_quota("agent:a", "agent:a", items=100)
    s.close()
