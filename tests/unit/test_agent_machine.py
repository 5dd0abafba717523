"""The agent state machine: every (state, event) pair, and the watchdog, on a fake clock."""

import itertools

import pytest

from aether.agent.machine import TRANSITIONS, Agent
from aether.agent.manifest import from_dict
from aether.restart import SIGKILL, SIGTERM, STOP_POLL
from aether.states import (ADMIT, AGENT_EVENTS, AGENT_STATES, BACKOFF, DEADLINE, EXIT, EXITED, FAILED,
                           RUNNING, SILENT, SPAWN_FAILED, START, STARTED, STARTING, STOP, STOPPED,
                           STOPPING, TIMER, WAITING)


class FakeSup:
    """The supervisor side of the machine: a fake clock, processes that exist on paper."""

    def __init__(self):
        self.t = 100.0
        self.timers = []
        self.pids = itertools.count(500)
        self.signals = []
        self.alive_pids = set()
        self.fail_launch = False
        self.admits = 0
        self.shutting_down = False
        self.stop_timeout = 2.0

    def now(self):
        return self.t

    def schedule(self, delay, cb):
        self.timers.append((self.t + delay, cb))

    def advance(self, dt):
        end = self.t + dt
        while True:
            due = sorted((d, i) for i, (d, _c) in enumerate(self.timers) if d <= end)
            if not due:
                break
            d, i = due[0]
            _, cb = self.timers.pop(i)
            self.t = d
            cb()
        self.t = end

    def admit_soon(self):
        self.admits += 1

    def changed(self, agent):
        pass

    def launch(self, agent):
        if self.fail_launch:
            raise OSError(12, "Cannot allocate memory")
        pid = next(self.pids)
        self.alive_pids.add(pid)
        return pid

    def signal(self, agent, sig):
        self.signals.append((agent.name, sig))

    def alive(self, agent):
        return agent.pgid_alive if hasattr(agent, "pgid_alive") else agent.pid in self.alive_pids


def manifest(**kw):
    data = {"name": "a", "program": "pkg.mod:main", "restart": "always",
            "backoff": {"initial": 1, "max": 8}, "intensity": {"restarts": 3, "period": 60}}
    for key, value in kw.items():
        section, _, field = key.partition("__")
        if field:
            data.setdefault(section, {})[field] = value
        else:
            data[key] = value
    return from_dict(data)


def exit_of(agent, status=1 << 8):
    agent.sup.alive_pids.discard(agent.pid)
    agent.handle(EXIT, status)


def in_state(state, **kw):
    sup = FakeSup()
    agent = Agent(manifest(**kw), sup)
    if state == STOPPED:
        return agent
    agent.handle(START)
    if state == WAITING:
        return agent
    agent.handle(ADMIT)
    if state == STARTING:
        return agent
    agent.handle(STARTED)
    if state == RUNNING:
        return agent
    if state == STOPPING:
        agent.handle(STOP)
    elif state == BACKOFF:
        exit_of(agent)
    elif state == EXITED:
        agent.restarts.policy = "never"
        exit_of(agent)
        agent.restarts.policy = "always"
    elif state == FAILED:
        sup.fail_launch = True
        exit_of(agent)
        sup.advance(1)          # backoff over -> WAITING
        agent.handle(ADMIT)     # launch fails -> FAILED
        sup.fail_launch = False
    assert agent.state == state, (state, agent.state, agent.reason)
    return agent


EXPECTED = {
    STOPPED: {START: WAITING},
    WAITING: {ADMIT: STARTING, STOP: STOPPED},
    STARTING: {STARTED: RUNNING, SPAWN_FAILED: FAILED, EXIT: BACKOFF, STOP: STOPPING},
    RUNNING: {EXIT: BACKOFF, STOP: STOPPING, DEADLINE: STOPPING, SILENT: STOPPING},
    BACKOFF: {START: WAITING, STOP: STOPPED, TIMER: WAITING},
    STOPPING: {EXIT: STOPPED, TIMER: STOPPING},
    EXITED: {START: WAITING},
    FAILED: {START: WAITING},
}


