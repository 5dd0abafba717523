"""agent.ask: an agent asks a person for a yes; the shell and the host answer.

An agent describes one step and why it wants it (``agent.ask``); aetherd holds the
request in its book (``Book``, one per aetherd, made on first use) until a person
answers it (``agent.approve`` / ``agent.deny``, the shell and the host only), its
timeout passes, or the agent stops.  The agent blocks on the call (``wait``, the
default: the answer comes when the request is settled) or takes the id at once and
polls ``agent.answer_of``.  Every request and every answer is journalled in the
agent's scope (kinds ``agent.ask`` and ``agent.answer``, actor ``system``) and
published as an event the agent and the privileged see.

What a hostile agent cannot do (docs/security.md, "Asking a person"):

* answer a request, its own or anyone's: approve, deny and the list are
  PRIVILEGED in the method table, checked by kernel identity;
* see another agent's requests: ``agent.answer_of`` finds only the caller's own
  (another's id is ``not_found``, as an id that never was);
* fill aetherd: MAX_PER_AGENT pending per agent and MAX_PER_TREE per top-level
  agent's tree (itself and its descendants: children do not multiply it), MAX_PENDING
  in all, MAX_PER_HOUR asks per tree (each is two journal entries written as system,
  which no agent's disk quota counts), MAX_WAITERS blocked calls per request, text
  capped by the schema, MAX_SETTLED answered requests kept for polling;
* mislead the person at the console: text with a character the person cannot see
  (controls and escape sequences, carriage returns, direction marks and overrides,
  zero-width and format characters, line and paragraph separators) is refused, so
  what the shell shows is what the agent wrote.

Only ``approved`` means yes.  A request that is denied, times out, or is cancelled
(its agent stopped, exited or was restarted) is never approved later: settling is
final, and an answer after it is ``conflict``.  Requests live in aetherd's memory:
an aetherd restart forgets them (the agent's connection closes with it; the
journal keeps what was asked).
"""

import collections
import itertools
import time

from ..methods import AGENT, PRIVILEGED, Method, obj
from ..protocol import Busy, Conflict, InvalidParams, NotFound, PermissionDenied
from ..deferred import Deferred

MAX_PER_AGENT = 4            # requests one agent may have waiting at once
MAX_PER_TREE = 16            # ... and one top-level agent with all its descendants
MAX_PENDING = 64             # requests waiting across the machine
MAX_PER_HOUR = 60            # asks one agent's tree may make in an hour (each is two journal entries)
MAX_WAITERS = 4              # blocked calls (ask, answer_of with wait) on one request
MAX_SETTLED = 256            # answered requests kept for agent.answer_of
STEP_CHARS, WHY_CHARS, DETAILS_CHARS, NOTE_CHARS = 200, 1000, 4000, 500
DEFAULT_TIMEOUT, MIN_TIMEOUT, MAX_TIMEOUT = 300.0, 5.0, 86400.0
PENDING, APPROVED, DENIED, TIMEOUT, CANCELLED = "pending", "approved", "denied", "timeout", "cancelled"
LIVE = frozenset({"starting", "running"})      # an agent in any other state has its requests cancelled
# Characters a request may not hold: C0 and C1 controls (escape sequences, carriage
# return, backspace) and the bidirectional overrides that reorder what a terminal shows.
BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Spaces a person sees as spaces (Unicode Zs); every other character str.isprintable() refuses
# (format characters such as zero-width ones and U+061C, line and paragraph separators,
# controls, unassigned and private-use code points) is refused too.
SPACES = frozenset(" \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
                   "\u202f\u205f\u3000")


class Request:
    """One question to a person, and its answer once settled."""

    __slots__ = ("id", "agent", "parent", "tree", "step", "why", "details", "timeout_s", "asked_at",
                 "deadline", "state", "by", "note", "answered_at", "waiters")

    def __init__(self, rid, agent, parent, step, why, details, timeout_s, now, wall, tree=None):
        self.id, self.agent, self.parent, self.tree = rid, agent, parent, tree or agent
        self.step, self.why, self.details, self.timeout_s = step, why, details, timeout_s
        self.asked_at, self.deadline = wall, now + timeout_s
        self.state, self.by, self.note, self.answered_at = PENDING, None, None, None
        self.waiters = []

    def view(self, now):
        out = {"id": self.id, "agent": self.agent, "step": self.step, "why": self.why,
               "details": self.details, "state": self.state, "approved": self.state == APPROVED,
               "asked_at": self.asked_at, "timeout_s": self.timeout_s}
        if self.state == PENDING:
            out["expires_in_s"] = round(max(0.0, self.deadline - now), 1)
        else:
            out.update(answered_at=self.answered_at, by=self.by, note=self.note)
        return out


