"""The model broker in a real aetherd on the host, against tests/fake_openai.py: budgets under
real concurrency, carving, priority, the bound, cancellation, failing endpoints, persistence."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from aether.abi.protocol import AbiError
from aether.client import Client
from tests.fake_openai import FakeOpenAI, Reply

from .conftest import REPO, sleep_until

pytestmark = pytest.mark.host
HI = [{"role": "user", "content": "hi"}]


class Aetherd:
    """aetherd --host on a data directory of its own, restartable, with a config file."""

    def __init__(self, tmp_path, config, run=None):
        self.run, self.data = run or tmp_path / "run", tmp_path / "data"
        self.data.mkdir(exist_ok=True)
        (self.data / "config").write_text(config)
        self.log_path, self.clients, self.proc = tmp_path / "aetherd.log", [], None
        self.start()

    def start(self):
        if (self.run / "abi.sock").exists():
            (self.run / "abi.sock").unlink()
        self.proc = subprocess.Popen([sys.executable, "-m", "aether.aetherd", "--host", "--run-dir", str(self.run),
                                      "--data-dir", str(self.data)], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                                     stdout=open(self.log_path, "a"), stderr=subprocess.STDOUT)
        sleep_until((self.run / "abi.sock").exists, 30)

    def connect(self, timeout=30):
        c = Client(str(self.run / "abi.sock"), timeout=timeout)
        self.clients.append(c)
        return c

    def stop(self, sig=signal.SIGTERM):
        for c in self.clients:
            c.close()
        self.clients = []
        self.proc.send_signal(sig)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self):
        return self.log_path.read_text()


@pytest.fixture
def model():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def aetherd(tmp_path, model):
    started = []

    def start(extra="", endpoint=None, run=None):
        d = Aetherd(tmp_path, f"llm.endpoint = {endpoint or model.url}\nllm.model = fake\nllm.timeout = 5\n{extra}",
                    run)
        started.append(d)
        return d
    yield start
    for d in started:
        d.stop()


def state(c, name):
    return c.call("agent.inspect", name=name)


def run_agent(c, d, name, calls, timeout=60, parent=None, **manifest):
    """An agent that makes ``calls`` ([{tag, params}]) all at once; its [[code, result, tag]]."""
    c.call("agent.spawn", **({"parent": parent} if parent else {}), manifest={"name": name, "program": "tests.host.broker_entries:concurrent",
                                    "args": ["out.json", json.dumps({"calls": calls, "timeout": timeout})],
                                    "restart": "never", **manifest})
    return lambda: _outcome(c, d, name, timeout)


def _outcome(c, d, name, timeout):
    sleep_until(lambda: state(c, name)["state"] in ("exited", "failed"), timeout)
    out = d.data / "home" / name / "out.json"
    if not out.exists():
        out = d.data / "agents" / name / "out.json"
    assert out.exists(), c.call("agent.logs", name=name)
    return json.loads(out.read_text())


def test_thirty_concurrent_calls_against_a_1000_token_budget_send_only_what_fits(aetherd, model):
    """Issue 15 item 7: all 30 went out (27,000 tokens) when remaining only changed after a call."""
    d = aetherd()
    c = d.connect()
    for _ in range(30):
        model.queue(Reply(delay=0.5, usage={"prompt_tokens": 10, "completion_tokens": 290, "total_tokens": 300}))
    calls = [{"tag": i, "params": {"messages": HI, "max_tokens": 290}} for i in range(30)]
    out = run_agent(c, d, "spender", calls, context={"spend_tokens": 1000})()
    codes = [o[0] for o in out]
    assert codes.count("ok") == 3 and codes.count("budget_exhausted") == 27, codes
    assert len(model.requests) == 3                       # refused calls sent nothing
    refused = [o[1] for o in out if o[0] == "budget_exhausted"][0]
    assert "nothing was sent" in refused and "agent:spender" in refused
    seen = state(c, "spender")["context"]
    assert seen["used_tokens"] == 900 and seen["reserved_tokens"] == 0 and seen["llm"]["calls"] == 3


def test_an_alert_when_a_budget_runs_out(aetherd, model):
    d = aetherd()
    c = d.connect()
    model.queue(Reply(usage={"prompt_tokens": 20, "completion_tokens": 80, "total_tokens": 100}))
    out = run_agent(c, d, "thrifty", [{"tag": 0, "params": {"messages": HI, "max_tokens": 80}}],
                    context={"spend_tokens": 100})()
    assert out[0][0] == "ok" and state(c, "thrifty")["context"]["available_tokens"] == 0

    def alerts():
        return [e for e in c.call("ctx.journal", kind="alert", limit=50) if e["body"].get("source") == "llm"]
    found = sleep_until(alerts, 5)
    assert "agent:thrifty has spent its model tokens" in found[0]["body"]["message"]
    assert found[0]["body"]["agent"] == "thrifty"


def test_two_children_of_a_1000_token_parent_cannot_spend_more_than_1000(aetherd, model):
    """Issue 15 item 7: a stopped child's share could be carved again (2,700 of 1,000 spent)."""
    d = aetherd()
    c = d.connect()
    c.call("agent.spawn", manifest={"name": "parent", "program": "/bin/sh", "args": ["-c", "sleep 60"],
                                    "context": {"spend_tokens": 1000}})
    model.queue(Reply(usage={"prompt_tokens": 100, "completion_tokens": 800, "total_tokens": 900}))
    run_agent(c, d, "first", [{"tag": 0, "params": {"messages": HI, "max_tokens": 890}}],
              parent="parent", context={"spend_tokens": 1000})
    out = _outcome(c, d, "first", 30)
    assert out[0][0] == "ok"
    with pytest.raises(AbiError) as e:                     # first is exited, and still holds its share
        c.call("agent.spawn", parent="parent", manifest={"name": "second", "program": "/bin/true",
                                                         "context": {"spend_tokens": 1000}})
    assert e.value.code == "budget_exhausted" and "has left to give (0" in str(e.value)
    c.call("agent.remove", name="first")                   # its 900 stay charged to the parent
    with pytest.raises(AbiError, match=r"has left to give \(100"):
        c.call("agent.spawn", parent="parent", manifest={"name": "second", "program": "/bin/true",
                                                         "context": {"spend_tokens": 1000}})
    assert state(c, "parent")["context"]["used_tokens"] == 900
    model.queue(Reply(usage={"prompt_tokens": 10, "completion_tokens": 80, "total_tokens": 90}))
    run_agent(c, d, "second", [{"tag": 0, "params": {"messages": HI, "max_tokens": 80}},
                               {"tag": 1, "params": {"messages": HI, "max_tokens": 80}}],
              parent="parent", context={"spend_tokens": 100})
    out = _outcome(c, d, "second", 30)
    assert sorted(o[0] for o in out) == ["budget_exhausted", "ok"]
    c.call("agent.remove", name="second")
    assert state(c, "parent")["context"]["used_tokens"] == 990 <= 1000
    assert len(model.requests) == 2


