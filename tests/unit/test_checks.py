"""Long checks (ctx.verify, ctx.check, ctx.thread verify) run a slice per loop turn: other
work is served while they run, one run is shared by every caller, and they are bounded."""

import sqlite3

import pytest

from aether.abi import checks
from aether.abi.calls import ctx as ctx_calls
from aether.abi.identity import Caller
from aether.abi.protocol import Busy, InvalidParams
from aether.ctx import ContextStore
from aether.loop import Loop

AGENT = Caller("agent:a", uid=2001, agent="a")
SHELL = Caller("shell", uid=0, privileged=True)


class D:
    def __init__(self, store):
        self.store, self.store_problem = store, None
        self.loop = Loop(on_error=print)


def filled(path, entries, memories=0):
    s = ContextStore(str(path))
    ops = [("append", {"caller": "agent:a" if i % 2 else "system", "kind": "note", "body": {"i": i}})
           for i in range(entries)]
    ops += [("remember", {"caller": "agent:a", "text": f"memory {i}"}) for i in range(memories)]
    for k in range(0, len(ops), 5000):
        s.run_batch(ops[k:k + 5000])
    return s


def wait(d, deferred, timeout=60):
    got = []
    deferred.bind(lambda value, error: got.append((value, error)))
    assert d.loop.run_until(lambda: got, timeout), "the check never answered"
    return got[0]


@pytest.fixture
def big(tmp_path):
    s = filled(tmp_path / "c.db", 20000, memories=50)
    yield D(s)
    s.close()


def test_a_long_verify_lets_other_work_run_between_its_slices(big):
    ticks = []

    def tick():                                   # another caller's work, queued on the loop
        ticks.append(1)
        if not answer:
            big.loop.call_soon(tick)
    answer = []
    deferred = ctx_calls.verify(big, AGENT, {}, None)
    deferred.bind(lambda value, error: answer.append((value, error)))
    big.loop.call_soon(tick)
    assert big.loop.run_until(lambda: answer, 60)
    value, error = answer[0]
    assert error is None and value["ok"] and value["entries"] == 20000 and value["digests"]["checked"] == 50
    run = checks.of(big, None)
    assert run.slices > 3, "the check ran in one piece"
    assert len(ticks) >= run.slices - 2, "other work did not run between the slices"
    assert not run.runs, "a finished run is forgotten"


def test_callers_during_a_run_share_it_and_each_gets_its_own_anchor_checked(big):
    head = big.store.verify("shell")["head"]
    right = ctx_calls.verify(big, AGENT, {"expected_head": head}, None)
    wrong = ctx_calls.verify(big, SHELL, {"expected_head": {"seq": 5, "hash": "0" * 64}}, None)
    running = checks.of(big, None).runs
    assert [k for k in running if k[0] == "journal"] == [("journal",)], "one run of the chain for both"
    assert {k for k in running if k[0] == "digests"} == {("digests", "agent:a"), ("digests", "shell")}
    v1, e1 = wait(big, right)
    v2, e2 = wait(big, wrong)
    assert e1 is None and v1["ok"] and v1["head"] == head
    assert e2 is None and v2["ok"] is False and v2["seq"] == 5 and "differs from the head" in v2["reason"]


def test_entries_written_during_a_run_are_not_a_break_and_a_late_caller_is_covered(tmp_path):
    """A caller who joins a running check gets a check that covers the journal as it was when
    it joined: its expected_head is verified, entries to it included, not only looked up."""
    path = tmp_path / "c.db"
    s = filled(path, 20000)
    d = D(s)
    early = ctx_calls.verify(d, AGENT, {}, None)
    d.loop.run_once(0)                           # a slice or two
    s.run_batch([("append", {"caller": "agent:a", "kind": "note", "body": {"late": i}}) for i in range(100)])
    newest = s.db.one("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1")
    forged = sqlite3.connect(path)               # an entry the late caller's head covers, changed
    forged.execute("DROP TRIGGER journal_no_update")
    forged.execute("UPDATE journal SET body = ? WHERE seq = 20050", ('{"late":"forged"}',))
    forged.commit()
    forged.close()
    late = ctx_calls.verify(d, SHELL, {"expected_head": {"seq": newest[0], "hash": newest[1]}}, None)
    for deferred in (early, late):
        value, error = wait(d, deferred)
        assert error is None and value["ok"] is False and value["seq"] == 20050, value
    s.close()


