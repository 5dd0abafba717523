"""Files, disk and the store against a hostile agent, through aetherd's real socket (issue 15).

Each test plants what an attacker would (a link beside an export's target, a hard link to
a file it may not read, a name that is not UTF-8, a lone surrogate in a frame) and checks
that aetherd neither follows it nor stops answering.  aetherd runs --host, as root here, so
a write through a planted link would really land outside the agent's home.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from aether.client import Client

from . import test_aetherd
from .conftest import REPO, sleep_until
from .test_aetherd import state

aetherd = test_aetherd.aetherd          # the fixture: aetherd --host on a temporary data location

pytestmark = pytest.mark.host


def probe(c, aetherd, name, calls, plant=None, **extra):
    """Spawn an agent that waits for "go", let plant(home) set the trap, then run its calls."""
    c.call("agent.spawn", manifest={"name": name, "program": "tests.host.entries:probe_when_told",
                                    "args": ["probe.json", json.dumps(calls)], "restart": "never",
                                    **extra})
    home = aetherd.data / "home" / name
    sleep_until(home.is_dir, 10)
    if plant is not None:
        plant(home)
    (home / "go").write_text("")
    sleep_until(lambda: state(c, name)["state"] in ("exited", "failed"), 20)
    out = home / "probe.json"
    assert out.exists(), c.call("agent.logs", name=name)
    return json.loads(out.read_text())


def codes(out):
    return [code for code, _ in out]


def test_an_export_does_not_write_through_a_planted_link(aetherd, tmp_path):
    c = aetherd()
    victim = tmp_path / "root-owned"
    victim.write_text("do not touch")

    def plant(home):
        (home / "mine.json.tmp").symlink_to(victim)      # the old export opened path + ".tmp"
        (home / "other.json").symlink_to(victim)         # and a link at the name itself
    out = probe(c, aetherd, "exporter", [["ctx.remember", {"text": "exporter's note"}],
                                         ["ctx.export", {"path": "mine.json"}],
                                         ["ctx.export", {"path": "other.json"}],
                                         ["ctx.export", {"path": "/tmp/outside.json"}]], plant)
    assert codes(out) == ["ok", "ok", "ok", "permission_denied"], out
    assert victim.read_text() == "do not touch"
    home = aetherd.data / "home" / "exporter"
    assert (home / "mine.json.tmp").is_symlink() and not (home / "other.json").is_symlink()
    assert "exporter's note" in (home / "mine.json").read_text()


def test_a_hard_link_in_a_home_reaches_nothing(aetherd, tmp_path):
    c = aetherd()
    secret = aetherd.data / "secret"                      # same file system as the homes
    secret.write_text("root's secret")

    def plant(home):
        os.link(secret, home / "alias")
    out = probe(c, aetherd, "linker", [
        ["tool.call", {"name": "files.read", "args": {"path": "alias"}}],
        ["tool.call", {"name": "files.write", "args": {"path": "alias", "content": "x",
                                                       "mode": "append"}}],
        ["tool.call", {"name": "files.write", "args": {"path": "alias", "content": "x",
                                                       "mode": "overwrite"}}]], plant)
    assert codes(out) == ["permission_denied"] * 3, out
    assert all("hard link" in text for _, text in out)
    assert secret.read_text() == "root's secret" and os.stat(secret).st_nlink == 2


def test_names_that_are_not_utf8_and_lone_surrogates_are_answered(aetherd):
    c = aetherd()

    def plant(home):
        with open(os.fsencode(home) + b"/caf\xe9", "wb") as f:
            f.write(b"latin-1")
    out = probe(c, aetherd, "lister", [["tool.call", {"name": "files.list", "args": {}}],
                                       ["tool.call", {"name": "files.read", "args": {"path": "caf\udce9"}}],
                                       ["sys.alert", {"level": "info", "message": "bad \ud800 text"}],
                                       ["sys.events", {}]], plant)
    assert codes(out) == ["ok"] * 4, out
    names = {e["name"]: e for e in out[0][1]["entries"]}
    assert names["caf\udce9"]["undecodable"] is True
    assert out[1][1]["content"] == "latin-1"
    # a lone surrogate as a request id: that request and the next are both answered
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(aetherd.data.parent / "run" / "abi.sock"))
    raw = Client(sock=sock, timeout=10)
    sock.sendall(b'{"id": "\\ud800", "method": "sys.info"}\n{"id": 2, "method": "sys.events"}\n')
    first, second = raw._next(), raw._next()
    assert first["id"] == "\ud800" and "result" in first and second["id"] == 2 and "result" in second
    events = second["result"]["events"] if isinstance(second["result"], dict) else second["result"]
    assert any(e.get("message") == "bad \ud800 text" for e in events)   # sys.events still answers
    assert c.call("sys.events", limit=5) is not None               # still answering
    raw.close()


def test_tool_errors_say_what_to_fix_not_internal(aetherd):
    c = aetherd()
    with pytest.raises(Exception) as e:
        c.call("tool.call", name="files.read", args={"path": "/tmp/" + "x" * 300})
    assert e.value.code == "invalid_params" and "too long" in str(e.value)
    with pytest.raises(Exception) as e:
        c.call("tool.call", name="fetch.url", args={"url": "http://no-such-host.invalid/", "timeout": 5})
    assert e.value.code == "unavailable" and "resolve" in str(e.value), str(e.value)


def test_a_disk_quota_stops_an_agents_files_and_store_writes(aetherd):
    c = aetherd()
    k = 1024
    out = probe(c, aetherd, "hog", [           # home and store share the 300 KiB
        ["tool.call", {"name": "files.write", "args": {"path": "a", "content": "x" * 150 * k}}],
        ["tool.call", {"name": "files.write", "args": {"path": "b", "content": "x" * 200 * k}}],
        ["ctx.append", {"kind": "note", "body": {"x": "y" * 160 * k}}],
        ["tool.call", {"name": "files.delete", "args": {"path": "a"}}],
        ["ctx.append", {"kind": "note", "body": {"x": "y" * 160 * k}}]],
        limits={"disk": "300K"})
    assert codes(out) == ["ok", "budget_exhausted", "budget_exhausted", "ok", "ok"], out
    assert "limits.disk" in out[1][1] and "limits.disk" in out[2][1]
    c.call("ctx.append", kind="note", body={"x": "y" * 200 * k})     # the shell has no quota


def test_ctx_check_names_a_memory_edited_in_the_file(aetherd):
    import sqlite3
    c = aetherd()
    mid = c.call("ctx.remember", text="the door code is 1234")["id"]
    conn = sqlite3.connect(aetherd.data / "context.db")
    conn.execute("DROP TRIGGER mem_immutable")
    conn.execute("UPDATE memories SET text = 'the door code is 0000' WHERE id = ?", (mid,))
    conn.commit()
    conn.close()
    checked = c.call("ctx.check")
    assert checked["digests"]["ok"] is False
    assert [r["memory_id"] for r in checked["digests"]["rows"]] == [mid]
    assert c.call("ctx.verify")["ok"] is False


@pytest.fixture
def read_only_data(tmp_path):
    """A data location on a tmpfs holding a store, remounted read-only (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    data = tmp_path / "data"
    data.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "none", str(data)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    subprocess.run([sys.executable, "-c", "from aether.ctx import ContextStore\n"
                    f"s = ContextStore({str(data / 'context.db')!r})\n"
                    "s.remember('shell', 'written before the disk went read-only', scope='user')\n"
                    "s.close()"], cwd=REPO, check=True)
    for name in ("home", "system"):
        (data / name).mkdir(exist_ok=True)
    subprocess.run(["mount", "-o", "remount,ro", str(data)], check=True)
    yield data
    subprocess.run(["umount", "-l", str(data)], capture_output=True)


def test_a_read_only_data_disk_keeps_reads_and_answers_writes_unavailable(read_only_data, tmp_path):
    run = tmp_path / "run"
    log = open(tmp_path / "aetherd.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "aether.aetherd", "--host", "--run-dir", str(run),
                             "--data-dir", str(read_only_data)], cwd=REPO, stdout=log,
                            stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        sleep_until((run / "abi.sock").exists, 30)
        c = Client(str(run / "abi.sock"), timeout=10)
        found = c.call("ctx.search", query="read-only")["items"]
        assert [i["text"] for i in found] == ["written before the disk went read-only"]
        assert c.call("ctx.info")["read_only"] is True
        with pytest.raises(Exception) as e:
            c.call("ctx.remember", text="a new note")
        assert e.value.code == "unavailable" and "read-only" in str(e.value)
        assert "reads still work" in str(e.value)
        c.close()
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
    assert "READ-ONLY" in (tmp_path / "aetherd.log").read_text()
