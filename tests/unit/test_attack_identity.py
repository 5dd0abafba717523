"""(Not committed: aether/abi/identity.py is not in this brief.)  A peer's pid is looked up in
/proc at accept, after connect: if the connecting process exited and its pid was reused by
another agent's process, the caller became that agent.  The uid SO_PEERCRED gave must match
the process now at that pid, or the identity fails closed."""

from aether.abi import identity


def test_a_reused_pid_in_another_agents_cgroup_does_not_make_the_peer_that_agent(tmp_path):
    proc = tmp_path / "proc" / "4242"
    proc.mkdir(parents=True)
    (proc / "cgroup").write_text("0::/aether/agents/victim/self\n")
    (proc / "status").write_text("Name:\tpython3\nUid:\t10002\t10002\t10002\t10002\n")
    caller = identity.from_peer(4242, 10001, 10001, proc=str(tmp_path / "proc"))
    assert caller.agent is None and caller.principal == "uid:10001", caller.principal
