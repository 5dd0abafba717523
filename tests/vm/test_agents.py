"""Agents in the real image: cgroups, restart policies, limits, ownership, and a console
that stays responsive throughout.  Driven from the host over the virtio-serial
channel (aetherd's ABI), exactly as aetherctl does.

One VM (1 GiB) serves the whole module; each test names its own agents.
"""

import random
import time

import pytest

import harness
from aether.client import ConnectionLost

ONE_BOOT = 240
CONSOLE_LIMIT = 1.0      # seconds the console may take to answer `status` under load


@pytest.fixture(scope="module")
def machine(image, request):
    b = harness.Booter(f"{request.module.__name__}.shared")
    try:
        vm = b.boot(memory=1024)
        client = harness.abi_client(vm)
        yield vm, client
        client.close()
    finally:
        b.close()


def drill(name, *args, **extra):
    return {"name": name, "program": "aether.builtin.drill:main", "args": list(args), **extra}


def wait(c, name, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        info = c.call("agent.inspect", name=name)
        if predicate(info):
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} did not get there within {timeout}s: {info}")
        time.sleep(0.3)


def console_answers(vm):
    """Seconds the serial console takes to answer `status` (measured here: 15-120 ms)."""
    start = time.monotonic()
    out = vm.command("status", 30)
    took = time.monotonic() - start
    assert "uptime:" in out
    return took


@pytest.mark.timeout(ONE_BOOT)
def test_builtin_sysmon_runs_in_its_own_cgroup(machine):
    vm, c = machine
    info = wait(c, "sysmon", lambda i: i["state"] == "running")
    assert info["limits"]["enforced"] is True
    assert info["usage"]["processes"] >= 1 and info["usage"]["memory_bytes"] > 0
    procs = {p["pid"]: p for p in c.call("sys.processes")}
    assert procs[info["pid"]]["agent"] == "sysmon"
    assert procs[info["pid"]]["uid"] >= 10000, "an agent runs as its own unprivileged uid"


@pytest.mark.timeout(ONE_BOOT)
def test_fifty_agents_come_back_after_kill_9(machine):
    vm, c = machine
    names = [f"idle{i}" for i in range(50)]
    for name in names:
        c.call("agent.spawn", manifest=drill(name, "idle", restart="always", limits={"memory": "16M"}))
    pids = {n: wait(c, n, lambda i: i["state"] == "running")["pid"] for n in names}
    victims = random.Random(7).sample(names, 10)
    for name in victims:
        c.call("agent.signal", name=name, signal="KILL")
    for name in victims:
        info = wait(c, name, lambda i, name=name: i["state"] == "running" and i["pid"] != pids[name])
        assert info["last_exit"] == 137 and info["starts"] == 2
    assert console_answers(vm) < CONSOLE_LIMIT      # 50 agents idle: still quick
    for name in names:
        c.call("agent.stop", name=name)
    for name in names:
        wait(c, name, lambda i: i["state"] == "stopped")


@pytest.mark.timeout(ONE_BOOT)
def test_crash_loop_ends_failed(machine):
    vm, c = machine
    c.call("agent.spawn", manifest=drill("crashy", "exit", "3", restart="always",
                                         backoff={"initial": "100ms", "max": "200ms"},
                                         intensity={"restarts": 3, "period": "60s"}))
    info = wait(c, "crashy", lambda i: i["state"] == "failed")
    assert info["last_exit"] == 3 and "4 times within 60s" in info["reason"]


@pytest.mark.timeout(ONE_BOOT)
def test_memory_hog_is_oom_killed_alone(machine):
    vm, c = machine
    c.call("agent.spawn", manifest=drill("bystander", "idle", restart="never"))
    c.call("agent.spawn", manifest=drill("hog", "hog", "200", restart="never", limits={"memory": "48M"}))
    info = wait(c, "hog", lambda i: i["state"] in ("exited", "failed", "stopped"))
    assert info["last_exit"] == 137
    assert wait(c, "bystander", lambda i: True)["state"] == "running"
    assert wait(c, "sysmon", lambda i: True)["state"] == "running"
    assert console_answers(vm) < CONSOLE_LIMIT
    c.call("agent.stop", name="bystander")


@pytest.mark.timeout(ONE_BOOT)
def test_fork_bomb_stops_at_its_pids_limit(machine):
    vm, c = machine
    c.call("agent.spawn", manifest=drill("bomb", "forkbomb", restart="never", limits={"pids": 20}))
    lines = []
    deadline = time.monotonic() + 60
    while not any("refused" in line for line in lines) and time.monotonic() < deadline:
        time.sleep(0.5)
        lines = c.call("agent.logs", name="bomb")["lines"]
    assert any("the kernel refused fork #20" in line for line in lines), lines
    assert c.call("agent.inspect", name="bomb")["usage"]["processes"] == 20
    took = console_answers(vm)
    assert took < CONSOLE_LIMIT, f"the console took {took:.2f}s to answer during a fork bomb"
    c.call("agent.stop", name="bomb")
    wait(c, "bomb", lambda i: i["state"] == "stopped")


@pytest.mark.timeout(ONE_BOOT)
def test_cpu_hog_cannot_starve_the_console(machine):
    vm, c = machine
    for i in range(2):
        c.call("agent.spawn", manifest=drill(f"spin{i}", "spin", restart="never"))
        wait(c, f"spin{i}", lambda info: info["state"] == "running")
    time.sleep(2)
    took = max(console_answers(vm) for _ in range(3))
    assert took < CONSOLE_LIMIT, f"the console took {took:.2f}s to answer beside two spinners"
    for i in range(2):
        c.call("agent.stop", name=f"spin{i}")


@pytest.mark.timeout(ONE_BOOT)
def test_an_agent_cannot_act_on_an_agent_it_does_not_own(machine):
    vm, c = machine
    c.call("agent.spawn", manifest=drill("intruder", "stop", "sysmon", restart="never"))
    deadline = time.monotonic() + 60
    lines = []
    while not lines and time.monotonic() < deadline:
        time.sleep(0.5)
        lines = [line for line in c.call("agent.logs", name="intruder")["lines"] if "stop sysmon" in line]
    assert lines and "permission_denied" in lines[0], lines
    assert c.call("agent.inspect", name="sysmon")["state"] == "running"
    c.call("agent.stop", name="intruder")


@pytest.mark.timeout(ONE_BOOT)
def test_a_crashed_aetherd_is_restarted_and_clears_what_it_left(machine):
    vm, c = machine
    old = wait(c, "sysmon", lambda i: i["state"] == "running")["pid"]
    c.sock.settimeout(5)
    try:
        c.call("agent.spawn", manifest=drill("crasher", "crash-supervisor", restart="never",
                                             user="root", grant=["root"]))
    except ConnectionLost:
        pass                # the crasher may kill aetherd before it has sent this answer
    c.close()
    vm.expect(r"aetherd: exited with 137", 30)          # PID 1 saw it die and restarts it
    fresh = harness.abi_client(vm)
    info = wait(fresh, "sysmon", lambda i: i["state"] == "running")
    assert info["pid"] != old
    procs = {p["pid"] for p in fresh.call("sys.processes")}
    assert old not in procs, "the old sysmon still runs, unsupervised"
    assert "left by a previous aetherd" in vm.output
    assert console_answers(vm) < CONSOLE_LIMIT
    fresh.close()
