"""The service state machine, on a fake OS and a fake clock."""

import itertools

import pytest

from aether.pid1 import services
from aether.pid1.services import TRANSITIONS, ServiceSpec, ServiceSupervisor, SpecError
from aether.restart import exit_code
from aether.states import (BACKOFF, EVENTS, EXIT, EXITED, FAILED, RUNNING, START, STATES, STOP,
                           STOPPED, STOPPING, TIMER)

EXIT_1 = 1 << 8
EXIT_0 = 0


class FakeOs:
    def __init__(self, clock):
        self.clock = clock
        self.pids = itertools.count(100)
        self.spawned = []
        self.kills = []
        self.alive_groups = set()
        self.fail_spawns = 0

    def spawn(self, spec):
        if self.fail_spawns:
            self.fail_spawns -= 1
            raise FileNotFoundError(2, "No such file or directory")
        pid = next(self.pids)
        self.spawned.append((pid, spec.name))
        self.alive_groups.add(pid)
        return pid

    def kill(self, pid, sig):
        self.kills.append((pid, sig))

    def group_alive(self, pgid):
        return pgid in self.alive_groups

    def now(self):
        return self.clock.t


class FakeClock:
    def __init__(self):
        self.t = 1000.0
        self.timers = []

    def schedule(self, delay, callback):
        self.timers.append((self.t + delay, callback))

    def advance(self, dt):
        end = self.t + dt
        while True:
            due = sorted((d, i) for i, (d, _cb) in enumerate(self.timers) if d <= end)
            if not due:
                break
            deadline, index = due[0]
            _d, callback = self.timers.pop(index)
            self.t = deadline
            callback()
        self.t = end


class FakeLog:
    def __init__(self):
        self.lines = []

    def info(self, msg):
        self.lines.append(msg)

    debug = warning = error = info


@pytest.fixture
def world():
    clock = FakeClock()
    osi = FakeOs(clock)
    claims = {}
    sup = ServiceSupervisor(osi, clock.schedule, lambda pid, cb: claims.__setitem__(pid, cb), FakeLog())

    def die(svc, status=EXIT_1, group_too=True):
        pid = svc.pid
        if group_too:
            osi.alive_groups.discard(pid)
        claims.pop(pid)(pid, status)

    return clock, osi, sup, die


def make(sup, **kw):
    spec = ServiceSpec(kw.pop("name", "svc"), ["/bin/prog"], **kw)
    return sup.add(spec)


def into_state(world, state, **kw):
    clock, osi, sup, die = world
    svc = make(sup, **kw)
    if state == STOPPED:
        pass
    elif state == RUNNING:
        svc.handle(START)
    elif state == STOPPING:
        svc.handle(START)
        svc.handle(STOP)
    elif state == BACKOFF:
        svc.handle(START)
        die(svc)
    elif state == EXITED:
        svc.restarts.policy = "never"
        svc.handle(START)
        die(svc)
        svc.restarts.policy = "always"
    elif state == FAILED:
        osi.fail_spawns = 1
        svc.handle(START)
    assert svc.state == state
    return svc


# The expected outcome of every (state, event) pair, written independently of TRANSITIONS.
EXPECTED = {
    (STOPPED, START): RUNNING, (STOPPED, STOP): STOPPED,
    (STOPPED, EXIT): STOPPED, (STOPPED, TIMER): STOPPED,
    (RUNNING, START): RUNNING, (RUNNING, STOP): STOPPING,
    (RUNNING, EXIT): BACKOFF, (RUNNING, TIMER): RUNNING,
    (STOPPING, START): STOPPING, (STOPPING, STOP): STOPPING,
    (STOPPING, EXIT): STOPPED, (STOPPING, TIMER): STOPPING,
    (BACKOFF, START): RUNNING, (BACKOFF, STOP): STOPPED,
    (BACKOFF, EXIT): BACKOFF, (BACKOFF, TIMER): RUNNING,
    (EXITED, START): RUNNING, (EXITED, STOP): EXITED,
    (EXITED, EXIT): EXITED, (EXITED, TIMER): EXITED,
    (FAILED, START): RUNNING, (FAILED, STOP): STOPPED,
    (FAILED, EXIT): FAILED, (FAILED, TIMER): RUNNING,
}


