"""Kernel confinement on the host (aetherd --host, as root here): Landlock and a network
namespace per agent, and launch failures that fail one agent, never admission.

The Landlock and netns checks need a kernel that has them and root (they skip, saying
so, elsewhere); the VM test (tests/vm/test_confinement.py) runs the same intruder in
the image, as its own uid, with hidepid.
"""

import json
import os
import socket

import pytest

from aether.agent import confine, launch

from .conftest import sleep_until
from . import test_aetherd
from .test_aetherd import sh, state

aetherd = test_aetherd.aetherd          # the fixture: aetherd --host on a temporary data location

pytestmark = pytest.mark.host


def needs_confinement():
    abi, why = confine.landlock_abi()
    if not abi:
        pytest.skip(f"no Landlock on this host: {why}")
    if confine._probe_netns():
        pytest.skip(f"no network namespaces here: {confine._probe_netns()}")


def done(c, name, timeout=20):
    return sleep_until(lambda: (s := state(c, name))["state"] in ("exited", "failed") and s, timeout)


def results(c, name):
    lines = c.call("agent.logs", name=name, lines=500)["lines"]
    out = {}
    for line in lines:
        if line.startswith("{"):
            row = json.loads(line)
            if "try" in row:
                out[row["try"]] = row
    return out, lines


def test_a_bad_module_fails_that_agent_and_admission_goes_on(aetherd):
    c = aetherd()
    info = c.call("agent.spawn", manifest={"name": "nomod", "program": "aether.builtin.nosuchmodule:main"})
    s = sleep_until(lambda: (s := state(c, "nomod"))["state"] == "failed" and s, 10) if \
        info["state"] != "failed" else info
    assert "ModuleNotFoundError" in s["reason"] and "nosuchmodule" in s["reason"]
    # the old code raised out of admission here: every later spawn answered `internal`
    c.call("agent.spawn", manifest=sh("after", "sleep 30"))
    sleep_until(lambda: state(c, "after")["state"] == "running", 10)
    c.call("agent.spawn", manifest={"name": "nofunc", "program": "aether.builtin.drill:nosuch"})
    s = sleep_until(lambda: (s := state(c, "nofunc"))["state"] == "failed" and s, 10)
    assert "nosuch" in s["reason"]
    c.call("agent.start", name="nomod")          # trying again fails again, alone
    sleep_until(lambda: state(c, "nomod")["state"] == "failed", 10)
    assert state(c, "after")["state"] == "running"


def test_the_intruder_is_stopped_by_the_kernel(aetherd, tmp_path):
    needs_confinement()
    c = aetherd()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.5)
    c.call("agent.spawn", manifest=sh("victim", "echo my secret > secret; sleep 60"))
    sleep_until(lambda: (aetherd.data / "home" / "victim" / "secret").exists()
                or (aetherd.data / "agents" / "victim" / "secret").exists(), 10)
    store = aetherd.data / "context.db"
    config = aetherd.data / "config"
    config.write_text("llm.api_key = sk-secret\n")
    c.call("agent.spawn", manifest={"name": "intruder", "program": "aether.builtin.intruder:main",
                                    "args": ["--store", str(store), "--config", str(config),
                                             "--tcp", f"127.0.0.1:{port}", "--tcp", "10.0.2.2:80",
                                             "--udp", "10.0.2.2:53"]})
    done(c, "intruder")
    got, lines = results(c, "intruder")
    assert any('"done"' in line for line in lines), lines
    holes = {k: v for k, v in got.items() if v["outcome"] not in ("blocked", "control", "info")
             and not k.startswith("stat /proc/")}         # hidepid is the image's /proc only
    # Same uid as aetherd on the host: only the kernel's confinement stands in the way.
    assert not holes, json.dumps(holes, indent=1)
    for must in ("read " + str(store), "read " + str(config), "read /proc/cmdline",
                 "hardlink the victim's file into own home", "read through the symlink",
                 "tcp connect 127.0.0.1:%d" % port, "write /tmp/intruder"):
        assert got[must]["outcome"] == "blocked", got[must]
    assert got["real network interfaces"]["detail"] == ""
    assert not os.path.exists("/tmp/intruder")
    server.settimeout(0.2)
    with pytest.raises(OSError):
        server.accept()                 # nothing reached the host's loopback
    c.call("agent.spawn", manifest={"name": "udper", "program": "/usr/bin/python3", "args": [
        "-c", f"import socket; socket.socket(2, 2).sendto(b'x', ('127.0.0.1', {udp.getsockname()[1]}))"]})
    assert done(c, "udper")["last_exit"] == 0       # sent: to its own loopback, not the host's
    with pytest.raises(OSError):
        udp.recv(10)
    server.close()
    udp.close()


