"""goal: an agent that works toward the goal in its manifest, thinking with the store.

It keeps no prompt and no state of its own: everything lives in the context
store, so a goal agent that is killed, or whose machine loses power, carries on
from its last committed turn when it starts again.

* **The goal** is a goal record in its scope (``ctx.create_goal``), found again
  by its thread on a restart.
* **The thread** ``goal-<digest of the goal text>`` holds every turn
  (``llm.think``): aetherd assembles each window from the goal, the rules
  (RULES), the memories and the turns, and records what went in and what came
  back.
* **Each step** is decided from the thread's last turn alone (``next_step``):

  - nothing yet: think about the goal;
  - an input with no answer (cut by a crash, or answered only by a failure):
    think again (``again: true``), no new input written;
  - an answer with tool calls: run each once, then think with the results;
  - an answer with no tool call: that is the report; the goal is ``done``.

* **Tool calls run at most once:** each is ``tool.call`` with the call id
  ``<thread>:<turn>:<index>`` (aether/ctx/toolcalls.py), so one whose result was
  committed before a crash is answered from the ledger (``replayed``), not run
  again.  A risky call left in doubt by a crash is not retried: the model is
  told so.  Each call is also a step of the goal, added once (its description
  carries the call id).
* **Risky calls** (files.write over a file, files.delete, processes.signal,
  fetch.url) need a person's yes: the agent asks (``agent.ask``: the shell shows
  it on its prompt, the person answers ``approve N`` or ``deny N``) and runs the
  call only when approved.  The model's answer is untrusted text: the person is
  shown the whole call (a call too long to show is not asked about), the why is
  marked as the model's words, and invisible characters are shown escaped; at
  most ASKS_PER_ANSWER calls of one answer are asked about.  A
  denial or a timeout is told to the model and the call is not run.  The yes is kept on the call's goal step, so a restart after
  it does not ask again.

With no model configured it records the goal as waiting and exits ``done``
(status 125): nothing is guessed.  A spent budget, a failing endpoint or a
window that cannot be met ends the goal ``failed`` with the reason; a full
queue (``busy``) is waited out a few times first.
"""

import hashlib
import json
import os
import time

from ..abi.protocol import AbiError
from ..client import Client

DONE = 125
TURNS = 12                   # answers with tool calls, at most, before the goal is given up
ASK_TIMEOUT = 600.0          # seconds a person has to answer a risky call
TOOL_SHARE = 4               # the offered tools' specs take at most a quarter of the window
PREFERRED = ("files.list", "files.read", "files.write", "clock.now", "disk.usage", "files.delete",
             "processes.list", "fetch.url", "processes.signal", "network.interfaces", "network.routes")
MAX_TOKENS = 256
RESULT_CHARS = 1500
BUSY_RETRIES = 5
STEP_LINE = 200              # agent.ask's step (aether/abi/calls/ask.py STEP_CHARS)
ASKS_PER_ANSWER = 3          # risky calls of one answer a person is asked about, at most
SHOWN_CALL = 3000            # a risky call longer than this is not asked about: it could not be shown whole
RULES = ("You are an agent on AetherOS with the goal given below. Use the tools to make progress; you "
         "work inside your own directory {home}. Risky calls are shown to a person, who may approve or deny "
         "them. When the goal is met or cannot be met, answer with a short report and no tool call.")


def main(args):
    name = os.environ.get("AETHER_AGENT", "goal")
    with Client() as c:
        me = c.call("agent.inspect", name=name)
        goal = me.get("goal") or " ".join(args)
        if not goal:
            raise SystemExit("goal: no goal in the manifest (goal = \"...\") or the arguments")
        thread = thread_name(goal)
        gid, status = find_goal(c, thread, name)
        if status in ("done", "failed", "abandoned"):
            print(f"goal {gid} is already {status}; nothing more to do", flush=True)
            return DONE if status == "done" else 1
        if gid is None:
            gid = c.call("ctx.create_goal", intent=goal, plan="work toward it with the model, thread " + thread)["id"]
        else:
            print(f"resuming goal {gid} from thread {thread}", flush=True)
        if not (c.call("sys.info").get("llm") or {}).get("configured"):
            c.call("ctx.update_goal", goal_id=gid, status="open",
                   outcome="waiting: no model is configured (aether.llm.endpoint, aether.llm.model)")
            print(f"goal recorded ({goal!r}); no model is configured, so nothing more to do", flush=True)
            return DONE
        c.call("ctx.update_goal", goal_id=gid, status="active")
        outcome, status = work(c, gid, thread)
        c.call("ctx.update_goal", goal_id=gid, status=status, outcome=outcome[:2000])
        print(f"{status}: {outcome}", flush=True)
        return DONE if status == "done" else 1


