"""The shared restart rules."""

from aether.restart import DONE, FAIL, RESTART, RestartTracker


def tracker(policy="always", intensity=3):
    return RestartTracker(policy, 0.5, 4.0, intensity, 10.0, 5.0)


def test_exit_125_is_done_unless_the_supervisor_killed_it():
    assert tracker().decide(125, 1, 0)[0] == DONE
    assert tracker().decide(125, 1, 0, failed=True)[0] == RESTART


def test_on_failure_restarts_non_zero_and_forced_failures():
    t = tracker("on-failure")
    assert t.decide(0, 1, 0)[0] == DONE
    assert t.decide(0, 1, 0, failed=True)[0] == RESTART
    assert t.decide(3, 1, 1)[0] == RESTART


def test_backoff_doubles_caps_and_resets_after_a_stable_run():
    t = tracker(intensity=100)
    delays = [t.decide(1, 0.1, i)[1] for i in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert t.decide(1, 6.0, 7) == (RESTART, 0.5)


def test_intensity_window():
    t = tracker(intensity=2)
    assert [t.decide(1, 0.1, now)[0] for now in (0, 1, 2)] == [RESTART, RESTART, FAIL]
    t = tracker(intensity=2)
    assert [t.decide(1, 0.1, now)[0] for now in (0, 6, 12, 18)] == [RESTART] * 4