def test_the_shell_goes_next_while_agents_wait(aetherd, model):
    d = aetherd()
    c = d.connect()
    for _ in range(6):
        model.queue(Reply(delay=0.6))
    calls = [{"tag": f"agent-{i}", "params": {"messages": [{"role": "user", "content": f"agent-{i}"}],
                                               "max_tokens": 20}} for i in range(5)]
    done = run_agent(c, d, "busy", calls, context={"spend_tokens": 100000})
    sleep_until(lambda: len(c.call("llm.queue")["waiting"]) >= 4, 20)
    view = c.call("llm.queue")
    assert len(view["running"]) == 1 and view["running"][0]["principal"] == "agent:busy"
    assert all("ahead" in w["reason"] or w["reason"].startswith("next") for w in view["waiting"])
    began = time.monotonic()
    answer = c.call("llm.complete", messages=[{"role": "user", "content": "the shell"}], max_tokens=20)
    waited = answer["broker"]["queue_wait_s"]
    assert waited <= 0.9, waited                        # at most the one call in flight
    assert time.monotonic() - began < 2.5
    sent = [r.json["messages"][0]["content"] for r in model.requests]
    assert sent.index("the shell") == 1                  # right after the one that was running
    assert [o[0] for o in done()] == ["ok"] * 5
    stats = c.call("sys.info")["llm"]["by_principal"]
    assert stats["agent:busy"]["calls"] == 5 and stats["agent:busy"]["mean_queue_wait_s"] > waited


def test_past_its_bound_the_queue_answers_busy(aetherd, model):
    d = aetherd("llm.queue_limit = 2\n")
    c = d.connect()
    for _ in range(5):
        model.queue(Reply(delay=1.0))
    calls = [{"tag": i, "params": {"messages": HI, "max_tokens": 10}} for i in range(6)]
    out = run_agent(c, d, "flood", calls, context={"spend_tokens": 100000})()
    codes = sorted(o[0] for o in out)
    assert codes.count("busy") >= 3 and codes.count("ok") >= 2 and set(codes) <= {"ok", "busy"}, codes
    busy = [o[1] for o in out if o[0] == "busy"][0]
    assert "aether.llm.queue_limit" in busy or "waiting" in busy
    assert len(model.requests) == codes.count("ok")       # nothing dropped silently


