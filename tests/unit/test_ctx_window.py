"""Context windows: pinned first, ranked, within budget, deterministic, explained."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aether.ctx import InvalidArgument
from aether.ctx.tokens import ITEM_OVERHEAD

from ctx_helpers import Clock, open_store
import ctx_helpers

clock, store = ctx_helpers.clock, ctx_helpers.store      # fixtures

HOUR = 3600.0


def test_empty_store_gives_an_empty_window(store):
    w = store.window("agent:a", "anything", 1000)
    assert w["items"] == [] and w["tokens_used"] == 0 and w["exact"] is True


def test_pinned_first_then_by_score(store, clock):
    old = store.remember("agent:a", "kernel build notes from long ago", importance=0.2)["id"]
    clock.advance(48 * HOUR)
    pinned = store.remember("agent:a", "always answer in English", pinned=True, importance=0.1)["id"]
    relevant = store.remember("agent:a", "the kernel panicked on boot with a bad config",
                              importance=0.5)["id"]
    recent = store.remember("agent:a", "lunch was good", importance=0.5)["id"]
    w = store.window("agent:a", "kernel panic boot", 1000)
    ids = [i["id"] for i in w["items"]]
    assert ids[0] == pinned and ids[1] == relevant
    assert set(ids) == {pinned, relevant, recent, old}
    assert w["items"][1]["relevance"] == 1.0
    assert w["terms"] == {"used": ["kernel", "boot"],
                          "dropped": [{"term": "panic", "items": 0, "reason": "no_match"}]}
    assert w["tokens_used"] == sum(i["tokens"] for i in w["items"]) <= 1000


def test_budget_leaves_out_with_reasons(store, clock):
    pinned = store.remember("agent:a", "pinned " + "word " * 30, pinned=True)
    for n in range(20):
        clock.advance(60)
        store.remember("agent:a", f"observation {n} about the network link being slow")
    w = store.window("agent:a", "network", pinned["tokens"] + 40)
    assert w["items"][0]["id"] == pinned["id"]
    assert w["tokens_used"] <= pinned["tokens"] + 40
    counts = w["left_out_counts"]
    assert counts["over_budget"] + counts["lower_score"] + counts["not_ranked"] == 20 - (len(w["items"]) - 1)
    assert all(e["reason"] in ("over_budget", "lower_score") for e in w["left_out"])
    tiny = store.window("agent:a", "network", 5)
    assert tiny["items"] == [] and tiny["left_out_counts"]["pinned_over_budget"] == 1
    assert tiny["left_out"][0] == {"id": pinned["id"], "scope": "agent:a", "tokens": pinned["tokens"],
                                   "reason": "pinned_over_budget"}


def test_deterministic(tmp_path):
    def build(path):
        clock = Clock()
        s = open_store(path, clock)
        for n in range(60):
            clock.advance(37)
            s.remember("agent:a", f"entry {n} mentions {'disk' if n % 3 else 'cpu'} and item {n % 7}",
                       importance=(n % 10) / 10, tags=[f"t{n % 4}"])
        return s
    a, b = build(tmp_path / "a.db"), build(tmp_path / "b.db")
    for query in ("disk item", "cpu", ""):
        wa, wb = a.window("agent:a", query, 150), b.window("agent:a", query, 150)
        assert wa == wb
    a.close()
    b.close()


def test_recency_and_importance_without_query(store, clock):
    important_old = store.remember("agent:a", "the root password is in the vault", importance=1.0)["id"]
    clock.advance(10 * 24 * HOUR)
    trivial_new = store.remember("agent:a", "saw a cat", importance=0.0)["id"]
    middling = store.remember("agent:a", "the disk is 80% full", importance=0.6)["id"]
    w = store.window("agent:a", "", 1000)
    assert w["terms"]["used"] == []
    assert [i["id"] for i in w["items"]] == [middling, important_old, trivial_new]


def test_compacted_matches_are_reported(tmp_path):
    clock = Clock()
    s = open_store(tmp_path / "c.db", clock, quota_items=10)
    ids = []
    for n in range(12):
        clock.advance(60)
        ids.append(s.remember("agent:a", f"zebra sighting number {n} near the river", importance=0.1)["id"])
    w = s.window("agent:a", "zebra", 2000)
    hints = [e for e in w["left_out"] if e["reason"] == "compacted"]
    assert hints and all(h["compaction_id"] and h["summary_id"] for h in hints)
    assert w["left_out_counts"]["compacted"] == len(hints)
    assert hints[0]["summary_included"] is True
    s.close()


def test_exact_flag_and_threshold(store):
    for n in range(5):
        store.remember("agent:a", f"fact {n}")
    w = store.window("agent:a", "fact", 10_000)
    assert w["exact"] is True and w["threshold"] == 0.0 and len(w["items"]) == 5


def test_scopes_argument_and_bad_budget(store):
    store.remember("agent:a", "own")
    store.create_scope("agent:b", "shared:b")
    store.remember("agent:b", "shared", scope="shared:b")
    store.grant("agent:b", "shared:b", "agent:a")
    assert {i["scope"] for i in store.window("agent:a", "", 500)["items"]} == {"agent:a", "shared:b"}
    assert {i["scope"] for i in store.window("agent:a", "", 500, scopes=["shared:b"])["items"]} == {"shared:b"}
    with pytest.raises(InvalidArgument, match="budget_tokens=0: must be an integer from 1"):
        store.window("agent:a", "", 0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(min_size=1, max_size=120).filter(str.strip), min_size=1, max_size=25),
       pins=st.lists(st.booleans(), min_size=25, max_size=25),
       budget=st.integers(1, 400), query=st.text(max_size=30))
def test_never_over_budget(tmp_path_factory, texts, pins, budget, query):
    s = open_store(tmp_path_factory.mktemp("w") / "c.db", quota_tokens="max")
    try:
        for text, pin in zip(texts, pins):
            text = text.replace("\x00", " ")
            try:
                s.remember("agent:a", text, pinned=pin)
            except InvalidArgument:
                pass                                  # lone surrogates and the like
        w = s.window("agent:a", query.replace("\x00", ""), budget)
        assert w["tokens_used"] == sum(i["tokens"] for i in w["items"]) <= budget
        pinned = [i for i in w["items"] if i["pinned"]]
        assert w["items"][:len(pinned)] == pinned            # pinned first
        assert all(i["tokens"] >= ITEM_OVERHEAD for i in w["items"])
        live = s.usage("agent:a", "agent:a")["live"]["items"] if w["items"] or w["left_out"] else 0
        counts = w["left_out_counts"]
        if live:
            assert len(w["items"]) + sum(v for k, v in counts.items() if k != "compacted") == live
    finally:
        s.close()


def test_pressure_follows_windows(store, clock):
    for n in range(30):
        store.remember("agent:a", f"log line {n} about the service restarting")
    store.window("agent:a", "service", 50)
    clock.advance(30)
    store.window("agent:a", "service", 100_000)
    report = store.pressure("agent:a")
    assert report["window"]["some"]["avg60"] == 50.0 and report["window"]["some"]["avg10"] == 0.0
    assert report["window"]["some"]["total"] == 1 and report["window"]["demand"]["total"] == 2
    assert report["psi"][1].startswith("some avg10=0.00 avg60=50.00 avg300=50.00 total=1")
    system = store.pressure("shell")
    assert system["principal"] == "system" and system["window"]["demand"]["total"] == 2