class Book:
    """Every request aetherd holds: pending by id, and the last MAX_SETTLED answered."""

    def __init__(self, d, clock=time.time):
        self.d, self.clock = d, clock
        self.pending = collections.OrderedDict()
        self.settled = collections.OrderedDict()
        self.asked = {}                    # tree -> deque of monotonic times of its asks (last hour)
        self.ids = itertools.count(1)
        d.events.subscribers.append(self._on_event)

    def now(self):
        return self.d.loop.now()

    # -- asking

    def ask(self, agent, step, why, details, timeout_s):
        tree = self._tree(agent)
        self._admit(agent, tree)
        parent = getattr(self.d.supervisor.agents.get(agent), "parent", None)
        req = Request(next(self.ids), agent, parent, step, why, details, timeout_s, self.now(),
                      round(self.clock(), 3), tree)
        self.pending[req.id] = req
        self.d.loop.call_later(timeout_s, lambda: self._expire(req))
        self._record("agent.ask", req, {"id": req.id, "agent": agent, "step": step, "why": why,
                                        "details": details, "timeout_s": timeout_s})
        return req

    def _tree(self, agent):
        """The top-level agent whose tree ``agent`` is in (its first ancestor; itself at the top)."""
        lineage = getattr(self.d.supervisor.agents.get(agent), "lineage", None)
        return lineage[0] if lineage else agent

    def _admit(self, agent, tree):
        mine = sum(1 for r in self.pending.values() if r.agent == agent)
        if mine >= MAX_PER_AGENT:
            raise Busy(f"agent {agent} already has {mine} requests waiting for a person, the most one agent "
                       f"may have ({MAX_PER_AGENT}); wait for their answers (agent.answer_of) before asking again")
        ours = sum(1 for r in self.pending.values() if r.tree == tree)
        if ours >= MAX_PER_TREE:
            raise Busy(f"agent {tree} and its descendants already have {ours} requests waiting for a person, "
                       f"the most one agent's tree may have ({MAX_PER_TREE}); wait for their answers")
        if len(self.pending) >= MAX_PENDING:
            raise Busy(f"{len(self.pending)} requests are waiting for a person across the machine, the most "
                       f"aetherd holds ({MAX_PENDING}); try again later")
        recent = self.asked.setdefault(tree, collections.deque())
        now = self.now()
        while recent and now - recent[0] > 3600:
            recent.popleft()
        if len(recent) >= MAX_PER_HOUR:
            who = f"agent {agent}" if tree == agent else f"agent {tree} and its descendants ({agent} among them)"
            raise Busy(f"{who} asked {len(recent)} times in the last hour, the most one agent's tree may "
                       f"({MAX_PER_HOUR}); ask again in {3600 - (now - recent[0]):.0f} s")
        recent.append(now)

    # -- answering

    def answer(self, rid, state, by, note):
        req = self.pending.get(rid)
        if req is None:
            done = self.settled.get(rid)
            if done is not None:
                raise Conflict(f"request {rid} is already {done.state}"
                               + (f" (by {done.by})" if done.by else "") + "; an answer is final")
            raise NotFound(f"no request {rid}; waiting: {self._ids()}")
        self._settle(req, state, by, note)
        return req

    def _ids(self):
        return ", ".join(str(i) for i in self.pending) or "none"

    def _expire(self, req):
        if req.state == PENDING and self.pending.get(req.id) is req:
            self._settle(req, TIMEOUT, None, f"no answer within {req.timeout_s:g} s")

    def _on_event(self, event):
        if event.get("kind") == "agent.state" and event.get("state") not in LIVE:
            for req in [r for r in self.pending.values() if r.agent == event.get("agent")]:
                self._settle(req, CANCELLED, None, f"the agent is {event.get('state')}: {event.get('reason')}")

    def _settle(self, req, state, by, note):
        del self.pending[req.id]
        req.state, req.by, req.note, req.answered_at = state, by, note, round(self.clock(), 3)
        self.settled[req.id] = req
        while len(self.settled) > MAX_SETTLED:
            self.settled.popitem(last=False)
        self._record("agent.answer", req, {"id": req.id, "agent": req.agent, "state": state, "by": by,
                                           "note": note})
        waiters, req.waiters = req.waiters, []
        view = req.view(self.now())
        for w in waiters:
            w.resolve(view)

    def wait(self, req):
        """A Deferred that answers ``req``'s view once it is settled (at once if it is)."""
        waiting = Deferred()
        if req.state != PENDING:
            view = req.view(self.now())
            self.d.loop.call_later(0, lambda: waiting.resolve(view))
            return waiting
        if len(req.waiters) >= MAX_WAITERS:
            raise Busy(f"{len(req.waiters)} calls already wait on request {req.id}, the most one request "
                       f"may have ({MAX_WAITERS}); poll agent.answer_of without wait")
        req.waiters.append(waiting)
        return waiting

    # -- reading

    def of(self, agent, rid):
        """The caller's own request ``rid`` (privileged: agent None, any request)."""
        req = self.pending.get(rid) or self.settled.get(rid)
        if req is None or (agent is not None and req.agent != agent):
            mine = [str(r.id) for r in (*self.pending.values(), *self.settled.values())
                    if agent is None or r.agent == agent]
            raise NotFound(f"no request {rid}" + (f" of agent {agent}" if agent else "")
                           + f"; known: {', '.join(mine[-20:]) or 'none'}")
        return req

    def _record(self, kind, req, body):
        self.d.journal(kind, body, scope=f"agent:{req.agent}")
        self.d.events.publish({"kind": kind, "agent": req.agent, "parent": req.parent, "id": req.id,
                               "step": req.step, "state": req.state})


