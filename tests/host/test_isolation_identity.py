"""Privilege and identity (issue 15, items 2, 3, 4 and 6), tried as an attacker would.

aetherd runs here as root, as in the image, so agents run as their own uids
(cgroups aside: the host's hierarchy is not aetherd's, so process sessions
stand in for them).  A plain local user is a process of another uid that is
no agent.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from aether.abi.protocol import AbiError
from aether.client import Client

from .conftest import REPO, sleep_until

pytestmark = [pytest.mark.host,
              pytest.mark.skipif(os.geteuid() != 0, reason="agents as their own uids need root")]

LOCAL_UID = 4242
PROBE = """
import json, sys
from aether.abi.protocol import AbiError
from aether.client import Client
out = []
with Client() as c:
    for method, params in json.loads(sys.argv[2]):
        try:
            out.append(["ok", c.call(method, **params)])
        except AbiError as e:
            out.append([e.code, str(e)])
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
"""


class RootAetherd:
    """aetherd as root on one data directory; it can be stopped and started again."""

    def __init__(self, base):
        self.base = base
        self.run, self.data = base / "run", base / "data"
        self.sock = self.run / "abi.sock"
        self.proc = None
        self.clients = []

    def start(self):
        self.log = open(self.base / "aetherd.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aether.aetherd", "--run-dir", str(self.run), "--data-dir", str(self.data),
             "--manifests", str(self.data / "manifests"), "--cgroup-root", str(self.base / "no-cgroups"),
             "--port", "no-such-port"],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(REPO)))
        sleep_until(lambda: self.sock.exists() and self._answers(), 30)
        return self

    def _answers(self):
        try:
            with Client(str(self.sock), timeout=5) as c:
                return c.call("abi.hello")
        except (OSError, AbiError):
            return None

    def client(self):
        c = Client(str(self.sock), timeout=15)
        self.clients.append(c)
        return c

    def stop(self):
        for c in self.clients:
            c.close()
        self.clients = []
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if self.sock.exists():
            self.sock.unlink()

    def text_log(self):
        return (self.base / "aetherd.log").read_text()


@pytest.fixture
def rootd():
    base = Path(tempfile.mkdtemp(prefix="aether-identity-"))
    os.chmod(base, 0o755)                  # agents and the local user reach the socket and their homes
    d = RootAetherd(base).start()
    yield d
    d.stop()
    shutil.rmtree(base, ignore_errors=True)


def state(c, name):
    return c.call("agent.inspect", name=name)


def probe(name, calls, **extra):
    """A manifest for an agent that makes these ABI calls as itself, then writes the outcomes."""
    return {"name": name, "program": "/usr/bin/python3", "args": ["-c", PROBE, "probe.json", json.dumps(calls)],
            "restart": "never", "env": {"PYTHONPATH": str(REPO)}, **extra}


def run_probe(d, c, name, calls, parent=None, **extra):
    params = {"parent": parent} if parent else {}
    c.call("agent.spawn", manifest=probe(name, calls, **extra), **params)
    sleep_until(lambda: state(c, name)["state"] in ("exited", "failed"), 30)
    out = d.data / "home" / name / "probe.json"
    assert out.exists(), (state(c, name), c.call("agent.logs", name=name))
    return json.loads(out.read_text())


def as_local_user(d, calls):
    """Make these ABI calls as a plain local uid (no agent, not root); [(code, result)]."""
    script = PROBE.replace("Client()", f"Client({str(d.sock)!r})")
    out = d.base / f"local-{time.monotonic_ns()}.json"
    fd = os.open(out, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chown(out, LOCAL_UID, LOCAL_UID)
    subprocess.run(["/usr/bin/python3", "-c", script, str(out), json.dumps(calls)], check=True, timeout=60,
                   user=LOCAL_UID, group=LOCAL_UID, extra_groups=[], cwd="/",
                   env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    return json.loads(out.read_text())


def codes(outcomes):
    return [code for code, _ in outcomes]


ROOT_AGENT = {"name": "rooty", "program": "/bin/sh", "args": ["-c", "id -u > uid.txt; sleep 30"],
              "user": "root", "grant": ["root"]}


# -- item 2: a plain local uid is read-only ----------------------------------------------------

def test_a_local_user_cannot_spawn_a_root_agent(rootd):
    out = as_local_user(rootd, [["agent.spawn", {"manifest": ROOT_AGENT}]])
    assert codes(out) == ["permission_denied"] and "may only read" in out[0][1]
    assert rootd.client().call("agent.list") == []


def test_a_local_user_may_read_public_state_and_change_nothing(rootd):
    c = rootd.client()
    c.call("agent.spawn", manifest={"name": "target", "program": "/bin/sh", "args": ["-c", "sleep 30"]})
    sleep_until(lambda: state(c, "target")["state"] == "running", 10)
    reads = [["abi.hello", {}], ["sys.info", {}], ["agent.list", {}], ["agent.inspect", {"name": "target"}],
             ["ctx.scopes", {}], ["tool.list", {}]]
    writes = [["agent.stop", {"name": "target"}], ["agent.set_limits", {"name": "target", "pids": 1}],
              ["agent.signal", {"name": "target", "signal": "KILL"}], ["ctx.remember", {"text": "hi"}],
              ["ctx.create_scope", {"scope": "shared:mine"}], ["sys.alert", {"level": "critical",
                                                                             "message": "fake"}],
              ["tool.call", {"name": "files.write", "args": {"path": "/tmp/x", "content": "x"}}],
              ["llm.complete", {"messages": [{"role": "user", "content": "hi"}]}],
              ["sys.power", {"action": "poweroff"}]]
    out = as_local_user(rootd, reads + writes)
    assert codes(out) == ["ok"] * len(reads) + ["permission_denied"] * len(writes), out
    assert out[0][1]["you"]["principal"] == f"uid:{LOCAL_UID}"
    assert state(c, "target")["state"] == "running"


def test_an_agent_cannot_spawn_root_or_grant_itself_more_than_it_has(rootd):
    c = rootd.client()
    child = {"program": "/bin/true", "restart": "never"}
    out = run_probe(rootd, c, "climber", [
        ["agent.spawn", {"manifest": ROOT_AGENT}],
        ["agent.spawn", {"manifest": {"name": "granted", "grant": ["root"], **child}}],
        ["agent.spawn", {"manifest": {"name": "hungry", "limits": {"pids": 10000}, **child}}],
        ["agent.spawn", {"manifest": {"name": "outside", **child}, "reclaim": True}]],
        limits={"pids": 32})
    assert codes(out) == ["permission_denied", "permission_denied", "budget_exhausted", "permission_denied"], out
    assert [a["name"] for a in c.call("agent.list")] == ["climber"]


# -- item 3: names cannot reach the trees aetherd reads ----------------------------------------

def test_an_agent_named_manifests_cannot_plant_a_boot_manifest(rootd):
    c = rootd.client()
    out = run_probe(rootd, c, "planter", [
        ["agent.spawn", {"manifest": {"name": "manifests", "program": "/bin/sh", "restart": "never",
                                      "args": ["-c", "echo x > evil.toml"]}}],
        ["tool.call", {"name": "files.write", "args": {"path": "../../manifests/evil.toml",
                                                       "content": 'name = "evil"\nprogram = "/bin/true"\n'}}]])
    assert codes(out) == ["invalid_params", "permission_denied"], out
    assert "reserved name" in out[0][1]
    assert os.listdir(rootd.data / "manifests") == []
    assert os.stat(rootd.data / "manifests").st_mode & 0o777 == 0o700


def test_reserved_words_are_not_agent_names(rootd):
    c = rootd.client()
    for word in ("status", "explain", "reboot", "poweroff", "help", "undo", "history", "home", "system",
                 "root", "host", "shell"):
        with pytest.raises(AbiError, match="reserved name"):
            c.call("agent.spawn", manifest={"name": word, "program": "/bin/true"})


def test_a_manifest_planted_in_the_old_layout_does_not_run_after_the_upgrade(rootd):
    """The old layout: an agent called 'manifests' had its home at agents/manifests, the very
    directory aetherd read manifests from.  Its planted root manifest must not run."""
    rootd.stop()
    for path in ("home", "manifests", "system"):
        shutil.rmtree(rootd.data / path)
    planted = rootd.data / "agents" / "manifests"
    planted.mkdir(parents=True)
    (planted / "evil.toml").write_text('name = "evil"\nprogram = "/bin/sh"\nuser = "root"\ngrant = ["root"]\n'
                                       'args = ["-c", "touch /tmp/aether-evil-ran; sleep 30"]\n')
    os.chown(planted / "evil.toml", 10003, 10003)
    os.chown(planted, 10003, 10003)
    rootd.start()
    c = rootd.client()
    assert "evil" not in [a["name"] for a in c.call("agent.list")]
    alerts = [e for e in c.call("sys.events", since=0) if e["kind"] == "alert"]
    assert any("NOT run" in a["message"] for a in alerts), alerts
    assert (rootd.data / "home" / "manifests" / "evil.toml").exists()


# -- item 4: a name is an identity with an owner -----------------------------------------------

def test_a_recycled_name_does_not_hand_over_memories_or_files(rootd):
    c = rootd.client()
    out = run_probe(rootd, c, "victim", [["ctx.remember", {"text": "the victim's secret"}]])
    assert codes(out) == ["ok"]
    (rootd.data / "home" / "victim" / "diary.txt").write_text("private")
    c.call("agent.remove", name="victim")
    rootd.stop()
    rootd.start()                                         # the registry survives the restart
    c = rootd.client()
    c.call("agent.spawn", manifest={"name": "mallory", "program": "/bin/sh", "args": ["-c", "sleep 30"],
                                    "limits": {"memory": "128M"}})
    sleep_until(lambda: state(c, "mallory")["state"] == "running", 10)
    small = {"limits": {"memory": "16M"}}
    out = run_probe(rootd, c, "thief", [["agent.spawn", {"manifest": probe("victim", [
        ["ctx.search", {"query": "secret"}]], **small)}]], parent="mallory", limits={"memory": "32M"})
    assert codes(out) == ["conflict"] and "belongs to shell" in out[0][1], out
    with pytest.raises(AbiError, match="belongs to shell"):     # the shell, below mallory: mallory's then
        c.call("agent.spawn", parent="mallory", manifest=probe("victim", [], **small))


def test_the_privileged_take_a_name_over_only_explicitly_and_it_is_journalled(rootd):
    c = rootd.client()
    c.call("agent.spawn", manifest={"name": "p", "program": "/bin/sh", "args": ["-c", "sleep 30"]})
    c.call("agent.spawn", parent="p", manifest={"name": "kid", "program": "/bin/true", "restart": "never"})
    sleep_until(lambda: state(c, "kid")["state"] == "exited", 10)
    c.call("agent.remove", name="kid")
    with pytest.raises(AbiError, match="belongs to agent:p"):
        c.call("agent.spawn", manifest={"name": "kid", "program": "/bin/true"})
    c.call("agent.spawn", reclaim=True, manifest={"name": "kid", "program": "/bin/true", "restart": "never"})
    entries = sleep_until(lambda: c.call("ctx.journal", kind="agent.reclaimed"), 10)
    assert entries[-1]["body"]["from"] == "agent:p" and entries[-1]["body"]["to"] == "shell"


def test_an_agents_home_is_its_own(rootd):
    c = rootd.client()
    run_probe(rootd, c, "owner", [])
    st = os.stat(rootd.data / "home" / "owner")
    assert st.st_uid >= 10000 and st.st_mode & 0o777 == 0o700
    assert os.stat(rootd.data / "home").st_mode & 0o777 == 0o711
    assert os.stat(rootd.data / "system" / "names.json").st_mode & 0o077 == 0


# -- item 6: limits ------------------------------------------------------------------------------

def test_an_agent_cannot_raise_its_own_limits(rootd):
    c = rootd.client()
    out = run_probe(rootd, c, "greedy", [
        ["agent.set_limits", {"name": "greedy", "memory": 1 << 40, "cpu_percent": 6400, "pids": 100000}],
        ["agent.set_limits", {"name": "greedy", "memory": 32 << 20}]],
        limits={"memory": "64M", "pids": 32})
    assert codes(out) == ["permission_denied", "ok"], out
    assert state(c, "greedy")["limits"]["memory_bytes"] == 32 << 20
    with pytest.raises(AbiError, match="pool"):
        c.call("agent.set_limits", name="greedy", memory=1 << 40)          # not even the shell
