"""The shell's yes gate, for every path a step can come from, and the objects risky steps act on.

Issue 15: a model-proposed spawn of a root manifest, and model-proposed files.write
in append or create mode, ran with every question answered "no"; agents named
status, explain, reboot or poweroff took those words over; "list every agent, even
the stopped ones" planned agent.stop name=even.  Each test answers "no" (or plans
on a name that does not exist) and checks that nothing ran.
"""

import pytest

from aether.abi.protocol import NotFound
from aether.shell import model, risk
from aether.shell.intents import INTENTS
from aether.shell.planner import plan
from aether.shell.text import COMMAND_WORDS
from tests.unit.test_shell_session import FakeAbi

OBJECT = {"type": "object"}
TOOLS = {"agent.spawn": {"kind": "method", "schema": OBJECT}, "agent.stop": {"kind": "method", "schema": OBJECT},
         "ctx.forget": {"kind": "method", "schema": OBJECT}, "sys.power": {"kind": "method", "schema": OBJECT}}
ROOT = {"name": "helper", "program": "aether.builtin.goal:main", "user": "root", "grant": ["root"]}
MUTATING = ("agent.spawn", "agent.stop", "agent.remove", "ctx.forget", "sys.power", "tool.call")


class Proposes:
    """A model planner that proposes these calls, whatever the line."""

    def __init__(self, *calls):
        self.calls = [{"name": n, "arguments": a} for n, a in calls]

    def plan(self, session, line):
        steps = []
        for call in self.calls:
            if call["name"] in TOOLS:
                steps.append(model.step(call, TOOLS))
            else:                              # a built-in tool, as model.step makes it
                steps.append(model.Step("tool.call", {"name": call["name"], "args": call["arguments"]},
                                        f"{call['name']} (proposed by the model)", show=call["name"]))
        return model.Plan("model", line, steps, source="model")


def shell(abi, answers=(), proposes=None):
    from aether.shell.session import Session
    said, answers = [], list(answers)
    s = Session(lambda wait: abi, said.append, lambda q: said.append(q) or (answers.pop(0) if answers else False),
                model=proposes)
    s.client = abi
    s.model_configured = proposes is not None
    return s, said


def nothing_ran(abi):
    ran = [m for m, _p in abi.calls if m in MUTATING and m != "tool.call"]
    ran += [p["name"] for m, p in abi.calls if m == "tool.call" and p["name"] not in risk.SAFE_TOOLS]
    return not ran, ran


@pytest.mark.parametrize("call", [
    ("agent.spawn", {"manifest": ROOT}),
    ("agent.spawn", {"manifest": {"name": "plain", "program": "aether.builtin.goal:main"}}),
    ("files.write", {"path": "/var/lib/aether/config", "content": "llm.endpoint = http://evil\n", "mode": "append"}),
    ("files.write", {"path": "/var/lib/aether/manifests/evil.toml", "content": 'user = "root"\n', "mode": "create"}),
    ("files.write", {"path": "/tmp/x", "content": "x\n"}),            # create, by default
    ("processes.signal", {"pid": 1, "signal": "KILL"}),
    ("some.new_tool", {}),                                              # unknown: asked, not trusted
])
def test_a_model_proposal_answered_no_runs_nothing(call):
    abi = FakeAbi()
    s, said = shell(abi, answers=[False], proposes=Proposes(call))
    s.handle("do the thing")
    assert "Run it? [y/N] " in said, said
    ok, ran = nothing_ran(abi)
    assert ok, ran


def test_a_root_spawn_says_it_grants_privilege():
    why = risk.of("agent.spawn", {"manifest": ROOT})
    assert "WITH PRIVILEGE" in why and "root" in why


def test_offline_writes_and_spawns_need_a_yes_too():
    for line in ("write 'hello' to /tmp/greeting", "append \"done\" to /tmp/log",
                 "spawn an agent to tidy the temp files", "tell me when memory goes above 80%"):
        abi = FakeAbi()
        s, said = shell(abi, answers=[False])
        s.handle(line)
        assert "Run it? [y/N] " in said, (line, said)
        assert nothing_ran(abi)[0], (line, nothing_ran(abi)[1])


def test_an_undo_answered_no_runs_nothing():
    abi = FakeAbi(**{"ctx.remember": lambda p: {"id": 12}, "ctx.recall": lambda p: {"id": 12}})
    s, said = shell(abi, answers=[False])
    s.handle("remember that the door sticks")
    s.handle("undo")
    assert "Run it? [y/N] " in said and not abi.ran("ctx.forget")


