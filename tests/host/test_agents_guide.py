"""docs/agents.md runs: every ``sh`` block of the guide, in order, against an aetherd --host.

A ``toml`` or ``python`` block whose first line is ``# PATH`` is the file the reader writes
there; a ``text`` block after an ``sh`` block is what that block prints: its first line
(``...`` stands for anything) must be in the block's output.  The guide shows what the
host sees over virtio-serial (``deployed by host``); here the caller is the socket's root,
principal ``shell``, and the output is read with that one word changed.  At the end the
machine must be as the guide says: 1.0.0 running, 1.1.0 rolled back, 1.2.0 failed."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO, sleep_until
from .test_broker import Aetherd

pytestmark = pytest.mark.host
GUIDE = REPO / "docs" / "agents.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks():
    return list(FENCE.findall(GUIDE.read_text()))


def test_the_guide_has_the_steps_it_promises():
    kinds = [k for k, _ in blocks()]
    assert kinds.count("sh") >= 6
    text = GUIDE.read_text()
    for command in ("aetherctl pack", "aetherctl deploy", "aetherctl rollback", "aetherctl agents --versions"):
        assert command in text


def test_every_command_of_the_guide_runs_as_written(tmp_path):
    d = Aetherd(tmp_path, "")
    try:
        _run_guide(tmp_path, d)
    finally:
        d.stop()


def _run_guide(tmp_path, d):
    work = tmp_path / "work"
    bin_dir = tmp_path / "bin"
    work.mkdir()
    bin_dir.mkdir()
    (bin_dir / "aetherctl").symlink_to(REPO / "scripts" / "aetherctl")
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", AETHER_SOCKET=str(d.run / "abi.sock"),
               PYTHONPATH=str(REPO))
    last = None
    for kind, body in blocks():
        first = body.splitlines()[0] if body.strip() else ""
        if kind in ("toml", "python") and first.startswith("# "):
            path = work / first[2:].strip()
            assert path.resolve().is_relative_to(work), first
            path.write_text(body)
        elif kind == "sh":
            done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", body], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=180)
            last = (done.stdout + done.stderr).replace("by shell", "by host")
            assert done.returncode == 0, f"guide block failed:\n{body}\n--- output:\n{last}\n{d.log()[-3000:]}"
        elif kind == "text" and last is not None:
            pattern = ".*".join(re.escape(part) for part in first.split("..."))
            assert re.search(pattern, last), f"the guide says {first!r}; the command printed:\n{last}"
            last = None
    c = d.connect()
    row = next(r for r in c.call("package.list") if r["name"] == "hello")
    status = {v["version"]: v["status"] for v in row["versions"]}
    assert row["current"] == "1.0.0" and row["state"] == "running"
    assert status["1.0.0"] == "ok" and status["1.1.0"].startswith("rolled back")
    assert status["1.2.0"].startswith("failed")
    sleep_until(lambda: any("hello, world" in line
                            for line in c.call("agent.logs", name="hello", lines=5)["lines"]), 10)
    assert Path(work / "hello-1.0.0.aether").exists()
