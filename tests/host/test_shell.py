"""The intent shell against a real aetherd on the host: aetherctl intent and shell, the model planner.

The model is tests/fake_openai.py: a real HTTP server on loopback speaking the
OpenAI chat-completions protocol, as JSON and as an SSE stream.
"""

import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from aether.client import Client
from tests.fake_openai import FakeOpenAI, Reply

from .conftest import REPO, sleep_until

pytestmark = pytest.mark.host
ENV = dict(os.environ, PYTHONPATH=str(REPO))


class Aetherd:
    def __init__(self, tmp_path, config=""):
        self.run = Path(tempfile.mkdtemp(prefix="aesh-"))   # short: a socket path has at most 107 bytes
        self.data = tmp_path / "data"
        self.data.mkdir(exist_ok=True)
        if config:
            (self.data / "config").write_text(config)
        self.log = tmp_path / "aetherd.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "aether.aetherd", "--host", "--run-dir", str(self.run),
                                      "--data-dir", str(self.data)], cwd=REPO, env=ENV,
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        self.sock = self.run / "abi.sock"
        sleep_until(self.sock.exists, 30)

    def client(self):
        return Client(str(self.sock), timeout=20)

    def intent(self, line, *flags, timeout=60):
        """aetherctl intent: (exit status, output)."""
        r = subprocess.run([sys.executable, "-m", "aether.ctl", "--socket", str(self.sock), "intent", *flags, line],
                           cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.run, ignore_errors=True)


@pytest.fixture
def aetherd(tmp_path):
    d = Aetherd(tmp_path)
    yield d
    d.stop()


def spawn_sleeper(d, name="napper"):
    with d.client() as c:
        c.call("agent.spawn", manifest={"name": name, "program": "/bin/sh", "args": ["-c", "sleep 60"]})
        sleep_until(lambda: c.call("agent.inspect", name=name)["state"] == "running", 10)


def state(d, name):
    with d.client() as c:
        return c.call("agent.inspect", name=name)["state"]


# ---------------------------------------------------------------- aetherctl intent (the offline planner)


def test_intent_prints_the_plan_and_the_outcome(aetherd):
    spawn_sleeper(aetherd)
    code, out = aetherd.intent("which agents are running?")
    assert code == 0, out
    assert "plan (agents):" in out and "1. agent.list" in out and "napper" in out


def test_a_risky_intent_without_yes_runs_nothing(aetherd):
    spawn_sleeper(aetherd)
    code, out = aetherd.intent("stop napper")
    assert code == 1, out
    assert "needs a yes" in out and "--yes" in out
    assert state(aetherd, "napper") == "running"
    code, out = aetherd.intent("stop napper", "--yes")
    assert code == 0, out
    sleep_until(lambda: state(aetherd, "napper") == "stopped", 10)


def test_not_understood_exits_2_with_the_closest_things(aetherd):
    code, out = aetherd.intent("please frobnicate the agents")
    assert code == 2 and "I don't know how to do" in out and "Traceback" not in out


def test_every_intent_is_recorded_with_plan_steps_and_outcome(aetherd):
    aetherd.intent("remember that the blue door sticks")
    aetherd.intent("what do you know about the blue door?")
    with aetherd.client() as c:
        goals = c.call("ctx.goals", scope="user")
        assert [g["intent"] for g in goals] == ["what do you know about the blue door?",
                                                "remember that the blue door sticks"]
        assert all(g["status"] == "done" for g in goals)
        goal = c.call("ctx.goal", goal_id=goals[1]["id"])
        assert goal["steps"][0]["status"] == "done" and "ctx.remember" in goal["steps"][0]["description"]
        assert c.call("ctx.verify")["ok"]
    code, out = aetherd.intent("history")
    assert "remember that the blue door sticks" in out


def test_a_watch_intent_starts_a_watch_agent(aetherd):
    code, out = aetherd.intent("tell me when memory goes above 99.9%", "--yes")
    assert code == 0, out
    assert state(aetherd, "watch-memory") in ("starting", "running")
    code, out = aetherd.intent("undo")          # a one-shot is a session of its own
    assert code == 1 and "nothing to undo" in out


# ---------------------------------------------------------------- aetherctl shell on a terminal