def thread_name(goal):
    return "goal-" + hashlib.sha256(goal.encode()).hexdigest()[:16]


def find_goal(c, thread, name):
    """(goal id, its status) of the goal this thread works on, or (None, None) for a new one.

    Only a goal in the agent's own scope is its: another agent may grant the goal agent its own
    scope unasked and plant there a goal naming this thread (a digest of the goal, which
    agent.inspect shows), with steps that say "approved by", to have risky calls run unasked."""
    try:
        view = c.call("ctx.thread", thread=thread, limit=1)["thread"]
    except AbiError as e:
        if e.code != "not_found":
            raise
        view = {}
    if view.get("goal_id") is not None:
        return view["goal_id"], c.call("ctx.goal", goal_id=view["goal_id"]).get("status")
    # cut before its first think: the goal record names the thread in its plan
    own = f"agent:{name}"
    for g in c.call("ctx.goals", scope=own, limit=50):
        if (g.get("scope") == own and g.get("plan", "").endswith("thread " + thread)
                and g["status"] in ("open", "active")):
            return g["id"], g["status"]
    return None, None


def work(c, gid, thread):
    """Step until the model reports (done) or the goal cannot go on (failed); (outcome, status)."""
    tools = offer(c, c.call("tool.list"))
    offered = {t["name"] for t in tools}
    busy = 0
    while True:
        last, answers = last_turn(c, thread)
        step = next_step(last)
        if step == "report":
            return (last["body"].get("content") or "the model stopped without a report").strip(), "done"
        if answers > TURNS:
            return f"no report after {TURNS} turns", "failed"
        try:
            if step == "start":
                think(c, tools, thread=thread, goal_id=gid, rules=RULES.format(home=os.environ.get("HOME", ".")),
                      input="Work toward the goal.")
            elif step == "again":
                think(c, tools, thread=thread, again=True)
            else:
                think(c, tools, thread=thread, tool_results=run_calls(c, gid, last, offered))
            busy = 0
        except AbiError as e:
            if e.code == "busy" and busy < BUSY_RETRIES:
                busy += 1
                time.sleep(min(8.0, 0.5 * 2 ** busy))
                continue
            why = {"budget_exhausted": "its model-token spend is used up",
                   "busy": "the model's queue stayed full"}.get(e.code, e.code)
            return f"the model failed ({why}): {e}", "failed"


def offer(c, catalogue):
    """The tools to offer: in PREFERRED order, as many as fit TOOL_SHARE of the window (the specs
    travel with every think, so a small window gets the few that matter most)."""
    try:
        numbers = c.call("llm.usage").get("window") or {}
    except AbiError:
        numbers = {}
    sizes = [n for n in (numbers.get("agent_window_tokens"), numbers.get("endpoint_n_ctx")) if n]
    room = (min(sizes) if sizes else 4096) // TOOL_SHARE
    rank = {name: i for i, name in enumerate(PREFERRED)}
    chosen, used = [], 0
    for t in sorted(catalogue, key=lambda t: rank.get(t["name"], len(rank))):
        spec = {"name": t["name"], "description": t["description"], "schema": t["schema"]}
        cost = (len(json.dumps(spec)) + 40) // 4
        if used + cost <= room:
            chosen.append(spec)
            used += cost
    return chosen


def last_turn(c, thread):
    """(the thread's last turn or None, the number of answers that asked for tool calls)."""
    try:
        view = c.call("ctx.thread", thread=thread, limit=1)["thread"]
    except AbiError as e:
        if e.code == "not_found":
            return None, 0
        raise
    if not view["turns"]:
        return None, 0
    page = c.call("ctx.thread", thread_id=view["thread_id"], after_n=view["turns"] - 1, limit=1)
    last = page["turns"][-1]
    last["thread_id"] = view["thread_id"]
    return last, view["turns"] // 2


def next_step(last):
    """What to do after the thread's last turn: start, again, tools or report (see the module doc)."""
    if last is None:
        return "start"
    body = last["body"]
    if last["role"] == "input" or body.get("error"):
        return "again"
    return "tools" if body.get("tool_calls") else "report"


def think(c, tools, **params):
    return c.call("llm.think", tools=tools, max_tokens=MAX_TOKENS, **params)


def run_calls(c, gid, answer, offered):
    """The results of an answer turn's tool calls, in order.  A person is asked about at most
    ASKS_PER_ANSWER of them (an answer may carry 64, each ask waits up to ASK_TIMEOUT): the
    rest of the risky ones are not run, and the model is told why."""
    asks = [0]
    return [run_once(c, gid, answer, i, call, offered, asks)
            for i, call in enumerate(answer["body"].get("tool_calls") or [])]