def test_a_tampered_entry_is_found_by_the_sliced_check(tmp_path):
    path = tmp_path / "c.db"
    s = filled(path, 12000)
    s.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER journal_no_update")
    conn.execute("UPDATE journal SET body = ? WHERE seq = 9000", ('{"i":"changed"}',))
    conn.commit()
    conn.close()
    d = D(ContextStore(str(path)))
    value, error = wait(d, ctx_calls.verify(d, SHELL, {}, None))
    assert error is None and value["ok"] is False and value["seq"] == 9000, value
    value, error = wait(d, ctx_calls.check(d, SHELL, {}, None))
    assert error is None and value["integrity"] == "ok" and value["chain"]["seq"] == 9000
    d.store.close()


def test_a_bad_anchor_is_refused_at_once(big):
    with pytest.raises(InvalidParams, match="expected_head"):
        ctx_calls.verify(big, AGENT, {"expected_head": {"seq": "x"}}, None)
    assert not checks.of(big, None).runs


def test_runs_and_waiters_are_bounded(big, monkeypatch):
    for _ in range(checks.MAX_WAITERS_EACH):
        ctx_calls.verify(big, AGENT, {}, None)
    with pytest.raises(Busy, match="agent:a already waits 4 times"):
        ctx_calls.verify(big, AGENT, {}, None)
    monkeypatch.setattr(checks, "MAX_WAITERS", checks.MAX_WAITERS_EACH + 1)
    ctx_calls.verify(big, SHELL, {}, None)             # another caller still gets in
    waiting = len(checks.of(big, None).runs[("journal",)].waiters)
    with pytest.raises(Busy, match="callers already wait"):
        ctx_calls.verify(big, Caller("agent:b", uid=2002, agent="b"), {}, None)
    assert len(checks.of(big, None).runs[("journal",)].waiters) == waiting, "a refusal left a waiter"
    monkeypatch.setattr(checks, "MAX_WAITERS", 64)
    monkeypatch.setattr(checks, "MAX_RUNS", len(checks.of(big, None).runs))
    with pytest.raises(Busy, match="long checks are running"):
        ctx_calls.verify(big, Caller("agent:b", uid=2002, agent="b"), {}, None)
    assert len(checks.of(big, None).runs[("journal",)].waiters) == waiting, "a refusal left a waiter"


def test_a_step_that_fails_answers_its_callers_and_the_loop_goes_on():
    loop = Loop(on_error=print)
    running = checks.Checks(loop, lambda e: InvalidParams(f"mapped: {e}"))

    def steps():
        yield 1
        raise RuntimeError("the disk went away")
    d = type("D", (), {"loop": loop})()
    value, error = wait(d, running.join(("x",), steps, "agent:a"))
    assert value is None and isinstance(error, InvalidParams) and "the disk went away" in str(error)
    assert not running.runs
    value, error = wait(d, running.join(("x",), lambda: iter(()), "agent:a"))     # a new run for the same key
    assert error is None and value is None


def test_one_caller_cannot_take_every_run_and_the_console_always_gets_one():
    loop = Loop(on_error=print)
    running = checks.Checks(loop, lambda e: e)

    def endless():
        while True:
            yield 1
    for i in range(checks.MAX_RUNS_EACH):
        running.join(("thread", i), endless, "agent:a")
    with pytest.raises(Busy, match="agent:a has started 2 long checks"):
        running.join(("thread", 99), endless, "agent:a")
    for i in range(checks.MAX_RUNS - checks.MAX_RUNS_EACH):         # others fill the rest
        running.join(("thread", 100 + i), endless, f"agent:x{i}")
    with pytest.raises(Busy, match="long checks are running"):
        running.join(("thread", 999), endless, "agent:b")
    running.join(("journal",), endless, "shell", privileged=True)   # the console passes the caps
    assert ("journal",) in running.runs
