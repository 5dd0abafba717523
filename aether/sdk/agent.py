"""The Agent: what one running agent is (name, home, state) and the calls it makes.

Every method is one or two ABI calls (docs/abi.md) on the agent's own connection;
errors are the ABI's exception classes (aether.abi.protocol), re-exported by
aether.sdk.  Lifecycle (signals, the heartbeat, the step loop) is in lifecycle.py.
"""

import os
import sys
import threading
import time

from ..abi.protocol import Unavailable
from ..client import Client
from . import state as _state

STATE_FILE = "state.json"
RESTING = ("stopped", "exited", "failed")
WAIT_POLL = (0.05, 1.0)        # first and longest pause between looks at a child
ANSWER_MARGIN = 30.0           # seconds a long call's connection waits past its own timeout
THINK_WAIT = 600.0             # a think's wait when it names no deadline_s


class NoModel(Unavailable):
    """think() was called on a machine with no model configured."""


class Stopping(BaseException):
    """Raised inside a wait (sleep, ask, wait_for, think) when the agent is told to stop.

    A BaseException, so ``except Exception`` in a step does not swallow it."""


class Answer:
    """A person's answer to ask(): true only when approved.

        answer = agent.ask("delete 3 old logs", "they fill the disk")
        if answer:                       # approved
            ...
        else:
            agent.log(f"not deleting: {answer.state} {answer.note or ''}")

    ``state`` is one of approved, denied, timeout, cancelled; ``by`` who answered
    (shell, host) and ``note`` what they said; ``id`` the request's number."""

    def __init__(self, view):
        self.view = view
        self.id, self.state = view.get("id"), view.get("state")
        self.by, self.note = view.get("by"), view.get("note")

    @property
    def approved(self):
        """True when a person approved the step (the only yes)."""
        return self.state == "approved"

    def __bool__(self):
        return self.approved

    def __repr__(self):
        return f"Answer(id={self.id}, state={self.state!r}, by={self.by!r})"


class Thought(str):
    """think()'s answer: the model's text (a str), with ``tool_calls`` and ``raw`` (the whole answer)."""

    def __new__(cls, answer):
        text = super().__new__(cls, answer.get("content") or "")
        text.tool_calls = answer.get("tool_calls") or []
        text.raw = answer
        return text


