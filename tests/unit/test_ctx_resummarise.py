"""A model's summary supersedes a compaction's extractive one: recorded, searchable, restorable."""

from collections import deque

import pytest

from aether.abi import resummarise
from aether.abi.protocol import Unavailable
from aether.abi.server import Deferred
from aether.ctx import Conflict, InvalidArgument, PermissionDenied
from aether.ctx.compaction import whole_sentences
from aether.ctx.tokens import DEFAULT

from ctx_helpers import Clock, open_store

MODEL_TEXT = "Operators 0, 1 and 2 logged pump pressures rising from 101 to 129 kPa, hourly."


def reading(i):
    return (f"Reading {i}: the pump pressure was {100 + i} kPa at station {i % 4}. Operator {i % 3} "
            f"logged it after inspecting valves {i} and {i + 1}, and noted that the coolant level was normal.")


def crowded(tmp_path, n=30):
    clock = Clock()
    s = open_store(tmp_path / "r.db", clock, quota_items=20)
    for i in range(n):
        clock.advance(3600)
        s.remember("agent:a", reading(i), kind="observation", tags=["pump"],
                   importance=0.9 if i % 10 == 0 else 0.2)
    return s, clock, s.compacted("agent:a")[0]          # the newest compaction: its summary is live


def supersede(s, c, text=MODEL_TEXT):
    return s.resummarise("system", c["id"], c["summary_id"], text, "model:fake", model_tokens=57)


def test_the_request_holds_the_originals_and_the_budget(tmp_path):
    s, _, c = crowded(tmp_path)
    request = s.summary_request(c["id"])
    assert request["compaction"] == c["id"] and request["summary_id"] == c["summary_id"]
    assert request["scope"] == "agent:a"
    assert sorted(i["id"] for i in request["items"]) == c["replaced"]
    assert all(i["text"] == s.recall("shell", i["id"])["text"] for i in request["items"])
    assert [i["created_at"] for i in request["items"]] == sorted(i["created_at"] for i in request["items"])
    assert 8 <= request["budget_tokens"] < 400
    messages = resummarise.prompt(request)
    assert messages[0]["role"] == "system" and "never add" in messages[0]["content"]
    assert f"Summarise these {len(c['replaced'])} records" in messages[1]["content"]
    assert request["items"][0]["text"] in messages[1]["content"]
    s.close()


def test_a_model_summary_supersedes_the_extractive_one(tmp_path):
    s, clock, c = crowded(tmp_path)
    old = s.memories.get(c["summary_id"])            # not recall: that would move last_used
    live = s.usage("shell", "agent:a")["live"]["items"]
    assert s.search("agent:a", "coolant", kinds=["summary"])["items"], "the extractive summary is searchable"
    clock.advance(60)
    out = supersede(s, c)
    new_id = out["summary"]
    assert out["replaced_summary"] == c["summary_id"] and out["summariser"] == "model:fake"
    new = s.memories.get(new_id)
    header = old["text"].split("\n")[0]
    assert new["text"] == header + "\n" + MODEL_TEXT
    assert f"restore compaction {c['id']}" in header
    assert (new["kind"], new["scope"], new["state"]) == ("summary", "agent:a", "live")
    assert (new["tags"], new["importance"], new["last_used"]) == (old["tags"], old["importance"], old["last_used"])
    assert new["tokens"] == out["summary_tokens"] == DEFAULT.count(new["text"]) + 4
    assert s.recall("shell", c["summary_id"])["state"] == "forgotten"
    row = s.compacted("agent:a", since=c["created_at"])[-1]
    assert (row["summary_id"], row["summariser"], row["summary_tokens"]) == (new_id, "model:fake", new["tokens"])
    assert row["state"] == "compacted" and row["replaced"] == c["replaced"]
    found = [i["id"] for i in s.search("agent:a", "hourly rising")["items"]]
    assert found == [new_id]
    assert c["summary_id"] not in [i["id"] for i in s.search("agent:a", "coolant", kinds=["summary"])["items"]]
    entry = s.journal("shell", kind="ctx.resummarise")[0]
    assert entry["scope"] == "agent:a" and entry["actor"] == "system"
    assert entry["body"] == {"compaction": c["id"], "summary": new_id, "replaced_summary": c["summary_id"],
                             "summariser": "model:fake", "summary_tokens": new["tokens"], "model_tokens": 57}
    assert s.usage("shell", "agent:a")["live"]["items"] == live       # one summary for another
    assert s.verify("shell")["ok"] is True
    assert s.db.integrity_check() == "ok"
    s.close()


def test_restore_after_a_model_summary_retires_it(tmp_path):
    s, clock, c = crowded(tmp_path)
    new_id = supersede(s, c)["summary"]
    clock.advance(60)
    out = s.restore("agent:a", c["id"])
    assert out == {"compaction": c["id"], "restored": c["replaced"], "summary_retired": new_id}
    assert all(s.recall("agent:a", m)["state"] == "live" for m in c["replaced"])
    assert s.recall("agent:a", new_id)["state"] == "forgotten"
    assert s.search("agent:a", "hourly rising")["items"] == []
    assert s.verify("shell")["ok"] is True
    s.close()


