"""The real model server for tests: ``scripts/model-server`` on a free port, once per session.

The fixture ``model_server`` (registered in tests/conftest.py, so tests in tests/unit,
tests/host and tests/vm can all ask for it) yields a RealModelServer:

- ``base_url``: ``http://127.0.0.1:PORT/v1`` (a guest reaches it as ``http://10.0.2.2:PORT/v1``
  through QEMU's user network: ``guest_url``);
- ``model``: the name the server answers to (``/v1/models``), ``n_ctx``: its context window;
- ``port``, ``proc`` (the scripts/model-server process), ``log_path`` (its stderr);
- ``kill()``: SIGKILL the engine (the llama.cpp server process), as a crash would; the
  supervisor restarts it with backoff; ``wait_ready()`` waits until it answers again;
- ``restart()``: stop scripts/model-server and start it again on the same port, ready.

A test that kills the engine calls ``restart()`` (or ``wait_ready()``) before it ends, so
the next test finds a server that answers.

When the server is not installed (no .venv-model, no model file: ``scripts/model-server
--check`` says what is missing) the fixture skips with that reason, or fails when
AETHER_REQUIRE_MODEL=1 (``make test`` sets it).  AETHER_MODEL_N_CTX sets the window
(default 2048).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SERVER = REPO / "scripts" / "model-server"
REQUIRE_ENV = "AETHER_REQUIRE_MODEL"
READY_PREFIX = "model-server ready "
READY_TIMEOUT = 180.0
DEFAULT_N_CTX = 2048


def model_required():
    return os.environ.get(REQUIRE_ENV) == "1"


def server_problem():
    """None when scripts/model-server can start, else what is missing and how to fix it."""
    try:
        done = subprocess.run([sys.executable, str(SERVER), "--check"], capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"scripts/model-server --check failed: {e}"
    if done.returncode == 0:
        return None
    return (done.stdout + done.stderr).strip() or f"scripts/model-server --check exited {done.returncode}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    """The pids of ``pid``'s children (Linux /proc)."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return found


class RealModelServer:
    """One scripts/model-server process and what the tests need to know about it."""

    def __init__(self, log_dir, n_ctx=DEFAULT_N_CTX, port=None):
        self.n_ctx, self.port = n_ctx, port or free_port()
        self.log_path = Path(log_dir) / f"model-server-{self.port}.log"
        self.proc = None
        self.model = None
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.guest_url = f"http://10.0.2.2:{self.port}/v1"

    def start(self, timeout=READY_TIMEOUT):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--port", str(self.port), "--n-ctx", str(self.n_ctx)],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True, cwd=REPO)
        log.close()
        line = self._ready_line(timeout)
        url = line[len(READY_PREFIX):].strip()
        if url != self.base_url:
            raise AssertionError(f"model-server said it is ready at {url}, expected {self.base_url}")
        self.model = self.models()[0]
        return self

    def _ready_line(self, timeout):
        """The ready line from stdout, or fail with the log's tail after ``timeout``."""
        got = []
        reader = threading.Thread(target=lambda: got.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        line = got[0] if got else ""
        if not line.startswith(READY_PREFIX):
            self.stop()
            raise AssertionError(f"scripts/model-server did not become ready within {timeout:g} s "
                                 f"(stdout: {line!r}); its log {self.log_path} ends:\n"
                                 f"{self.log_tail()}")
        return line

    def log_tail(self, lines=30):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def models(self, timeout=5.0):
        """The model ids /v1/models lists (raises OSError when the server does not answer)."""
        with urllib.request.urlopen(self.base_url + "/models", timeout=timeout) as r:
            return [m["id"] for m in json.load(r)["data"]]

    def answers(self):
        try:
            return bool(self.models(timeout=2.0))
        except (OSError, ValueError, KeyError):
            return False

    def engine_pids(self):
        return children(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def kill(self):
        """SIGKILL the engine (what a crash looks like); returns the pids killed."""
        pids = self.engine_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Wait until the server answers again (after kill(): the supervisor's restart)."""
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None:
                raise AssertionError(f"scripts/model-server exited ({self.proc.returncode}); "
                                     f"its log ends:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the model server did not answer again within {timeout:g} s;"
                                     f" its log ends:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def restart(self, timeout=READY_TIMEOUT):
        """Stop scripts/model-server and start it again on the same port, ready."""
        self.stop()
        return self.start(timeout)

    def stop(self, timeout=20):
        """SIGTERM scripts/model-server (it stops its engine); SIGKILL after ``timeout``."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in children(proc.pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()
        return proc.returncode

    def __repr__(self):
        return f"RealModelServer({self.base_url}, model={self.model!r}, n_ctx={self.n_ctx})"


@pytest.fixture(scope="session")
def model_server(tmp_path_factory):
    """A started RealModelServer for the whole session (see the module docstring)."""
    problem = server_problem()
    if problem:
        if model_required():
            pytest.fail(f"the real model server is not installed: {problem}\n"
                        f"Fix: run `make deps` (scripts/setup-host builds and caches it). "
                        f"[{REQUIRE_ENV}=1 is set, so this fails]", pytrace=False)
        pytest.skip(f"no real model server: {problem}")
    n_ctx = int(os.environ.get("AETHER_MODEL_N_CTX", DEFAULT_N_CTX))
    server = RealModelServer(tmp_path_factory.mktemp("model-server"), n_ctx=n_ctx)
    server.start()
    try:
        yield server
    finally:
        server.stop()