def test_ctrl_c_cancels_the_running_plan_and_the_shell_goes_on(aetherd):
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(1)                              # accepts, never answers: the fetch hangs
    port = hang.getsockname()[1]
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, "-m", "aether.ctl", "--socket", str(aetherd.sock), "shell"], ENV)
    out = Reader(fd)
    try:
        out.expect("aether> ")
        os.write(fd, f"fetch http://127.0.0.1:{port}/slow\r".encode())
        out.expect("Run it? [y/N] ")
        os.write(fd, b"yes\r")
        time.sleep(1.0)                         # the fetch is waiting on the silent server
        os.write(fd, b"\x03")
        out.expect("cancelled")
        out.expect("aether> ")
        os.write(fd, b"what time is it\r")
        out.expect("uptime:")
        out.expect("aether> ")                  # raw mode again: Ctrl-D is a key, not the tty's EOF
        os.write(fd, b"\x04")                   # Ctrl-D: the shell ends
        sleep_until(lambda: os.waitpid(pid, os.WNOHANG)[0] == pid, 10)
        pid = None
    finally:
        hang.close()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    with aetherd.client() as c:
        fetch = [g for g in c.call("ctx.goals", scope="user") if g["intent"].startswith("fetch")][0]
        assert fetch["status"] == "abandoned" and "Ctrl-C" in fetch["outcome"]


class Reader:
    def __init__(self, fd):
        self.fd, self.text = fd, ""

    def expect(self, needle, timeout=30):
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            left = deadline - time.monotonic()
            assert left > 0, f"{needle!r} never came; got:\n{self.text}"
            if select.select([self.fd], [], [], left)[0]:
                try:
                    self.text += os.read(self.fd, 4096).decode(errors="replace")
                except OSError:
                    break
        assert needle in self.text, f"{needle!r} never came; got:\n{self.text}"
        self.text = self.text[self.text.index(needle) + len(needle):]


# ---------------------------------------------------------------- the model planner


@pytest.fixture(params=["json", "stream"])
def with_model(request, tmp_path):
    with FakeOpenAI() as server:
        config = f"llm.endpoint = {server.url}\nllm.model = fake\nllm.timeout = 3\n"
        if request.param == "stream":
            config += "llm.stream = on\n"
        d = Aetherd(tmp_path, config)
        yield d, server, request.param == "stream"
        d.stop()


def test_the_model_plans_with_tools_and_each_call_is_checked_and_shown(with_model):
    d, server, streamed = with_model
    server.queue(Reply(content=None, tool_calls=[("sys_processes", '{"limit": 5}'),
                                                 ("files_read", '{"path": "/etc/hostname"}')]))
    code, out = d.intent("what is eating my machine?")
    assert code == 0, out
    assert "plan (model, from the model):" in out
    assert "1. sys.processes limit=5" in out and "2. files.read path=/etc/hostname" in out
    request = server.requests[-1].json
    assert request["stream"] is streamed
    names = {t["function"]["name"] for t in request["tools"]}
    assert "sys_processes" in names and len(names) <= 6          # the tools that matter, not all
    assert "agent_spawn" not in names and "ctx_remember" not in names
    assert request["max_tokens"] <= 512
    system = request["messages"][0]["content"]
    assert "Machine state:" in system and "Recent journal" in system and request["messages"][1]["content"] == \
        "what is eating my machine?"
    with d.client() as c:
        assert c.call("llm.usage")["used_tokens"] >= 18             # the host's tokens are counted


def test_a_risky_model_step_still_needs_a_yes(with_model):
    d, server, _ = with_model
    spawn_sleeper(d)
    server.queue(Reply(content=None, tool_calls=[("agent_stop", '{"name": "napper"}')]))
    code, out = d.intent("calm things down")
    assert code == 1 and "needs a yes" in out
    assert state(d, "napper") == "running"


def test_a_model_that_answers_in_words_is_shown_the_answer(with_model):
    d, server, _ = with_model
    server.queue(Reply(content="Nothing needs doing: the machine is idle."))
    code, out = d.intent("is anything wrong?")
    assert code == 0 and "Nothing needs doing" in out


def test_tool_calls_as_text_are_understood(with_model):
    d, server, _ = with_model
    server.queue(Reply(content=json.dumps({"name": "agent_list", "arguments": {}})))
    code, out = d.intent("who is around")
    assert code == 0 and "1. agent.list" in out


