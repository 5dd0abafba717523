"""aether.sdk without aetherd: the state file, the step loop, stopping, the heartbeat's rule,
think() without a model, ask()'s answers, and docs/sdk.md against the docstrings."""

import ast
import inspect
import json
import os
import re
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest

from aether import sdk
from aether.sdk import reference, state
from aether.sdk.agent import Agent
from aether.sdk.lifecycle import Heartbeat

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


class FakeClient:
    """Answers ABI calls from a table; records them."""

    def __init__(self, answers=None):
        self.calls, self.answers = [], dict(answers or {})

    def call(self, method, **params):
        self.calls.append((method, params))
        answer = self.answers.get(method, {})
        return answer(params) if callable(answer) else answer

    def think(self, input=None, **options):
        return self.call("llm.think", input=input, **options)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AETHER_AGENT", "tester")
    return tmp_path


@pytest.fixture
def signals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def make(home, answers=None):
    answers = {"agent.inspect": {"name": "tester", "state": "running", "limits": {"heartbeat_s": None}},
               **(answers or {})}
    return Agent(client=FakeClient(answers))


# -- docs as tests ---------------------------------------------------------------------------------

def test_the_reference_page_is_generated_from_the_docstrings():
    assert DOC.read_text() == reference.render(), \
        "docs/sdk.md is out of date: python3 -m aether.sdk.reference > docs/sdk.md"


def test_every_public_call_has_a_docstring():
    undocumented = [name for name in dir(Agent) if not name.startswith("_")
                    and not (getattr(Agent, name).__doc__ or "").strip()]
    assert not undocumented


def _blocks(doc):
    """The indented code blocks of a docstring."""
    for block in re.findall(r"(?:\n\n)((?: {4}.*\n?|\n)+)", inspect.cleandoc(doc or "")):
        text = textwrap.dedent(block).strip("\n")
        if text and not text.lstrip().startswith(("name =", "python3 -m")):
            yield text


def test_every_example_in_the_docstrings_is_python():
    docs = [sdk.__doc__, sdk.run.__doc__, *(m.__doc__ for m in vars(Agent).values() if callable(m)),
            sdk.Answer.__doc__, Agent.__doc__]
    examples = [b for d in docs for b in _blocks(d)]
    assert len(examples) >= 10
    for example in examples:
        ast.parse(example)


def test_the_ten_line_agent_is_about_ten_lines():
    example = next(_blocks(sdk.__doc__))
    assert len([line for line in example.splitlines() if line.strip()]) <= 11


# -- state -----------------------------------------------------------------------------------------

def test_state_round_trips_atomically(tmp_path):
    path = tmp_path / "state.json"
    state.save(str(path), {"n": 3, "names": ["a"]})
    assert state.load(str(path)) == {"n": 3, "names": ["a"]}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]          # no temporary left


