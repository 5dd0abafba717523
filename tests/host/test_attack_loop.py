"""The ABI loop's fixes (issue 15, item 10), attacked again against a real aetherd on the host.

Each test plays one hostile peer on a Unix socket, with bounded loops and short
timeouts.  Plain local users are made by connecting a socket from a forked
child that has taken another uid (SO_PEERCRED names the process that called
connect), so these tests need root.
"""

import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from .test_abi_loop import Daemon, frame

pytestmark = [pytest.mark.host,
              pytest.mark.skipif(os.geteuid() != 0, reason="local users of other uids need root")]


@pytest.fixture
def daemon():
    base = Path(tempfile.mkdtemp(prefix="aether-attack-"))
    os.chmod(base, 0o755)                    # other uids must reach the socket (pytest's tmp is 0700)
    d = Daemon(base)
    yield d
    d.stop()
    shutil.rmtree(base, ignore_errors=True)


def as_uid(d, uid):
    """A socket connected to aetherd by a process of ``uid`` (a plain local user)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(uid)
            os.setuid(uid)
            s.connect(d.sock)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    d.raw.append(s)
    return s


def call(s, method, request_id=1, timeout=30):
    """One request on a raw socket; (answer, seconds it took)."""
    s.settimeout(timeout)
    started = time.monotonic()
    s.sendall(json.dumps({"id": request_id, "method": method}).encode() + b"\n")
    data = b""
    while b"\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data.split(b"\n")[0]), time.monotonic() - started


def flood(socks, method="sys.processes", n=200):
    """Pipeline n requests on every socket, without reading an answer."""
    data = b"".join(frame(i, method) for i in range(1000, 1000 + n))
    for s in socks:
        s.setblocking(False)
        try:
            s.send(data)
        except BlockingIOError:
            pass


def test_one_user_with_many_connections_gets_one_share_and_the_console_waits_for_no_round(daemon):
    """Per-connection round-robin gave a local user with 64 pipelining connections 64 shares:
    the console then waited about 10 s for sys.info, another user as long."""
    other = as_uid(daemon, 5101)
    assert call(other, "abi.hello")[0]["result"]["you"]["principal"] == "uid:5101"
    hogs = [as_uid(daemon, 5100) for _ in range(64)]
    flood(hogs)
    time.sleep(1.0)
    for _ in range(2):
        with daemon.client(timeout=60) as c:
            started = time.monotonic()
            assert c.call("sys.info")["hostname"]
            waited = time.monotonic() - started
        assert waited < 1.5, f"the console waited {waited:.1f} s behind one user's 64 connections"
    answer, waited = call(other, "sys.info", 2, timeout=60)
    assert "result" in answer and waited < 2.5, f"another user waited {waited:.1f} s"


def test_many_users_each_under_the_cap_do_not_starve_the_console(daemon):
    """Eight local users, 48 pipelining connections each (384, under every cap)."""
    hogs = [as_uid(daemon, 5200 + k) for k in range(8) for _ in range(48)]
    flood(hogs)
    time.sleep(1.0)
    with daemon.client(timeout=120) as c:
        started = time.monotonic()
        assert c.call("sys.info")["hostname"]
        waited = time.monotonic() - started
    assert waited < 1.5, f"the console waited {waited:.1f} s behind 8 users' 384 connections"