def run_once(c, gid, answer, i, call, offered, asks=None):
    """The result of tool call i of an answer turn, run at most once whatever happened before."""
    call_id = f"{answer['thread_id']}:{answer['n']}:{i}"
    name = call.get("name") or "?"
    try:
        args = json.loads(call.get("arguments_json") or "{}")
    except ValueError:
        args = None
    refused = (None if name in offered and isinstance(args, dict) else
               f"not run: {name} is not one of the tools offered" if name not in offered else
               "not run: its arguments are not a JSON object")
    step, approved = _step(c, gid, call_id, name, args if isinstance(args, dict) else call.get("arguments_json"))
    if refused is None and _risky(name, args) and not approved:
        if asks is not None and asks[0] >= ASKS_PER_ANSWER:
            refused = (f"not run: a person is asked about at most {ASKS_PER_ANSWER} calls of one answer; "
                       "propose the others again, fewer at a time")
        else:
            if asks is not None:
                asks[0] += 1
            refused = _ask(c, gid, step, name, args, answer["body"].get("content"))
    if refused:
        text, status = refused, "skipped"
    else:
        try:
            done = c.call("tool.call", name=name, args=args, call_id=call_id)
            text, status = _clip(json.dumps(done["result"], ensure_ascii=False, default=str)), "done"
        except AbiError as e:
            status = "failed"
            text = ("not run again: it was started before a crash and its result was never recorded, so it "
                    "may or may not have taken effect; check before asking for it again"
                    if (e.data or {}).get("in_doubt") else f"error: {e}")
    if step is not None:
        try:
            c.call("ctx.update_step", goal_id=gid, step=step, status=status, outcome=text[:500])
        except AbiError:
            pass                    # the step's status is a record; the result still goes to the model
    return {"id": call["id"], "name": name, "content": text}


def _risky(name, args):
    from ..tools import is_risky
    try:
        return is_risky(name, args)
    except Exception:  # noqa: BLE001 - an unknown tool or bad arguments: ask, never guess it is safe
        return True


def _ask(c, gid, step, name, args, reason):
    """None when a person approved the call (kept on its step), else why it is not run.

    The model's answer is attacker-controlled text, so the person is shown the whole call (in
    the details when the step line cannot hold it, and the step says so), the why is marked as
    the model's words, and invisible characters are shown escaped."""
    what = _printable(f"{name} {json.dumps(args, ensure_ascii=False)}")
    if len(what) > SHOWN_CALL:
        return (f"not run: the call is {len(what)} characters, more than a person can be shown whole "
                f"({SHOWN_CALL}); propose a shorter one")
    line = what if len(what) <= STEP_LINE else what[:STEP_LINE - 40] + " ... (cut: the whole call is below)"
    why = "the model says: " + (_printable(reason or "") or "it is a step toward the goal")
    goal = c.call("ctx.goal", goal_id=gid)
    details = f"the whole call: {what}\n\n" if line != what else ""
    details += _printable(f"goal {gid}: {goal.get('intent', '')}")
    try:
        with Client(timeout=ASK_TIMEOUT + 30) as asker:
            answer = asker.call("agent.ask", step=line, why=why[:1000], timeout_s=ASK_TIMEOUT,
                                details=details[:4000])
    except AbiError as e:
        return f"not run: a person's yes could not be asked for ({e})"
    if answer.get("state") != "approved":
        return f"not run: the person's answer was {answer.get('state')}" + (
            f" ({answer['note']})" if answer.get("note") else "")
    if step is not None:
        c.call("ctx.update_step", goal_id=gid, step=step, status="running",
               outcome=f"approved by {answer.get('by') or 'a person'} (request {answer.get('id')})")
    return None


def _printable(text):
    """text on one line, every character a person cannot see (controls, zero-width and direction
    marks, line separators) shown as its escape, so two different texts never look the same."""
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in text).strip()


def _step(c, gid, call_id, name, args):
    """(the goal's step for this call, whether a person already approved it): the step is added
    once, its description carrying the call id."""
    mark = f"[{call_id}]"
    for s in c.call("ctx.goal", goal_id=gid).get("steps") or []:
        if s["description"].startswith(mark):
            ran = s["status"] in ("done", "failed")          # it went through before: the ledger answers
            return s["n"], ran or (s.get("outcome") or "").startswith("approved by ")
    added = c.call("ctx.add_step", goal_id=gid,
                   description=f"{mark} {name} {json.dumps(args, ensure_ascii=False)}"[:500])
    return added.get("n") or added.get("step"), False


def _clip(text):
    return text if len(text) <= RESULT_CHARS else text[:RESULT_CHARS - 20] + "... (cut)"
