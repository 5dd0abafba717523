"""PID 1: boot the machine, supervise its services, reap, and shut down in order.

Lean by design (it is on the boot path; tests/host/test_lean_imports.py checks
what a fresh import loads): no subprocess, asyncio, threading, json, re, enum
or socket.py.  It never exits as PID 1: an exception in a callback is logged
and the loop goes on; anything worse drops into ``emergency()``, which keeps
reaping forever.

``--host`` runs the same loop on a development machine as a child subreaper
(no mounts, no reboot(2)): the host tests use it.  Options in host mode:
``--services FILE`` (JSON list of service specs), ``--status FILE``,
``--control FIFO``.
"""

import _signal
import os
import sys
import time
from _collections import deque  # the C module itself: the collections package costs PID 1 ~19 ms before its first prompt under TCG

from .. import __version__, sysinfo
from ..log import Log
from ..loop import Loop
from ..reaper import Reaper
from .services import ServiceSpec, ServiceSupervisor
from ..spawn import fork_call, read_lines, spawn
from ..states import ALWAYS, EXITED, START, STOP, STOPPED

CHILD_ENV = {"PATH": "/usr/bin", "HOME": "/root", "TERM": "linux", "LANG": "C.UTF-8"}
OUTPUT_LINES = 200       # recent output lines kept per service
KILL_GRACE = 2.0         # seconds after TERM/KILL of left-over processes at shutdown
TIMELINE_DELAY = 1.0     # seconds after the services start: the consoles come first
# The consoles after the first start at nice 10, so that on one CPU the first prompt is
# not held back by their start-up (OVMF: ttyS0's ready 0.24 -> 0.15 s after the boot
# steps, median of 5; tty1's prompt at the same uptime as before, by QMP screendump).
LATER_CONSOLE_NICE = 10
YIELD_NICE = 19          # PID 1's niceness during the late boot steps (Init.late_steps)


