"""QEMU for AetherOS: the command line, the accelerator choice, and process hygiene.

Its users:

* ``scripts/run-qemu`` (``make run``): an interactive boot with the serial
  console and QEMU's monitor multiplexed on the terminal (Ctrl-A X quits,
  Ctrl-A C switches to the monitor);
* the VM tests (``tests/vm``) and ``scripts/bench``, through
  :class:`aetherbuild.vm.VM`, a scripted boot built on the command line here.

A machine boots the kernel and initramfs directly (``-kernel``/``-initrd``, the
default), or from a disk image through its firmware (``disk`` without
``kernel``): SeaBIOS, QEMU's default, for legacy BIOS, or OVMF (Debian's
``ovmf`` package, as pflash with a private copy of its variable store) for
UEFI.  Disks are virtio-blk.

KVM: ``/dev/kvm`` can exist on a host where KVM guests hang in early boot, so
``--accel auto`` boots the kernel once under KVM with a timeout
(:func:`probe_kvm`) and falls back to TCG.  The verdict is cached for the
current boot of the host (keyed by ``/proc/sys/kernel/random/boot_id``, the
kernel and the QEMU binary) in ``out/run/kvm-probe.json``.

Every QEMU started here gets ``PR_SET_PDEATHSIG=SIGKILL``: if the Python
process that started it dies (even by SIGKILL), the kernel kills QEMU too.
"""

import contextlib
import ctypes
import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from . import cpio, paths
from .log import BuildError

QEMU = "qemu-system-x86_64"
QEMU_PACKAGE = "qemu-system-x86"
CTL_PORT_NAME = "org.aetheros.ctl"
READY_RE = r"aether-ready uptime=(\d+(?:\.\d+)?)"
PROMPT = "aether> "
CONFIRM = "Run it? [y/N] "      # the intent shell asks this before a risky plan

# A working KVM guest reaches its "no root" panic in well under a second; one
# that hangs never does.  Long enough for a loaded host, short enough to wait.
KVM_PROBE_TIMEOUT = 5.0
# How long SIGKILL may take to end QEMU before we give up waiting (never hang).
KILL_WAIT = 10.0
# How long QEMU may take to create its QMP socket after it started.
QMP_CONNECT_TIMEOUT = 10.0
# Seconds the kernel waits after a panic before rebooting, for interactive runs
# (time to read the message).  Scripted runs use -1: reboot at once, and with
# -no-reboot QEMU then exits, so a panic ends the run instead of hanging it.
INTERACTIVE_PANIC = 10
SCRIPTED_PANIC = -1


class QemuError(BuildError):
    """QEMU is missing, an image is missing, or a VM did not do what was expected."""


class ExpectTimeout(QemuError):
    """The serial console did not show the expected text in time."""


class VMExited(QemuError):
    """QEMU exited while we were still waiting for serial output."""


# --------------------------------------------------------------------------
# Paths and requirements


def qemu_binary():
    path = shutil.which(QEMU)
    if path is None:
        raise QemuError(f"{QEMU} is not installed",
                        hint=f"apt-get install {QEMU_PACKAGE}  (or run: make deps)")
    return path


def default_kernel():
    return paths.images_dir() / "bzImage"


def default_initrd():
    return paths.images_dir() / ("rootfs.cpio" + cpio.SUFFIX)


def run_dir():
    """out/run/: sockets and the KVM probe cache of interactive runs."""
    d = paths.out_dir() / "run"
    d.mkdir(parents=True, exist_ok=True)
    return d


def default_disk():
    return paths.images_dir() / "disk.img"


def missing_images(kernel, initrd, disk=None):
    """The image files that do not exist (any may be None: not used)."""
    return [p for p in (kernel, initrd, disk) if p is not None and not Path(p).is_file()]


def require_images(kernel, initrd, disk=None):
    missing = missing_images(kernel, initrd, disk)
    if missing:
        raise QemuError(f"image file(s) missing: {', '.join(map(str, missing))}",
                        hint="run: make image   (builds out/images/bzImage and rootfs.cpio.lz4)"
                             + ("; make disk   (builds out/images/disk.img)" if disk else ""))


# --------------------------------------------------------------------------
# Firmware

OVMF_DIR = Path("/usr/share/OVMF")
OVMF_CODE = "OVMF_CODE_4M.fd"      # without Secure Boot: GRUB's image is not signed
OVMF_VARS = "OVMF_VARS_4M.fd"
FIRMWARES = ("bios", "uefi")


def ovmf_files():
    """(code, variable store template) of Debian's OVMF."""
    code, varstore = OVMF_DIR / OVMF_CODE, OVMF_DIR / OVMF_VARS
    if not (code.is_file() and varstore.is_file()):
        raise QemuError(f"UEFI firmware {code} (or {varstore}) is missing",
                        hint="apt-get install ovmf  (or run: make deps)")
    return code, varstore


def efi_vars_copy(dest):
    """A fresh copy of OVMF's variable store at ``dest`` (the firmware writes to it)."""
    _code, varstore = ovmf_files()
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(varstore, dest)
    return Path(dest)


