"""Running an agent: signals, the heartbeat, and the step loop (``run``).

* SIGTERM and SIGINT ask the agent to stop: the loop ends after the current step,
  and a wait in progress (sleep, ask, wait_for, think) ends at once with Stopping;
  then the state is saved and the agent exits 0 (aetherd's stop timeout, 5 s by
  default, is the time it has).
* The heartbeat: when the manifest declares ``heartbeat``, a thread with its own
  connection calls ``agent.heartbeat`` three times per interval for as long as the
  agent's own code shows progress (a step returned, a call was made, ``alive()``)
  within ``stall`` seconds, or it waits on aetherd (a person, the model).  Code
  stuck in a loop stops the beat, and the watchdog restarts the agent, as it
  should.
"""

import logging
import signal
import sys
import threading
import time

from ..client import Client
from .agent import Agent, Stopping

DONE = 125          # a step that returns DONE ends the agent "done": it is not restarted


class Heartbeat(threading.Thread):
    """Beats every ``interval`` seconds while ``agent`` shows progress within ``stall`` seconds."""

    def __init__(self, agent, interval, stall, client=None):
        super().__init__(name="aether-heartbeat", daemon=True)
        self.agent, self.interval, self.stall = agent, interval, stall
        self.client = client
        self.beats, self.skipped = 0, 0
        self.done = threading.Event()

    def run(self):
        try:
            if self.client is None:
                self.client = Client()
            while not self.done.wait(self.interval):
                if self.agent.waiting or time.monotonic() - self.agent.progress < self.stall:
                    self.client.call("agent.heartbeat")
                    self.beats += 1
                else:
                    self.skipped += 1
        except Exception as e:  # noqa: BLE001 - without a beat the watchdog acts; say why here
            self.agent.log(f"heartbeat stopped: {type(e).__name__}: {e}", "error")

    def stop(self):
        self.done.set()


def _on_signal(agent):
    def handler(signum, _frame):
        agent.request_stop()
        if agent.interruptible:
            raise Stopping(signal.Signals(signum).name)
    return handler


def start(agent, stall=None):
    """Signals and the heartbeat for ``agent``; returns the Heartbeat (or None)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_signal(agent))
    try:
        sys.stdout.reconfigure(line_buffering=True)   # print() lands in agent.logs at once
    except (AttributeError, ValueError):
        pass
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s: %(message)s")
    beat = None
    if agent.name:
        beat = (agent.call("agent.inspect", name=agent.name).get("limits") or {}).get("heartbeat_s")
    if not beat:
        return None
    heartbeat = Heartbeat(agent, beat / 3, stall if stall is not None else max(60.0, 3 * beat))
    heartbeat.start()
    return heartbeat


def run(step, every=None, setup=None, teardown=None, args=None, stall=None, agent=None):
    """Run an agent: ``step(agent)`` once, or every ``every`` seconds until stopped.

        from aether import sdk

        def tick(agent):
            agent.state["n"] = agent.state.get("n", 0) + 1
            agent.log(f"tick {agent.state['n']}")

        def main(args):
            return sdk.run(tick, every=10, args=args)

    ``setup(agent)`` runs first and ``teardown(agent)`` last (also when stopping).
    The state is saved after every step and at the end.  A step that returns
    ``sdk.DONE`` ends the agent done (exit 125: not restarted); with no ``every``,
    the step's return value is the exit status (None: 0).  Stopped by SIGTERM,
    the agent exits 0.  ``stall``: seconds without progress after which the
    heartbeat stops (default: 3 heartbeat intervals, at least 60 s, plus ``every``)."""
    agent = agent or Agent(args or ())
    heartbeat = start(agent, stall)
    if heartbeat is not None and stall is None and every:
        heartbeat.stall += every
    code = 0
    try:
        try:
            if setup is not None:
                setup(agent)
            while not agent.stopping:
                agent.alive()
                result = step(agent)
                agent.alive()
                agent.save()
                if result == DONE or every is None:
                    code = 0 if result is None else result
                    break
                agent.sleep(every)
        except Stopping:
            pass
        finally:
            try:
                if teardown is not None:
                    teardown(agent)
            finally:
                agent.save()
                if agent.stopping:
                    agent.log("stopped: told to stop; state saved")
    finally:
        if heartbeat is not None:
            heartbeat.stop()
    return code
