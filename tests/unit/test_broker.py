"""The model broker's pure parts: the scheduling policy, the spend ledger, the circuit breaker."""

import pytest

from aether.broker import queue as q
from aether.broker.circuit import Circuit
from aether.broker.spend import Exhausted, Ledger
from aether.ctx import ContextStore


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, s):
        self.t += s


def job(principal, klass=q.AGENT, priority=50, **kw):
    return q.Job(principal, klass, priority, **kw)


# -- the policy -------------------------------------------------------------------------------

def test_interactive_goes_before_agents_and_agents_before_background():
    clock = Clock()
    queue = q.Queue(clock)
    for j in (job("system", q.BACKGROUND), job("agent:a"), job("agent:b", priority=90), job("shell", q.INTERACTIVE)):
        queue.push(j)
        clock.advance(0.01)
    assert [queue.pop().principal for _ in range(4)] == ["shell", "agent:b", "agent:a", "system"]
    assert queue.pop() is None


def test_fifo_orders_by_arrival_only():
    clock = Clock()
    queue = q.Queue(clock, fifo=True)
    for j in (job("agent:a"), job("system", q.BACKGROUND), job("shell", q.INTERACTIVE)):
        queue.push(j)
    assert [queue.pop().principal for _ in range(3)] == ["agent:a", "system", "shell"]


def test_among_equals_the_least_served_goes_first():
    clock = Clock()
    queue = q.Queue(clock)
    served = {"agent:hog": 5000, "agent:meek": 10}
    for name in ("agent:hog", "agent:hog", "agent:meek"):
        queue.push(job(name))
    assert queue.pop(served.get).principal == "agent:meek"
    assert queue.pop(served.get).principal == "agent:hog"


def test_aging_lets_a_low_priority_call_through_a_stream_of_higher_ones():
    clock = Clock()
    queue = q.Queue(clock, aging_s=10)
    old = queue.push(job("agent:low", priority=0))          # level 11
    for _ in range(200):                                      # a steady stream of priority-100 calls
        queue.push(job("agent:high", priority=100))          # level 1
        clock.advance(1)
        first = queue.pop()
        if first is old:
            break
    else:
        raise AssertionError("the low-priority call waited forever")
    assert 100 <= clock() - old.enqueued_at <= 111           # 10 levels of 10 s, then it ties and is older
    background = queue.push(job("system", q.BACKGROUND))
    clock.advance(120)
    assert queue.level(background) == 0                       # background too reaches the front


def test_the_queue_is_bounded_overall_and_per_principal():
    clock = Clock()
    queue = q.Queue(clock, bound=4, per_principal=2)
    queue.push(job("agent:a"))
    queue.push(job("agent:a"))
    with pytest.raises(q.Busy, match="agent:a already has 2 model calls waiting"):
        queue.push(job("agent:a"))
    queue.push(job("agent:b"))
    queue.push(job("agent:c"))
    with pytest.raises(q.Busy, match="4 model calls are already waiting"):
        queue.push(job("agent:d"))
    assert len(queue) == 4


def test_cancel_and_deadline_take_calls_out():
    clock = Clock()
    queue = q.Queue(clock)
    a = queue.push(job("agent:a", deadline=clock() + 5))
    b = queue.push(job("agent:b"))
    assert queue.remove(b.id) is b and queue.remove(b.id) is None
    clock.advance(6)
    assert queue.expired() == [a] and len(queue) == 0


def test_the_view_says_who_waits_how_long_and_why():
    clock = Clock()
    queue = q.Queue(clock, aging_s=10)
    queue.push(job("agent:a", priority=50))
    clock.advance(25)
    queue.push(job("shell", q.INTERACTIVE))
    rows = queue.waiting()
    assert [r["principal"] for r in rows] == ["shell", "agent:a"]
    assert rows[1]["waited_s"] == 25 and rows[1]["aged_levels"] == 2 and rows[1]["level"] == 4
    assert "1 call(s) ahead" in rows[1]["reason"] and "aged 2" in rows[1]["reason"]
    assert rows[0]["reason"].startswith("next")


# -- the ledger ------------------------------------------------------------------------------

def test_reservations_never_promise_more_than_the_limit():
    ledger = Ledger(clock=Clock())
    ledger.open("agent:a", 1000)
    holds = []
    for _ in range(30):
        try:
            holds.append(ledger.reserve("agent:a", 300))
        except Exhausted:
            pass
    assert len(holds) == 3                                  # 3 x 300 <= 1000 < 4 x 300
    ledger.settle(holds[0], 120)                            # settled with what was used
    assert ledger.view("agent:a")["available_tokens"] == 1000 - 120 - 600
    with pytest.raises(Exhausted, match="cannot cover this call"):
        ledger.reserve("agent:a", 300)