def test_the_table_covers_every_pair():
    assert set(TRANSITIONS) == set(itertools.product(AGENT_STATES, AGENT_EVENTS))


@pytest.mark.parametrize("state,event", sorted(itertools.product(AGENT_STATES, AGENT_EVENTS)))
def test_every_pair(state, event):
    agent = in_state(state)
    arg = {EXIT: 1 << 8, SPAWN_FAILED: "exec failed: no such file", STOP: "request"}.get(event)
    if event == EXIT:
        agent.sup.alive_pids.discard(agent.pid)
    agent.handle(event, arg)
    assert agent.state == EXPECTED[state].get(event, state), agent.reason


def test_spawn_failure_names_the_reason():
    agent = in_state(STARTING)
    agent.handle(SPAWN_FAILED, "exec /opt/x: No such file or directory")
    assert agent.state == FAILED and "No such file" in agent.last_error


def test_launch_error_fails_at_once():
    agent = in_state(WAITING)
    agent.sup.fail_launch = True
    agent.handle(ADMIT)
    assert agent.state == FAILED and "Cannot allocate memory" in agent.reason


def test_stop_terms_then_kills_at_the_deadline():
    agent = in_state(RUNNING)
    agent.handle(STOP)
    assert agent.sup.signals == [("a", SIGTERM)]
    agent.sup.advance(1.9)
    assert ("a", SIGKILL) not in agent.sup.signals
    agent.sup.advance(0.2)
    assert ("a", SIGKILL) in agent.sup.signals
    exit_of(agent, 9)
    assert agent.state == STOPPED and agent.last_exit == 137


def test_deadline_stops_and_does_not_restart():
    agent = in_state(RUNNING, limits__deadline="10s")
    agent.sup.advance(9.9)
    assert agent.state == RUNNING
    agent.sup.advance(0.1)
    assert agent.state == STOPPING and agent.stop_reason == "deadline"
    exit_of(agent, 15)
    assert agent.state == EXITED and "deadline" in agent.reason


def test_silent_agent_is_restarted_per_policy():
    agent = in_state(RUNNING, heartbeat="5s", restart="on-failure")
    agent.sup.advance(3)
    agent.heartbeat()
    agent.sup.advance(4.9)
    assert agent.state == RUNNING
    agent.sup.advance(0.2)
    assert agent.state == STOPPING and "no heartbeat" in agent.last_error
    exit_of(agent, 0)                    # even a clean exit counts as a failure here
    assert agent.state == BACKOFF


def test_crash_loop_ends_failed():
    agent = in_state(RUNNING)
    for _ in range(3):
        exit_of(agent)
        agent.sup.advance(10)            # backoff -> WAITING
        agent.handle(ADMIT)
        agent.handle(STARTED)
    exit_of(agent)
    assert agent.state == FAILED and "4 times within 60s" in agent.reason


def test_shutdown_exit_is_stopped():
    agent = in_state(RUNNING)
    agent.sup.shutting_down = True
    exit_of(agent)
    assert agent.state == STOPPED


def test_stale_timers_do_nothing():
    agent = in_state(BACKOFF)
    agent.handle(START)                  # queue again before the backoff timer fires
    agent.handle(ADMIT)
    agent.sup.advance(100)
    assert agent.state == STARTING and agent.starts == 2


def test_poll_after_kill_until_the_group_is_gone():
    agent = in_state(RUNNING)
    agent.handle(STOP)
    agent.pgid_alive = True
    agent.sup.alive_pids.discard(agent.pid)
    agent.handle(EXIT, 15)
    assert agent.state == STOPPING
    agent.sup.advance(2.0)
    agent.pgid_alive = False
    agent.sup.advance(STOP_POLL)
    assert agent.state == STOPPED
