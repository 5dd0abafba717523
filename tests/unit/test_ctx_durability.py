"""Acknowledged writes survive a crash of the writing process (kill -9 at random moments).

The same writer and checker (aether.ctx.durability) are meant to run inside
the VM for the power-cut test, with the ACK lines read from the serial console.
"""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from aether.ctx.durability import acknowledged, check

REPO = Path(__file__).resolve().parents[2]
KILLS = 10


def run_and_kill(db, ackfile, start, batch, delay):
    """Start a writer at n = start; once it has acknowledged something, wait `delay` s and kill -9 it."""
    size = ackfile.stat().st_size if ackfile.exists() else 0
    with open(ackfile, "ab") as acks:
        proc = subprocess.Popen([sys.executable, "-m", "aether.ctx.durability", "write", str(db),
                                 "--batch", str(batch), "--start", str(start)],
                                cwd=REPO, stdout=acks, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while ackfile.stat().st_size == size and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err.decode()


def test_every_acknowledged_write_survives_kill_9(tmp_path):
    db, ackfile = tmp_path / "ctx.db", tmp_path / "acks"
    rng = random.Random(4)
    start = 1
    for kill in range(KILLS):
        run_and_kill(db, ackfile, start, batch=1 if kill % 2 else 8, delay=rng.uniform(0.0, 0.2))
        verdict = check(db, acknowledged(ackfile.read_text().splitlines()))
        assert verdict["ok"], json.dumps(verdict)
        start = 1 + verdict["present"]          # the unacknowledged tail that made it counts too
    assert verdict["acknowledged"] >= KILLS
