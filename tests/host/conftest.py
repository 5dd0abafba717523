"""Run the real PID-1 code on the host, as a child subreaper (``aether.pid1.init --host``)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def sleep_until(predicate, timeout, interval=0.02):
    """Poll predicate until it is truthy; return its value, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


class HostInit:
    """One aether.pid1.init process in host mode, with its status file and control FIFO."""

    def __init__(self, tmp_path, services, wrapper=()):
        self.dir = tmp_path
        self.status_path = tmp_path / "init.json"
        self.control_path = tmp_path / "init.ctl"
        self.log_path = tmp_path / "init.log"
        (tmp_path / "services.json").write_text(json.dumps(services))
        cmd = [*wrapper, sys.executable, "-m", "aether.pid1.init", "--host",
               "--services", str(tmp_path / "services.json"),
               "--status", str(self.status_path), "--control", str(self.control_path)]
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, PYTHONPATH=str(REPO)))
        sleep_until(self.control_path.exists, 10)

    @property
    def pid(self):
        return self.proc.pid

    def status(self):
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return None

    def service(self, name):
        status = self.status() or {"services": []}
        return next((s for s in status["services"] if s["name"] == name), None)

    def wait_state(self, name, states, timeout=10):
        states = {states} if isinstance(states, str) else set(states)
        return sleep_until(lambda: (s := self.service(name)) and s["state"] in states and s, timeout)

    def control(self, line):
        with open(self.control_path, "w") as f:
            f.write(line + "\n")

    def log(self):
        return self.log_path.read_text()

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        return self.proc.returncode


@pytest.fixture
def host_init(tmp_path):
    started = []

    def start(services, wrapper=()):
        init = HostInit(tmp_path, services, wrapper)
        started.append(init)
        return init

    yield start
    for init in started:
        init.stop()
