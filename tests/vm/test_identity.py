"""Identity and privilege in the real image (issue 15, items 3, 4 and 6): agents as their own
uids in real cgroups, on an ext4 data disk that survives a power cut.

Boot one: a child agent stores a memory, tries to raise its own limits, tries to take a
reserved name and to write where aetherd reads
its manifests.  The power is cut.  Boot two: the child's name still belongs to its parent,
so nobody else gets its memories by declaring an agent of that name, unless the privileged
take it over explicitly, which the journal records.
"""

import json
import subprocess

import pytest

import harness
from aether.abi.protocol import AbiError

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


def data_disk(path, size_mib=64):
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "AETHER-DATA", str(path), f"{size_mib}M"],
                   check=True, capture_output=True)
    return path


def read(c, path):
    return c.call("tool.call", name="files.read", args={"path": path})["content"]


def wait_state(c, name, states, timeout=60):
    import time
    deadline = time.monotonic() + timeout
    while True:
        info = c.call("agent.inspect", name=name)
        if info["state"] in states:
            return info
        assert time.monotonic() < deadline, f"{name} never reached {states}: {info}"
        time.sleep(0.2)


def harness_retry(fetch, timeout=10):
    """fetch() until it answers something (the journal commits on aetherd's next pass)."""
    import time
    deadline = time.monotonic() + timeout
    while not (value := fetch()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return value


@pytest.mark.timeout(600)
def test_names_limits_and_trees_hold_in_the_image(booter, tmp_path):
    disk = data_disk(tmp_path / "data.img")
    boot = {"disk": disk, "kernel": harness.qemu.default_kernel(), "initrd": harness.qemu.default_initrd()}
    vm = booter.boot(**boot)
    c = harness.abi_client(vm)
    assert c.call("ctx.info")["durable"]
    c.call("agent.spawn", manifest={"name": "p", "program": "aether.builtin.drill:main", "args": ["idle"],
                                    "limits": {"memory": "96M"}})
    calls = [["ctx.remember", {"text": "the victim's secret"}],
             ["agent.set_limits", {"name": "victim", "memory": 1 << 40}],
             ["agent.set_limits", {"name": "victim", "memory": 16 << 20}],
             ["agent.spawn", {"manifest": {"name": "manifests", "program": "/bin/true"}}],
             ["tool.call", {"name": "files.write", "args": {"path": "../../manifests/evil.toml",
                                                            "content": 'name = "evil"\n'}}]]
    c.call("agent.spawn", parent="p", manifest={
        "name": "victim", "program": "/usr/bin/python3", "restart": "never", "limits": {"memory": "32M"},
        "args": ["-c", PROBE, "probe.json", json.dumps(calls)]})
    info = wait_state(c, "victim", ("exited", "failed"))
    out = json.loads(read(c, "/var/lib/aether/home/victim/probe.json"))
    assert [code for code, _ in out] == ["ok", "permission_denied", "ok", "invalid_params",
                                         "permission_denied"], (out, info)
    assert c.call("agent.inspect", name="victim")["limits"]["memory_bytes"] == 16 << 20
    assert c.call("agent.inspect", name="victim")["owner"] == "agent:p"
    listing = c.call("tool.call", name="files.list", args={"path": "/var/lib/aether/manifests"})
    assert "evil" not in json.dumps(listing)
    vm.proc.kill()                        # the power cut: the registry was fsynced at declaration
    vm.proc.wait(10)
    c.close()
    vm.close()

    vm = booter.boot(**boot)
    c = harness.abi_client(vm)
    thief = {"name": "victim", "program": "aether.builtin.drill:main", "args": ["exit", "0"],
             "restart": "never"}
    # The victim is durable: it is back after the power cut, as it rested.  Removing it
    # frees the agent, never the name: the name still belongs to its owner.
    assert c.call("agent.inspect", name="victim")["state"] == "exited"
    c.call("agent.remove", name="victim")
    with pytest.raises(AbiError, match="belongs to agent:p"):
        c.call("agent.spawn", manifest=thief)
    c.call("agent.spawn", manifest=thief, reclaim=True)
    entries = harness_retry(lambda: c.call("ctx.journal", kind="agent.reclaimed"))
    assert entries and entries[-1]["body"]["from"] == "agent:p" and entries[-1]["body"]["to"] == "host"
    c.close()
