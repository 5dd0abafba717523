"""Kernel confinement in the real image: a hostile agent (aether.builtin.intruder), as its
own uid, under Landlock, in its own network namespace, with /proc mounted hidepid=invisible,
tries raw reads and writes outside its home, /proc snooping, symlink and hardlink tricks
and raw sockets; every one must fail.  A control agent granted `net` sees the machine's
network interface; aetherd keeps its full view (it still names every agent's process).

One VM (with a virtio-net NIC) serves the module.
"""

import json
import time

import pytest

import harness

ONE_BOOT = 300
PY = "/usr/bin/python3.11"


@pytest.fixture(scope="module")
def machine(image, request):
    b = harness.Booter(f"{request.module.__name__}.shared")
    try:
        vm = b.boot(memory=768, net=True)
        client = harness.abi_client(vm)
        yield vm, client
        client.close()
    finally:
        b.close()


def wait(c, name, predicate, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        info = c.call("agent.inspect", name=name)
        if predicate(info):
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} did not get there within {timeout}s: {info}")
        time.sleep(0.3)


def intruder_run(c, name, *extra_args, **manifest):
    c.call("agent.spawn", manifest={"name": name, "program": "aether.builtin.intruder:main",
                                    "args": ["--tcp", "10.0.2.2:80", "--udp", "10.0.2.3:53",
                                             *extra_args, "--idle"], **manifest})
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        lines = c.call("agent.logs", name=name, lines=500)["lines"]
        if any(line.startswith('{"done"') for line in lines):
            break
        info = c.call("agent.inspect", name=name)
        assert info["state"] in ("starting", "running"), \
            f"{name} is {info['state']} ({info['reason']}):\n" + "\n".join(lines[-20:])
        time.sleep(0.5)
    else:
        raise AssertionError(f"{name} never finished: {lines}")
    return {row["try"]: row for row in map(json.loads, (l for l in lines if l.startswith('{"try"')))}


@pytest.mark.timeout(ONE_BOOT)
def test_the_intruder_is_stopped_by_the_kernel(machine):
    vm, c = machine
    c.call("agent.spawn", manifest={"name": "victim", "program": PY, "args": [
        "-c", "open('secret', 'w').write('victim data'); import time; time.sleep(3600)"]})
    wait(c, "victim", lambda i: i["state"] == "running")
    time.sleep(1)
    got = intruder_run(c, "intruder")
    holes = {k: v for k, v in got.items() if v["outcome"] not in ("blocked", "control", "info")}
    assert not holes, json.dumps(holes, indent=1)
    for must in ("read /var/lib/aether/context.db", "read /proc/cmdline", "read /proc/1/environ",
                 "stat /proc/1", "see other processes in /proc", "write /tmp/intruder",
                 "read through the symlink", "hardlink the victim's file into own home",
                 "hardlink the store into own home", "tcp connect 10.0.2.2:80",
                 "udp send 10.0.2.3:53", "raw ICMP to 10.0.2.2", "mount a tmpfs over own home"):
        assert got[must]["outcome"] == "blocked", got[must]
    assert got["real network interfaces"]["detail"] == ""
    assert "Permission denied" in got["read /var/lib/aether/context.db"]["detail"]   # Landlock
    assert "No such file" in got["stat /proc/1"]["detail"]                           # hidepid
    # aetherd keeps the full view: it still knows the intruder's process as the agent's
    info = c.call("agent.inspect", name="intruder")
    procs = {p["pid"]: p for p in c.call("sys.processes")}
    assert procs[info["pid"]]["agent"] == "intruder" and procs[info["pid"]]["uid"] >= 10000
    assert "uptime:" in vm.command("status", 30)                  # the console is unaffected


@pytest.mark.timeout(ONE_BOOT)
def test_an_agent_granted_net_has_the_machines_network(machine):
    vm, c = machine
    got = intruder_run(c, "netter", grant=["net"])
    assert got["real network interfaces"]["detail"], got["network interfaces"]  # the virtio NIC
    assert got["read /proc/cmdline"]["outcome"] == "blocked"        # net is not the files
    assert got["write /tmp/intruder"]["outcome"] == "blocked"


@pytest.mark.timeout(ONE_BOOT)
def test_a_bad_program_fails_alone(machine):
    vm, c = machine
    c.call("agent.spawn", manifest={"name": "nomod", "program": "aether.builtin.nosuchmodule:main"})
    info = wait(c, "nomod", lambda i: i["state"] == "failed")
    assert "ModuleNotFoundError" in info["reason"]
    c.call("agent.spawn", manifest={"name": "after", "program": "aether.builtin.drill:main",
                                    "args": ["idle"]})
    wait(c, "after", lambda i: i["state"] == "running")