def book(d):
    """aetherd's Book, made on first use."""
    found = getattr(d, "asks", None)
    if found is None:
        found = d.asks = Book(d)
    return found


def summary(d):
    """For sys.info (the privileged only): how many requests wait, and the oldest's age."""
    b = getattr(d, "asks", None)
    if b is None or not b.pending:
        return {"pending": 0}
    oldest = next(iter(b.pending.values()))
    return {"pending": len(b.pending), "oldest_s": round(b.now() - (oldest.deadline - oldest.timeout_s), 1)}


def check_text(field, value, lines=False):
    """Refuse characters that would make the console show something other than the text."""
    for i, ch in enumerate(value):
        if (ch in "\n\t" and lines) or ((ch.isprintable() or ch in SPACES) and ch not in BIDI):
            continue
        raise InvalidParams(f"{field}: character {i} is {ch!r}, a control or direction character "
                            "(or another a person cannot see: a format or separator character); "
                            "a request is shown to a person as written, so it may hold only printable "
                            "text" + (" (newlines and tabs allowed here)" if lines else " on one line"))
    return value


# -- handlers ---------------------------------------------------------------------------------------

def ask(d, caller, params, conn):
    if not caller.agent:
        raise PermissionDenied(f"agent.ask is for agents; {caller.principal} is not one (a person "
                               "answers requests with agent.approve and agent.deny)")
    if caller.agent not in d.supervisor.agents:
        raise NotFound(f"agent {caller.agent} is not known to aetherd")
    step = check_text("step", params["step"].strip())
    why = check_text("why", params["why"].strip(), lines=True)
    details = params.get("details")
    if details is not None:
        details = check_text("details", details, lines=True)
    if not step or not why:
        raise InvalidParams("agent.ask: step and why must say something (not only spaces)")
    req = book(d).ask(caller.agent, step, why, details, float(params.get("timeout_s", DEFAULT_TIMEOUT)))
    if params.get("wait", True):
        return book(d).wait(req)
    return req.view(book(d).now())


def answer_of(d, caller, params, conn):
    b = book(d)
    req = b.of(None if caller.privileged else caller.agent, params["id"])
    if params.get("wait") and req.state == PENDING:
        return b.wait(req)
    return req.view(b.now())


def requests(d, caller, params, conn):
    b = book(d)
    now = b.now()
    settled = list(b.settled.values())[::-1][:params.get("limit", 20)]
    return {"pending": [r.view(now) for r in b.pending.values()],
            "settled": [r.view(now) for r in settled]}


def _answering(state):
    def handler(d, caller, params, conn):
        note = params.get("note")
        if note is not None:
            note = check_text("note", note)
        return book(d).answer(params["id"], state, caller.principal, note).view(book(d).now())
    return handler


approve, deny = _answering(APPROVED), _answering(DENIED)

ID = {"type": "integer", "minimum": 1, "maximum": 1 << 53, "description": "a request's id"}
NOTE = {"type": "string", "maxLength": NOTE_CHARS, "description": "a word for the agent"}
METHODS = [
    Method("agent.ask", ask,
           obj(["step", "why"], step={"type": "string", "minLength": 1, "maxLength": STEP_CHARS},
               why={"type": "string", "minLength": 1, "maxLength": WHY_CHARS},
               details={"type": "string", "maxLength": DETAILS_CHARS},
               timeout_s={"type": "number", "minimum": MIN_TIMEOUT, "maximum": MAX_TIMEOUT},
               wait={"type": "boolean"}), AGENT,
           "ask a person for a yes: the step and why; blocks until approved, denied, timed out "
           "(timeout_s, default 300) or cancelled (the agent stops), or with wait=false answers the "
           "request's id at once (poll agent.answer_of); only state approved is a yes; journalled"),
    Method("agent.answer_of", answer_of, obj(["id"], id=ID, wait={"type": "boolean"}), AGENT,
           "one of the caller's own requests: its state (pending, approved, denied, timeout, cancelled) "
           "and the answer; with wait=true, once it is settled"),
    Method("agent.requests", requests, obj(limit={"type": "integer", "minimum": 0, "maximum": MAX_SETTLED}),
           PRIVILEGED, "requests waiting for a person, oldest first, and the last answered (limit, default 20)"),
    Method("agent.approve", approve, obj(["id"], id=ID, note=NOTE), PRIVILEGED,
           "say yes to a waiting request; the agent's blocked agent.ask answers approved"),
    Method("agent.deny", deny, obj(["id"], id=ID, note=NOTE), PRIVILEGED,
           "say no to a waiting request; the agent's agent.ask answers denied, and the step is not run"),
]
