"""The boot steps PID 1 takes before it starts services.

Each step is fatal or degraded, decided here once: a fatal step that fails
stops the boot (no services start; the failure and a hint are on the console;
the machine stays up and still answers the power button and Ctrl-Alt-Del); a
degraded step that fails is logged and the boot goes on.
"""

import os
import time

from . import config, mounts, netif, power, syscalls

FATAL = True
DEGRADED = False

DATA_DIR = "/var/lib/aether"
RUN_DIR = "/run/aether"


def _mount_step(entry):
    source, target, fstype, flags, data, fatal, hint = entry

    def step(_init):
        mounts.mount(source, target, fstype, flags, data)
    return (f"mount {fstype} on {target}", step, fatal, hint)


def dev_links(_init):
    mounts.dev_links()


def load_config(init):
    init.config = config.load(init.log.warning)
    init.log.set_level(init.config["log_level"])


def hostname(init):
    with open("/proc/sys/kernel/hostname", "w") as f:
        f.write(init.config["hostname"])


def loopback(_init):
    netif.up("lo")


def ctrl_alt_del(_init):
    syscalls.reboot(syscalls.RB_DISABLE_CAD)


def entropy(init):
    try:
        os.getrandom(1, os.GRND_NONBLOCK)
        init.log.info("entropy: the kernel's random pool is ready")
    except BlockingIOError:
        init.log.info("entropy: the kernel's random pool is not ready yet; nothing in boot waits for it")


def data_location(init):
    # The data partition (label AETHER-DATA) arrives with the disk image; until then,
    # and whenever it is missing, the data location is memory and we say so loudly.
    mounts.mount("tmpfs", DATA_DIR, "tmpfs", syscalls.MS_NOSUID | syscalls.MS_NODEV, "mode=0755")
    init.data_persistent = False
    init.log.warning(f"no data partition: {DATA_DIR} is in memory; NOTHING WILL SURVIVE A REBOOT")


def run_dir(_init):
    os.makedirs(RUN_DIR, mode=0o755, exist_ok=True)


def power_button(init):
    buttons = power.watch(init.loop, init.log, lambda: init.request("poweroff"))
    names = ", ".join(f"{node} ({name})" for node, name in buttons) or "none found"
    init.log.info(f"power buttons: {names}")


STEPS = (
    *(_mount_step(m) for m in mounts.API_MOUNTS),
    ("device links", dev_links, DEGRADED, None),
    ("data location", data_location, DEGRADED, None),
    ("configuration", load_config, DEGRADED, None),
    ("hostname", hostname, DEGRADED, "set aether.hostname=<name>"),
    ("loopback", loopback, DEGRADED, "the kernel needs CONFIG_INET=y"),
    ("ctrl-alt-del", ctrl_alt_del, DEGRADED, None),
    ("entropy", entropy, DEGRADED, None),
    ("run directory", run_dir, DEGRADED, None),
    ("power button", power_button, DEGRADED, "the kernel needs CONFIG_ACPI_BUTTON and CONFIG_INPUT_EVDEV"),
)


def run(init, steps=STEPS):
    """Take every step; return False if a fatal one failed."""
    for name, step, fatal, hint in steps:
        started = time.monotonic()
        try:
            step(init)
            init.log.debug(f"boot step {name}: {1000 * (time.monotonic() - started):.0f} ms")
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
    return True