def test_a_caller_that_hangs_up_is_cancelled_at_the_server_and_charged(aetherd, model):
    d = aetherd()
    c = d.connect()
    model.queue(Reply(content="x" * 400, piece=4, chunk_delay=0.05, usage=None))
    raw = socket.socket(socket.AF_UNIX)
    raw.connect(str(d.run / "abi.sock"))
    raw.sendall(json.dumps({"id": 1, "method": "llm.complete", "params": {
        "messages": HI, "stream": True, "max_tokens": 500}}).encode() + b"\n")
    sleep_until(lambda: c.call("llm.queue")["running"], 5)
    time.sleep(0.6)                                         # some pieces have streamed
    raw.close()
    sleep_until(lambda: not c.call("llm.queue")["running"], 5)
    shell = c.call("sys.info")["llm"]["by_principal"]["shell"]
    assert shell["cancelled"] == 1
    charged = c.call("llm.usage")["used_tokens"]
    assert 1 + 5 < charged < 5 + 100 + 10                   # the prompt and the pieces received, not 500
    assert c.call("sys.info")["hostname"]                   # aetherd carries on


def test_a_deadline_cancels_a_waiting_call_and_a_running_one(aetherd, model):
    d = aetherd()
    c = d.connect()
    model.queue(Reply(delay=3))
    began = time.monotonic()
    with pytest.raises(AbiError) as e:
        c.call("llm.complete", messages=HI, max_tokens=10, deadline_s=0.5)
    assert e.value.code == "unavailable" and "deadline of 0.5s passed" in str(e.value)
    assert time.monotonic() - began < 2
    assert c.call("llm.usage")["reserved_tokens"] == 0


def test_a_down_endpoint_opens_the_circuit_and_says_what_to_fix(aetherd, model):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    d = aetherd(endpoint=f"http://127.0.0.1:{port}/v1")
    c = d.connect()
    messages = []
    for _ in range(4):
        with pytest.raises(AbiError) as e:
            c.call("llm.complete", messages=HI, max_tokens=10)
        messages.append(str(e.value))
    assert "unreachable" in messages[0] and "is the model server running?" in messages[0]
    assert "calls are refused for" in messages[3] and "aether.llm.endpoint" in messages[3]
    began = time.monotonic()
    c.call("sys.info")
    assert time.monotonic() - began < 0.5                   # aetherd never blocks on the model
    assert c.call("llm.queue")["circuit"]["state"] == "open"
    assert c.call("llm.usage")["used_tokens"] == 0          # nothing reached a server


@pytest.mark.parametrize("reply, says", [
    (Reply(raw=b"<html>proxy error</html>", content_type="text/html"), "malformed_response"),
    (Reply(status=404, error="model 'fake' not found"), "aether.llm.model"),
    (Reply(drop_after=2, stream=True, usage=None), "mid-answer"),
    (Reply(delay=8), "aether.llm.timeout"),
])
def test_garbage_unknown_models_dropped_streams_and_slow_servers_say_so(aetherd, model, reply, says):
    d = aetherd("llm.timeout = 2\n")
    c = d.connect()
    model.queue(reply)
    with pytest.raises(AbiError) as e:
        c.call("llm.complete", messages=HI, max_tokens=10)
    assert e.value.code == "unavailable" and says in str(e.value), str(e.value)
    assert c.call("llm.usage")["reserved_tokens"] == 0
    assert c.call("llm.complete", messages=HI, max_tokens=10)["content"] == "Hello from the fake model."


def test_a_call_must_fit_the_window(aetherd, model):
    d = aetherd("llm.n_ctx = 512\n")
    c = d.connect()
    c.call("llm.complete", messages=HI)                      # the default 1024 is lowered to fit
    assert 16 <= model.requests[0].json["max_tokens"] <= 512 - 5
    long = [{"role": "system", "content": "be brief"}] + [
        {"role": "user", "content": f"message {i} " + "words " * 100} for i in range(6)]
    with pytest.raises(AbiError) as e:
        c.call("llm.complete", messages=long, max_tokens=100)
    text = str(e.value)
    assert e.value.code == "invalid_params" and "allows 512" in text and "drop messages 1" in text
    assert len(model.requests) == 1


def test_the_window_learnt_from_the_servers_error(aetherd, model):
    d = aetherd()
    c = d.connect()
    model.queue(Reply(status=400, error="This model's maximum context length is 600 tokens. However, you "
                                        "requested 1034 tokens (10 in the messages, 1024 in the completion)."))
    with pytest.raises(AbiError, match="window is 600 tokens"):
        c.call("llm.complete", messages=HI)
    c.call("llm.complete", messages=HI)
    assert model.requests[1].json["max_tokens"] <= 600
    assert c.call("llm.usage")["window"]["endpoint_n_ctx"] == 600


