"""A child never gets more than its parent; an agent lowers its own limits, never raises them;
names keep their owner (issue 15, items 2, 4 and 6), on the supervisor itself."""

import pytest

from aether.agent.manifest import ManifestError, from_dict
from aether.agent.supervisor import AgentError, AgentSupervisor
from aether.states import RUNNING

MiB = 1 << 20


def SPEND(tokens):
    """A context table giving an agent this much model spend (children carve theirs out of it)."""
    return {"spend_tokens": tokens}


class FakeLoop:
    def call_later(self, *_a):
        pass


class FakeLog:
    def __init__(self):
        self.lines = []

    def warning(self, msg):
        self.lines.append(msg)

    error = info = warning


@pytest.fixture
def sup(tmp_path):
    events = []
    s = AgentSupervisor(FakeLoop(), None, FakeLog(), events.append, str(tmp_path / "data"),
                   memory_pool=256 * MiB, own_uids=False)
    s.events = events
    return s


def m(name, **extra):
    return from_dict({"name": name, "program": "/bin/true", **extra})


def declare(sup, name, parent=None, owner="shell", running=True, **extra):
    agent = sup.declare(m(name, **extra), parent, owner, owner=owner)
    if running:
        agent.state = RUNNING            # as if admitted: it holds its reservation
    return agent


# -- item 6: set_limits ---------------------------------------------------------------------

def test_an_agent_may_lower_its_own_limits_but_never_raise_them(sup):
    declare(sup, "a", limits={"memory": "64M", "cpu": "50%", "pids": 32})
    for change in ({"memory": 1 << 40}, {"cpu": 64.0}, {"pids": 100000}, {"memory": 65 * MiB}):
        with pytest.raises(AgentError) as e:
            sup.set_limits("a", may_raise=False, **change)
        assert e.value.kind == "permission" and "never raise" in str(e.value)
    sup.set_limits("a", memory=32 * MiB, cpu=0.25, pids=16, may_raise=False)
    limits = sup.inspect("a")["limits"]
    assert (limits["memory_bytes"], limits["cpu"], limits["pids"]) == (32 * MiB, 0.25, 16)


def test_the_privileged_stay_within_the_pool(sup):
    declare(sup, "big", limits={"memory": "128M"})
    declare(sup, "other", limits={"memory": "64M"})
    with pytest.raises(AgentError) as e:
        sup.set_limits("big", memory=1 << 40)
    assert e.value.kind == "budget" and "pool" in str(e.value)
    with pytest.raises(AgentError):
        sup.set_limits("big", memory=193 * MiB)      # 64 MiB are another's
    sup.set_limits("big", memory=192 * MiB)
    assert sup.inspect("big")["limits"]["memory_bytes"] == 192 * MiB


def test_a_parent_sets_a_childs_limits_within_its_own(sup):
    declare(sup, "p", limits={"memory": "64M", "cpu": "100%", "pids": 20}, context=SPEND(1000))
    declare(sup, "c1", parent="p", limits={"memory": "16M", "pids": 10}, context=SPEND(100))
    declare(sup, "c2", parent="p", limits={"memory": "16M", "pids": 10}, context=SPEND(100))
    sup.set_limits("c1", memory=48 * MiB)            # 64 - c2's 16
    for change in ({"memory": 49 * MiB}, {"cpu": 1.5}, {"pids": 21}):
        with pytest.raises(AgentError) as e:
            sup.set_limits("c2", **change)
        assert e.value.kind == "budget"
    with pytest.raises(AgentError, match="children hold"):
        sup.set_limits("p", memory=32 * MiB, may_raise=False)   # lowering below its children


# -- spawning a child -----------------------------------------------------------------------

def test_a_child_gets_no_grant_or_root_its_parent_lacks(sup):
    declare(sup, "p")
    with pytest.raises(AgentError) as e:
        declare(sup, "c", parent="p", grant=["root"])
    assert e.value.kind == "permission" and "never gets more than its parent" in str(e.value)
    with pytest.raises(AgentError):
        declare(sup, "c", parent="p", user="root", grant=["root"])
    assert "c" not in sup.agents and sup.names.owner("c") is None


def test_a_childs_cpu_and_pids_stay_within_the_parents(sup):
    declare(sup, "p", limits={"memory": "64M", "cpu": "50%", "pids": 8})
    with pytest.raises(AgentError, match="limits.cpu"):
        declare(sup, "c", parent="p", limits={"memory": "8M", "cpu": 2})
    with pytest.raises(AgentError, match="limits.pids"):
        declare(sup, "c", parent="p", limits={"memory": "8M", "pids": 9})
    child = declare(sup, "c", parent="p", limits={"memory": "8M"})      # defaults: lowered to p's
    assert (child.manifest.limits_cpu, child.manifest.limits_pids) == (0.5, 8)


