"""Memories: validation, forget, pin, recall, search."""

import pytest

from aether.ctx import Conflict, InvalidArgument, NotFound, QuotaExceeded

from ctx_helpers import open_store
import ctx_helpers

clock, store = ctx_helpers.clock, ctx_helpers.store      # fixtures


def test_remember_and_recall(store, clock):
    out = store.remember("agent:a", "The build takes 6 minutes on 2 cores.", kind="fact",
                         tags=["build", "kernel"], importance=0.8)
    assert out["scope"] == "agent:a" and out["tokens"] > 4 and out["created_at"] == clock.now
    clock.advance(60)
    item = store.recall("agent:a", out["id"])
    assert item["text"] == "The build takes 6 minutes on 2 cores."
    assert item["tags"] == ["build", "kernel"] and item["kind"] == "fact" and item["importance"] == 0.8
    assert item["last_used"] == clock.now and item["author"] == "agent:a" and item["state"] == "live"


@pytest.mark.parametrize("kwargs, message", [
    ({"text": ""}, "text='': must not be empty or blank"),
    ({"text": "x" * 70000}, "is 70000 bytes; the limit is 65536; split it"),
    ({"text": "a\x00b"}, "must not contain NUL"),
    ({"text": 5}, "text=5: must be a string"),
    ({"text": "x", "kind": "idea"}, "kind='idea': must be one of fact, note, observation, summary"),
    ({"text": "x", "importance": 2}, "importance=2: must be a number from 0 to 1"),
    ({"text": "x", "importance": True}, "importance=True"),
    ({"text": "x", "tags": ["no spaces"]}, "each tag is 1-64 letters"),
    ({"text": "x", "tags": [str(i) for i in range(40)]}, "has 40 tags; the limit is 32"),
    ({"text": "x", "pinned": "yes"}, "pinned='yes': must be true or false"),
    ({"text": "x", "scope": "agent:"}, "scope='agent:': must be"),
])
def test_bad_input_is_named(store, kwargs, message):
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        store.remember("agent:a", **kwargs)


def test_forget_keeps_the_text_until_purge(store):
    mid = store.remember("agent:a", "an outdated belief")["id"]
    assert store.forget("agent:a", mid)["state"] == "forgotten"
    assert store.recall("agent:a", mid)["text"] == "an outdated belief"
    assert store.window("agent:a", "belief", 100)["items"] == []
    with pytest.raises(Conflict, match="is forgotten, not live"):
        store.forget("agent:a", mid)
    usage = store.usage("agent:a", "agent:a")
    assert usage["live"]["items"] == 0 and usage["retained"]["items"] == 1


def test_unknown_memory(store):
    with pytest.raises(NotFound, match="memory 42 does not exist"):
        store.recall("shell", 42)
    with pytest.raises(InvalidArgument, match="memory_id=-1: must be an integer"):
        store.recall("shell", -1)


def test_pin_and_pinned_quota(tmp_path):
    s = open_store(tmp_path / "c.db", quota_tokens=20)
    mid = s.remember("agent:a", "important standing instruction", pinned=True)["id"]
    assert s.recall("agent:a", mid)["pinned"] is True
    with pytest.raises(QuotaExceeded, match="pinned tokens in agent:a, over its quota of 20"):
        s.remember("agent:a", "another long standing instruction that is pinned as well", pinned=True)
    assert s.pin("agent:a", mid, False) == {"id": mid, "pinned": False, "changed": True}
    assert s.pin("agent:a", mid, False)["changed"] is False
    s.close()


def test_search_ranks_and_reports_terms(store):
    store.remember("agent:a", "the backup of the disk finished")
    store.remember("agent:a", "disk disk disk usage is high")
    store.remember("agent:a", "unrelated musings")
    out = store.search("agent:a", "disk backup")
    assert [i["text"] for i in out["items"]][:1] == ["the backup of the disk finished"]
    assert out["terms"]["used"] == ["disk", "backup"]
    assert all("score" in i for i in out["items"])
    recent = store.search("agent:a", "")["items"]
    assert [i["text"] for i in recent][0] == "unrelated musings"
    assert store.search("agent:a", "the of and")["items"][0]["text"] == "unrelated musings"
    assert store.search("agent:a", "disk", kinds=["fact"])["items"] == []
