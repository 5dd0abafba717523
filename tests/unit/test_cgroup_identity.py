"""cgroup files written for an agent, and identities derived from cgroup paths."""

import os

from aether.abi import identity
from aether.agent.cgroup import Cgroups, cpu_weight


def fake_root(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    return tmp_path


def test_create_writes_limits_and_a_leaf(tmp_path):
    cg = Cgroups(str(fake_root(tmp_path)))
    os.makedirs(cg.base)
    path = cg.create(["web", "crawler"], memory=64 << 20, cpu=0.5, pids=32, priority=60)
    read = lambda name: open(os.path.join(path, name)).read()  # noqa: E731
    assert read("memory.max") == str(64 << 20)
    assert read("pids.max") == "32"
    assert read("cpu.max") == "50000 100000"
    assert read("cpu.weight") == "200"
    assert read("memory.oom.group") == "1"
    assert os.path.isdir(os.path.join(path, "self"))
    assert path.endswith("aether/agents/web/crawler")


def test_setup_enables_controllers_down_the_tree(tmp_path):
    cg = Cgroups(str(fake_root(tmp_path)))
    cg.setup()
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"


def test_unlimited_values():
    assert cpu_weight(50) == 100 and cpu_weight(0) == 3 and cpu_weight(100) == 3200


def test_usage_reads_the_kernel_files(tmp_path):
    cg = Cgroups(str(tmp_path))
    (tmp_path / "memory.current").write_text("1048576\n")
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (tmp_path / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 1\n")
    (tmp_path / "pids.current").write_text("4\n")
    u = cg.usage(str(tmp_path))
    assert u["memory_bytes"] == 1 << 20 and u["oom_kills"] == 1
    assert u["cpu_seconds"] == 2.5 and u["processes"] == 4


def test_agent_of_cgroup():
    assert identity.agent_of_cgroup("/aether/agents/web/self") == "web"
    assert identity.agent_of_cgroup("/aether/agents/web/crawler/self") == "crawler"
    assert identity.agent_of_cgroup("/") is None
    assert identity.agent_of_cgroup("/aether/agentsx/web") is None


def test_identity_comes_from_the_kernel_not_the_caller(tmp_path):
    for pid, cgroup, uid in ((10, "0::/aether/agents/web/self\n", 10001), (11, "0::/init.scope\n", 0)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cgroup").write_text(cgroup)
        (tmp_path / str(pid) / "status").write_text(f"Name:\tx\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    web = identity.from_peer(10, 10001, 10001, proc=str(tmp_path))
    assert web.agent == "web" and not web.privileged
    assert identity.from_peer(11, 0, 0, proc=str(tmp_path)).privileged
    stranger = identity.from_peer(11, 1000, 1000, proc=str(tmp_path))
    assert stranger.principal == "uid:1000" and not stranger.privileged
    # A root peer whose cgroup cannot be read may be an agent granted root: fail closed.
    unknown = identity.from_peer(99, 0, 0, proc=str(tmp_path))
    assert unknown.principal == "uid:0" and not unknown.privileged


def test_process_listing_shows_an_agent_only_its_own_lineage():
    """sys.processes must not undo hidepid: an agent sees its subtree, a local uid its own."""
    from types import SimpleNamespace

    from aether.abi.calls.sys import _sees_process
    agents = {"web": SimpleNamespace(lineage=["web"]),
              "crawler": SimpleNamespace(lineage=["web", "crawler"]),
              "other": SimpleNamespace(lineage=["other"])}
    d = SimpleNamespace(supervisor=SimpleNamespace(agents=agents))
    web = identity.Caller("agent:web", 5, 10001, 10001, agent="web")
    assert _sees_process(d, web, 10001, "web") and _sees_process(d, web, 10002, "crawler")
    assert not _sees_process(d, web, 10003, "other")
    assert not _sees_process(d, web, 0, None)              # aetherd, PID 1, the console
    local = identity.Caller("uid:1000", 6, 1000, 1000)
    assert _sees_process(d, local, 1000, None)
    assert not _sees_process(d, local, 0, None) and not _sees_process(d, local, 1000, "web")
    assert _sees_process(d, identity.HOST, 0, None)