def nothing_changed(s, c):
    assert s.journal("shell", kind="ctx.resummarise") == []
    row = [r for r in s.compacted("agent:a") if r["id"] == c["id"]][0]
    assert row["summariser"] == "extractive-v1"
    assert s.search("agent:a", "hourly rising")["items"] == []


@pytest.mark.parametrize("meanwhile, message", [
    (lambda s, c: s.restore("shell", c["id"]), "already restored"),
    (lambda s, c: s.purge("shell", older_than=0), "was purged"),
    (lambda s, c: s.forget("shell", c["summary_id"]), "was forgotten"),
    (lambda s, c: s.pin("shell", c["summary_id"]), "is pinned"),
    (lambda s, c: s.compact("shell", "agent:a", items_target=1), "was compacted by compaction"),
])
def test_an_answer_for_a_changed_compaction_is_refused(tmp_path, meanwhile, message):
    s, clock, c = crowded(tmp_path)
    request = s.summary_request(c["id"])
    clock.advance(60)
    meanwhile(s, c)
    with pytest.raises(Conflict, match=message):
        supersede(s, c)
    with pytest.raises(Conflict, match=message):
        s.summary_request(c["id"])
    assert request["summary_id"] == c["summary_id"]
    if "restored" not in message:
        nothing_changed(s, c)
    s.close()


def test_only_the_summary_asked_about_is_superseded(tmp_path):
    s, _, c = crowded(tmp_path)
    supersede(s, c)
    with pytest.raises(Conflict, match=f"summary is now memory .*, not {c['summary_id']}"):
        supersede(s, c, "A second answer for the same compaction.")
    assert len(s.journal("shell", kind="ctx.resummarise")) == 1
    s.close()


def test_a_long_answer_is_cut_to_whole_sentences(tmp_path):
    s, _, c = crowded(tmp_path)
    room = s.summary_request(c["id"])["budget_tokens"]
    long = " ".join(f"Fact {i} is that pump {i} ran at {100 + i} kPa." for i in range(200))
    out = supersede(s, c, long)
    body = s.recall("shell", out["summary"])["text"].split("\n", 1)[1]
    assert body.startswith("Fact 0 is") and body.endswith("kPa.") and len(body) < len(long)
    assert DEFAULT.count(body) <= room
    s.close()


def test_an_answer_without_a_sentence_in_budget_is_refused(tmp_path):
    s, _, c = crowded(tmp_path)
    with pytest.raises(InvalidArgument, match="no whole sentence within its budget"):
        supersede(s, c, "word " * 2000)
    with pytest.raises(InvalidArgument, match="must not be empty"):
        supersede(s, c, "   ")
    nothing_changed(s, c)
    s.close()


def test_only_the_system_or_shell_supersedes(tmp_path):
    s, _, c = crowded(tmp_path)
    with pytest.raises(PermissionDenied, match="only the shell or system"):
        s.resummarise("agent:a", c["id"], c["summary_id"], MODEL_TEXT, "model:fake")
    with pytest.raises(InvalidArgument, match="summariser="):
        s.resummarise("system", c["id"], c["summary_id"], MODEL_TEXT, "")
    nothing_changed(s, c)
    s.close()


def test_whole_sentences_stop_at_a_sentence_or_a_line():
    assert whole_sentences("One two. Three four five six seven.", 4, DEFAULT) == "One two."
    assert whole_sentences("- disk full\n- pump replaced and tested twice", 5, DEFAULT) == "- disk full"
    assert whole_sentences("no end in sight " * 20, 10, DEFAULT) == ""


def test_new_compactions_are_followed_and_imported_ones_are_not(tmp_path):
    s, clock, _ = crowded(tmp_path)
    head, made = s.compactions_since()
    assert made == [] and head == max(c["id"] for c in s.compacted("shell"))
    for i in range(5):
        clock.advance(60)
        s.remember("agent:a", f"late note {i}", importance=0.0)
    later, made = s.compactions_since(head)
    assert made and later == made[-1] and all(m > head for m in made)
    s.export("shell", tmp_path / "a.jsonl", scopes=["agent:a"])
    s.import_("shell", tmp_path / "a.jsonl", rename={"agent:a": "agent:b"})
    imported_head, made = s.compactions_since(later)
    assert imported_head > later and made == []
    s.close()


# ---------------------------------------------------------------- aetherd's side, without forking


class Daemon:
    """What the Resummariser uses of aetherd; jobs are held, not run: the test answers them."""

    def __init__(self, store, endpoint="http://127.0.0.1:9/v1"):
        self.store, self.stopping, self.loop, self.reaper = store, False, None, None
        self.config = {"llm.endpoint": endpoint, "llm.model": "small"} if endpoint else {}
        self.lines, self.journaled, self.jobs = [], [], []
        self.log = type("Log", (), {"info": self.lines.append, "warning": self.lines.append})()

    def journal(self, kind, body, scope=None):
        self.journaled.append((kind, body, scope))