@pytest.mark.parametrize("reply, why", [
    (Reply(status=500, error="model exploded"), "model exploded"),
    (Reply(content=None, tool_calls=[("launch_rockets", "{}")]), "not one of the shell's tools"),
    (Reply(content=None, tool_calls=[("files_read", '{"path": 7}')]), "breaks its schema"),
    (Reply(content=None, tool_calls=[("files_read", '{"path": ')]), "files.read"),
    (Reply(raw=b"{not json"), "malformed_response"),
    (Reply(delay=5), "timeout"),
])
def test_a_failing_model_falls_back_to_the_offline_planner_with_a_notice(with_model, reply, why):
    d, server, _ = with_model
    server.queue(reply)
    code, out = d.intent("list agents")
    assert code == 0, out
    assert "the model planner failed" in out and why in out and "using the offline planner" in out
    assert "plan (agents):" in out and "1. agent.list" in out


# ---------------------------------------------------------------- the agents the shell starts


def wait_rest(d, name, timeout=30):
    with d.client() as c:
        sleep_until(lambda: c.call("agent.inspect", name=name)["state"] in ("exited", "stopped", "failed"), timeout)
        return c.call("agent.inspect", name=name)


def test_a_goal_agent_without_a_model_records_its_goal_as_waiting(aetherd):
    code, out = aetherd.intent("spawn an agent to tidy the temp files", "--yes")   # a new principal: needs a yes
    assert code == 0, out
    info = wait_rest(aetherd, "tidy-temp-files")
    assert info["last_exit"] == 125, info                  # done: nothing to guess without a model
    with aetherd.client() as c:
        goals = c.call("ctx.goals", scope="agent:tidy-temp-files")
        assert [g["intent"] for g in goals] == ["tidy the temp files"]
        assert goals[0]["status"] == "open" and "no model is configured" in goals[0]["outcome"]


def test_a_goal_agent_works_with_the_model_and_asks_before_a_risky_tool(tmp_path):
    with FakeOpenAI() as server:
        d = Aetherd(tmp_path, f"llm.endpoint = {server.url}\nllm.model = fake\n")
        try:
            server.queue(Reply(content="I will check the time, then tidy up.",
                               tool_calls=[("clock_now", "{}"),                            # safe: runs
                                           ("files_delete", '{"path": "x"}')]),           # risky: asks
                         Reply(content="It is 10:00 UTC; nothing was deleted."))
            with d.client() as c:
                c.call("agent.spawn", manifest={"name": "clocky", "goal": "tell the time",
                                                "program": "aether.builtin.goal:main", "restart": "never"})
                asked = sleep_until(lambda: [r for r in c.call("agent.requests")["pending"]
                                             if r["agent"] == "clocky"], 30)
                assert asked[0]["step"].startswith("files.delete") and "tidy up" in asked[0]["why"]
                c.call("agent.deny", id=asked[0]["id"], note="keep it")
            info = wait_rest(d, "clocky")
            assert info["last_exit"] == 125, info
            with d.client() as c:
                goal = c.call("ctx.goals", scope="agent:clocky")[0]
                assert goal["status"] == "done" and goal["outcome"] == "It is 10:00 UTC; nothing was deleted."
                steps = c.call("ctx.goal", goal_id=goal["id"])["steps"]
                assert [s["description"].split()[1] for s in steps] == ["clock.now", "files.delete"]
                assert [s["status"] for s in steps] == ["done", "skipped"]
                assert c.call("agent.inspect", name="clocky")["context"]["used_tokens"] == 36   # 2 x 18
            second = server.requests[1].json["messages"]
            results = {m["tool_call_id"]: m["content"] for m in second if m["role"] == "tool"}
            assert '"uptime"' in results["call_fake_0"]
            assert results["call_fake_1"].startswith("not run: the person's answer was denied (keep it)")
        finally:
            d.stop()


def test_a_record_agent_writes_observations(aetherd):
    with aetherd.client() as c:
        c.call("agent.spawn", manifest={"name": "rec", "program": "aether.builtin.record:main",
                                        "args": ["load.1", "memory.used_percent", "--every", "1"]})
        found = sleep_until(lambda: c.call("ctx.search", query="recorded", scopes=["agent:rec"])["items"], 15)
        assert found[0]["kind"] == "observation" and "load.1 = " in found[0]["text"]
        assert set(found[0]["tags"]) == {"record", "load.1", "memory.used_percent"}
