"""The journal digest example: its counts and text (unit), and the agent under a real aetherd
on the host, without a model (extractive, and says so) and with the fake model (think())."""

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

from aether import sdk
from tests.fake_openai import FakeOpenAI, Reply
from tests.host.conftest import sleep_until
from tests.host.test_broker import Aetherd

PACKAGE = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("digest", PACKAGE / "digest.py")
digest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(digest)


def entry(seq, kind, **body):
    return {"seq": seq, "kind": kind, "scope": "system", "body": body}


DAY = [entry(1, "boot", kernel="6.1"),
       entry(2, "agent.state", agent="web", state="backoff", reason="exit 1"),
       entry(3, "agent.state", agent="web", state="failed", reason="crash loop", last_error="boom\x1b[2J"),
       entry(4, "alert", level="warning", message="memory above 90%"),
       entry(5, "alert", level="warning", message="memory above 90%"),
       entry(6, "alert", level="critical", message="disk full"),
       entry(7, "agent.ask", id=1, step="delete"),
       entry(8, "agent.answer", id=1, state="denied")]


def test_facts_count_the_day():
    lines = digest.facts(DAY)
    assert lines[0].startswith("8 entries (seq 1-8, from 1 scopes): 3 alert, 2 agent.state, 1 agent.answer")
    assert "boots: 1" in lines
    assert "agent web: restarted 1 times, failed (boom [2J)" in lines            # no escape reaches the text
    assert "alerts: 3; critical 'disk full' x1; warning 'memory above 90%' x2" in lines
    assert "requests to a person: 1 asked; 1 denied" in lines
    assert digest.facts([]) == ["no journal entries this day in the scopes this agent may read"]


def test_day_bounds_are_utc():
    day, start, end = digest.day_bounds("2026-12-07")
    assert (day, start, end - start) == ("2026-12-07", 1796601600, 86400)
    assert digest.day_bounds("1970-01-01")[1] == 0 and digest.day_bounds("2000-03-01")[1] == 951868800
    assert digest.day_bounds("2024-02-29")[1] == 1709164800                    # a leap day
    today = digest.day_bounds(now=1796605000.5)
    assert today == ("2026-12-07", 1796601600, 1796601600 + 86400)
    for bad in ("yesterday", "2026-13-01", "2026-1-1"):
        with pytest.raises(SystemExit, match="not a date"):
            digest.day_bounds(bad)


class FakeAgent:
    def __init__(self, model, think=None):
        self.model, self._think = model, think

    def has_model(self):
        return self.model

    def think(self, prompt, **options):
        return self._think(prompt)


def test_the_model_or_an_extractive_digest_that_says_why():
    assert digest.summarise(FakeAgent(False), ["x"]) == \
        (None, "extractive: no model is configured, so these are the day's counts, not a model's summary")

    def busy(prompt):
        raise sdk.Busy("queue full")
    assert digest.summarise(FakeAgent(True, busy), ["x"])[1] == "extractive: the model could not answer (busy: queue full)"
    said = digest.summarise(FakeAgent(True, lambda p: sdk.Thought({"content": " A calm day. "})), ["x"])
    assert said == ("A calm day.", "summarised by the model from the counts below")


def test_the_manifest_is_a_package_manifest():
    manifest = tomllib.loads((PACKAGE / "agent.toml").read_text())
    assert manifest["version"] == "1.0.0" and manifest["program"] == "digest:main"
    assert (PACKAGE / (manifest["program"].split(":")[0] + ".py")).exists()


# -- under a real aetherd ------------------------------------------------------------------------------

def spawn(c, *args):
    manifest = tomllib.loads((PACKAGE / "agent.toml").read_text())
    manifest.pop("version")
    manifest.update(program="examples.journal_digest.digest:main", args=list(args), restart="never")
    c.call("agent.spawn", manifest=manifest)


def digests(c):
    return c.call("ctx.search", query="digest", scopes=["agent:journal-digest"], kinds=["summary"])["items"]


@pytest.mark.host
def test_without_a_model_the_digest_is_extractive_and_says_so(tmp_path):
    d = Aetherd(tmp_path, "")
    try:
        c = d.connect()
        c.call("ctx.grant", scope="system", grantee="agent:journal-digest", mode="read")
        c.call("sys.alert", level="warning", message="the test alert")
        spawn(c, "--once")
        sleep_until(lambda: c.call("agent.inspect", name="journal-digest")["state"] == "exited", 30)
        [memory] = digests(c)
        assert "extractive: no model is configured" in memory["text"]
        assert "warning 'the test alert' x1" in memory["text"] and "boots: 1" in memory["text"]
        assert {"digest", "day-" + digest.day_bounds()[0]} <= set(memory["tags"])
        spawn_again = c.call("agent.start", name="journal-digest")
        assert spawn_again["name"] == "journal-digest"
        sleep_until(lambda: c.call("agent.inspect", name="journal-digest")["starts"] == 2
                    and c.call("agent.inspect", name="journal-digest")["state"] == "exited", 30)
        assert len(digests(c)) == 1                     # the day's digest replaced, not added
    finally:
        d.stop()


@pytest.mark.host
def test_with_a_model_the_digest_leads_with_its_summary(tmp_path):
    with FakeOpenAI() as model:
        model.queue(Reply(content="A quiet day: one boot, nothing failed."))
        d = Aetherd(tmp_path, f"llm.endpoint = {model.url}\nllm.model = fake\nllm.timeout = 5\n")
        try:
            c = d.connect()
            spawn(c, "--once")
            sleep_until(lambda: c.call("agent.inspect", name="journal-digest")["state"] == "exited", 30)
            [memory] = digests(c)
            assert memory["text"].startswith("Journal digest for ")
            assert "summarised by the model" in memory["text"]
            assert "A quiet day: one boot, nothing failed." in memory["text"]
            sent = model.requests[0].json["messages"]
            assert any("Summarise this day's journal" in (m.get("content") or "") for m in sent)
        finally:
            d.stop()


@pytest.mark.host
def test_it_deploys_as_a_package_and_digests_at_start(tmp_path):
    from aether.packages.upload import upload
    d = Aetherd(tmp_path, "")
    try:
        c = d.connect()
        assert "journal-digest-1.0.0 is current" in upload(c, str(PACKAGE))["message"]
        assert c.call("agent.inspect", name="journal-digest")["program"] == "digest:main"
        sleep_until(lambda: digests(c), 30)
        assert c.call("agent.inspect", name="journal-digest")["state"] == "running"   # --every 3600: it waits
    finally:
        d.stop()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