def test_an_agent_granted_net_reaches_the_host_network(aetherd):
    needs_confinement()
    c = aetherd()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    c.call("agent.spawn", manifest={"name": "netter", "program": "aether.builtin.intruder:main",
                                    "args": ["--tcp", f"127.0.0.1:{port}"], "grant": ["net"]})
    done(c, "netter")
    got, lines = results(c, "netter")
    assert got[f"tcp connect 127.0.0.1:{port}"]["outcome"] == "allowed", lines
    assert got["real network interfaces"]["detail"] != ""
    assert got["read /proc/cmdline"]["outcome"] == "blocked"     # net is not the files
    server.close()


def test_a_child_gets_no_net_its_parent_lacks(aetherd):
    from aether.abi.protocol import AbiError
    c = aetherd()
    c.call("agent.spawn", manifest=sh("plain", "sleep 30"))
    with pytest.raises(AbiError) as e:
        c.call("agent.spawn", parent="plain", manifest={**sh("kid", "sleep 1"), "grant": ["net"]})
    assert "net" in str(e.value)


# -- the policy, without a kernel ------------------------------------------------------


class NoLandlock(confine.Policy):
    def __init__(self, strict):
        self.strict, self.abi, self.no_landlock, self.no_netns = strict, 0, "no Landlock here", None
        self._paths = {}


def test_strict_policy_refuses_an_agent_the_kernel_cannot_confine(monkeypatch):
    monkeypatch.setitem(launch._policies, True, NoLandlock(True))
    spec = launch.LaunchSpec("/bin/true", [], {}, os.devnull, os.getuid(), os.getgid(), "/",
                             -1, "lonely", strict=True)
    with pytest.raises(launch.LaunchError, match="not started: the kernel cannot confine it: .*no Landlock"):
        launch.launch(spec)
    assert NoLandlock(False).problems() and NoLandlock(False).check("x") is None   # host: warned


def test_rights_the_kernel_does_not_know_are_dropped():
    assert confine.FS_RIGHTS[1] & confine.REFER == 0
    assert confine.FS_RIGHTS[2] & confine.REFER and not confine.FS_RIGHTS[2] & confine.TRUNCATE
    assert confine.FS_RIGHTS[3] & confine.TRUNCATE and not confine.FS_RIGHTS[3] & confine.IOCTL_DEV
    assert confine.FS_RIGHTS[min(99, max(confine.FS_RIGHTS))] == (1 << 16) - 1


def test_read_paths_never_hold_the_data_location(tmp_path, monkeypatch):
    home = tmp_path / "data" / "home" / "a"
    home.mkdir(parents=True)
    monkeypatch.setattr("sys.path", ["/", str(tmp_path), str(tmp_path / "data" / "home"), "/usr/lib"])
    paths = dict(confine.read_paths(str(home)))
    assert "/" not in paths and str(tmp_path) not in paths
    assert not any(p.startswith(str(tmp_path)) for p in paths)
    assert "/usr" in paths or "/usr/lib" in paths
    proc = dict(confine.proc_paths())
    assert "/proc/cmdline" not in proc and "/proc/meminfo" in proc and "/proc/self" not in proc
    assert f"/proc/{os.getpid()}" in proc and not any(p[6:].isdigit() and int(p[6:]) != os.getpid()
                                                       for p in proc)
