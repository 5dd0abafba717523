"""llm.*'s glue without a server: who is asking (accounts), and fitting a call to its window."""

import pytest

from aether.abi.calls import llm as glue
from aether.abi.identity import Caller
from aether.abi.protocol import BudgetExhausted, InvalidParams
from aether.broker.spend import Ledger


class D:
    def __init__(self, **config):
        self.config = config
        self.broker = type("B", (), {"ledger": Ledger(), "n_ctx": None, "n_ctx_source": None})()
        self.supervisor = type("S", (), {"agents": {}})()


def test_a_plain_uid_gets_the_default_budget_or_is_refused():
    d = D(**{"llm.uid_spend_tokens": 100, "llm.uid_period_s": 86400.0})
    principal, klass, priority, agent = glue.account_of(d, Caller("uid:1000", uid=1000))
    assert (principal, klass, priority, agent) == ("uid:1000", "agent", 50, None)
    view = d.broker.ledger.view("uid:1000")
    assert view["spend_tokens"] == 100 and view["period_s"] == 86400.0
    d.broker.ledger.reserve("uid:1000", 100)
    with pytest.raises(Exception, match="cannot cover|spent"):
        d.broker.ledger.reserve("uid:1000", 1)
    with pytest.raises(BudgetExhausted, match="aether.llm.uid_spend_tokens is 0"):
        glue.account_of(D(**{"llm.uid_spend_tokens": 0}), Caller("uid:1001", uid=1001))


def test_the_shell_is_interactive_and_counted_not_limited():
    d = D()
    assert glue.account_of(d, Caller("shell", uid=0, privileged=True))[1] == "interactive"
    assert d.broker.ledger.view("shell")["spend_tokens"] is None


def window(agent=None, n_ctx=None):
    return {"agent_window_tokens": agent, "endpoint_n_ctx": n_ctx, "endpoint_source": "aether.llm.n_ctx"}


def test_a_default_max_tokens_is_lowered_to_fit_and_an_explicit_one_is_refused():
    messages = [{"role": "user", "content": "x" * 400}]       # about 105 tokens
    prompt = 105
    assert glue.fit(messages, [], prompt, None, 1024, window(agent=300)) == 300 - prompt
    with pytest.raises(InvalidParams) as e:
        glue.fit(messages, [], prompt, 1024, 1024, window(agent=300))
    assert "carries about 105 prompt tokens" in str(e.value) and "allows 300" in str(e.value)
    assert e.value.data["window_tokens"] == 300


def test_the_error_names_the_messages_to_drop():
    messages = [{"role": "system", "content": "s"}] + [{"role": "user", "content": "w " * 200} for _ in range(4)]
    prompt = sum(len(str(m)) for m in messages) // 4
    with pytest.raises(InvalidParams) as e:
        glue.fit(messages, [], prompt, 50, 50, window(agent=prompt - 150))
    assert "drop messages 1, 2" in str(e.value) and e.value.data["drop"][:2] == [1, 2]
    assert 4 not in e.value.data["drop"]                       # never the last message


def test_the_servers_words_teach_the_window():
    assert glue._n_ctx_in("This model's maximum context length is 2048 tokens. However, you requested") == 2048
    assert glue._n_ctx_in("Requested tokens (3000) exceed context window of 512") == 512
    assert glue._n_ctx_in("model not found") is None


class FakeLoop:
    def __init__(self):
        self.later = []

    def call_later(self, _delay, fn):
        self.later.append(fn)

    def run(self):
        while self.later:
            self.later.pop(0)()


def test_a_worker_that_cannot_fork_fails_its_call_and_frees_the_queue(monkeypatch):
    """EAGAIN or EMFILE at fork must not leave the call 'running' forever: with concurrency 1
    that would stall every model call on the machine, and hold the caller's tokens."""
    import errno

    from aether.broker import broker as b
    ledger = Ledger()
    loop = FakeLoop()
    broker = b.Broker(loop, None, ledger, None, lambda event: None, concurrency=1)

    def no_fork(*args, **kwargs):
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
    monkeypatch.setattr(b.worker, "start", no_fork)
    calls = [b.Call("agent:a", "agent", 50, None, None, 10, 10, False, None) for _ in range(3)]
    answers = []
    for call in calls:
        broker.submit(call).bind(lambda value, error: answers.append(error))
    loop.run()
    assert len(answers) == 3 and all("could not start a worker" in str(e) for e in answers)
    assert not broker.running and not broker.waiting and not len(broker.queue)