def test_a_top_level_agent_larger_than_the_pool_is_refused(sup):
    with pytest.raises(AgentError, match="whole pool"):
        declare(sup, "huge", limits={"memory": "1G"})


# -- item 4: names keep their owner ----------------------------------------------------------

def test_a_name_is_declared_again_only_by_its_owner(sup, tmp_path):
    declare(sup, "web")
    declare(sup, "victim", owner="shell", running=False)
    sup.remove("victim")
    with pytest.raises(AgentError) as e:
        declare(sup, "victim", parent="web")            # agent:web is not its owner
    assert e.value.kind == "conflict" and "belongs to shell" in str(e.value)
    with pytest.raises(AgentError):
        declare(sup, "victim", owner="host")            # another privileged principal, not explicitly
    # the owner survives a restart of aetherd (a new supervisor on the same data)
    again = AgentSupervisor(FakeLoop(), None, FakeLog(), [].append, sup.data_dir, own_uids=False)
    with pytest.raises(AgentError, match="belongs to shell"):
        again.declare(m("victim"), None, "host", owner="host")
    again.declare(m("victim"), None, "shell", owner="shell")           # its owner may


def test_a_reclaim_takes_a_name_over_and_says_so(sup):
    declare(sup, "victim", owner="shell", running=False)
    sup.remove("victim")
    sup.declare(m("victim"), None, "host", owner="host", reclaim=True)
    assert sup.names.owner("victim") == "host"
    event = [e for e in sup.events if e["kind"] == "agent.reclaimed"][-1]
    assert (event["agent"], event["from"], event["to"]) == ("victim", "shell", "host")


def test_a_child_name_belongs_to_its_parent(sup):
    declare(sup, "p")
    declare(sup, "kid", parent="p", running=False)
    assert sup.names.owner("kid") == "agent:p" == sup.inspect("kid")["owner"]
    sup.remove("kid")
    declare(sup, "kid", parent="p", owner="shell")       # the shell spawning below p: still p's name


def test_uids_are_stable_per_name_and_never_shared(sup):
    declare(sup, "a", running=False)
    declare(sup, "b", running=False)
    ua, ub = sup.names.uid("a"), sup.names.uid("b")
    assert ua != ub and ua >= 10000
    sup.remove("a")
    declare(sup, "a", running=False)
    assert sup.names.uid("a") == ua


@pytest.mark.parametrize("word", ["manifests", "home", "system", "root", "host", "shell", "self",
                                  "status", "explain", "reboot", "poweroff", "help", "undo", "history"])
def test_reserved_names_are_refused_at_declaration(word):
    with pytest.raises(ManifestError, match="reserved name"):
        m(word)


def test_one_tree_cannot_use_up_the_names(sup, monkeypatch):
    from aether.agent import names
    monkeypatch.setattr(names, "PER_TREE", 3)
    declare(sup, "p", limits={"memory": "64M"}, context=SPEND(1000))
    declare(sup, "c", parent="p", limits={"memory": "32M"}, context=SPEND(100))
    for n in ("k1", "k2"):
        declare(sup, n, parent="c", running=False, limits={"memory": "1M"}, context=SPEND(1))
        sup.remove(n)
    with pytest.raises(AgentError) as e:                 # c, k1, k2: p's tree holds 3 names
        declare(sup, "k3", parent="c", limits={"memory": "1M"}, context=SPEND(1))
    assert e.value.kind == "budget" and "below p" in str(e.value)
    declare(sup, "k1", parent="c", running=False, limits={"memory": "1M"}, context=SPEND(1))  # reuse
    declare(sup, "other", owner="shell", running=False)  # the privileged are not bounded by p's tree


@pytest.mark.parametrize("grant", ["net", "unconfined", "root"])
def test_no_grant_beyond_the_parents(sup, grant):
    declare(sup, "p", limits={"memory": "64M"}, context=SPEND(1000))
    with pytest.raises(AgentError, match="more than its parent"):
        declare(sup, "c", parent="p", grant=[grant], limits={"memory": "8M"}, context=SPEND(10))
    declare(sup, "q", limits={"memory": "64M"}, context=SPEND(1000), grant=["net"])
    declare(sup, "d", parent="q", grant=["net"], limits={"memory": "8M"}, context=SPEND(10))