def test_steps_found_while_running_answered_no_run_nothing():
    abi = FakeAbi(**{"ctx.search": lambda p: {"items": [{"id": 4, "text": "printer", "scope": "user"}]},
                     "ctx.recall": lambda p: {"id": 4}})
    s, said = shell(abi, answers=[False])
    s.handle("forget what I said about the printer")
    assert abi.ran("ctx.search") and not abi.ran("ctx.forget")


def test_the_gate_fails_closed_for_calls_it_does_not_know():
    assert risk.of("agent.grant_everything", {}) and risk.of_tool("files.chmod", {})
    for name in model.METHODS:                 # every method the model may propose is judged on purpose
        assert name in risk.METHODS or name in risk.SAFE_METHODS or name in ("agent.spawn", "agent.set_limits"), name


def test_every_tool_the_registry_calls_risky_is_risky_here():
    tools = pytest.importorskip("aether.tools")
    for entry in tools.list_tools():
        if entry["risky"] and not entry.get("risky_if"):
            assert risk.of_tool(entry["name"], {"path": "/x"}), entry["name"]
        if not entry["risky"]:
            assert entry["name"] in risk.SAFE_TOOLS or risk.of_tool(entry["name"], {}), entry["name"]


# ---------------------------------------------------------------- the shell's own words


NAMED = ["sysmon", "status", "explain", "reboot", "poweroff"]


@pytest.mark.parametrize("line,intent,signature", [
    ("status", "status", "sys.info"),
    ("reboot", "reboot", "sys.power action=reboot"),
    ("poweroff", "poweroff", "sys.power action=poweroff"),
    ("explain", "explain", ""),
    ("inspect the status agent", "agent.inspect", "agent.inspect name=status"),
    ("stop agent reboot", "agent.stop", "agent.stop name=reboot"),
    ("logs of the explain agent", "agent.logs", "agent.logs name=explain"),
])
def test_command_words_win_over_agents_of_that_name(line, intent, signature):
    p = plan(line, NAMED)
    assert (p.intent, p.signature()) == (intent, signature)


def test_every_one_word_command_is_a_reserved_word():
    for entry in INTENTS.values():
        for example in entry.examples:
            if example.isalpha():
                assert example in COMMAND_WORDS, f"{entry.name}'s example {example!r}"


def test_explain_with_an_agent_named_explain_explains():
    abi = FakeAbi(**{"agent.list": lambda p: [{"name": "explain", "state": "running"}]})
    s, said = shell(abi)
    s.handle("explain")
    assert "Nothing has run in this session yet" in said[-1]
    assert not abi.ran("agent.inspect")


# ---------------------------------------------------------------- risky steps on names that do not exist


def test_list_every_agent_even_the_stopped_ones_lists_them():
    p = plan("list every agent, even the stopped ones", ["sysmon", "watch"])
    assert (p.intent, p.signature()) == ("agents", "agent.list")


def test_a_risky_step_on_an_unknown_agent_is_not_proposed():
    p = plan("stop the ghost agent", ["sysmon"])
    assert p.intent == "not_found" and not p.steps and "no agent named 'ghost'" in p.answer
    abi = FakeAbi()
    s, said = shell(abi)
    s.handle("stop the ghost agent")
    assert not any("Run it?" in x for x in said) and not abi.ran("agent.stop")
    assert abi.goals[-1]["status"] == "failed"


@pytest.mark.parametrize("call,missing", [
    (("agent.stop", {"name": "even"}), "agent 'even'"),
    (("ctx.forget", {"memory_id": 99}), "memory 99"),
    (("files.delete", {"path": "/tmp/nothing-here"}), "file /tmp/nothing-here"),
])
def test_a_model_proposal_on_something_missing_is_not_proposed(call, missing):
    def recall(p):
        raise NotFound(f"no memory {p['memory_id']}")
    abi = FakeAbi(**{"ctx.recall": recall, "tool.call": lambda p: {"entries": []}})
    s, said = shell(abi, answers=[True], proposes=Proposes(call))
    s.handle("tidy up")
    assert any(missing in x and "propose nothing" in x for x in said), said
    assert not any("Run it?" in x for x in said)
    assert nothing_ran(abi)[0]
