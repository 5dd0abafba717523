"""PID 1 starts the consoles after the early boot steps and reconciles them with the
data partition's settings once the late steps have read them (issue 14)."""

from aether.pid1 import boot
from aether.pid1.init import Init
from aether.pid1.services import ServiceSupervisor
from aether.states import RUNNING, START, STOPPING
from aether import config


class FakeOs:
    def __init__(self):
        self.next_pid, self.killed = 100, []

    def spawn(self, spec):
        self.next_pid += 1
        return self.next_pid

    def kill(self, pid, sig):
        self.killed.append((pid, sig))

    def group_alive(self, pgid):
        return True

    def now(self):
        return 0.0


def make_init(tmp_path, consoles):
    init = Init(host=True, status_path=str(tmp_path / "init.json"))
    init.sup = ServiceSupervisor(FakeOs(), lambda delay, cb: None, lambda pid, cb: None, init.log)
    init.config = {"consoles": consoles, "stop_timeout": 5.0}
    init._tty_exists = lambda tty, report=False: True
    return init


def states(init):
    return {name: svc.state for name, svc in init.sup.services.items()}


def test_consoles_start_before_aetherd_and_follow_the_data_partition(tmp_path):
    init = make_init(tmp_path, ["ttyS0"])
    init.start_consoles()
    assert states(init) == {"console@ttyS0": RUNNING}

    init.config = {"consoles": ["ttyS0", "tty1"], "stop_timeout": 7.0}
    init.reconcile_consoles()
    assert states(init) == {"console@ttyS0": RUNNING, "console@tty1": RUNNING}
    assert init.sup.services["console@tty1"].spec.nice > 0       # the first prompt comes first
    assert init.sup.services["console@ttyS0"].spec.stop_timeout == 7.0

    init.config = {"consoles": ["tty1"], "stop_timeout": 7.0}
    init.reconcile_consoles()
    init.add_aetherd()
    init.sup.send("aetherd", START)
    # the stopped console stays stopped: starting aetherd does not restart it
    assert states(init) == {"console@ttyS0": STOPPING, "console@tty1": RUNNING, "aetherd": RUNNING}
    # and it was killed at once, not only asked to stop
    ttys0 = init.sup.services["console@ttyS0"]
    assert (-ttys0.pgid, 9) in init.sup.osi.killed


def test_reconcile_with_the_same_setting_changes_nothing(tmp_path):
    init = make_init(tmp_path, "auto")
    init.console_ttys = lambda: ["ttyS0", "tty1"]
    init.start_consoles()
    assert [svc.spec.nice for svc in init.sup.services.values()] == [0, 10]
    before = {name: svc.pid for name, svc in init.sup.services.items()}
    init.reconcile_consoles()
    assert {name: svc.pid for name, svc in init.sup.services.items()} == before
    assert set(states(init).values()) == {RUNNING}


def test_a_missing_terminal_is_reported_once(tmp_path):
    init = make_init(tmp_path, ["ttyS9"])
    del init._tty_exists                       # the real check: this host has no ttyS9
    lines = []
    init.log.warning = lines.append
    init.start_consoles()
    init.reconcile_consoles()
    assert len(lines) == 1 and "ttyS9" in lines[0]
    assert states(init) == {}


def test_every_fatal_step_comes_before_the_consoles():
    early = [name for name, _s, _f, _h in boot.EARLY_STEPS]
    assert all(not fatal for _n, _s, fatal, _h in boot.LATE_STEPS)
    for point in ("/proc", "/sys", "/dev", "/run"):
        assert any(name.endswith(f" on {point}") for name in early), point
    # /run is mounted before the directory the consoles' ready flags go in
    assert early.index("mount tmpfs on /run") < early.index("run directory")
    assert early[-1] == "early configuration"
    # what a person may do as soon as the prompt shows is handled from then on
    assert {"power button", "ctrl-alt-del"} <= set(early)
    assert [n for n, *_ in boot.STEPS] == early + [n for n, *_ in boot.LATE_STEPS]


def test_early_configuration_leaves_the_data_partition_out(tmp_path):
    (tmp_path / "cmdline").write_text("quiet aether.hostname=fromcmdline\n")
    (tmp_path / "data").write_text("consoles = ttyS0\nlog_level = debug\n")
    (tmp_path / "defaults").write_text("")
    early = config.load(lambda m: None, cmdline=tmp_path / "cmdline", data=None,
                        defaults=tmp_path / "defaults")
    full = config.load(lambda m: None, cmdline=tmp_path / "cmdline", data=tmp_path / "data",
                       defaults=tmp_path / "defaults")
    assert early["consoles"] == "auto" and full["consoles"] == ["ttyS0"]
    assert early["hostname"] == full["hostname"] == "fromcmdline"


def test_the_first_line_logged_after_the_consoles_start_begins_on_its_own_line(tmp_path):
    import os
    from aether.log import Log
    r, w = os.pipe()
    log = Log(fd=w)
    log.info("before")
    log.break_next_line()
    log.info("after the prompt")
    log.info("next")
    os.close(w)
    with os.fdopen(r, "rb") as f:
        assert f.read() == (b"aether-init: before\n\naether-init: after the prompt\n"
                            b"aether-init: next\n")


class FailingOs(FakeOs):
    def spawn(self, spec):
        raise OSError(11, "Resource temporarily unavailable")


def test_a_failed_console_the_settings_leave_out_is_not_retried(tmp_path):
    timers = []
    init = make_init(tmp_path, ["ttyS0", "tty1"])
    init.sup = ServiceSupervisor(FailingOs(), lambda delay, cb: timers.append(cb),
                                 lambda pid, cb: None, init.log)
    init.start_consoles()
    assert {s.state for s in init.sup.services.values()} == {"failed"}
    init.sup.osi = FakeOs()                   # the fork would work now
    init.config = {"consoles": ["tty1"], "stop_timeout": 5.0}
    init.reconcile_consoles()
    for fire in timers:                       # every retry that was scheduled comes due
        fire()
    assert states(init)["console@ttyS0"] == "stopped"
    assert states(init)["console@tty1"] == RUNNING


def test_a_terminal_named_twice_gets_one_console(tmp_path):
    cfg = config.load(lambda m: None, cmdline=_write(tmp_path, "cmdline", "aether.consoles=ttyS0,ttyS0,tty1"),
                      data=None, defaults=_write(tmp_path, "defaults", ""))
    assert cfg["consoles"] == ["ttyS0", "tty1"]


def test_an_error_after_the_consoles_start_still_takes_the_late_steps(tmp_path, monkeypatch):
    init = make_init(tmp_path, ["ttyS0"])
    ran, logged = [], []
    init.log.exception = lambda what, e: logged.append(what)
    init.start_consoles = lambda: 1 / 0
    init.guarded("starting the consoles", init.start_consoles)
    init.guarded("the late boot steps", lambda: ran.append("late"))
    assert ran == ["late"] and "starting the consoles" in logged[0]


def _write(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    return tmp_path / name