# --------------------------------------------------------------------------
# The command line


@dataclasses.dataclass
class Machine:
    """Everything that shapes one QEMU invocation."""

    kernel: Path | None           # None: boot from `disk` through the firmware
    initrd: Path | None
    memory: int = 512
    cpus: int = 1
    accel: str = "tcg"           # resolved: "kvm" or "tcg"
    cpu: str | None = None        # None: "host" under KVM, QEMU's default (qemu64) under TCG
    rng: bool = True
    append: str = ""
    panic: int = SCRIPTED_PANIC
    no_reboot: bool = True
    serial: str = "stdio"         # a QEMU chardev spec
    qmp: Path | None = None       # QMP socket path, or None for no QMP
    ctl_socket: Path | None = None
    net: bool = False
    disk: Path | None = None      # a virtio disk (raw, or qcow2 by its suffix)
    firmware: str = "bios"        # bios (SeaBIOS) or uefi (OVMF)
    efi_vars: Path | None = None  # OVMF's writable variable store (a copy), for uefi


def kernel_cmdline(machine):
    """console=tty1 console=ttyS0: /dev/console is the serial port (the last one)."""
    args = ["console=tty1", "console=ttyS0", f"panic={machine.panic}"]
    if machine.append.strip():
        args.append(machine.append.strip())
    return " ".join(args)


def qemu_argv(machine):
    """The full QEMU command line for `machine`.

    The machine is q35 without its built-in AHCI controller (sata=off): under
    TCG the i440FX `pc` spends ~0.5 s enabling ACPI PCI link IRQs, and q35's six
    empty SATA ports hold the kernel ~0.5 s before it runs /init.  Disks, when
    there are any, are virtio.  -nodefaults: no NIC, floppy or CD-ROM; the
    devices are the ones listed here.
    """
    argv = [qemu_binary(), "-nodefaults", "-no-user-config",
            "-machine", "q35,sata=off", "-accel", machine.accel,
            "-m", str(machine.memory), "-smp", str(machine.cpus),
            "-vga", "std", "-display", "none",
            "-serial", machine.serial]
    argv += firmware_argv(machine)
    if machine.kernel is not None:
        argv += ["-kernel", str(machine.kernel), "-append", kernel_cmdline(machine)]
    cpu = machine.cpu or ("host" if machine.accel == "kvm" else None)
    if cpu:
        argv += ["-cpu", cpu]
    if machine.initrd is not None:
        argv += ["-initrd", str(machine.initrd)]
    if machine.disk is not None:
        fmt = "qcow2" if Path(machine.disk).suffix == ".qcow2" else "raw"
        argv += ["-drive", f"file={_opt(machine.disk)},if=virtio,format={fmt}"]
    if machine.no_reboot:
        argv.append("-no-reboot")
    if machine.rng:
        argv += ["-object", "rng-random,filename=/dev/urandom,id=rng0",
                 "-device", "virtio-rng-pci,rng=rng0"]
    if machine.ctl_socket is not None:
        argv += ["-device", "virtio-serial-pci,id=vser0",
                 "-chardev", f"socket,id=ctl0,path={machine.ctl_socket},server=on,wait=off",
                 "-device", f"virtserialport,bus=vser0.0,chardev=ctl0,name={CTL_PORT_NAME}"]
    if machine.qmp is not None:
        argv += ["-qmp", f"unix:{machine.qmp},server=on,wait=off"]
    if machine.net:
        argv += ["-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0"]
    return argv


def firmware_argv(machine):
    """SeaBIOS is QEMU's default; OVMF comes as two pflash drives (code read-only, vars)."""
    if machine.firmware not in FIRMWARES:
        raise QemuError(f"unknown firmware {machine.firmware!r}", hint="use bios or uefi")
    if machine.firmware == "bios":
        return []
    if machine.efi_vars is None:
        raise QemuError("UEFI needs a writable copy of OVMF's variable store (efi_vars)")
    code, _vars = ovmf_files()
    return ["-drive", f"if=pflash,format=raw,unit=0,file={_opt(code)},readonly=on",
            "-drive", f"if=pflash,format=raw,unit=1,file={_opt(machine.efi_vars)}"]


def _opt(path):
    """A path as a QEMU option value (a comma is written twice)."""
    return str(path).replace(",", ",,")