def test_table_covers_every_pair():
    assert set(TRANSITIONS) == set(itertools.product(STATES, EVENTS))
    assert set(EXPECTED) == set(TRANSITIONS)


@pytest.mark.parametrize("state,event", sorted(EXPECTED))
def test_every_state_event_pair(world, state, event):
    clock, osi, sup, die = world
    svc = into_state(world, state, retry_after=30.0)
    if event == EXIT:
        osi.alive_groups.discard(svc.pgid)
        svc.handle(EXIT, EXIT_1)
    else:
        svc.handle(event)
    assert svc.state == EXPECTED[(state, event)]


def test_stopping_timer_kills_the_group(world):
    clock, osi, sup, die = world
    svc = into_state(world, STOPPING, stop_timeout=2.0)
    pgid = svc.pgid
    assert osi.kills == [(-pgid, services.SIGTERM)]
    clock.advance(1.9)
    assert osi.kills == [(-pgid, services.SIGTERM)]
    clock.advance(0.2)
    assert osi.kills[-1] == (-pgid, services.SIGKILL)
    die(svc, status=9)
    assert svc.state == STOPPED and svc.last_exit == 128 + 9


def test_group_outliving_its_leader_is_killed(world):
    clock, osi, sup, die = world
    svc = into_state(world, STOPPING, stop_timeout=1.0)
    pgid = svc.pgid
    die(svc, status=15, group_too=False)        # leader gone, a grandchild ignores TERM
    assert svc.state == STOPPING
    clock.advance(0.99)
    assert (-pgid, services.SIGKILL) not in osi.kills
    clock.advance(0.01)
    assert (-pgid, services.SIGKILL) in osi.kills
    osi.alive_groups.discard(pgid)
    clock.advance(services.STOP_POLL)
    assert svc.state == STOPPED


def test_zombie_group_members_do_not_delay_the_stop(world):
    clock, osi, sup, die = world
    svc = into_state(world, STOPPING, stop_timeout=5.0)
    die(svc, status=15, group_too=False)        # members died too, but are not reaped yet
    osi.alive_groups.discard(svc.pgid)          # ...now they are
    clock.advance(services.STOP_POLL)
    assert svc.state == STOPPED and all(sig != services.SIGKILL for _p, sig in osi.kills)


def test_start_while_stopping_restarts_after_the_stop(world):
    clock, osi, sup, die = world
    svc = into_state(world, STOPPING)
    svc.handle(START)
    die(svc, status=15)
    assert svc.state == RUNNING and len(osi.spawned) == 2


def test_backoff_doubles_up_to_the_cap(world):
    clock, osi, sup, die = world
    svc = make(sup, backoff_initial=0.5, backoff_max=3.0, intensity=100)
    svc.handle(START)
    delays = []
    for _ in range(6):
        die(svc)
        before = clock.t
        assert svc.state == BACKOFF
        deadline = clock.timers[-1][0]
        delays.append(deadline - before)
        clock.advance(deadline - before)
        assert svc.state == RUNNING
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_a_stable_run_resets_the_backoff(world):
    clock, osi, sup, die = world
    svc = make(sup, backoff_initial=1.0, stable_after=10.0, intensity=100)
    svc.handle(START)
    die(svc)
    clock.advance(1.0)
    die(svc)
    clock.advance(2.0)
    clock.advance(15.0)          # runs for 15 s: stable
    die(svc)
    assert clock.timers[-1][0] - clock.t == 1.0