def test_two_children_of_a_1000_token_parent_cannot_use_more_than_1000():
    """Issue 15 item 7: a stopped child's share was carved again."""
    ledger = Ledger(clock=Clock())
    ledger.open("agent:p", 1000)
    ledger.carve("agent:p", "agent:c1", 1000)
    with pytest.raises(Exhausted):
        ledger.reserve("agent:p", 1)                         # the parent gave it all away
    with pytest.raises(Exhausted, match="has left to give"):
        ledger.carve("agent:p", "agent:c2", 1000)           # stopped or not, c1 still holds it
    hold = ledger.reserve("agent:c1", 900)
    ledger.settle(hold, 900)
    ledger.close("agent:c1")                                # removed: its 900 stay charged
    assert ledger.view("agent:p")["used_tokens"] == 900
    with pytest.raises(Exhausted):
        ledger.carve("agent:p", "agent:c2", 1000)
    ledger.carve("agent:p", "agent:c2", 100)
    ledger.settle(ledger.reserve("agent:c2", 100), 100)
    ledger.close("agent:c2")
    total = ledger.view("agent:p")["used_tokens"]
    assert total == 1000
    with pytest.raises(Exhausted):
        ledger.reserve("agent:p", 1)


def test_a_child_removed_while_its_call_runs_still_charges_the_parent():
    ledger = Ledger(clock=Clock())
    ledger.open("agent:p", 1000)
    ledger.carve("agent:p", "agent:c", 600)
    hold = ledger.reserve("agent:c", 500)
    ledger.close("agent:c")
    assert ledger.view("agent:p")["used_tokens"] == 500     # the hold counts as spent
    assert ledger.settle(hold, 10) is False                 # settling later changes nothing
    assert ledger.view("agent:p")["available_tokens"] == 500


def test_a_period_starts_the_count_again():
    clock = Clock()
    ledger = Ledger(clock=clock)
    ledger.open("uid:1000", 100, period=86400)
    ledger.settle(ledger.reserve("uid:1000", 100), 100)
    with pytest.raises(Exhausted, match="per 1d"):
        ledger.reserve("uid:1000", 10)
    clock.advance(86400)
    ledger.reserve("uid:1000", 100)


def test_settling_past_the_hold_spends_the_account_and_says_so_once():
    ledger = Ledger(clock=Clock())
    ledger.open("agent:a", 100)
    assert ledger.settle(ledger.reserve("agent:a", 50), 120) is True       # a low estimate
    assert ledger.view("agent:a")["available_tokens"] == 0
    with pytest.raises(Exhausted, match="has spent its model tokens"):
        ledger.reserve("agent:a", 1)


def test_spend_survives_a_crash_and_calls_in_flight_are_charged(tmp_path):
    store = ContextStore(str(tmp_path / "c.db"))
    ledger = Ledger(clock=Clock())
    ledger.attach(store)
    ledger.open("agent:a", 1000)
    ledger.settle(ledger.reserve("agent:a", 200), 150)
    ledger.reserve("agent:a", 300)                          # in flight when aetherd "crashes"
    ledger.open("agent:p", 1000)
    ledger.carve("agent:p", "agent:kid", 400)
    ledger.settle(ledger.reserve("agent:kid", 70), 70)
    store.close()                                           # nothing settled, nothing closed
    store = ContextStore(str(tmp_path / "c.db"))
    again = Ledger(clock=Clock())
    notices = again.attach(store)
    assert again.view("agent:a")["used_tokens"] == 450 and again.view("agent:a")["reserved_tokens"] == 0
    assert any("300 tokens held by calls in flight" in n for n in notices)
    assert again.get("agent:kid") is None and again.view("agent:p")["used_tokens"] == 70
    again.open("agent:a", 1000)                              # re-declared from its manifest
    assert again.view("agent:a")["available_tokens"] == 550
    store.close()


# -- the circuit breaker ---------------------------------------------------------------------

def test_the_circuit_opens_backs_off_and_probes():
    clock = Clock()
    c = Circuit(clock, threshold=2, initial=1, maximum=4)
    assert c.allow() == (True, None)
    c.failure("refused")
    assert c.allow() == (True, None)
    c.failure("refused")
    allowed, left = c.allow()
    assert not allowed and left == 1 and c.blocked() == 1
    clock.advance(1)
    assert c.allow() == (True, None) and c.state == "half-open"
    assert c.allow() == (False, 0.0)                       # one probe at a time
    c.failure("still refused")
    assert c.backoff == 2 and c.blocked() == 2
    clock.advance(2)
    c.allow()
    c.success()
    assert c.state == "closed" and c.backoff == 1


def test_a_reservation_the_store_cannot_record_is_refused():
    from aether.broker.spend import LedgerError

    class Full:
        fail = False

        def spend_accounts(self):
            return {}

        def spend_save(self, rows):
            if self.fail:
                raise OSError("No space left on device")

        def spend_delete(self, principal):
            pass
    store = Full()
    ledger = Ledger(clock=Clock())
    ledger.attach(store)
    ledger.open("agent:a", 1000)
    store.fail = True
    with pytest.raises(LedgerError, match="No space left.*the call was not sent"):
        ledger.reserve("agent:a", 10)
    assert ledger.view("agent:a")["reserved_tokens"] == 0     # nothing promised, nothing sent