# --------------------------------------------------------------------------
# Process hygiene

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    """preexec_fn: the kernel SIGKILLs QEMU when the thread that started it dies."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv, **kwargs):
    """Popen QEMU so that it cannot outlive this process."""
    return subprocess.Popen(argv, preexec_fn=_die_with_parent, **kwargs)


def kill(proc):
    """SIGKILL `proc` and reap it; give up (loudly) after KILL_WAIT seconds."""
    if proc.poll() is not None:
        return proc.returncode
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    try:
        return proc.wait(timeout=KILL_WAIT)
    except subprocess.TimeoutExpired:
        print(f"[qemu] warning: QEMU pid {proc.pid} survived SIGKILL for {KILL_WAIT:.0f}s")
        return None


# --------------------------------------------------------------------------
# Accelerator choice


@dataclasses.dataclass
class Probe:
    """The outcome of booting the kernel under KVM once."""

    kvm_ok: bool
    reason: str
    seconds: float
    cached: bool = False


def kvm_usable():
    """(ok, reason) for the static checks: /dev/kvm exists and we may open it."""
    if not os.path.exists("/dev/kvm"):
        return False, "/dev/kvm does not exist (no KVM on this host)"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not readable and writable by this user (join group kvm)"
    return True, "/dev/kvm is usable"


def _qemu_complaint(returncode, text):
    """A short account of why QEMU stopped: its exit and the last line it printed."""
    how = (f"QEMU died of signal {-returncode}" if returncode < 0
           else f"QEMU exited with status {returncode}")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return f"{how} and printed nothing"
    last = re.sub(r"^qemu-system-\S+: (\S+/)*", "", lines[-1])
    return f"{how}: {last[:120]}"


def probe_kvm(kernel, timeout=KVM_PROBE_TIMEOUT, cpu=None):
    """Boot `kernel` under KVM with no initrd: it must panic (no root) and QEMU exit by itself.

    The kernel has nothing to run, so it panics; with panic=-1 and -no-reboot
    QEMU then exits.  Only a guest that really executes gets that far.
    """
    machine = Machine(kernel=Path(kernel), initrd=None, accel="kvm", cpu=cpu, rng=False,
                      memory=128, serial="stdio", panic=-1, no_reboot=True)
    start = time.monotonic()
    proc = spawn(qemu_argv(machine), stdin=subprocess.DEVNULL,
                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc)
        return Probe(False, f"the KVM guest did not get through its boot within {timeout:g}s "
                            "(KVM guests hang on this host)", time.monotonic() - start)
    finally:
        kill(proc)
        proc.stdout.close()
    seconds = time.monotonic() - start
    text = out.decode(errors="replace")
    if proc.returncode == 0 and "Linux version" in text:
        return Probe(True, "a KVM guest booted the kernel to its end", seconds)
    return Probe(False, f"the KVM probe failed: {_qemu_complaint(proc.returncode, text)}",
                 seconds)


def _probe_key(kernel):
    """What a cached probe verdict depends on: this host boot, the kernel, QEMU."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    qemu = Path(qemu_binary())
    st = qemu.stat()
    kernel_sha = hashlib.sha256(Path(kernel).read_bytes()).hexdigest()
    return {"boot_id": boot_id, "kernel_sha256": kernel_sha,
            "qemu": f"{qemu}:{st.st_size}:{st.st_mtime_ns}"}


def _probe_cache_path():
    return run_dir() / "kvm-probe.json"


def cached_probe(kernel, timeout=KVM_PROBE_TIMEOUT):
    """probe_kvm(), remembered for the current host boot in out/run/kvm-probe.json."""
    key = _probe_key(kernel)
    path = _probe_cache_path()
    if key is not None:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            saved = json.loads(path.read_text())
            if saved["key"] == key:
                return Probe(bool(saved["kvm_ok"]), str(saved["reason"]),
                             float(saved["seconds"]), cached=True)
    probe = probe_kvm(kernel, timeout)
    if key is not None:
        record = {"key": key, "kvm_ok": probe.kvm_ok, "reason": probe.reason,
                  "seconds": round(probe.seconds, 2)}
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(tmp, path)
    return probe


def choose_accel(requested, kernel):
    """(accel, why) for --accel auto|kvm|tcg; `why` is one line for the user."""
    if requested == "tcg":
        return "tcg", "TCG requested (--accel tcg)"
    ok, reason = kvm_usable()
    if requested == "kvm":
        if not ok:
            raise QemuError(f"--accel kvm, but {reason}", hint="use --accel tcg (or auto)")
        return "kvm", "KVM requested (--accel kvm); no probe"
    if not ok:
        return "tcg", f"TCG because {reason}"
    probe = cached_probe(kernel)
    when = f"probe took {probe.seconds:.2f}s" + (", cached for this host boot" if probe.cached
                                                 else "")
    return ("kvm" if probe.kvm_ok else "tcg"), f"{probe.reason} ({when})"


# --------------------------------------------------------------------------
# Interactive use


def ctl_socket_busy(path):
    """True when a live QEMU already listens on `path` (another VM is running)."""
    if not Path(path).exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def prepare_ctl_socket(path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if ctl_socket_busy(path):
        raise QemuError(f"another VM is listening on {path}",
                        hint="power that VM off (or Ctrl-A X in its terminal), "
                             "or give this one --ctl-socket PATH")
    path.unlink(missing_ok=True)


def run_interactive(machine):
    """Run QEMU on this terminal until it exits; return its exit status."""
    proc = spawn(qemu_argv(machine))
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                # Only without a terminal in raw mode; QEMU got the SIGINT too.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    return proc.wait(timeout=KILL_WAIT)
                kill(proc)
                return 130
    finally:
        kill(proc)
        if machine.ctl_socket is not None:
            Path(machine.ctl_socket).unlink(missing_ok=True)
