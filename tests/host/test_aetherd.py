"""aetherd on the host: the ABI over its real socket, agents as real processes.

The host has no cgroup v2 hierarchy, so these run with process groups standing
in (limits are covered by the VM tests).
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from aether.client import Client
from aether.abi.protocol import Conflict, InvalidParams, NotFound

from .conftest import REPO, sleep_until

pytestmark = pytest.mark.host


@pytest.fixture
def aetherd(tmp_path):
    run, data = tmp_path / "run", tmp_path / "data"
    log = open(tmp_path / "aetherd.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "aether.aetherd", "--host", "--run-dir", str(run),
                             "--data-dir", str(data)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    sock = run / "abi.sock"
    sleep_until(sock.exists, 30)
    clients = []

    def connect():
        c = Client(str(sock), timeout=10)
        clients.append(c)
        return c

    connect.proc, connect.log, connect.data = proc, tmp_path / "aetherd.log", data
    yield connect
    for c in clients:
        c.close()
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def sh(name, script, **extra):
    return {"name": name, "program": "/bin/sh", "args": ["-c", script], **extra}


def state(c, name):
    return c.call("agent.inspect", name=name)


def test_spawn_runs_and_captures_output(aetherd):
    c = aetherd()
    info = c.call("agent.spawn", manifest=sh("hello", "echo hi from $AETHER_AGENT; sleep 30"))
    assert info["state"] in ("starting", "running")
    sleep_until(lambda: state(c, "hello")["state"] == "running", 5)
    sleep_until(lambda: c.call("agent.logs", name="hello")["lines"] == ["hi from hello"], 5)


def test_kill_9_comes_back_per_policy(aetherd):
    c = aetherd()
    c.call("agent.spawn", manifest=sh("phoenix", "sleep 30", restart="always"))
    first = sleep_until(lambda: (s := state(c, "phoenix"))["state"] == "running" and s["pid"], 5)
    os.kill(first, signal.SIGKILL)
    sleep_until(lambda: (s := state(c, "phoenix"))["state"] == "running" and s["pid"] != first, 10)
    assert state(c, "phoenix")["last_exit"] == 137 and state(c, "phoenix")["starts"] == 2


def test_crash_loop_ends_failed_and_says_why(aetherd):
    c = aetherd()
    c.call("agent.spawn", manifest=sh("crashy", "exit 3", restart="always",
                                      backoff={"initial": "50ms", "max": "100ms"},
                                      intensity={"restarts": 3, "period": "30s"}))
    s = sleep_until(lambda: (s := state(c, "crashy"))["state"] == "failed" and s, 15)
    assert "4 times within 30s" in s["reason"] and s["last_exit"] == 3


def test_missing_program_fails_with_the_reason(aetherd):
    c = aetherd()
    c.call("agent.spawn", manifest={"name": "ghost", "program": "/nonexistent/agent"})
    s = sleep_until(lambda: (s := state(c, "ghost"))["state"] == "failed" and s, 10)
    assert "No such file or directory" in s["reason"]


def test_forked_python_agent_runs_in_its_home(aetherd):
    c = aetherd()
    c.call("agent.spawn", manifest={"name": "py", "program": "tests.host.entries:report",
                                    "args": ["report.txt", "0"]})      # relative: its home
    s = sleep_until(lambda: (s := state(c, "py"))["state"] == "exited" and s, 5)
    assert s["last_exit"] == 0
    home = aetherd.data / "home" / "py"
    assert (home / "report.txt").exists()        # its cwd is its home (own uids: VM tests)


def test_an_agent_traceback_lands_in_its_logs(aetherd):
    c = aetherd()
    c.call("agent.spawn", manifest={"name": "bug", "program": "tests.host.entries:crash"})
    sleep_until(lambda: state(c, "bug")["state"] in ("backoff", "failed", "waiting"), 5)
    lines = sleep_until(lambda: (l := c.call("agent.logs", name="bug")["lines"]) and l, 5)
    assert any("RuntimeError: entry crashed on purpose" in line for line in lines)


def test_stop_stops_the_subtree(aetherd):
    c = aetherd()
    c.call("agent.spawn", manifest=sh("parent", "sleep 30", limits={"memory": "64M"},
                                      context={"spend_tokens": 1000}))
    c.call("agent.spawn", parent="parent", manifest=sh("child", "sleep 30", limits={"memory": "32M"},
                                                       context={"spend_tokens": 500}))
    sleep_until(lambda: state(c, "child")["state"] == "running", 5)
    assert state(c, "child")["lineage"] == ["parent", "child"]
    c.call("agent.stop", name="parent")
    sleep_until(lambda: state(c, "parent")["state"] == "stopped" == state(c, "child")["state"], 10)


def test_children_are_carved_out_of_the_parent(aetherd):
    c = aetherd()
    c.call("agent.spawn", manifest=sh("p", "sleep 30", limits={"memory": "64M"}))
    c.call("agent.spawn", parent="p", manifest=sh("c1", "sleep 30", limits={"memory": "48M"}))
    with pytest.raises(Exception) as e:
        c.call("agent.spawn", parent="p", manifest=sh("c2", "sleep 30", limits={"memory": "32M"}))
    assert e.value.code == "budget_exhausted" and "16 MiB" in str(e.value)


def test_bad_requests_keep_the_connection_usable(aetherd):
    c = aetherd()
    with pytest.raises(InvalidParams, match="limits.memory = 'lots'"):
        c.call("agent.spawn", manifest=sh("x", "true", limits={"memory": "lots"}))
    with pytest.raises(NotFound, match="no agent named 'nobody'"):
        c.call("agent.stop", name="nobody")
    c.call("agent.spawn", manifest=sh("dup", "sleep 30"))
    with pytest.raises(Conflict, match="already exists"):
        c.call("agent.spawn", manifest=sh("dup", "sleep 30"))
    c.sock.sendall(b"this is not json\n" + b"x" * (2 << 20) + b"\n")
    assert c.call("abi.hello")["server"] == "aetherd"


def test_events_stream_agent_changes(aetherd):
    c, watcher = aetherd(), aetherd()
    events = watcher.subscribe(["agent.state"])
    c.call("agent.spawn", manifest=sh("e", "exit 0"))
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "exited" not in seen:
        event = next(events)
        if event.get("agent") == "e":
            seen.append(event["state"])
    assert seen[:1] == ["waiting"] and "running" in seen and seen[-1] == "exited"


def test_sigterm_stops_every_agent_then_exits(aetherd):
    c = aetherd()
    c.call("agent.spawn", manifest=sh("stubborn", "trap '' TERM; sleep 60"))
    pid = sleep_until(lambda: (s := state(c, "stubborn"))["state"] == "running" and s["pid"], 5)
    aetherd.proc.send_signal(signal.SIGTERM)
    assert aetherd.proc.wait(20) == 0
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def run_probe(c, aetherd, name, calls, **extra):
    """Spawn an agent that makes ABI calls as itself; return [(code, result)]."""
    import json
    c.call("agent.spawn", manifest={"name": name, "program": "tests.host.entries:abi_probe",
                                    "args": ["probe.json", json.dumps(calls)], "restart": "never",
                                    **extra})
    sleep_until(lambda: state(c, name)["state"] in ("exited", "failed"), 20)
    out = aetherd.data / "home" / name / "probe.json"
    assert out.exists(), c.call("agent.logs", name=name)
    return json.loads(out.read_text())


def test_tools_are_listed_and_called(aetherd):
    c = aetherd()
    names = {t["name"] for t in c.call("tool.list")}
    assert {"files.read", "files.write", "fetch.url", "clock.now"} <= names
    assert "uptime_s" in str(c.call("tool.call", name="clock.now")) or c.call("tool.call", name="clock.now")
    with pytest.raises(InvalidParams, match="max_bytes"):
        c.call("tool.call", name="files.read", args={"path": "/etc/hostname", "max_bytes": -5})


def test_an_agent_is_confined_to_its_home(aetherd):
    c = aetherd()
    calls = [["tool.call", {"name": "files.write", "args": {"path": "note.txt", "content": "hi"}}],
             ["tool.call", {"name": "files.read", "args": {"path": "note.txt"}}],
             ["tool.call", {"name": "files.read", "args": {"path": "/etc/passwd"}}],
             ["tool.call", {"name": "files.read", "args": {"path": "../other/secret"}}],
             ["agent.stop", {"name": "sysmon-not-mine"}]]
    out = run_probe(c, aetherd, "confined", calls)
    assert [code for code, _ in out] == ["ok", "ok", "permission_denied", "permission_denied", "not_found"]
    assert "hi" in json_text(out[1][1])


def json_text(value):
    import json
    return json.dumps(value)


def test_an_agent_may_not_act_on_another(aetherd):
    c = aetherd()
    c.call("agent.spawn", manifest=sh("victim", "sleep 60"))
    out = run_probe(c, aetherd, "intruder", [["agent.stop", {"name": "victim"}],
                                             ["agent.signal", {"name": "victim", "signal": "KILL"}],
                                             ["agent.logs", {"name": "victim"}]])
    assert [code for code, _ in out] == ["permission_denied"] * 3
    assert "intruder" in out[0][1]
    assert state(c, "victim")["state"] == "running"


def test_llm_without_an_endpoint_says_what_to_set(aetherd):
    c = aetherd()
    with pytest.raises(Exception) as e:
        c.call("llm.complete", messages=[{"role": "user", "content": "hi"}])
    assert e.value.code == "unavailable" and "aether.llm.endpoint" in str(e.value)


@pytest.fixture
def aetherd_with_model(tmp_path):
    from tests.fake_openai import FakeOpenAI
    with FakeOpenAI() as server:
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "config").write_text(
            f"llm.endpoint = {server.url}\nllm.model = fake\nllm.api_key = sk-secret-key-123456\n")
        yield server, tmp_path


def test_llm_charges_the_agent_and_fails_closed(aetherd_with_model, tmp_path):
    from tests.fake_openai import Reply
    server, _ = aetherd_with_model
    run, data = tmp_path / "run", tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "aether.aetherd", "--host", "--run-dir", str(run),
                             "--data-dir", str(data)], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                            stdout=open(tmp_path / "log", "w"), stderr=subprocess.STDOUT)
    try:
        sleep_until((run / "abi.sock").exists, 30)
        c = Client(str(run / "abi.sock"), timeout=20)
        done = c.call("llm.complete", messages=[{"role": "user", "content": "hi"}])
        assert done["content"] == "Hello from the fake model."
        assert server.requests[0].headers["authorization"] == "Bearer sk-secret-key-123456"
        server.queue(Reply(usage={"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50}))
        ask = ["llm.complete", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 40}]
        too_much = ["llm.complete", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 60}]
        calls = [ask, ["llm.usage", {}], too_much]

        class Probe:
            pass
        Probe.data = data
        out = run_probe(c, Probe, "thinker", calls, context={"spend_tokens": 100})
        assert out[0][0] == "ok"
        assert out[0][1]["broker"]["charged"] == 50 and out[0][1]["broker"]["counted"] == "server"
        seen = out[1][1]
        assert out[1][0] == "ok" and seen["principal"] == "agent:thinker"
        assert (seen["spend_tokens"], seen["used_tokens"], seen["reserved_tokens"]) == (100, 50, 0)
        assert seen["calls"]["calls"] == 1 and seen["calls"]["tokens_in"] == 30
        assert out[2][0] == "budget_exhausted"          # 50 left cannot cover the prompt + 60
        assert len(server.requests) == 2                # the refused call sent nothing
        assert "sk-secret" not in (tmp_path / "log").read_text()
        c.close()
    finally:
        proc.terminate()
        proc.wait(15)


def test_context_through_the_abi(aetherd):
    c = aetherd()
    first = c.call("ctx.remember", text="the backup server is called hermes", tags=["infra"])
    c.call("ctx.remember", text="lunch is at noon", importance=0.1)
    window = c.call("ctx.window", query="backup server", budget_tokens=200)
    assert window["items"][0]["id"] == first["id"]
    assert window["tokens_used"] <= 200
    assert c.call("ctx.verify")["ok"] is True
    kinds = [e["kind"] for e in c.call("ctx.journal", limit=100)]
    assert "boot" in kinds
    with pytest.raises(NotFound, match="999"):
        c.call("ctx.recall", memory_id=999)
    with pytest.raises(InvalidParams):
        c.call("ctx.remember", text=5)


def test_an_agent_sees_only_its_own_context(aetherd):
    c = aetherd()
    c.call("ctx.remember", text="the shell's own secret plan", scope="user")
    mine = run_probe(c, aetherd, "memo", [
        ["ctx.remember", {"text": "memo remembers the blue door"}],
        ["ctx.window", {"query": "secret plan blue door", "budget_tokens": 500}],
        ["ctx.remember", {"text": "sneaky", "scope": "user"}],
        ["ctx.export", {"path": "/tmp/stolen.json"}],
        ["ctx.export", {"path": "mine.json"}]])
    assert mine[0][0] == "ok"
    texts = [item["text"] for item in mine[1][1]["items"]]
    assert texts == ["memo remembers the blue door"]          # not the shell's memory
    assert mine[2][0] == "permission_denied"
    assert mine[3][0] == "permission_denied" and "inside" in mine[3][1]
    assert mine[4][0] == "ok"
    everything = c.call("ctx.window", query="blue door secret plan", budget_tokens=500)
    assert len(everything["items"]) == 2                       # the shell sees everything


def test_concurrent_writes_are_committed_together(aetherd):
    clients = [aetherd() for _ in range(4)]
    for i, c in enumerate(clients):
        c.sock.sendall(b"".join(
            f'{{"id": {n}, "method": "ctx.append", "params": {{"kind": "note.test", "body": {{"c": {i}, "n": {n}}}}}}}\n'.encode()
            for n in range(1, 26)))
    for c in clients:
        answers = [c._next() for _ in range(25)]
        assert all("result" in a for a in answers), answers[:3]
    entries = clients[0].call("ctx.journal", kind="note.test", limit=1000)
    assert len(entries) == 100
    assert clients[0].call("ctx.verify")["ok"] is True



MODEL_SUMMARY = "Pump pressure rose from 101 to 111 kPa; operators Ada and Bo logged it."


def remember_readings(c, first, n):
    for i in range(first, first + n):
        c.call("ctx.remember", importance=0.1, text=(
            f"Reading {i}: the pump pressure was {101 + i} kPa at station {i % 4}. Operator "
            f"{'Ada' if i % 2 else 'Bo'} logged it after inspecting valves {i} and {i + 1}, and noted "
            "that the coolant level was normal and the bearings were quiet. The next inspection is "
            f"due in {i + 2} days, after the filters of line {i % 5} are replaced by the night shift."))


def test_a_model_rewrites_compaction_summaries_and_failures_keep_the_extractive_one(aetherd_with_model,
                                                                                      request):
    from tests.fake_openai import Reply
    server, tmp_path = aetherd_with_model
    with open(tmp_path / "data" / "config", "a") as f:
        f.write("llm.timeout = 1\n")
    aetherd = request.getfixturevalue("aetherd")
    c = aetherd()

    def model_compaction():
        return c.call("ctx.info")["model_compaction"]

    def compaction(cid):
        return [x for x in c.call("ctx.compacted") if x["id"] == cid][0]

    assert model_compaction() == {"enabled": True, "model": "fake", "queued": 0, "running": None, "jobs": 0,
                                  "succeeded": 0, "failed": 0, "dropped": 0, "tokens": 0}

    # over quota: compacted at once (extractive), then rewritten by the model
    c.call("ctx.set_quota", scope="user", items=10)
    server.queue(Reply(content=MODEL_SUMMARY))
    remember_readings(c, 0, 11)
    first = sleep_until(lambda: [x for x in c.call("ctx.compacted") if x["summariser"] == "model:fake"], 20)[0]
    summary = c.call("ctx.recall", memory_id=first["summary_id"])
    assert summary["text"].startswith(f"[summary of {first['items']} compacted items") and \
        summary["text"].endswith("\n" + MODEL_SUMMARY) and summary["state"] == "live"
    assert [i["id"] for i in c.call("ctx.search", query="operators Ada Bo", kinds=["summary"])["items"]] == \
        [first["summary_id"]]
    entry = c.call("ctx.journal", kind="ctx.resummarise")[0]
    assert entry["body"]["compaction"] == first["id"] and entry["body"]["model_tokens"] == 18
    assert c.call("ctx.recall", memory_id=entry["body"]["replaced_summary"])["state"] == "forgotten"
    asked = server.requests[0].json
    assert asked["model"] == "fake" and asked["temperature"] == 0
    assert asked["messages"][0]["role"] == "system" and "Reading 0:" in asked["messages"][1]["content"]
    assert model_compaction()["succeeded"] == 1 and model_compaction()["tokens"] == 18

    # the model fails: the extractive summary stays, the failure is journalled
    c.call("ctx.set_quota", scope="user", items=1000)          # from here on, ctx.compact compacts
    for n, (reply, error) in enumerate(((Reply(status=500, error="the model fell over"), "endpoint_error"),
                                        (Reply(delay=3), "timeout"))):
        server.queue(reply)
        remember_readings(c, 20 + 10 * n, 6)
        made = c.call("ctx.compact", scope="user", items_target=3)["compactions"][0]
        sleep_until(lambda n=n: model_compaction()["failed"] == n + 1, 20)
        entry = sleep_until(lambda made=made: [e for e in c.call("ctx.journal", kind="ctx.resummarise.failed")
                                               if e["body"]["compaction"] == made["id"]], 5)[0]
        assert entry["scope"] == "user" and entry["body"]["error"] == error
        assert (compaction(made["id"])["summariser"], compaction(made["id"])["summary_id"]) == \
            ("extractive-v1", made["summary_id"])
        assert c.call("ctx.recall", memory_id=made["summary_id"])["state"] == "live"
    assert "the extractive one stays" in aetherd.log.read_text()

    # restored while the model writes: its answer is dropped
    server.queue(Reply(content=MODEL_SUMMARY, delay=0.8))
    remember_readings(c, 40, 6)
    made = c.call("ctx.compact", scope="user", items_target=3)["compactions"][0]
    c.call("ctx.restore", compaction_id=made["id"])
    sleep_until(lambda: model_compaction()["dropped"] == 1, 20)
    entry = sleep_until(lambda: c.call("ctx.journal", kind="ctx.resummarise.dropped"), 5)[0]
    assert entry["body"]["compaction"] == made["id"] and "already restored" in entry["body"]["reason"]
    assert compaction(made["id"])["summariser"] == "extractive-v1"
    assert {k: model_compaction()[k] for k in ("jobs", "succeeded", "failed", "dropped", "queued")} == \
        {"jobs": 4, "succeeded": 1, "failed": 2, "dropped": 1, "queued": 0}
    assert c.call("ctx.verify")["ok"] is True
