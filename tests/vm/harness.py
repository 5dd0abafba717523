"""Helpers for the VM tests: which image, where the logs go, booting, parsing the console.

The VM itself (QEMU, serial pipes, QMP) is ``aetherbuild.vm.VM``; the bench uses
it too.  Tests always run under TCG: timings are comparable, and KVM hangs on some
hosts.  Every VM's serial log is kept in out/test-logs/<test-name>.serial.log.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from aetherbuild import hosttools, paths, qemu, sparse  # noqa: E402
from aetherbuild.vm import VM  # noqa: E402

# A boot that does not reach `aether-ready` within this many seconds under TCG fails.
BOOT_TIMEOUT = 60
# A console command, or a shutdown, must finish within this many seconds.
COMMAND_TIMEOUT = 30
SHUTDOWN_TIMEOUT = 30

REQUIRE_ENV = "AETHER_REQUIRE_IMAGE"
EXPECTED_MOUNTS = ("/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/run", "/tmp",
                   "/sys/fs/cgroup")
POWER_DOWN = "reboot: Power down"
RESTART = "reboot: Restarting system"


def log_dir():
    d = paths.out_dir() / "test-logs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def log_name(test_name):
    """A file-system-safe name for a test (parametrized ids have brackets, slashes...)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name).strip("_")


def image_problem():
    """Why the VM tests cannot run here, or None when they can."""
    if shutil.which(qemu.QEMU) is None:
        return f"{qemu.QEMU} is not installed (apt-get install {qemu.QEMU_PACKAGE}, or make deps)"
    missing = qemu.missing_images(qemu.default_kernel(), qemu.default_initrd())
    if missing:
        names = ", ".join(str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)
                          for p in missing)
        return f"no image: {names} missing (run: make image)"
    return None


def disk_problem():
    """Why the disk tests cannot run here, or None when they can."""
    problem = image_problem()
    if problem:
        return problem
    if not qemu.default_disk().is_file():
        return f"no disk image: {qemu.default_disk()} is missing (run: make disk)"
    return None


def disk_copy(dest):
    """A sparse copy of out/images/disk.img at ``dest``: tests never write the built image."""
    sparse.copy(qemu.default_disk(), dest)
    return Path(dest)


def delete_partition(disk, number):
    """Remove partition ``number`` from a disk image's GPT (sfdisk works on plain files)."""
    subprocess.run([hosttools.which("sfdisk"), "--no-reread", "--no-tell-kernel", "-q",
                    "--delete", str(disk), str(number)], check=True, capture_output=True)


def image_required():
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


class Booter:
    """Boots VMs for one test (or module), names their logs, and kills them all at the end."""

    def __init__(self, name):
        self.name = log_name(name)
        self.vms = []

    def boot(self, wait_ready=True, wait_finished=True, **options):
        """Start a TCG VM (options as for vm.VM); by default wait for the first prompt and
        then for PID 1's late boot steps, which run after it (aether/pid1/boot.py):
        ``wait_finished=False`` acts at the prompt itself."""
        suffix = f"-{len(self.vms) + 1}" if self.vms else ""
        vm = VM(log_dir() / f"{self.name}{suffix}.serial.log", accel="tcg", **options)
        self.vms.append(vm)
        vm.start()
        if wait_ready:
            vm.wait_ready(BOOT_TIMEOUT)
            if wait_finished and not logs_above_info(options.get("append", "")):
                wait_boot_finished(vm)
        return vm

    def close(self):
        for vm in self.vms:
            vm.close()


BOOT_FINISHED_RE = r"^aether-init: boot finished at "


def logs_above_info(append):
    """True when the kernel arguments set PID 1's log level above info (no `boot finished`)."""
    return any(word in ("aether.log_level=warning", "aether.log_level=error")
               for word in append.split())


def wait_boot_finished(vm, timeout=BOOT_TIMEOUT):
    """Wait for PID 1's `boot finished` line (logged at info level, after the late steps)."""
    if BOOT_FINISHED_RE[1:] not in vm.output:
        vm.expect(BOOT_FINISHED_RE, timeout)


def fields(text):
    """`key: value` lines of a console reply (e.g. `status`) as a dict."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            out.setdefault(key.strip(), value.strip())
    return out


def init_lines(text):
    """The lines PID 1 logged (`aether-init: ...`), also one that follows a console's prompt
    on the same line (the late boot steps log while the first prompt is up)."""
    return [line[line.index("aether-init: "):] for line in text.splitlines()
            if "aether-init: " in line]


def assert_orderly_shutdown(text, kernel_line):
    """PID 1 logged its shutdown, then the kernel printed `kernel_line`; no panic, no traceback."""
    assert kernel_line in text, f"the kernel never printed {kernel_line!r}"
    before = text[:text.index(kernel_line)]
    assert init_lines(before), \
        f"PID 1 logged nothing (no 'aether-init: ' line) before {kernel_line!r}"
    assert "Kernel panic" not in text, "the kernel panicked during shutdown"
    assert "Traceback" not in text, "a Python traceback was printed during shutdown"


def wait(predicate, timeout, what, interval=0.5):
    """predicate()'s first truthy value, polled; AssertionError naming ``what`` after timeout s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s")


def abi_client(vm, timeout=90):
    """An ABI client on the VM's host channel, once aetherd answers (it starts after the prompt)."""
    from aether.abi.protocol import AbiError
    from aether.client import Client
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = Client(str(vm.ctl_socket), timeout=30)
            c.call("abi.hello")
            return c
        except (AbiError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
