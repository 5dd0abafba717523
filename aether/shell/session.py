"""One person's shell session: plan, show, ask, run, record.

A Session is transport-free: it talks to aetherd through a Client it gets
from ``connect(wait)`` (the console's Unix socket, or the host's virtio-serial
channel), writes through ``out(text)`` and asks yes/no through
``confirm(question)``.  The console (aether/console.py) and ``aetherctl
shell`` / ``aetherctl intent`` both drive it.

For each line:

1. plan it: the offline planner, or the model planner when a model is
   configured (falling back to offline with a notice);
2. show the plan, and record intent, plan and steps as a goal in the
   context store (scope ``user``: history survives reboots);
3. check that what its risky steps act on exists (the agent, the file, the
   memory): a risky step on something that is not there is never proposed,
   the shell says what was not found instead; then, if a step is risky, ask;
   no answer but yes abandons the plan.  Every plan passes here, whoever made
   it: the offline planner, the model, an undo, and steps found while running;
4. run the steps in order, showing each result and recording each outcome;
   the first failure stops the plan (the rest are skipped, and said so);
5. Ctrl-C (KeyboardInterrupt) cancels the running plan, never the shell.

The last plan run is kept for ``explain`` and ``undo``.
"""

import json

from ..abi.protocol import AbiError, NotFound
from . import intents, planner, render, risk as risks
from .model import window_lines as model_window_lines
from .plan import Plan
from .text import When

PROMPT = "aether> "
META = ("help", "explain", "undo", "empty", "not_found", *intents.requests.INTENT_NAMES)  # offline only
UNANSWERED = ("unknown", "not_found")       # plans recorded as failed: nothing was done


class Cancelled(Exception):
    """The person cancelled the plan (Ctrl-C, or no to a question)."""


