"""Boot steps: a fatal failure stops the boot with a hint; a degraded one is logged and skipped."""

from aether.pid1 import boot


class Recorder:
    def __init__(self):
        self.lines = []
        self.log = self

    def _add(self, level):
        return lambda msg: self.lines.append((level, msg))

    def __getattr__(self, level):
        if level in ("debug", "info", "warning", "error"):
            return self._add(level)
        raise AttributeError(level)


def failing(_init):
    raise OSError(19, "No such device")


def test_degraded_failure_is_logged_and_boot_goes_on():
    init, ran = Recorder(), []
    steps = [("first", failing, boot.DEGRADED, "try this"),
             ("second", lambda i: ran.append("second"), boot.FATAL, None)]
    assert boot.run(init, steps) is True
    assert ran == ["second"]
    assert ("warning", "first failed: [Errno 19] No such device (hint: try this); "
                       "continuing without it") in init.lines


def test_fatal_failure_stops_the_boot_with_the_hint():
    init, ran = Recorder(), []
    steps = [("mount proc on /proc", failing, boot.FATAL, "the kernel needs CONFIG_PROC_FS=y"),
             ("later", lambda i: ran.append("later"), boot.DEGRADED, None)]
    assert boot.run(init, steps) is False
    assert ran == []
    errors = [msg for level, msg in init.lines if level == "error"]
    assert errors[0] == ("FATAL: mount proc on /proc failed: [Errno 19] No such device "
                         "(hint: the kernel needs CONFIG_PROC_FS=y)")
    assert "power button powers off" in errors[1]


def test_every_api_mount_is_a_step_and_proc_sys_dev_are_fatal():
    names = {name: fatal for name, _step, fatal, _hint in boot.STEPS}
    for point in ("/proc", "/sys", "/dev"):
        assert any(n.endswith(f" on {point}") and f for n, f in names.items()), point
    for point in ("/dev/pts", "/dev/shm", "/run", "/tmp", "/sys/fs/cgroup"):
        assert any(n.endswith(f" on {point}") for n in names), point