class Agent:
    """One running agent.  ``run()`` makes it and passes it to your step; you may also
    make one yourself (``Agent()``) in a program that manages its own loop.

        agent = Agent()
        agent.log(f"I am {agent.name}, at home in {agent.home}")
        agent.state["runs"] = agent.state.get("runs", 0) + 1
        agent.save()

    ``name`` is $AETHER_AGENT, ``home`` $HOME (the one directory the agent may write),
    ``state`` the dict saved in ``home/state.json`` (run() saves it after every step
    and when stopping), ``args`` the manifest's args."""

    def __init__(self, args=(), client=None, state_file=STATE_FILE):
        self.name = os.environ.get("AETHER_AGENT", "")
        self.home = os.environ.get("HOME") or os.getcwd()
        self.args = list(args)
        self.state_path = os.path.join(self.home, state_file)
        self.state = _state.load(self.state_path, warn=lambda m: self.log(m, "warning"))
        self._client = client
        self._stop = threading.Event()
        self.interruptible = False       # a Stopping may be raised now (lifecycle.py)
        self.progress = time.monotonic() # last sign the agent's own code moves (the heartbeat's test)
        self.waiting = False             # inside a long call: aetherd, not this code, is what we wait on
        self._model = None

    # -- the connection and the lifecycle's view

    @property
    def client(self):
        """The agent's connection to aetherd (aether.client.Client, opened on first use)."""
        if self._client is None:
            self._client = Client()
        return self._client

    def call(self, method, **params):
        """Any ABI method (docs/abi.md): ``agent.call("sys.info")["load"]``."""
        self.progress = time.monotonic()
        try:
            return self.client.call(method, **params)
        finally:
            self.progress = time.monotonic()

    def _wait_call(self, wait_s, call):
        """A call that may block long (a person, the model): interruptible, the heartbeat goes on,
        and the connection waits ``wait_s`` (plus a margin) instead of the client's usual 30 s."""
        sock = getattr(self.client, "sock", None)
        before = sock.gettimeout() if sock is not None else None
        self.waiting, self.interruptible = True, True
        try:
            if self._stop.is_set():
                raise Stopping("the agent is stopping")
            if sock is not None:
                sock.settimeout(wait_s + ANSWER_MARGIN)
            return call()
        finally:
            self.waiting, self.interruptible = False, False
            self.progress = time.monotonic()
            if sock is not None:
                sock.settimeout(before)

    @property
    def stopping(self):
        """True once SIGTERM (or SIGINT) has asked the agent to stop: finish up and return."""
        return self._stop.is_set()

    def request_stop(self):
        """Ask the loop to end after this step (what SIGTERM does)."""
        self._stop.set()

    def sleep(self, seconds):
        """Sleep, but wake at once when told to stop.  True if the whole time passed.

            while agent.sleep(60):
                agent.log("another minute")
        """
        self.interruptible = True
        try:
            woke = self._stop.wait(max(0.0, seconds))
        except Stopping:
            woke = True
        finally:
            self.interruptible = False
            self.progress = time.monotonic()
        return not woke

    def alive(self):
        """Say that the agent's own code is making progress (call it in a long computation,
        so the heartbeat keeps going; run() does it around every step and call)."""
        self.progress = time.monotonic()

    def save(self):
        """Write ``state`` to ``home/state.json`` atomically (StateError when it cannot)."""
        _state.save(self.state_path, self.state)

    # -- logging: a line of the agent's output is a line of agent.logs

    def log(self, text, level="info"):
        """One line per line of ``text`` on the agent's output, which aetherd keeps for
        ``agent.logs`` (and ``aetherctl logs NAME``):

            agent.log("cleaned 3 files")             # info: cleaned 3 files
            agent.log("disk nearly full", "warning")
        """
        lines = str(text).splitlines() or [""]
        sys.stderr.write("".join(f"{level}: {line}\n" for line in lines))
        sys.stderr.flush()

    # -- the model

    def has_model(self):
        """Is a model configured on this machine (sys.info)?  Asked once."""
        if self._model is None:
            self._model = bool((self.call("sys.info").get("llm") or {}).get("configured"))
        return self._model

    def think(self, prompt, **options):
        """Ask the model, with the context store assembling the window (``llm.think``):
        send only what is new; the thread remembers the rest.  Returns a Thought (the
        text, with ``tool_calls`` and ``raw``).  options: thread, goal_id, rules, tools,
        max_tokens, temperature...

            if agent.has_model():
                summary = agent.think("Summarise: " + text, max_tokens=200)
            else:
                summary = text[:500]             # think() would raise NoModel

        Raises NoModel (an Unavailable) when no model is configured, saying which
        settings to give; BudgetExhausted when the agent's spend is used up."""
        if not self.has_model():
            raise NoModel("think(): no model is configured on this machine: set aether.llm.endpoint "
                          "and aether.llm.model (kernel command line or /var/lib/aether/config); "
                          "check agent.has_model() to work without one")
        wait_s = float(options.get("deadline_s") or THINK_WAIT)
        return Thought(self._wait_call(wait_s, lambda: self.client.think(prompt, **options)))

    # -- memory

    def remember(self, text, kind="note", tags=(), importance=None, pinned=None):
        """Store a memory in the agent's scope; returns its id.

            mid = agent.remember("backups run at 2am", kind="fact", tags=["backup"])

        kind is one of fact, note, observation, summary."""
        params = {"text": text, "kind": kind, "tags": list(tags)}
        if importance is not None:
            params["importance"] = importance
        if pinned is not None:
            params["pinned"] = pinned
        return self.call("ctx.remember", **params)["id"]

    def recall(self, query="", limit=5, kinds=None, memory_id=None):
        """Memories matching ``query`` (best first; newest first without one), or the one
        memory ``memory_id``.  Each is a dict with id, text, kind, tags, created_at...

            for m in agent.recall("backup"):
                agent.log(m["text"])
        """
        if memory_id is not None:
            return self.call("ctx.recall", memory_id=memory_id)
        params = {"query": query, "limit": limit}
        if kinds:
            params["kinds"] = list(kinds)
        return self.call("ctx.search", **params)["items"]

    # -- tools

    def tool(self, name, **args):
        """Run a built-in tool (docs/tools.md) inside the agent's confinement; its result.

            listing = agent.tool("files.list", path=".")
        """
        return self.call("tool.call", name=name, args=args)

    def tools(self):
        """Every built-in tool: name, description, argument schema, risky."""
        return self.call("tool.list")

    # -- children

    def spawn(self, name, program, args=(), **manifest):
        """Start a child agent (its limits carved out of this agent's); returns its state.
        ``restart`` defaults to "never", so wait_for() sees it finish.

            agent.spawn("worker-1", "aether.builtin.drill:main", ["exit", "0"])
            done = agent.wait_for("worker-1", timeout=60)
            agent.log(f"worker-1 ended {done['state']} with {done['last_exit']}")
        """
        manifest = {"name": name, "program": program, "args": list(args), "restart": "never", **manifest}
        return self.call("agent.spawn", manifest=manifest)

    def wait_for(self, name, timeout=None):
        """Wait until agent ``name`` rests (stopped, exited or failed); its agent.inspect.
        TimeoutError after ``timeout`` seconds; Stopping if this agent is told to stop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = WAIT_POLL[0]
        while True:
            info = self.call("agent.inspect", name=name)
            if info["state"] in RESTING:
                return info
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"agent {name} is still {info['state']} after {timeout:g} s")
            self.waiting = True
            try:
                if not self.sleep(pause if deadline is None else min(pause, max(0.0, deadline - time.monotonic()))):
                    raise Stopping("the agent is stopping")
            finally:
                self.waiting = False
            pause = min(pause * 2, WAIT_POLL[1])

    # -- asking a person

    def ask(self, step, why, details=None, timeout=300):
        """Ask a person for a yes (``agent.ask``) and wait for the answer; an Answer, true
        only when approved.  Denied, timed out (``timeout`` seconds, 5 to 86400) and
        cancelled are false: do not run the step then.

            if agent.ask("delete /var/lib/aether/home/web/core (2 GB)", "it is 40 days old"):
                os.unlink(path)

        The person sees it on the shell's prompt and answers ``approve N`` or ``deny N``.
        ``step`` is one line of at most 200 characters, ``why`` at most 1000 and ``details``
        4000 (newlines allowed); control characters are refused (InvalidParams), and Busy
        when 4 of this agent's requests already wait.  The wait is bounded by ``timeout``,
        not by the connection's usual 30 s."""
        params = self._asking(step, why, details, timeout)
        return Answer(self._wait_call(timeout, lambda: self.call("agent.ask", **params)))

    def ask_later(self, step, why, details=None, timeout=300):
        """Put the question to a person without waiting; its request id, for answer_of().

            rid = agent.ask_later("reboot tonight", "a kernel update waits")
            ...                                  # other work
            if agent.answer_of(rid):             # approved by now?
                ...
        """
        return self.call("agent.ask", wait=False, **self._asking(step, why, details, timeout))["id"]

    def answer_of(self, rid, wait=False):
        """The Answer to request ``rid`` (state pending while nobody has answered: false);
        with ``wait``, once it is settled."""
        if not wait:
            return Answer(self.call("agent.answer_of", id=rid))
        view = self.call("agent.answer_of", id=rid)
        if view.get("state") != "pending":
            return Answer(view)
        return Answer(self._wait_call(view.get("expires_in_s", 0),
                                      lambda: self.call("agent.answer_of", id=rid, wait=True)))

    @staticmethod
    def _asking(step, why, details, timeout):
        params = {"step": step, "why": why, "timeout_s": timeout}
        if details is not None:
            params["details"] = details
        return params
