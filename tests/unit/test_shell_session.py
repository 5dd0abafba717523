"""The intent shell's Session against a scripted aetherd: plan, ask, run, record, cancel, undo."""

import pytest

from aether.abi.protocol import NotFound, Unavailable
from aether.shell.session import Session


class FakeAbi:
    """Answers methods from a table; records every call.  A handler may raise."""

    def __init__(self, **handlers):
        self.calls = []
        self.goals, self.steps, self.journal = [], {}, []
        self.handlers = {
            "sys.info": lambda p: {"context": {"available": True, "pressure": {"storage": {"max_pressure": 0.25}}},
                                   "llm": {"configured": False}},
            "agent.list": lambda p: [{"name": "sysmon", "state": "running"}, {"name": "watch", "state": "stopped"}],
            "ctx.journal": self._journal,
            "ctx.create_goal": self._create_goal,
            "ctx.update_goal": lambda p: self.goals[p["goal_id"] - 1].update(
                {k: p[k] for k in ("status", "outcome") if k in p}),
            "ctx.update_step": lambda p: self.steps.setdefault(p["goal_id"], {}).update(
                {p["step"]: (p["status"], p.get("outcome"))}),
            "ctx.add_step": lambda p: None,
            "ctx.append": lambda p: self.journal.append(p) or {"seq": 99},
            "ctx.goals": lambda p: [{"intent": g["intent"]} for g in reversed(self.goals)],
            **handlers}

    def _create_goal(self, p):
        self.goals.append({"intent": p["intent"], "plan": p["plan"], "status": "open"})
        return {"id": len(self.goals)}

    def _journal(self, p):
        if p.get("kind") == "alert":
            alerts = [{"seq": 5, "ts": 1.0, "body": {"level": "warning", "message": "hot"}},
                      {"seq": 7, "ts": 2.0, "body": {"level": "warning", "message": "hotter"}}]
            return [a for a in alerts if a["seq"] > p.get("after_seq", 0)]
        if p.get("kind") == "shell.alerts_seen":
            return [{"body": j["body"]} for j in self.journal if j["kind"] == "shell.alerts_seen"][-1:]
        return []

    def call(self, method, **params):
        self.calls.append((method, params))
        if method not in self.handlers:
            raise NotFound(f"no handler for {method}")
        return self.handlers[method](params)

    def close(self):
        pass

    def ran(self, method):
        return [p for m, p in self.calls if m == method]


def session(abi, answers=()):
    said, answers = [], list(answers)
    s = Session(lambda wait: abi, said.append, lambda q: said.append(q) or (answers.pop(0) if answers else False))
    s.agents = ["sysmon", "watch"]
    return s, said


def test_a_read_only_plan_runs_without_asking_and_is_recorded():
    abi = FakeAbi()
    s, said = session(abi)
    s.handle("list agents")
    assert abi.ran("agent.list")
    assert not any("Run it?" in x for x in said)
    assert abi.goals == [{"intent": "list agents", "plan": abi.goals[0]["plan"], "status": "done",
                          "outcome": "1 step done"}]
    assert "agent.list" in abi.goals[0]["plan"]
    assert abi.steps[1][1][0] == "done"


def test_a_risky_step_needs_a_yes_and_no_runs_nothing():
    abi = FakeAbi(**{"agent.stop": lambda p: {"name": p["name"], "state": "stopped"}})
    s, said = session(abi, answers=[False])
    s.handle("stop sysmon")
    assert not abi.ran("agent.stop")
    assert any("needs a yes" in x for x in said) and "Run it? [y/N] " in said
    assert abi.goals[0]["status"] == "abandoned"


def test_yes_runs_it_and_undo_reverses_it_after_asking_nothing_more():
    abi = FakeAbi(**{"agent.stop": lambda p: {"name": p["name"], "state": "stopped"},
                     "agent.start": lambda p: {"name": p["name"], "state": "running"}})
    s, said = session(abi, answers=[True])
    s.handle("please stop the sysmon agent")
    assert abi.ran("agent.stop") == [{"name": "sysmon"}]
    s.handle("undo")
    assert abi.ran("agent.start") == [{"name": "sysmon"}]      # starting is not risky: no question
    assert abi.goals[-1]["intent"] == "undo: please stop the sysmon agent"


def test_a_failing_step_stops_the_plan_and_the_rest_is_skipped_and_recorded():
    abi = FakeAbi(**{"agent.inspect": lambda p: (_ for _ in ()).throw(NotFound("no agent named 'sysmon'"))})
    s, said = session(abi)
    s.handle("why did sysmon restart?")
    assert abi.ran("agent.inspect") and not [p for p in abi.ran("ctx.journal") if p.get("kind") == "agent.state"]
    assert any("step 1 failed" in x for x in said)
    assert abi.steps[1] == {1: ("failed", "no agent named 'sysmon'"), 2: ("skipped", "an earlier step failed")}
    assert abi.goals[0]["status"] == "failed"


