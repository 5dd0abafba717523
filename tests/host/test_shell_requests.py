"""Agents' requests (agent.ask) at the intent shell and in aetherctl, against a real aetherd on the
host: the prompt and status show them, `requests` lists them, `approve N` (after its yes) and
`deny N` answer them, from the shell's Session and from aetherctl; with a model configured they
are still planned offline."""

import subprocess
import sys

import pytest

from aether.client import Client
from aether.shell.session import Session

from .conftest import REPO, sleep_until
from .test_shell import ENV, Aetherd

pytestmark = pytest.mark.host


@pytest.fixture
def d(tmp_path):
    daemon = Aetherd(tmp_path)
    yield daemon
    daemon.stop()


def ask(c, name, step):
    c.call("agent.spawn", manifest={"name": name, "program": "tests.host.sdk_entries:asker", "args": [step],
                                    "restart": "never"})
    return sleep_until(lambda: [r["id"] for r in c.call("agent.requests")["pending"] if r["agent"] == name], 20)[0]


def answer_logged(c, name):
    return sleep_until(lambda: next((line for line in c.call("agent.logs", name=name)["lines"] if "answer" in line),
                                    None), 20)


def ctl(d, *args):
    r = subprocess.run([sys.executable, "-m", "aether.ctl", "--socket", str(d.sock), *args], cwd=REPO, env=ENV,
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def session(d, said, yes=True):
    return Session(lambda _wait: Client(str(d.sock), timeout=20), said.append, lambda _q: yes)


def test_the_console_shows_lists_approves_and_denies(d):
    c = d.client()
    said = []
    s = session(d, said)
    assert "request" not in s.prompt()
    first = ask(c, "mover", "move the logs")
    assert s.prompt().startswith("[1 request, ")
    second = ask(c, "cleaner", "clean the cache")
    assert s.prompt().startswith("[2 requests, ")
    s.handle("status")
    assert "requests: 2 waiting (requests lists them; approve N or deny N answers)" in "\n".join(said)
    said.clear()
    s.handle("requests")
    shown = "\n".join(said)
    assert f"{first}. mover asks: move the logs" in shown and "why: the test wants to know" in shown
    assert f"approve {second} or deny {second}" in shown
    said.clear()
    s.handle(f"approve {first}")
    assert any("needs a yes" in line for line in said)          # a yes lets an agent act: asked first
    assert "approved by shell" in answer_logged(c, "mover")
    s.handle(f"deny request {second}")
    assert "denied by shell" in answer_logged(c, "cleaner")
    assert "request" not in s.prompt()
    said.clear()
    s.handle(f"approve {first}")                                # settled: the answer is final
    assert "already approved" in "\n".join(said)


def test_no_to_the_yes_approves_nothing(d):
    c = d.client()
    rid = ask(c, "waiter", "wait")
    said = []
    session(d, said, yes=False).handle(f"approve {rid}")
    assert [r["id"] for r in c.call("agent.requests")["pending"]] == [rid]


def test_aetherctl_requests_approve_and_deny(d):
    c = d.client()
    first, second = ask(c, "one", "step one"), ask(c, "two", "step two")
    code, out = ctl(d, "requests")
    assert code == 0 and f"{first}. one asks: step one" in out and f"{second}. two asks: step two" in out
    code, out = ctl(d, "status")
    assert "requests 2 waiting" in out
    code, out = ctl(d, "approve", str(first), "go", "ahead")
    assert code == 0 and f"request {first} of one: step one" in out and "approved (go ahead)" in out
    assert "approved by shell note go ahead" in answer_logged(c, "one")    # the socket, as root: the shell
    code, out = ctl(d, "deny", str(second))
    assert code == 0 and "denied" in answer_logged(c, "two")
    code, out = ctl(d, "deny", str(second))
    assert code == 1 and "conflict" in out
    code, out = ctl(d, "approve", "x")
    assert code != 0 and "give a request's number" in out
    code, out = ctl(d, "intent", f"approve {first}")          # aetherctl intent: risky without --yes
    assert "needs a yes" in out


def test_with_a_model_requests_are_still_planned_offline(d):
    class NoModel:
        def plan(self, session, line):
            raise AssertionError(f"the model planner was asked to plan {line!r}")
    s = session(d, [])
    s.model, s.model_configured = NoModel(), True
    s.client = Client(str(d.sock), timeout=20)
    for line, intent in (("requests", "requests"), ("approve 3", "approve"), ("deny 3", "deny")):
        assert s.plan(line).intent == intent