def test_bad_state_is_kept_aside_and_the_agent_starts_empty(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{not json")
    said = []
    assert state.load(str(path), said.append) == {}
    assert (tmp_path / "state.json.bad").read_text() == "{not json" and "kept" in said[0]
    path.write_text("[1, 2]")                          # JSON, but not an object
    assert state.load(str(path), said.append) == {}


def test_a_link_at_the_state_is_not_followed(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(json.dumps({"stolen": True}))
    (tmp_path / "state.json").symlink_to(secret)
    said = []
    assert state.load(str(tmp_path / "state.json"), said.append) == {}
    state.save(str(tmp_path / "state.json"), {"n": 1})
    assert json.loads(secret.read_text()) == {"stolen": True}         # the link was replaced, not written through
    assert not (tmp_path / "state.json").is_symlink()


def test_state_too_large_or_not_json_is_refused(tmp_path):
    with pytest.raises(state.StateError, match="more than"):
        state.save(str(tmp_path / "s.json"), {"x": "y" * state.MAX_BYTES})
    with pytest.raises(state.StateError, match="as JSON"):
        state.save(str(tmp_path / "s.json"), {"x": object()})
    assert not list(tmp_path.iterdir())


# -- the loop and stopping --------------------------------------------------------------------------

def test_run_steps_saves_and_ends_done(home, signals):
    agent = make(home)

    def step(a):
        a.state["n"] = a.state.get("n", 0) + 1
        return sdk.DONE if a.state["n"] == 3 else None
    assert sdk.run(step, every=0.01, agent=agent) == 125
    assert json.loads((home / "state.json").read_text()) == {"n": 3}
    again = make(home)
    assert again.state == {"n": 3}                      # a restarted agent carries on


def test_run_once_returns_the_steps_status(home, signals):
    assert sdk.run(lambda a: 3, agent=make(home)) == 3
    assert sdk.run(lambda a: None, agent=make(home)) == 0


def test_sigterm_ends_a_sleep_at_once_and_saves(home, signals):
    agent = make(home)
    steps = []

    def step(a):
        steps.append(1)
        a.state["steps"] = len(steps)
    threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    started = time.monotonic()
    teardown = []
    assert sdk.run(step, every=60, agent=agent, teardown=lambda a: teardown.append(a.stopping)) == 0
    assert time.monotonic() - started < 5 and steps == [1] and teardown == [True]
    assert json.loads((home / "state.json").read_text()) == {"steps": 1}


def test_sigterm_ends_a_blocking_ask(home, signals):
    def blocks(params):
        time.sleep(30)
    agent = make(home, {"agent.ask": blocks})
    threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    started = time.monotonic()
    assert sdk.run(lambda a: a.ask("s", "w"), agent=agent) == 0
    assert time.monotonic() - started < 5


def test_sigterm_inside_a_step_lets_it_finish(home, signals):
    agent = make(home)
    done = []

    def step(a):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        done.append(a.stopping)
    assert sdk.run(step, every=60, agent=agent) == 0 and done == [True]


# -- heartbeat ---------------------------------------------------------------------------------------

def test_the_heartbeat_beats_only_while_the_code_moves(home):
    agent = make(home)
    client = FakeClient()
    beat = Heartbeat(agent, 0.02, stall=0.2, client=client)
    beat.start()
    time.sleep(0.15)
    moving = beat.beats
    time.sleep(0.4)                 # no progress: stuck code must let the watchdog act
    stuck_beats = beat.beats - moving
    agent.waiting = True            # waiting on a person: alive
    time.sleep(0.15)
    beat.stop()
    beat.join(2)
    assert moving >= 3 and stuck_beats <= 3 and beat.skipped >= 5
    assert beat.beats > moving + stuck_beats
    assert {m for m, _ in client.calls} == {"agent.heartbeat"}


def test_run_starts_the_heartbeat_the_manifest_asks_for(home, signals, monkeypatch):
    started = []
    monkeypatch.setattr(Heartbeat, "start", lambda self: started.append((self.interval, self.stall)))
    agent = make(home, {"agent.inspect": {"name": "tester", "limits": {"heartbeat_s": 30}}})
    sdk.run(lambda a: None, agent=agent)
    assert started == [(10.0, 90.0)]


# -- calls ------------------------------------------------------------------------------------------

def test_think_without_a_model_says_what_to_set(home):
    agent = make(home, {"sys.info": {"llm": {"configured": False}}})
    with pytest.raises(sdk.NoModel, match="aether.llm.endpoint"):
        agent.think("hello")
    assert isinstance(sdk.NoModel("x"), sdk.Unavailable)
    assert ("llm.think", {"input": "hello"}) not in agent.client.calls


def test_think_returns_the_text_with_its_tool_calls(home):
    agent = make(home, {"sys.info": {"llm": {"configured": True}},
                        "llm.think": {"content": "hi", "tool_calls": [{"name": "clock.now"}]}})
    thought = agent.think("hello", max_tokens=20)
    assert thought == "hi" and thought.tool_calls == [{"name": "clock.now"}]
    assert ("llm.think", {"input": "hello", "max_tokens": 20}) in agent.client.calls


@pytest.mark.parametrize("state_,yes", [("approved", True), ("denied", False), ("timeout", False),
                                        ("cancelled", False), ("pending", False), (None, False)])
def test_only_an_approval_is_a_yes(home, state_, yes):
    agent = make(home, {"agent.ask": {"id": 1, "state": state_, "by": "shell"}})
    answer = agent.ask("step", "why", details="d", timeout=10)
    assert bool(answer) is yes and answer.approved is yes
    assert agent.client.calls[-1] == ("agent.ask", {"step": "step", "why": "why", "timeout_s": 10, "details": "d"})


def test_ask_later_and_poll(home):
    views = iter([{"id": 4, "state": "pending", "expires_in_s": 50}, {"id": 4, "state": "pending", "expires_in_s": 49},
                  {"id": 4, "state": "denied", "by": "host"}])
    agent = make(home, {"agent.ask": {"id": 4, "state": "pending"}, "agent.answer_of": lambda p: next(views)})
    assert agent.ask_later("s", "w", timeout=60) == 4
    assert agent.client.calls[-1] == ("agent.ask", {"wait": False, "step": "s", "why": "w", "timeout_s": 60})
    first = agent.answer_of(4)
    assert not first and first.state == "pending"
    last = agent.answer_of(4, wait=True)
    assert not last and last.state == "denied" and agent.client.calls[-1] == ("agent.answer_of", {"id": 4, "wait": True})


def test_a_long_wait_is_not_cut_by_the_clients_socket_timeout(home):
    class Sock:
        def __init__(self):
            self.timeout, self.seen = 30.0, []

        def gettimeout(self):
            return self.timeout

        def settimeout(self, value):
            self.timeout = value
    agent = make(home, {"sys.info": {"llm": {"configured": True}}, "llm.think": {"content": "x"}})
    agent.client.sock = sock = Sock()
    agent.client.answers["agent.ask"] = lambda p: sock.seen.append(sock.timeout) or {"id": 1, "state": "approved"}
    assert agent.ask("s", "w", timeout=3600)
    agent.client.answers["llm.think"] = lambda p: sock.seen.append(sock.timeout) or {"content": "x"}
    agent.think("t", deadline_s=100)
    assert sock.seen == [3630.0, 130.0] and sock.timeout == 30.0        # restored after


def test_memory_tools_and_children(home):
    states = iter(["running", "running", "exited"])
    agent = make(home, {"ctx.remember": {"id": 7}, "ctx.search": {"items": [{"id": 7, "text": "t"}]},
                        "tool.call": {"ok": 1},
                        "agent.inspect": lambda p: {"name": p["name"], "state": next(states), "last_exit": 0}})
    assert agent.remember("t", tags=["x"]) == 7
    assert agent.recall("t") == [{"id": 7, "text": "t"}]
    assert agent.tool("files.list", path=".") == {"ok": 1}
    agent.spawn("kid", "aether.builtin.drill:main", ["exit", "0"])
    assert agent.wait_for("kid", timeout=5)["state"] == "exited"
    spawned = dict(agent.client.calls)["agent.spawn"]["manifest"]
    assert spawned["restart"] == "never" and spawned["args"] == ["exit", "0"]


def test_wait_for_times_out(home):
    agent = make(home, {"agent.inspect": {"name": "kid", "state": "running"}})
    with pytest.raises(TimeoutError, match="still running"):
        agent.wait_for("kid", timeout=0.2)


def test_log_lines_are_one_per_line(home, capsys):
    make(home).log("one\ntwo", "warning")
    assert capsys.readouterr().err == "warning: one\nwarning: two\n"