@pytest.fixture
def daemon(tmp_path, monkeypatch):
    clock = Clock()
    d = Daemon(open_store(tmp_path / "d.db", clock))
    def submit(_d, messages, max_tokens, temperature=None):
        """The broker's seam: the test answers each job as the worker would have."""
        deferred = Deferred()

        def job(value, error):
            if error is not None:
                deferred.fail(error)
            elif "error" in value:
                deferred.fail(Unavailable(value["message"], {"code": value["error"], "message": value["message"],
                                                             "charged": value["tokens"]}))
            else:
                deferred.resolve({"content": value["text"], "finish_reason": value["finish_reason"],
                                  "model": value["model"], "usage": {"total_tokens": value["tokens"]}})
        d.jobs.append(job)
        return deferred
    monkeypatch.setattr(resummarise, "submit_internal", submit)
    d.clock, d.resummariser = clock, resummarise.Resummariser(d)
    d.resummariser.start()
    yield d
    d.store.close()


def compact(d, scope):
    """One compaction in a scope of its own (so none takes in another's summary); then follow."""
    for i in range(12):
        d.clock.advance(60)
        d.store.remember("shell", reading(i), scope=scope)
    made = d.store.compact("shell", scope, items_target=2)["compactions"]
    d.resummariser.follow()
    return [m["id"] for m in made]


def answer(text=MODEL_TEXT, finish_reason="stop", tokens=30):
    return {"text": text, "finish_reason": finish_reason, "model": "served-name", "tokens": tokens}


def test_one_job_at_a_time_and_each_answer_is_applied(daemon):
    d, r = daemon, daemon.resummariser
    first, second = compact(d, "agent:a"), compact(d, "agent:b")
    assert (len(d.jobs), r.report()["running"], r.report()["queued"]) == (1, first[0], 1)
    d.jobs[0](answer(), None)
    assert len(d.jobs) == 2 and r.report()["running"] == second[0]       # the next one started
    d.jobs[1](answer(tokens=12), None)
    assert r.report() == {"enabled": True, "model": "small", "queued": 0, "running": None, "jobs": 2,
                          "succeeded": 2, "failed": 0, "dropped": 0, "tokens": 42}
    assert {c["summariser"] for c in d.store.compacted("shell") if c["id"] in first + second} == {"model:small"}
    assert d.journaled == []
    d.resummariser.follow()                          # nothing new: no job
    assert len(d.jobs) == 2


@pytest.mark.parametrize("value, code", [
    ({"error": "endpoint_error", "message": "HTTP 500", "tokens": 0}, "endpoint_error"),
    (answer(text="  "), "empty"),
    (answer(finish_reason="length"), "cut_off"),
    (answer(text="word " * 3000), "invalid_argument"),
    (None, "unavailable"),                               # the worker overran its time
])
def test_a_failed_answer_keeps_the_extractive_summary(daemon, value, code):
    d, r = daemon, daemon.resummariser
    cid = compact(d, "agent:a")[0]
    d.jobs[0](value, Unavailable("the call did not finish within 15s") if value is None else None)
    assert r.report()["failed"] == 1 and r.report()["succeeded"] == 0
    kind, body, scope = d.journaled[0]
    assert (kind, body["compaction"], body["error"], scope) == ("ctx.resummarise.failed", cid, code, "agent:a")
    assert d.store.compacted("shell")[0]["summariser"] == "extractive-v1"
    assert d.store.recall("shell", body["summary"])["state"] == "live"
    assert "the extractive one stays" in d.lines[-1]


def test_stale_work_is_dropped_and_the_queue_is_bounded(daemon, monkeypatch):
    d, r = daemon, daemon.resummariser
    monkeypatch.setattr(resummarise, "QUEUE_LIMIT", 1)
    running, queued, over = compact(d, "agent:a"), compact(d, "agent:b"), compact(d, "agent:c")
    assert r.report()["dropped"] == 1 and "already waiting" in d.lines[-1] and over
    d.store.restore("shell", queued[0])                  # restored before its turn: never asked
    d.store.restore("shell", running[0])                 # restored while the model writes
    d.jobs[0](answer(), None)
    assert len(d.jobs) == 1 and r.report()["dropped"] == 3 and r.report()["queued"] == 0
    assert [(k, b["compaction"]) for k, b, _ in d.journaled] == [("ctx.resummarise.dropped", running[0])]
    assert r.report()["tokens"] == 30


def test_a_summary_too_small_to_improve_is_left_alone(daemon):
    for i in range(4):
        daemon.store.remember("shell", f"short note {i}", scope="agent:s")
    assert daemon.store.compact("shell", "agent:s", items_target=1)["compactions"]
    daemon.resummariser.follow()
    assert daemon.jobs == [] and daemon.resummariser.report()["dropped"] == 1
    assert "worth asking the model for" in daemon.lines[-1] and daemon.journaled == []


def test_without_a_model_nothing_is_followed(tmp_path):
    s, _, _ = crowded(tmp_path)
    r = resummarise.Resummariser(Daemon(s, endpoint=None))
    r.start()
    assert s.compact("shell", "agent:a", items_target=5)["compactions"]
    r.follow()
    assert r.report()["enabled"] is False and r.report()["jobs"] == 0 and r.queue == deque()
    s.close()
