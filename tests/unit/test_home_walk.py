"""What a home holds, measured for disk quotas: a big home is walked a slice per loop turn in
aetherd (diskspace.use_walker), so an agent with 200,000 empty files cannot make aetherd spend
a second in one piece every CACHE_SECONDS; a write meanwhile waits alone (busy), not the batch."""

import os

import pytest

from aether import diskspace
from aether.abi import checks
from aether.abi.calls import ctx as ctx_calls
from aether.ctx import ContextStore
from aether.ctx.errors import QuotaPending
from aether.loop import Loop


def tree(root, files, size=0):
    os.makedirs(root)
    for i in range(files):
        sub = os.path.join(root, f"d{i // 1000}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"f{i}"), "wb") as f:
            f.write(b"x" * size)
    return str(root)


@pytest.fixture
def walking():
    d = type("D", (), {})()
    d.loop = Loop(on_error=print)
    checks.walk_homes(d)
    diskspace.forget()
    yield d
    diskspace.use_walker(None)
    diskspace.forget()


def test_a_small_home_is_measured_at_once_as_before(tmp_path, walking):
    root = tree(tmp_path / "small", 50, size=5000)
    diskspace.use_walker(None)
    expected = diskspace.tree_bytes(root)
    diskspace.forget()
    checks.walk_homes(walking)
    assert diskspace.tree_bytes(root) == expected and expected >= 50 * 4096
    assert not walking.home_walks.runs


def test_a_big_home_is_walked_in_slices_and_the_answer_waits_for_it(tmp_path, walking):
    root = tree(tmp_path / "big", 6000, size=1)
    with pytest.raises(diskspace.Measuring, match="try again in a moment"):
        diskspace.tree_bytes(root)
    with pytest.raises(diskspace.Measuring):
        diskspace.tree_bytes(root)                 # asking again does not start a second walk
    assert list(walking.home_walks.runs) == [("home", root)]
    assert walking.loop.run_until(lambda: not walking.home_walks.runs, 30)
    assert walking.home_walks.slices >= 1
    walked = diskspace.tree_bytes(root)
    diskspace.use_walker(None)
    diskspace.forget()
    assert walked == diskspace.tree_bytes(root)    # the same figure as one walk in one piece


def test_a_stale_measure_answers_while_the_new_walk_runs(tmp_path, walking):
    root = tree(tmp_path / "big", 3000)
    diskspace._cache[root] = [12345, -1000.0]                 # measured long ago
    assert diskspace.tree_bytes(root) == 12345
    assert ("home", root) in walking.home_walks.runs


def test_a_write_whose_quota_is_being_measured_fails_alone(tmp_path, walking):
    homes = {"a": tree(tmp_path / "home-a", 3000), "b": tree(tmp_path / "home-b", 3)}
    d = type("D", (), {})()
    d.supervisor = type("S", (), {"agents": {}, "home": staticmethod(homes.get)})()
    store = ContextStore(":memory:", disk_quota=ctx_calls.disk_quota(d))
    results = store.run_batch([("remember", {"caller": "agent:a", "text": "mine"}),
                               ("remember", {"caller": "agent:b", "text": "theirs"})])
    assert results[0][0] == "error" and isinstance(results[0][1], QuotaPending)
    assert "agent:a's disk quota" in str(results[0][1]) and "try again" in str(results[0][1])
    assert results[1][0] == "ok", results[1]
    assert ctx_calls.as_abi_error(results[0][1]).code == "busy"
    store.close()


def test_asking_during_a_walk_costs_nothing_and_writes_meanwhile_are_kept(tmp_path, walking):
    """Two faults a reviewer found: each call during a walk walked 2,000 entries again and threw
    them away, and a write reported while the walk ran was lost when it landed."""
    import time
    root = tree(tmp_path / "big", 6000)
    diskspace._cache[root] = [1000, -1000.0]                 # stale: a walk starts
    assert diskspace.tree_bytes(root) == 1000 and root in diskspace._walking
    started = time.monotonic()
    for _ in range(50):
        assert diskspace.tree_bytes(root) == 1000             # the stale figure, no new walk
    assert time.monotonic() - started < 0.05, "calls during a walk walked again"
    diskspace.moved(root, 8 << 20)                           # a write reported mid-walk
    assert walking.loop.run_until(lambda: not walking.home_walks.runs, 30)
    walked = diskspace.tree_bytes(root)
    diskspace.use_walker(None)
    diskspace.forget()
    assert walked == diskspace.tree_bytes(root) + (8 << 20), "the write reported meanwhile was lost"


def test_more_big_homes_than_one_caller_may_start_are_all_walked(tmp_path, walking):
    roots = [tree(tmp_path / f"big{i}", 2600) for i in range(checks.MAX_RUNS_EACH + 2)]
    for root in roots:
        with pytest.raises(diskspace.Measuring):
            diskspace.tree_bytes(root)
    assert len(walking.home_walks.runs) == len(roots)
    assert walking.loop.run_until(lambda: not walking.home_walks.runs, 60)
    assert all(diskspace.tree_bytes(root) > 0 for root in roots)
