"""A scriptable AetherOS VM for the tests and the benchmark.

The serial console is a pair of pipes, read by a thread into a buffer and a
log file; the monitor is a QMP socket.  Every wait has a timeout, and QEMU is
killed on the way out whatever happens.  The command line itself comes from
:mod:`aetherbuild.qemu`.
"""

import codecs
import contextlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .qemu import (CONFIRM, KILL_WAIT, PROMPT, QMP_CONNECT_TIMEOUT, READY_RE, SCRIPTED_PANIC,
                   ExpectTimeout, Machine, QemuError, VMExited, default_initrd,
                   default_kernel, efi_vars_copy, kill, qemu_argv, require_images, spawn)


class QMP:
    """A minimal QMP client: capabilities handshake, then commands, skipping events."""

    def __init__(self, path, deadline):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                self.sock.connect(str(path))
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.sock.close()
                    raise QemuError(f"QEMU's QMP socket {path} did not answer in time") from None
                time.sleep(0.05)
        self.sock.settimeout(10.0)
        self.file = self.sock.makefile("rb")
        self._read()                                   # the greeting
        self.execute("qmp_capabilities")

    def _read(self):
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError("QMP connection closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def execute(self, command, **arguments):
        request = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        reply = self._read()
        if "error" in reply:
            raise QemuError(f"QMP {command} failed: {reply['error'].get('desc', reply)}")
        return reply.get("return")

    def close(self):
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()


class VM:
    """One QEMU guest with its serial console on pipes.  Use as a context manager.

    Output is appended to a buffer (carriage returns removed) and, raw, to
    `log_path`.  :meth:`expect` consumes the buffer: each match starts after
    the previous one.

    Without ``disk`` it boots the kernel and initramfs directly.  With ``disk``
    alone it boots that disk image through ``firmware`` (bios or uefi; the disk
    is written to, so pass a copy); with ``disk`` and ``kernel`` it boots the
    kernel and initramfs with the disk attached.
    """

    def __init__(self, log_path, *, kernel=None, initrd=None, memory=512, cpus=1,
                 append="", rng=True, cpu=None, no_reboot=True, accel="tcg", disk=None,
                 firmware="bios", net=False):
        if disk is not None and kernel is None:
            initrd = None                              # the firmware boots the disk
        else:
            kernel = Path(kernel or default_kernel())
            initrd = Path(initrd or default_initrd())
        require_images(kernel, initrd, disk)
        self.tmp = Path(tempfile.mkdtemp(prefix="aether-vm-"))
        try:
            efi_vars = efi_vars_copy(self.tmp / "OVMF_VARS.fd") if firmware == "uefi" else None
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        self.machine = Machine(kernel=kernel, initrd=initrd, memory=memory, cpus=cpus,
                               accel=accel, cpu=cpu, rng=rng, append=append,
                               panic=SCRIPTED_PANIC, no_reboot=no_reboot, serial="stdio",
                               qmp=self.tmp / "qmp.sock", ctl_socket=self.tmp / "ctl.sock",
                               disk=Path(disk) if disk is not None else None,
                               firmware=firmware, efi_vars=efi_vars, net=net)
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = None
        self.started = None
        self.ready_uptime = None      # the first `aether-ready uptime=` figure
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._cond = threading.Condition()
        self._reader = None
        self._qmp = None
        self._log = None

    # -- lifecycle

    def start(self):
        argv = qemu_argv(self.machine)
        self._log = open(self.log_path, "wb")
        self._log.write(("# " + shlex.join(argv) + "\n").encode())
        self.started = time.monotonic()
        self.proc = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._pump, name="vm-serial", daemon=True)
        self._reader.start()
        return self

    def close(self):
        """Kill QEMU (if still running) and release everything.  Safe to call twice."""
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        if self.proc is not None:
            kill(self.proc)
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self._reader is not None:
            self._reader.join(timeout=KILL_WAIT)
        if self._log is not None and (self._reader is None or not self._reader.is_alive()):
            self._log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    @property
    def ctl_socket(self):
        return self.machine.ctl_socket

    # -- serial output

    def _pump(self):
        fd = self.proc.stdout.fileno()
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if chunk:
                self._log.write(chunk)
                self._log.flush()
            text = decoder.decode(chunk, final=not chunk).replace("\r", "")
            with self._cond:
                self._buf += text
                self._eof = not chunk
                self._cond.notify_all()
            if not chunk:
                return

    @property
    def output(self):
        """Everything the serial console printed so far."""
        with self._cond:
            return self._buf

    def tail(self, lines=40):
        return "\n".join(self.output.splitlines()[-lines:])

    def _failure(self, cls, what):
        return cls(f"{what}\n--- last lines of the serial console ---\n{self.tail()}\n---",
                   hint=f"full serial log: {self.log_path}")

    def expect(self, regex, timeout):
        """Wait for `regex` (re.MULTILINE) in output not yet consumed; return the match."""
        pattern = re.compile(regex, re.MULTILINE)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = pattern.search(self._buf, self._pos)
                if m:
                    self._pos = m.end()
                    return m
                if self._eof:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(timeout=KILL_WAIT)
                    code = self.proc.returncode
                    raise self._failure(VMExited, f"QEMU exited ({code}) before the console "
                                                  f"showed /{regex}/")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._failure(ExpectTimeout, f"no /{regex}/ on the serial console "
                                                       f"within {timeout:g}s")
                self._cond.wait(left)

    def mark(self):
        """The current position in the output (for slicing with output_since)."""
        with self._cond:
            return self._pos

    def output_since(self, mark):
        with self._cond:
            return self._buf[mark:]

    # -- serial input

    def send_line(self, text, end="\r"):
        """Type `text` and Enter (a terminal sends CR; the tty maps it to NL)."""
        self.send_raw(text + end)

    def send_confirmed(self, text, timeout=30):
        """Type a line whose plan needs a yes (poweroff, reboot), wait for the question, say yes."""
        self.send_line(text)
        self.expect(re.escape(CONFIRM), timeout)
        self.send_line("yes")

    def send_raw(self, text):
        try:
            self.proc.stdin.write(text.encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            raise self._failure(VMExited, f"cannot type {text!r}: QEMU's stdin is closed "
                                          f"({e})") from None

    # -- the console program

    def wait_ready(self, timeout=60):
        """Wait for `aether-ready uptime=<s>` and the prompt after it; return the uptime."""
        m = self.expect(READY_RE, timeout)
        self.expect(re.escape(PROMPT), 10)
        uptime = float(m.group(1))
        if self.ready_uptime is None:
            self.ready_uptime = uptime
        return uptime

    def command(self, text, timeout=30):
        """Run a console command (the prompt must have been consumed); return its output.

        The output is what was printed between Enter and the next prompt, without
        the echo of the command itself.  The next prompt is consumed.
        """
        start = self.mark()
        self.send_line(text)
        m = self.expect(re.escape(PROMPT), timeout)
        out = self.output[start:m.start()]
        first, _, rest = out.partition("\n")
        return rest if first.strip() == text.strip() else out

    # -- monitor and exit

    def monitor(self, cmd):
        """Run an HMP command (system_powerdown, sendkey ctrl-alt-delete, quit...).

        Returns HMP's text output: empty for those commands when they worked
        (HMP reports its errors as text, e.g. an unknown key).
        """
        if self._qmp is None:
            self._qmp = QMP(self.machine.qmp, time.monotonic() + QMP_CONNECT_TIMEOUT)
        try:
            reply = self._qmp.execute("human-monitor-command", **{"command-line": cmd})
            return reply.replace("\r\n", "\n")
        except (EOFError, OSError):
            if cmd.strip() == "quit":
                return ""
            raise self._failure(VMExited, f"QEMU's monitor went away during {cmd!r}") from None

    def wait_exit(self, timeout):
        """Wait for QEMU to exit by itself; return its exit status."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise self._failure(ExpectTimeout, f"QEMU did not exit within {timeout:g}s") from None
        if self._reader is not None:
            self._reader.join(timeout=KILL_WAIT)
        return code