def test_restart_intensity_fails_the_service(world):
    clock, osi, sup, die = world
    svc = make(sup, backoff_initial=0.1, backoff_max=0.1, intensity=3, period=10.0)
    svc.handle(START)
    for _ in range(3):
        die(svc)
        clock.advance(0.1)
    die(svc)
    assert svc.state == FAILED
    assert "exited 4 times within 10s" in svc.last_error
    clock.advance(100)
    assert svc.state == FAILED and len(osi.spawned) == 4


def test_restarts_outside_the_period_do_not_count(world):
    clock, osi, sup, die = world
    svc = make(sup, backoff_initial=0.1, backoff_max=0.1, intensity=2, period=5.0)
    svc.handle(START)
    for _ in range(10):
        clock.advance(3.0)
        die(svc)
        clock.advance(0.1)
    assert svc.state == RUNNING


def test_failed_service_retries_after_retry_after(world):
    clock, osi, sup, die = world
    osi.fail_spawns = 1
    svc = make(sup, retry_after=60.0)
    svc.handle(START)
    assert svc.state == FAILED and "No such file" in svc.last_error
    clock.advance(59)
    assert svc.state == FAILED
    clock.advance(1)
    assert svc.state == RUNNING


def test_missing_program_fails_at_once_without_a_loop(world):
    clock, osi, sup, die = world
    osi.fail_spawns = 100
    svc = make(sup)
    svc.handle(START)
    clock.advance(3600)
    assert svc.state == FAILED and svc.starts == 0
    assert svc.last_error == "cannot start /bin/prog: No such file or directory"


@pytest.mark.parametrize("policy,status,state", [
    ("never", EXIT_1, EXITED), ("never", EXIT_0, EXITED),
    ("on-failure", EXIT_0, EXITED), ("on-failure", EXIT_1, BACKOFF),
    ("always", EXIT_0, BACKOFF), ("always", 125 << 8, EXITED),
])
def test_restart_policies(world, policy, status, state):
    clock, osi, sup, die = world
    svc = make(sup, restart=policy)
    svc.handle(START)
    die(svc, status=status)
    assert svc.state == state


def test_stale_timer_is_ignored(world):
    clock, osi, sup, die = world
    svc = make(sup, backoff_initial=5.0)
    svc.handle(START)
    die(svc)
    svc.handle(START)            # start now instead of waiting
    assert svc.state == RUNNING
    clock.advance(10)            # the old backoff timer fires: must not spawn again
    assert len(osi.spawned) == 2


def test_shutdown_stops_and_never_restarts(world):
    clock, osi, sup, die = world
    a, b = make(sup, name="a"), make(sup, name="b")
    sup.start_all()
    sup.stop_all()
    assert a.state == b.state == STOPPING
    die(a, status=15)
    die(b, status=15)
    clock.advance(100)
    assert sup.all_resting() and len(osi.spawned) == 2


def test_exit_code_decoding():
    assert [exit_code(n << 8) for n in (0, 1, 125, 255)] == [0, 1, 125, 255]
    assert exit_code(9) == 137 and exit_code(15) == 143
    assert exit_code(11 | 0x80) == 139          # core dumped


@pytest.mark.parametrize("kw,needle", [
    ({"argv": []}, "argv"),
    ({"argv": ["prog"]}, "absolute path"),
    ({"restart": "sometimes"}, "restart='sometimes'"),
    ({"stop_timeout": 0}, "stop_timeout=0"),
    ({"intensity": -1}, "intensity=-1"),
])
def test_bad_specs_say_what_is_wrong(kw, needle):
    args = {"argv": ["/bin/prog"], **kw}
    with pytest.raises(SpecError, match=needle.replace("(", r"\(")):
        ServiceSpec("svc", **args)


def test_duplicate_service_names_are_rejected(world):
    _clock, _osi, sup, _die = world
    make(sup)
    with pytest.raises(SpecError, match="defined twice"):
        make(sup)
