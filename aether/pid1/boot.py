"""The boot steps PID 1 takes before it starts services.

Each step is fatal or degraded, decided here once: a fatal step that fails
stops the boot (no services start; the failure and a hint are on the console;
the machine stays up and still answers the power button and Ctrl-Alt-Del); a
degraded step that fails is logged and the boot goes on.

The steps come in two parts (issue 14, boot time): EARLY_STEPS, what a console
needs (/proc, /sys, /dev, /run and the settings of the kernel command line and
the image), after which PID 1 starts the consoles; then LATE_STEPS, which run
while the first prompt is drawn, before aetherd starts.  Every fatal step is
early, so a boot that stops never leaves a console running on a half-made
machine; every late step is degraded.
"""

import os
import time

from .. import config, syscalls
from ..sysinfo import DATA_DIR
from . import mounts, power

FATAL = True
DEGRADED = False

RUN_DIR = "/run/aether"


def _mount_step(entry):
    source, target, fstype, flags, data, fatal, hint = entry

    def step(_init):
        mounts.mount(source, target, fstype, flags, data)
    return (f"mount {fstype} on {target}", step, fatal, hint)


def dev_links(_init):
    mounts.dev_links()


def early_config(init):
    """The settings of the kernel command line and the image defaults: enough to start
    the consoles.  The data partition's file is read once it is mounted (load_config)."""
    load_config(init, data=None)


def load_config(init, data=config.DATA_CONFIG):
    init.config = config.load(init.warn_once, data=data)   # both loads: a bad value said once
    init.log.set_level(init.config["log_level"])


def hostname(init):
    with open("/proc/sys/kernel/hostname", "w") as f:
        f.write(init.config["hostname"])


def loopback(_init):
    from .. import netif      # late steps only: not on the way to the first prompt
    netif.up("lo")


def user_network(init):
    """A virtio NIC gets QEMU's user-network address (aether/netif.py); none: nothing."""
    from .. import netif
    init.log.info(f"network: {netif.user_net()}")


def ctrl_alt_del(_init):
    syscalls.reboot(syscalls.RB_DISABLE_CAD)


def entropy(init):
    try:
        os.getrandom(1, os.GRND_NONBLOCK)
        init.log.info("entropy: the kernel's random pool is ready")
    except BlockingIOError:
        init.log.info("entropy: the kernel's random pool is not ready yet; nothing in boot waits for it")


def data_location(init):
    """The data partition on /var/lib/aether, or a tmpfs there (aether/pid1/datadisk.py), and the
    boot counter on it."""
    from . import datadisk    # late steps only: not on the way to the first prompt
    wait = datadisk.WAIT_FROM_DISK if datadisk.booting_from_disk() else 0.0
    devices, waited = datadisk.find(datadisk.scan, wait)
    init.data_persistent, _node = datadisk.attach(init.log, mounts.mount, devices, waited,
                                                  datadisk.root_disk(), DATA_DIR)
    try:
        count = datadisk.count_boot(DATA_DIR, init.log)
    except OSError as e:
        init.log.warning(f"cannot update the boot counter {DATA_DIR}/{datadisk.BOOT_COUNT}: {e}")
        return
    where = "" if init.data_persistent else " (in memory)"
    init.log.info(f"boot {count} recorded in {DATA_DIR}/{datadisk.BOOT_COUNT}{where}")


def run_dir(_init):
    os.makedirs(RUN_DIR, mode=0o755, exist_ok=True)


def power_button(init):
    buttons = power.watch(init.loop, init.log, lambda: init.request("poweroff"))
    names = ", ".join(f"{node} ({name})" for node, name in buttons) or "none found"
    init.log.info(f"power buttons: {names}")


EARLY_MOUNTS = ("/proc", "/sys", "/dev", "/run")

EARLY_STEPS = (
    *(_mount_step(m) for m in mounts.API_MOUNTS if m[1] in EARLY_MOUNTS),
    ("run directory", run_dir, DEGRADED, None),
    # Before the first prompt, as a person may act on it at once: Ctrl-Alt-Del then asks
    # PID 1 for an orderly restart (not the kernel's immediate one), and the power button
    # is already watched.
    ("ctrl-alt-del", ctrl_alt_del, DEGRADED, None),
    ("power button", power_button, DEGRADED, "the kernel needs CONFIG_ACPI_BUTTON and CONFIG_INPUT_EVDEV"),
    ("early configuration", early_config, DEGRADED, None),
)

LATE_STEPS = (
    *(_mount_step(m) for m in mounts.API_MOUNTS if m[1] not in EARLY_MOUNTS),
    ("device links", dev_links, DEGRADED, None),
    ("link protection", lambda _init: mounts.protect_links(), DEGRADED, None),
    ("data location", data_location, DEGRADED, None),
    ("configuration", load_config, DEGRADED, None),
    ("hostname", hostname, DEGRADED, "set aether.hostname=<name>"),
    ("loopback", loopback, DEGRADED, "the kernel needs CONFIG_INET=y"),
    ("network", user_network, DEGRADED, None),
    ("entropy", entropy, DEGRADED, None),
)

STEPS = EARLY_STEPS + LATE_STEPS


def run(init, steps=STEPS, label="boot steps"):
    """Take every step; return False if a fatal one failed.

    Each step's duration is logged at debug level once all steps ran (the log
    level itself comes from the configuration, read part-way through).
    """
    timings = []
    try:
        for name, step, fatal, hint in steps:
            started = time.monotonic()
            try:
                step(init)
            except Exception as e:  # noqa: BLE001 - each step decides fatal or degraded
                reason = f"{name} failed: {e}"
                if hint:
                    reason += f" (hint: {hint})"
                if fatal:
                    init.log.error(f"FATAL: {reason}")
                    init.log.error("boot stopped; no services started. The machine stays up: "
                                   "the power button powers off, Ctrl-Alt-Del reboots.")
                    return False
                init.log.warning(f"{reason}; continuing without it")
            finally:
                timings.append((name, time.monotonic() - started))
        return True
    finally:
        init.log.debug(f"{label}: " + ", ".join(f"{n} {1000 * t:.0f} ms" for n, t in timings))