class Session:
    def __init__(self, connect, out, confirm, model=None, record=True, local_status=None):
        self.connect, self.out, self.confirm = connect, out, confirm
        self.model = model                    # a ModelPlanner, or None
        self.record = record
        self.local_status = local_status      # fn() -> text, when aetherd does not answer
        self.client = None
        self.agents = []
        self.last = None                      # (plan, [(step, result or error)])
        self.seen_alert_seq = None
        self.recording_problem = None
        self.model_configured = False
        self.connected_once = False           # "waiting for aetherd" at boot, "not answering" after

    # -- the connection

    def call(self, method, **params):
        if self.client is None:
            self.client = self.connect(True)
            self.connected_once = True
        try:
            return self.client.call(method, **params)
        except (OSError, ConnectionError) as e:
            self.drop()
            raise AbiError(f"lost the connection to aetherd: {e}") from None
        except AbiError as e:
            if getattr(e, "code", "") == "connection_lost":
                self.drop()
            raise

    def drop(self):
        if self.client is not None:
            try:
                self.client.close()
            except OSError:
                pass
        self.client = None

    # -- the prompt

    def prompt(self):
        """The prompt, led by the machine's state: agents running, context pressure, alerts waiting."""
        try:
            if self.client is None:
                self.client = self.connect(False)     # the prompt never waits for aetherd
                self.connected_once = True
            info = self.call("sys.info")
            self.model_configured = bool((info.get("llm") or {}).get("configured"))
            agents = self.call("agent.list")
            self.agents = [a["name"] for a in agents]
            running = sum(1 for a in agents if a["state"] == "running")
            ctx = info.get("context", {})
            pressure = ctx.get("pressure", {}).get("storage", {}).get("max_pressure", 0.0) \
                if ctx.get("available") else None
            waiting = self._alerts_waiting()
        except AbiError:
            return f"[{'aetherd not answering' if self.connected_once else 'waiting for aetherd'}] {PROMPT}"
        parts = [p for p in (intents.requests.prompt_part(info),) if p]
        parts.append(f"{running} agent{'s' if running != 1 else ''} running")
        parts.append(f"ctx {pressure * 100:.0f}%" if pressure is not None else "ctx unavailable")
        if waiting:
            parts.append(f"{waiting} alert{'s' if waiting != 1 else ''}")
        return f"[{', '.join(parts)}] {PROMPT}"

    def _alerts_waiting(self):
        if self.seen_alert_seq is None:
            seen = self.call("ctx.journal", kind="shell.alerts_seen", limit=1, newest_first=True)
            self.seen_alert_seq = seen[0]["body"]["seq"] if seen else 0
        return len(self.call("ctx.journal", kind="alert", after_seq=self.seen_alert_seq, limit=100))

    def history(self, n=200):
        """Earlier intents, oldest first, for line editing (kept in the context store)."""
        try:
            goals = self.call("ctx.goals", scope="user", limit=n)
        except AbiError:
            return []
        seen, lines = set(), []
        for g in goals:
            if g["intent"] not in seen:
                seen.add(g["intent"])
                lines.append(g["intent"])
        return lines[::-1]

    # -- one line

    def handle(self, line):
        """Plan, show, confirm, run and record one line.  Returns the Plan."""
        plan = self.plan(line)
        if plan.intent == "empty":
            return plan
        if plan.intent in ("help", "explain", "undo"):
            return getattr(self, "_" + plan.intent)(plan)
        return self.execute(plan)

    def plan(self, line):
        self._refresh_agents()
        offline = planner.plan(line, self.agents)
        if offline.intent in META or self.model is None or not self.model_configured:
            return offline
        try:
            return self.model.plan(self, line)
        except Exception as e:  # noqa: BLE001 - any model failure falls back, with a notice
            offline.note = (f"(the model planner failed: {e}; using the offline planner)"
                            + (f"\n{offline.note}" if offline.note else ""))
            return offline

    def _refresh_agents(self):
        """The agents' names as they are now (the planner checks risky steps against them)."""
        if self.client is None:
            return
        try:
            self.agents = [a["name"] for a in self.call("agent.list")]
        except AbiError:
            pass

    def execute(self, plan):
        missing = self._missing(plan.steps)
        if missing:
            plan = Plan("not_found", plan.line, note=_not_found(missing), answer=_not_found(missing),
                        source=plan.source)
        shown = plan.text()
        if shown:
            self.out(shown)
        goal = self._record_goal(plan)
        if plan.answer is not None or not plan.steps:
            if plan.answer is not None and plan.answer != plan.note:
                self.out(plan.answer)
            failed = plan.intent in UNANSWERED
            self._record(goal, "update_goal", status="failed" if failed else "done",
                         outcome={"unknown": "not understood", "not_found": "not found"}.get(plan.intent,
                                                                                             "answered"))
            return plan
        results = []
        try:
            if plan.risky:
                self._ask([s for s in plan.steps if s.risk], plan.steps)
            self._run(plan.steps, goal, results)
        except Cancelled as e:
            self.out(f"cancelled: {e}")
            self._finish(goal, results, plan, "abandoned", f"cancelled: {e}")
        except KeyboardInterrupt:
            self.drop()                     # an answer may still be on its way: start afresh
            self.out("\ncancelled (Ctrl-C): the remaining steps were not run.")
            self._finish(goal, results, plan, "abandoned", "cancelled with Ctrl-C")
        else:
            failed = [r for r in results if r[2] is not None]
            self._finish(goal, results, plan, "failed" if failed else "done",
                         f"step {results.index(failed[0]) + 1} failed: {failed[0][2]}" if failed
                         else f"{len(results)} step{'s' if len(results) != 1 else ''} done")
        finally:
            if self.model is not None and hasattr(self.model, "ran"):
                self.model.ran(plan, results)       # the next think tells the model what came of it
        return plan

    def _ask(self, risky, steps):
        for s in risky:
            self.out(f"Step {steps.index(s) + 1} needs a yes: it {s.risk}.")
        if not self.confirm("Run it? [y/N] "):
            raise Cancelled("not confirmed; nothing was run")

    def _run(self, steps, goal, results):
        times = None
        queue = list(steps)
        n = 0
        while queue:
            step = queue.pop(0)
            n += 1
            if times is None and _has_when(step.params):
                times = self._times()
            method, params = step.call(*(times or (None, None)))
            self._record(goal, "update_step", step=n, status="running")
            try:
                result = self.call(method, **params)
            except AbiError as e:
                results.append((step, None, e))
                self.out(f"step {n} failed: {e}")
                if step.show == "status" and self.local_status is not None:
                    self.out("What this machine can tell without aetherd:\n" + self.local_status())
                self._record(goal, "update_step", step=n, status="failed", outcome=str(e)[:500])
                rest = len(queue)
                if rest:
                    self.out(f"the remaining {rest} step{'s were' if rest != 1 else ' was'} not run.")
                    for k in range(n + 1, n + 1 + rest):
                        self._record(goal, "update_step", step=k, status="skipped", outcome="an earlier step failed")
                return
            results.append((step, result, None))
            self.out(render.render(step, result))
            self._record(goal, "update_step", step=n, status="done", outcome=_outcome(result))
            if step.then is not None:
                more = step.then(result)
                missing = self._missing(more or [])
                if missing:
                    self.out(f"next steps not run: {_not_found(missing)}")
                    more = [s for s in more if not self._missing([s])]
                if more:
                    self.out("next:\n" + "\n".join(f"  {n + i}. {s.line()}" for i, s in enumerate(more, 1)))
                    for s in more:
                        self._record(goal, "add_step", description=s.line())
                    if any(s.risk for s in more):
                        self._ask([s for s in more if s.risk], [None] * n + more)
                    queue = more + queue
            if method == "ctx.journal" and params.get("kind") == "alert" and result:
                self._mark_alerts_seen(max(e["seq"] for e in result))

    # -- what risky steps act on must exist

    def _missing(self, steps):
        """What the risky ``steps`` act on and is not there: ["agent 'x'", "file /p", "memory 7"]."""
        missing = []
        for step in steps:
            if not step.risk:
                continue
            for kind, name in risks.objects(step.method, step.params):
                if not getattr(self, "_has_" + kind)(name):
                    missing.append(f"{kind} {name!r}" if kind == "agent" else f"{kind} {name}")
        return missing

    def _has_agent(self, name):
        try:
            return name in {a["name"] for a in self.call("agent.list")}
        except AbiError:
            return name in self.agents        # aetherd not answering: the step will fail anyway

    def _has_file(self, path):
        if not isinstance(path, str) or not path.strip("/"):
            return isinstance(path, str)
        parent, slash, name = path.rstrip("/").rpartition("/")
        parent = parent or ("/" if slash else ".")           # "." is the caller's data directory
        try:
            found = self.call("tool.call", name="files.list",
                              args={"path": parent, "pattern": _glob_literal(name), "limit": 1})
        except AbiError as e:
            return getattr(e, "code", "") != "not_found"     # refused or unreadable: let the yes decide
        return bool(found.get("entries"))

    def _has_memory(self, memory_id):
        try:
            self.call("ctx.recall", memory_id=memory_id)
        except NotFound:
            return False
        except AbiError:
            return True
        return True

    def _times(self):
        """(now, boot) on the machine's clock, to resolve 'since boot', 'yesterday'..."""
        clock = self.call("tool.call", name="clock.now", args={})
        return clock["wall"], clock["wall"] - clock["uptime"]

    def _mark_alerts_seen(self, seq):
        if seq > (self.seen_alert_seq or 0):
            self.seen_alert_seq = seq
            self._record(None, "append", kind="shell.alerts_seen", body={"seq": seq}, scope="user")

    # -- recording (never stops the shell)

    def _record_goal(self, plan):
        result = self._record(None, "create_goal", intent=plan.line[:2000] or "(empty)",
                              plan=(plan.text() or plan.answer or plan.intent)[:20000],
                              steps=[s.line()[:500] for s in plan.steps] or None, scope="user")
        return result.get("id") if isinstance(result, dict) else None

    def _record(self, goal, what, **params):
        if not self.record or (goal is None and what in ("update_step", "update_goal", "add_step")):
            return None
        if goal is not None:
            params["goal_id"] = goal
        params = {k: v for k, v in params.items() if v is not None}
        try:
            return self.call("ctx." + what, **params)
        except AbiError as e:
            if self.recording_problem is None:
                self.out(f"(not recorded in the context store: {e})")
            self.recording_problem = str(e)
            return None

    def _finish(self, goal, results, plan, status, outcome):
        self._record(goal, "update_goal", status=status, outcome=outcome[:2000])
        self.last = (plan, results, status, outcome)

    # -- the shell's own intents

    def _help(self, plan):
        topic = plan.line.strip()
        for lead in ("help", "?"):
            if topic.lower().startswith(lead):
                topic = topic[len(lead):]
                break
        else:
            topic = ""
        self.out(planner.help_text(topic.strip(" ?")))
        return plan

    def _last_run(self, what):
        """The last plan run with its results, or None after saying there is nothing to ``what``."""
        if self.last is None:
            self.out(f"Nothing has run in this session yet, so there is nothing to {what}.")
        return self.last

    def _explain(self, plan):
        if self._last_run("explain") is None:
            return plan
        last, results, status, outcome = self.last
        lines = [f"You asked: {last.line!r}",
                 f"I understood it as '{last.intent}' ({planner.INTENTS[last.intent].help})"
                 if last.intent in planner.INTENTS else f"The plan came from the {last.source} planner.",
                 "The plan was:"]
        ran = {id(r[0]): r for r in results}
        for i, s in enumerate(last.steps, 1):
            r = ran.get(id(s))
            done = "not run" if r is None else f"failed: {r[2]}" if r[2] else "done"
            lines.append(f"  {i}. {s.says or s.signature()} -- {s.signature()} ({done})")
            if s.risk:
                lines.append(f"     it needed a yes because it {s.risk}")
        extra = [r for r in results if not any(r[0] is s for s in last.steps)]
        for s, _res, err in extra:
            lines.append(f"  +  {s.says or s.signature()} ({'failed: ' + str(err) if err else 'done'})")
        lines.append(f"Outcome: {status}, {outcome}.")
        lines += model_window_lines(getattr(last, "think", None))
        undoable = [s for s, res, err in results if err is None and s.undo is not None]
        lines.append(f"'undo' can reverse {len(undoable)} of its steps." if undoable
                     else "None of its steps can be undone.")
        self.out("\n".join(lines))
        return plan

    def _undo(self, plan):
        if self._last_run("undo") is None:
            return plan
        last, results, _status, _outcome = self.last
        steps = []
        for s, res, err in reversed(results):
            if err is None and s.undo is not None:
                steps += s.undo(res)
        if not steps:
            self.out(f"Nothing in the last plan ({last.line!r}) can be undone.")
            return plan
        undo = Plan("undo", f"undo: {last.line}", steps, note=f"To undo {last.line!r}:")
        return self.execute(undo)


def _not_found(missing):
    return (f"there is no {', no '.join(missing)}, so I propose nothing that acts on "
            f"{'it' if len(missing) == 1 else 'them'}. 'list agents', 'list /dir' or 'search memories' "
            "show what is there.")


def _glob_literal(name):
    """A files.list pattern that matches exactly ``name``."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _has_when(value):
    if isinstance(value, When):
        return True
    if isinstance(value, dict):
        return any(_has_when(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_when(v) for v in value)
    return False


def _outcome(result):
    text = json.dumps(result, sort_keys=True, default=str)
    return text if len(text) <= 300 else text[:297] + "..."

