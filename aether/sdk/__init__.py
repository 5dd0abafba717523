"""aether.sdk: write an agent for AetherOS in about ten lines (standard library only).

An agent is a Python function the supervisor calls in its own process, as its own
uid, confined to its home.  The SDK gives it a start and a graceful stop, a saved
state, the heartbeat, the model, memory, tools, children, a person's yes, and
logs:

    from aether import sdk

    def tick(agent):
        seen = agent.state.setdefault("seen", 0) + 1
        agent.state["seen"] = seen                       # saved after every step
        load = agent.call("sys.info")["load"][0]
        agent.log(f"tick {seen}: load {load}")           # lands in agent.logs
        if seen % 10 == 0:
            agent.remember(f"load was {load} at tick {seen}", kind="observation")

    def main(args):
        return sdk.run(tick, every=30, args=args)

and its manifest:

    name = "ticker"
    program = "ticker:main"          # module:function (a package's own module, or on the path)
    restart = "on-failure"
    heartbeat = "30s"                # the SDK beats for you

What each part does:

* **Start and stop.** ``run(step, every=...)`` calls ``step(agent)`` every
  ``every`` seconds (or once).  SIGTERM (``agent.stop``, ``aetherctl stop``)
  ends the loop after the current step, or ends a wait at once; the state is
  saved and the agent exits 0.  ``sdk.DONE`` from a step ends it for good.
* **State.** ``agent.state`` is a dict saved atomically as JSON in the home
  (``state.json``) after every step and when stopping, and loaded at start, so
  a restarted agent carries on.
* **Heartbeat.** With ``heartbeat`` in the manifest a thread beats for you, but
  only while your code shows progress: a step stuck in a loop is restarted.
* **The model.** ``agent.think(text)`` (``llm.think``: the context store keeps
  the thread); ``NoModel`` when none is configured (``agent.has_model()``).
* **Memory.** ``agent.remember(text)``, ``agent.recall(query)``.
* **Tools.** ``agent.tool("files.list", path=".")`` (docs/tools.md).
* **Children.** ``agent.spawn(name, program, args)``, ``agent.wait_for(name)``.
* **A person's yes.** ``agent.ask(step, why)``: true only when a person
  approved (``approve N`` at the shell).
* **Logs.** ``agent.log(text)``, ``print()`` and ``logging`` all land in
  ``agent.logs`` (``aetherctl logs NAME``).

Errors are the ABI's (docs/abi.md): PermissionDenied, NotFound, InvalidParams,
BudgetExhausted, Busy, Unavailable (NoModel is one), all AbiError.
"""

from ..abi.protocol import (AbiError, BudgetExhausted, Busy, Conflict, InvalidParams, NotFound,
                            PermissionDenied, Unavailable)
from .agent import Agent, Answer, NoModel, Stopping, Thought
from .lifecycle import DONE, Heartbeat, run
from .state import StateError

__all__ = ["run", "Agent", "Answer", "Thought", "DONE", "NoModel", "Stopping", "StateError", "Heartbeat",
           "AbiError", "BudgetExhausted", "Busy", "Conflict", "InvalidParams", "NotFound",
           "PermissionDenied", "Unavailable"]