def test_ctrl_c_cancels_the_running_plan_not_the_shell():
    def interrupted(p):
        raise KeyboardInterrupt
    abi = FakeAbi(**{"agent.list": interrupted})
    s, said = session(abi)
    s.handle("list agents")
    assert any("cancelled (Ctrl-C)" in x for x in said)
    assert abi.goals[0]["status"] == "abandoned"
    abi.handlers["agent.list"] = lambda p: []
    s.handle("list agents")                              # the shell goes on
    assert abi.goals[1]["status"] == "done"


def test_forgetting_by_subject_searches_first_then_asks_for_each_found():
    abi = FakeAbi(**{"ctx.search": lambda p: {"items": [{"id": 4, "text": "printer at 10.0.0.7", "scope": "user",
                                                         "kind": "note"}]},
                     "ctx.recall": lambda p: {"id": p["memory_id"], "text": "printer at 10.0.0.7"},
                     "ctx.forget": lambda p: {"id": p["memory_id"], "state": "forgotten"}})
    s, said = session(abi, answers=[True])
    s.handle("forget what I said about the printer")
    assert abi.ran("ctx.search")[0]["query"] == "printer"
    assert abi.ran("ctx.forget") == [{"memory_id": 4}]
    assert "Run it? [y/N] " in said                       # asked before the forget, after the search


def test_unknown_lines_get_the_closest_things_and_never_run_anything():
    abi = FakeAbi()
    s, said = session(abi)
    s.handle("please frobnicate the memory agents")
    text = "\n".join(said)
    assert "I don't know how to do" in text and "help" in text
    assert not [m for m, _ in abi.calls if not m.startswith(("ctx.", "sys.info", "agent.list"))]
    assert abi.goals[0]["status"] == "failed"


def test_explain_says_what_ran_and_why_it_needed_a_yes():
    abi = FakeAbi(**{"agent.stop": lambda p: {"name": "sysmon", "state": "stopped"}})
    s, said = session(abi, answers=[True])
    s.handle("stop sysmon")
    s.handle("explain")
    text = said[-1]
    assert "agent.stop name=sysmon" in text and "needed a yes" in text and "'undo' can reverse 1" in text


def test_the_prompt_shows_agents_pressure_and_alerts_until_they_are_seen():
    abi = FakeAbi()
    s, _ = session(abi)
    assert s.prompt() == "[1 agent running, ctx 25%, 2 alerts] aether> "
    s.handle("show alerts")
    assert abi.journal[-1] == {"kind": "shell.alerts_seen", "body": {"seq": 7}, "scope": "user"}
    assert s.prompt() == "[1 agent running, ctx 25%] aether> "
    fresh, _ = session(abi)                              # a new session (a reboot) remembers what was seen
    assert fresh.prompt() == "[1 agent running, ctx 25%] aether> "


def test_without_aetherd_the_prompt_says_so_and_status_falls_back_to_local_facts():
    said = []

    def connect(wait):
        raise Unavailable("cannot connect to aetherd")
    s = Session(connect, said.append, lambda q: False, local_status=lambda: "uptime: 1.00 s")
    assert s.prompt() == "[waiting for aetherd] aether> "
    s.handle("status")
    assert any("uptime: 1.00 s" in x for x in said)


def test_a_store_that_cannot_record_does_not_stop_the_shell():
    abi = FakeAbi(**{"ctx.create_goal": lambda p: (_ for _ in ()).throw(Unavailable("disk full"))})
    s, said = session(abi)
    s.handle("list agents")
    assert abi.ran("agent.list")
    assert sum("not recorded" in x for x in said) == 1


@pytest.mark.parametrize("line", ["", "   "])
def test_an_empty_line_does_nothing(line):
    abi = FakeAbi()
    s, said = session(abi)
    s.handle(line)
    assert abi.calls == [] and said == []


def test_a_risky_call_asks_whoever_planned_it():
    from aether.shell.plan import Plan, Step
    abi = FakeAbi(**{"agent.remove": lambda p: {"removed": p["name"]}})
    s, said = session(abi, answers=[False])
    s.execute(Plan("model", "clean up", [Step("agent.remove", {"name": "watch"}, "proposed by the model")],
                   source="model"))
    assert not abi.ran("agent.remove") and "Run it? [y/N] " in said
    assert Step("agent.set_limits", {"name": "w", "cpu_percent": 50}).risk is None      # a CPU cap kills nothing
    assert Step("agent.set_limits", {"name": "w", "memory": 1 << 20}).risk