def test_spend_survives_a_crash_with_a_call_in_flight(aetherd, model):
    d = aetherd()
    c = d.connect()
    c.call("llm.complete", messages=HI, max_tokens=10)
    assert c.call("llm.usage")["used_tokens"] == 18
    model.queue(Reply(delay=5))
    threading.Thread(target=lambda: _ignore(lambda: d.connect(timeout=10).call(
        "llm.complete", messages=HI, max_tokens=100)), daemon=True).start()
    sleep_until(lambda: c.call("llm.queue")["running"], 5)
    d.stop(signal.SIGKILL)                                  # a crash: nothing settled
    d.start()
    c = d.connect()
    usage = c.call("llm.usage")
    assert usage["used_tokens"] >= 18 + 100 and usage["reserved_tokens"] == 0
    assert "held by calls in flight when aetherd stopped are charged" in d.log()


def _ignore(fn):
    try:
        fn()
    except Exception:  # noqa: BLE001 - the crash cuts it off
        pass


def test_a_plain_local_user_may_not_spend_the_models_tokens(aetherd, model, tmp_path):
    """Issue 15 item 7: a non-agent uid had no budget at all.  Now it is read-only (methods.py),
    so llm.complete is refused before the broker; past that gate its account would be
    aether.llm.uid_spend_tokens (tests/unit/test_broker_glue.py)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to call as another uid")
    import pathlib
    import tempfile
    run = tempfile.mkdtemp(prefix="aether-uid-")            # a run directory another uid can reach
    os.chmod(run, 0o755)
    d = aetherd("llm.uid_spend_tokens = 100\n", run=pathlib.Path(run))
    script = ("import json, sys\nfrom aether.client import Client\nfrom aether.abi.protocol import AbiError\n"
              "out = []\nwith Client(sys.argv[1]) as c:\n"
              "    for n in (40, 40, 40):\n"
              "        try:\n            c.call('llm.complete', messages=[{'role': 'user', 'content': 'hi'}], max_tokens=n)\n"
              "            out.append('ok')\n        except AbiError as e:\n            out.append(e.code)\n"
              "print(json.dumps(out))\n")
    done = subprocess.run(["/usr/bin/python3", "-c", script, str(d.run / "abi.sock")], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          preexec_fn=lambda: (os.setgid(54321), os.setuid(54321)))
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) <= {"permission_denied", "budget_exhausted"}
    assert model.requests == []


def test_status_shows_each_callers_model_calls(aetherd, model):
    d = aetherd()
    c = d.connect()
    model.queue(Reply(delay=0.2))
    c.call("llm.complete", messages=HI, max_tokens=10)
    out = subprocess.run([sys.executable, "-m", "aether.ctl", "--socket", str(d.run / "abi.sock"), "status"],
                         cwd=REPO, capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, PYTHONPATH=str(REPO))).stdout
    line = [x for x in out.splitlines() if x.strip().startswith("shell:")]
    assert line and "1 calls" in line[0] and "11 tokens in, 7 out" in line[0] and "mean queue wait" in line[0], out
    assert "model: fake at" in out and "circuit closed" in out
    from aether.shell.render import status
    assert "shell: 1 calls" in status(c.call("sys.info"))       # the shell's status intent


def test_stopping_an_agent_cancels_its_model_calls(aetherd, model):
    d = aetherd()
    c = d.connect()
    model.queue(Reply(delay=8), Reply(delay=8))
    run_agent(c, d, "sleeper", [{"tag": i, "params": {"messages": HI, "max_tokens": 50}} for i in range(2)],
              context={"spend_tokens": 10000})
    sleep_until(lambda: (q := c.call("llm.queue"))["running"] and q["waiting"], 10)
    began = time.monotonic()
    c.call("agent.stop", name="sleeper")
    sleep_until(lambda: not (q := c.call("llm.queue"))["running"] and not q["waiting"], 5)
    assert time.monotonic() - began < 3
    seen = state(c, "sleeper")["context"]
    assert seen["llm"]["cancelled"] == 2 and seen["reserved_tokens"] == 0
    from aether.llm import estimate_prompt
    assert seen["used_tokens"] == estimate_prompt(HI, []) + 50   # the running one: its whole hold; the waiting one: 0


def test_an_agent_sees_only_its_own_model_calls(aetherd, model):
    d = aetherd()
    c = d.connect()
    c.call("llm.complete", messages=HI, max_tokens=10)          # the shell's
    c.call("agent.spawn", manifest={"name": "nosy", "program": "tests.host.entries:abi_probe", "restart": "never",
                                    "args": ["probe.json", json.dumps([["sys.info", {}], ["llm.queue", {}]])]})
    sleep_until(lambda: state(c, "nosy")["state"] in ("exited", "failed"), 20)
    out = json.loads(next(p for p in (d.data / "home" / "nosy" / "probe.json", d.data / "agents" / "nosy" / "probe.json")
                          if p.exists()).read_text())
    assert out[0][0] == "ok" and "shell" not in out[0][1]["llm"]["by_principal"]
    assert "shell" in c.call("sys.info")["llm"]["by_principal"]