class RealOs:
    """The supervisor's window on the OS: real processes, output captured into the log."""

    def __init__(self, init):
        self.init = init

    def spawn(self, spec):
        if not spec.capture_output:
            return self._start(spec, None)
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = self._start(spec, w)
        except OSError:
            os.close(r)
            raise
        finally:
            os.close(w)
        self.init.capture(spec.name, r)
        return pid

    @staticmethod
    def _start(spec, out):
        if spec.entry:
            return fork_call(spec.entry, spec.argv[1:], setsid=spec.setsid,
                             stdout=out, stderr=out, name=spec.name, nice=spec.nice)
        env = dict(CHILD_ENV, **(spec.env or {}))
        return spawn(spec.argv, env, setsid=spec.setsid, stdout=out, stderr=out)

    def kill(self, pid, sig):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def group_alive(self, pgid):
        try:
            os.kill(-pgid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def now(self):
        return time.monotonic()


class Init:
    def __init__(self, host=False, status_path=None, control_path=None):
        self.host = host
        self.log = Log()
        self.loop = Loop(on_error=lambda e: self.log.exception("internal error", e))
        self.reaper = Reaper(self.log)
        self.sup = ServiceSupervisor(RealOs(self), self.loop.call_later, self.reaper.claim, self.log,
                              on_change=lambda _svc: self.write_status())
        self.config = None
        self.warned = set()            # messages warn_once has logged
        self.data_persistent = False
        self.booted = None
        self.pending = None
        self.output = {}
        self.status_path = status_path or "/run/aether/init.json"
        self.control_path = control_path
        self.marks = []          # (phase, uptime at its end): aether/pid1/boottime.py logs them

    # -- main ---------------------------------------------------------------------

    def run(self):
        self.mark("imports")
        self.log.info(f"AetherOS {__version__}: PID {os.getpid()}, Python {sys.version.split()[0]}"
                      + (" (host mode: child subreaper)" if self.host else ""))
        self.install_signals()
        if self.host:
            from .. import syscalls
            syscalls.set_child_subreaper()
            self.booted = True
        else:
            os.chdir("/")
            os.umask(0o022)
            from . import boot
            self.booted = boot.run(self, boot.EARLY_STEPS, "early steps")
            self.mark("early steps")
            if self.booted:
                # Once a console runs, the machine is made whatever fails: each part is
                # guarded, so an error in one still leaves the late steps taken and the
                # consoles matched to the settings.
                self.guarded("starting the consoles", self.start_consoles)
                self.mark("consoles started")
                self.guarded("the late boot steps", lambda: self.late_steps(boot))
                self.mark("boot steps")
                self.guarded("matching the consoles to the settings", self.reconcile_consoles)
                self.add_aetherd()
        if self.control_path:
            try:
                self.open_control(self.control_path)
            except OSError as e:
                self.log.warning(f"control FIFO {self.control_path} unavailable: {e}")
        if self.booted:
            if self.host:
                self.sup.start_all()
            else:
                self.sup.send("aetherd", START)   # the consoles are running already
            self.mark("services started")
            self.log.info(f"boot finished at {self._uptime()}")
            if not self.host:
                self.loop.call_later(TIMELINE_DELAY, self.log_timeline)
        self.write_status()
        while True:
            try:
                self.loop.run_once()
                if self.pending:
                    self.shutdown(self.pending)
            except Exception as e:  # noqa: BLE001 - PID 1 logs and keeps going
                self.log.exception("internal error in the main loop", e)

    def install_signals(self):
        # Whatever mask we inherited (a test wrapper, a container runtime), PID 1 must
        # receive its signals.
        _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
        self.loop.on_signal(_signal.SIGCHLD, self.on_sigchld)
        for sig in (_signal.SIGTERM, _signal.SIGUSR2, _signal.SIGPWR):
            self.loop.on_signal(sig, lambda _s: self.request("poweroff"))
        for sig in (_signal.SIGINT, _signal.SIGUSR1):
            self.loop.on_signal(sig, lambda _s: self.request("reboot"))
        self.loop.on_signal(_signal.SIGHUP, lambda _s: self.log.info("SIGHUP: nothing to reload"))

    def on_sigchld(self, _signum):
        before = self.reaper.orphans_reaped
        self.reaper.reap()
        if self.reaper.orphans_reaped != before:
            self.write_status()

    def mark(self, phase, at=None):
        """Note that ``phase`` of the boot ended now (or at ``at``, seconds of uptime)."""
        self.marks.append((phase, time.clock_gettime(time.CLOCK_BOOTTIME) if at is None else at))

    def log_timeline(self):
        from . import boottime   # only now: off the boot path
        self.log.info(boottime.line(boottime.kernel_ran_init(), self.marks))

    def request(self, action):
        if self.pending is None:
            self.log.info(f"{action} requested")
            self.pending = action

    # -- services -------------------------------------------------------------------

    def start_consoles(self):
        """The consoles, started as soon as /dev, /sys, /run and the early settings are
        there: the first prompt is drawn while the late boot steps run."""
        ttys = self.console_ttys()
        if not ttys:
            return
        # Imported once here rather than in each forked console (under emulation each
        # import is milliseconds of the first prompt's time).
        from .. import console  # noqa: F401
        for i, tty in enumerate(ttys):          # ttyS0 first when there is one
            self.add_console(tty, nice=0 if i == 0 else LATER_CONSOLE_NICE).handle(START)
        self.log.break_next_line()

    def add_console(self, tty, nice=0):
        # Forked from PID 1 rather than a new interpreter: the console is up in a
        # fraction of the time (README, "Boot time").  A console started at nice > 0
        # returns to priority 0 once its prompt is up (aether/console.py).
        return self.sup.add(ServiceSpec(
            f"console@{tty}", ["aether.console", "--tty", f"/dev/{tty}"],
            entry="aether.console:main", restart=ALWAYS, setsid=True, backoff_initial=0.2, intensity=10, period=60.0,
            retry_after=60.0, stop_timeout=self.config["stop_timeout"], nice=nice))

    def reconcile_consoles(self):
        """Once the data partition's settings are read: start the consoles they add to
        the early set, stop the ones they leave out."""
        wanted = set(self.console_ttys())
        for name, svc in list(self.sup.services.items()):
            if not name.startswith("console@"):
                continue
            tty = name.partition("@")[2]
            svc.spec.stop_timeout = self.config["stop_timeout"]
            if tty in wanted or svc.state in (STOPPED, EXITED):
                continue
            # Killed, not asked: a terminal the data partition keeps without a console
            # (for instance a serial line nobody should reach) must not keep one that was
            # started during the early window until aetherd is serving.  STOP in any other
            # state: a console in backoff, or failed with a retry due, is cancelled too.
            self.log.info(f"{name}: stopped (aether.consoles is now {self._consoles_setting()})")
            pgid = svc.pgid if svc.pid is not None else None    # a group that exists
            svc.handle(STOP)
            if pgid is not None:
                self.sup.osi.kill(-pgid, _signal.SIGKILL)
        for tty in sorted(wanted - {n.partition("@")[2] for n in self.sup.services}):
            self.add_console(tty, nice=LATER_CONSOLE_NICE).handle(START)

    def _consoles_setting(self):
        wanted = self.config["consoles"]
        return wanted if wanted == "auto" else ",".join(wanted)

    def guarded(self, what, action):
        try:
            action()
        except Exception as e:  # noqa: BLE001 - PID 1 logs and goes on with the boot
            self.log.exception(f"internal error in {what}; the boot goes on", e)

    def late_steps(self, boot):
        """The late boot steps, with PID 1 at the lowest CPU priority meanwhile, so that on
        a one-CPU machine the consoles it just forked draw their prompts first."""
        try:
            os.setpriority(os.PRIO_PROCESS, 0, YIELD_NICE)
        except OSError as e:
            self.log.debug(f"cannot lower PID 1's CPU priority for the late boot steps: {e}")
        try:
            boot.run(self, boot.LATE_STEPS)
        finally:
            try:
                os.setpriority(os.PRIO_PROCESS, 0, 0)
            except OSError as e:
                self.log.warning(f"cannot return PID 1 to CPU priority 0: {e}")

    def add_aetherd(self):
        # After the consoles, at a low CPU priority (nice 10) so its start-up never delays
        # the first prompt on a one-CPU machine; it returns to normal once it is serving.
        self.sup.add(ServiceSpec(
            "aetherd", ["aether.aetherd"], entry="aether.aetherd:main", restart=ALWAYS, nice=10,
            backoff_initial=0.5, intensity=10, period=60.0, retry_after=60.0,
            stop_timeout=self.config["stop_timeout"] + 5.0))

    def console_ttys(self):
        wanted = self.config["consoles"]
        if wanted != "auto":
            return [t for t in wanted if self._tty_exists(t, report=True)]
        ttys = []
        if sysinfo.read_text("/sys/class/tty/ttyS0/type") not in ("", "0"):
            ttys.append("ttyS0")
        if os.path.exists("/sys/class/tty/tty1"):
            ttys.append("tty1")
        return ttys

    def _tty_exists(self, tty, report=False):
        if os.path.exists(f"/sys/class/tty/{tty}"):
            return True
        if report:                                 # the settings are read twice at boot
            self.warn_once(f"aether.consoles names {tty}, but this machine has no /dev/{tty}; skipped")
        return False

    def warn_once(self, msg):
        """A warning about the settings, logged the first time only."""
        if msg not in self.warned:
            self.warned.add(msg)
            self.log.warning(msg)

    def capture(self, name, fd):
        lines = self.output.setdefault(name, deque(maxlen=OUTPUT_LINES))
        read_lines(self.loop, fd, lambda text: self._output_line(name, lines, text))

    def _output_line(self, name, lines, text):
        text = text.rstrip("\r")
        lines.append(text)
        self.log.info(f"{name}| {text}")

    # -- control FIFO -----------------------------------------------------------------

    def open_control(self, path):
        try:
            os.mkfifo(path, 0o600)
        except FileExistsError:
            pass
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        buf = bytearray()

        def readable(fd):
            buf.extend(os.read(fd, 4096))
            *lines, rest = buf.split(b"\n")
            buf[:] = rest
            for line in lines:
                self.control(line.decode("utf-8", "replace").split())

        self.loop.add_reader(fd, readable)

    def control(self, words):
        """Commands on the control FIFO: start|stop|restart NAME, poweroff, reboot."""
        if words in (["poweroff"], ["reboot"]):
            return self.request(words[0])
        if len(words) == 2 and words[0] in ("start", "stop", "restart"):
            verb, name = words
            try:
                if verb in ("stop", "restart"):
                    self.sup.send(name, STOP)
                if verb in ("start", "restart"):
                    self.sup.send(name, START)
            except KeyError as e:
                self.log.warning(f"control: {e.args[0]}")
            return
        self.log.warning(f"control: unknown command {' '.join(words)!r} "
                         "(use: start|stop|restart NAME, poweroff, reboot)")

    # -- status ---------------------------------------------------------------------

    def write_status(self):
        if not self.host and not os.path.isdir(os.path.dirname(self.status_path)):
            return
        from . import statusfile
        try:
            statusfile.write(self.status_path, {
                "pid": os.getpid(), "version": __version__, "booted": self.booted,
                "shutdown": self.pending, "orphans_reaped": self.reaper.orphans_reaped,
                "data_persistent": self.data_persistent,
                "services": self.sup.snapshot(),
            })
        except OSError as e:
            self.log.debug(f"cannot write {self.status_path}: {e}")

    # -- shutdown ---------------------------------------------------------------------

    def shutdown(self, action):
        self.write_status()
        timeout = self.config["stop_timeout"] if self.config else 5.0
        self.log.info(f"{action}: stopping services")
        self.sup.stop_all()
        self.loop.run_until(self.sup.all_resting, timeout + 1.0)
        for sig, name in ((_signal.SIGTERM, "TERM"), (_signal.SIGKILL, "KILL")):
            if self._no_children():
                break
            self.log.info(f"{action}: sending {name} to the remaining processes")
            self._signal_rest(sig)
            self.loop.run_until(self._no_children, KILL_GRACE)
        os.sync()
        if self.host:
            self.log.info(f"{action}: done (host mode: exiting)")
            self.write_status()
            sys.stdout.flush()
            os._exit(0)
        from .. import syscalls
        from . import mounts
        mounts.unmount_all(self.log)
        self.log.info("powering off" if action == "poweroff" else "rebooting")
        syscalls.reboot(syscalls.RB_POWER_OFF if action == "poweroff" else syscalls.RB_AUTOBOOT)

    def _no_children(self):
        self.reaper.reap()
        return not self.reaper.children_left

    def _signal_rest(self, sig):
        if not self.host:
            try:
                os.kill(-1, sig)        # every process but PID 1 and kernel threads
            except ProcessLookupError:
                pass
            return
        for pid in sysinfo.descendants(os.getpid()):   # host mode: only our own tree
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    @staticmethod
    def _uptime():
        try:
            return f"{sysinfo.uptime():.2f}s uptime"
        except OSError:
            return "unknown uptime"


def load_services(path):
    import json
    with open(path) as f:
        return [ServiceSpec(**entry) for entry in json.load(f)]


def parse_args(argv):
    opts = {"host": False, "services": None, "status": None, "control": None}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--host":
            opts["host"] = True
        elif arg in ("--services", "--status", "--control") and args:
            opts[arg[2:]] = args.pop(0)
        elif os.getpid() == 1:
            continue  # the kernel passes unknown boot words to init: ignore them
        else:
            raise SystemExit(f"aether.pid1.init: unknown argument {arg!r}\n"
                             "usage: python -m aether.pid1.init --host [--services FILE] "
                             "[--status FILE] [--control FIFO]")
    return opts


def emergency(exc):
    """Last resort for PID 1: say what happened, let Ctrl-Alt-Del reboot, reap forever."""
    try:
        os.write(2, f"aether-init: FATAL internal error: {exc!r}; PID 1 keeps reaping. "
                    "Ctrl-Alt-Del reboots.\n".encode())
        from .. import syscalls
        syscalls.reboot(0x89ABCDEF)  # RB_ENABLE_CAD: the kernel reboots on Ctrl-Alt-Del
    except BaseException:  # noqa: BLE001
        pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(1)
        except BaseException:  # noqa: BLE001 - nothing may end PID 1
            pass


def main(argv=None, started=None):
    """``started``: the uptime at which /init's first line ran (init/init passes it)."""
    argv = sys.argv[1:] if argv is None else argv
    opts = parse_args(argv)
    if not opts["host"] and os.getpid() != 1:
        raise SystemExit("aether.pid1.init runs as PID 1; to try it on a host use --host")
    init = Init(host=opts["host"], status_path=opts["status"],
                control_path=opts["control"] or (None if opts["host"] else "/run/aether/init.ctl"))
    if started is not None:
        init.mark("python", started)
    if opts["host"]:
        for spec in load_services(opts["services"]) if opts["services"] else ():
            init.sup.add(spec)
        return init.run()
    try:
        init.run()
    except BaseException as e:  # noqa: BLE001 - PID 1 must not exit
        emergency(e)


if __name__ == "__main__":
    main()
