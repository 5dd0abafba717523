"""fork_call's ``nice``: the child is at its priority before its set-up and imports run.

A low-priority service (aetherd, nice 10) forked right after the consoles must not
compete with them at priority 0 while it sets itself up and imports its module: on
one CPU under TCG that held the serial console's first prompt back (issue 14)."""

import os

import pytest

from aether import spawn


def entry(_args):
    """What the forked child runs: nothing; exit status 0."""
    return 0


def test_a_forked_child_is_at_its_niceness_before_its_set_up(monkeypatch):
    now = os.getpriority(os.PRIO_PROCESS, 0)
    if now >= 19:
        pytest.skip("this process runs at nice 19: no lower priority to ask for")
    wanted = min(19, now + 5)
    r, w = os.pipe()
    real_setup = spawn._child_setup

    def setup(*args, **kwargs):
        # In the child: its niceness when its set-up starts, then the real set-up
        # (which closes w with every other inherited descriptor).
        os.write(w, str(os.getpriority(os.PRIO_PROCESS, 0)).encode())
        real_setup(*args, **kwargs)

    monkeypatch.setattr(spawn, "_child_setup", setup)
    pid = spawn.fork_call(f"{__name__}:entry", [], nice=wanted)
    os.close(w)
    seen = os.read(r, 16).decode()
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert seen == str(wanted), (f"the child set itself up at nice {seen}, not at the nice "
                                 f"{wanted} it was started with")
