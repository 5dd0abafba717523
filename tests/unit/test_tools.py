"""The built-in tools: registry, argument validation, confinement, limits, and each tool."""

import errno
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aether import httpclient, schema, tools
from aether.tools import Caller, core, disk, fetch, files, processes
from aether.tools.clock import iso8601

EXPECTED = {"files.list", "files.read", "files.write", "files.delete", "processes.list",
            "processes.signal", "network.interfaces", "network.routes", "clock.now",
            "disk.usage", "fetch.url"}


@pytest.fixture
def box(tmp_path):
    """A confined agent's data directory, and a secret next to it that it must not reach."""
    root = tmp_path / "agent"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("top secret")
    return root


@pytest.fixture
def agent(box):
    return Caller("agent:test", os.getuid(), root=str(box))


ADMIN = Caller("console:ttyS0", 0, privileged=True)


def run(caller, name, **args):
    return tools.call(caller, name, args)


def refused(caller, name, rule, **args):
    with pytest.raises(tools.PermissionDenied) as info:
        tools.call(caller, name, args)
    assert info.value.details["rule"] == rule, str(info.value)
    assert caller.principal in str(info.value)
    return info.value


# -- the registry -------------------------------------------------------------------------------

def test_every_tool_is_listed_once_with_its_documentation():
    listed = tools.list_tools()
    assert {t["name"] for t in listed} == EXPECTED
    json.dumps(listed)
    for t in listed:
        assert t["description"].endswith(".") and "\n" not in t["description"], t["name"]
        assert len(t["description"]) <= 100, t["name"]
        assert t["doc"], t["name"]


def test_every_schema_is_well_formed_and_documents_each_argument():
    for t in tools.list_tools():
        schema.check_schema(t["schema"], f"{t['name']}.schema")
        assert t["schema"]["type"] == "object"
        assert t["schema"]["additionalProperties"] is False
        for name, prop in t["schema"]["properties"].items():
            assert prop.get("description"), f"{t['name']}: {name} has no description"
            if prop["type"] in ("integer", "number"):
                assert "maximum" in prop, f"{t['name']}: {name} is unbounded"
            if prop["type"] == "string" and "enum" not in prop:
                assert "maxLength" in prop, f"{t['name']}: {name} is unbounded"


def test_every_tool_is_documented():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "tools.md").read_text()
    for name in EXPECTED:
        assert f"| `{name}` |" in doc, f"{name} is missing from docs/tools.md"


def test_risk_flags():
    risky = {t["name"] for t in tools.list_tools() if t["risky"]}
    assert risky == {"files.delete", "files.write", "processes.signal", "fetch.url"}
    assert not tools.is_risky("files.write", {"path": "a", "content": "x"})
    assert not tools.is_risky("files.write", {"path": "a", "content": "x", "mode": "append"})
    assert tools.is_risky("files.write", {"path": "a", "content": "x", "mode": "overwrite"})
    assert tools.is_risky("files.delete", {"path": "a"})
    assert not tools.is_risky("clock.now", {})


def test_unknown_tool_suggests_close_names():
    with pytest.raises(tools.UnknownTool) as info:
        tools.call(ADMIN, "files.raed", {})
    assert "did you mean files.read?" in str(info.value)
    assert info.value.to_dict()["code"] == "unknown_tool"
    with pytest.raises(tools.UnknownTool) as info:
        tools.call(ADMIN, "files.zzzzzzzz", {})
    assert "files." in str(info.value)  # same group
    with pytest.raises(tools.UnknownTool):
        tools.call(ADMIN, ["files.read"], {})


def test_arguments_are_validated_before_anything_runs(agent, box):
    with pytest.raises(tools.InvalidArguments) as info:
        run(agent, "files.write", path="new", content="x", mode="sideways")
    assert str(info.value).startswith("args.mode: expected one of 'create', 'overwrite', 'append'")
    assert not (box / "new").exists()
    with pytest.raises(tools.InvalidArguments) as info:
        run(agent, "files.read", path="x", max_bytes=-5)
    assert str(info.value) == "args.max_bytes: expected an integer >= 1, got -5"
    assert info.value.to_dict()["rule"] == "minimum"
    with pytest.raises(tools.InvalidArguments):
        tools.call(agent, "clock.now", [])
    assert tools.call(agent, "clock.now", None)["wall"] > 0


def test_a_bug_in_a_tool_comes_out_as_tool_failed(monkeypatch):
    def broken(caller, args):
        raise KeyError("oops")
    monkeypatch.setattr(core.REGISTRY["clock.now"], "func", broken)
    with pytest.raises(tools.ToolFailed) as info:
        tools.call(ADMIN, "clock.now", {})
    assert "clock.now failed unexpectedly: KeyError" in str(info.value)


# -- files: reading and writing -----------------------------------------------------------------

def test_write_then_read_text(agent, box):
    out = run(agent, "files.write", path="notes.txt", content="héllo\n")
    assert out == {"path": str(box / "notes.txt"), "mode": "create", "bytes_written": 7, "size": 7,
                   "created": True}
    got = run(agent, "files.read", path=str(box / "notes.txt"))
    assert got["content"] == "héllo\n" and got["eof"] and got["next_offset"] == 7


def test_read_in_pieces_never_cuts_a_character(agent, box):
    (box / "t").write_text("aé€😀z")  # 1 + 2 + 3 + 4 + 1 bytes
    pieces, offset = [], 0
    while True:
        got = run(agent, "files.read", path="t", offset=offset, max_bytes=4)
        pieces.append(got["content"])
        offset = got["next_offset"]
        if got["eof"]:
            break
    assert "".join(pieces) == "aé€😀z" and len(pieces) == 4
    tight = run(agent, "files.read", path="t", offset=3, max_bytes=2)  # less than one character
    assert tight["lossy"] and tight["next_offset"] == 5  # it still moves on


def test_base64_round_trip_and_lossy_text(agent, box):
    blob = bytes(range(256))
    import base64
    run(agent, "files.write", path="b", content=base64.b64encode(blob).decode(), encoding="base64")
    assert (box / "b").read_bytes() == blob
    got = run(agent, "files.read", path="b", encoding="base64")
    assert base64.b64decode(got["content"]) == blob
    assert run(agent, "files.read", path="b")["lossy"] is True
    with pytest.raises(tools.InvalidArguments) as info:
        run(agent, "files.write", path="c", content="not base64!", encoding="base64")
    assert "args.content: expected base64" in str(info.value)


def test_create_overwrite_append(agent, box):
    run(agent, "files.write", path="f", content="one")
    with pytest.raises(tools.AlreadyExists) as info:
        run(agent, "files.write", path="f", content="two")
    assert "mode 'overwrite'" in str(info.value)
    os.chmod(box / "f", 0o640)
    out = run(agent, "files.write", path="f", content="two", mode="overwrite")
    assert (box / "f").read_text() == "two" and not out["created"]
    assert stat.S_IMODE((box / "f").stat().st_mode) == 0o640
    run(agent, "files.write", path="f", content="+", mode="append")
    assert (box / "f").read_text() == "two+"


def test_write_is_atomic_and_leaves_no_temporary_file(agent, box, monkeypatch):
    (box / "f").write_text("original")
    reader = open(box / "f")
    run(agent, "files.write", path="f", content="new", mode="overwrite")
    assert reader.read() == "original"  # a new inode was renamed in; readers keep the old
    reader.close()

    def full_disk(fd, data):
        os.write(fd, data[:2])
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(files, "_write_all", full_disk)
    with pytest.raises(tools.Unavailable) as info:       # the disk's state, not a bug: unavailable
        run(agent, "files.write", path="f", content="replacement", mode="overwrite")
    assert "No space left" in str(info.value) and "free space" in str(info.value)
    assert (box / "f").read_text() == "new"
    assert sorted(p.name for p in box.iterdir()) == ["f"]


def test_create_does_not_replace_a_file_that_appears_meanwhile(agent, box, monkeypatch):
    real_write = files._write_all

    def racing(fd, data):
        (box / "g").write_text("someone else's")
        real_write(fd, data)
    monkeypatch.setattr(files, "_write_all", racing)
    with pytest.raises(tools.AlreadyExists):
        run(agent, "files.write", path="g", content="mine")
    assert (box / "g").read_text() == "someone else's"
    assert sorted(p.name for p in box.iterdir()) == ["g"]


def test_odd_targets(agent, box):
    with pytest.raises(files.WrongType):
        run(agent, "files.write", path=".", content="x", mode="overwrite")
    (box / "d").mkdir()
    with pytest.raises(files.WrongType):
        run(agent, "files.write", path="d", content="x", mode="overwrite")
    with pytest.raises(files.WrongType):
        run(agent, "files.read", path="d")
    long_name = "é" * 127  # 254 bytes: the longest name most file systems take
    run(agent, "files.write", path=long_name, content="x")
    assert (box / long_name).read_text() == "x"


def test_make_parents(agent, box):
    with pytest.raises(tools.NotFound):
        run(agent, "files.write", path="a/b/c.txt", content="x")
    run(agent, "files.write", path="a/b/c.txt", content="x", make_parents=True)
    assert (box / "a/b/c.txt").read_text() == "x"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_what_a_confined_caller_creates_is_its_own(box):
    caller = Caller("agent:owned", 12345, root=str(box), gid=12346)
    run(caller, "files.write", path="d/f", content="x", make_parents=True)
    for path in (box / "d", box / "d/f"):
        assert (path.stat().st_uid, path.stat().st_gid) == (12345, 12346)


def test_size_limits(agent, box, monkeypatch):
    with pytest.raises(tools.InvalidArguments) as info:
        run(agent, "files.read", path="x", max_bytes=files.READ_MAX + 1)
    assert f"<= {files.READ_MAX}" in str(info.value)
    monkeypatch.setattr(files, "WRITE_MAX", 10)
    with pytest.raises(tools.TooLarge):
        run(agent, "files.write", path="big", content="x" * 11)
    assert not (box / "big").exists()
    monkeypatch.setattr(files, "FILE_MAX", 12)
    run(agent, "files.write", path="log", content="x" * 10)
    with pytest.raises(tools.TooLarge):
        run(agent, "files.write", path="log", content="xxx", mode="append")
    assert (box / "log").read_text() == "x" * 10


def test_read_limit_and_offset(agent, box):
    (box / "r").write_bytes(b"0123456789")
    got = run(agent, "files.read", path="r", offset=3, max_bytes=4)
    assert (got["content"], got["eof"], got["next_offset"], got["size"]) == ("3456", False, 7, 10)
    got = run(agent, "files.read", path="r", offset=7, max_bytes=3)
    assert got["eof"] and got["content"] == "789"
    assert run(agent, "files.read", path="r", offset=99)["content"] == ""


# -- files: confinement -------------------------------------------------------------------------

def test_dotdot_out_of_the_root_is_refused(agent):
    e = refused(agent, "files.read", "dotdot_escape", path="../outside/secret")
    assert "'..' climbs out of the data directory" in str(e)
    refused(agent, "files.write", "dotdot_escape", path="../outside/new", content="x")
    refused(agent, "files.list", "dotdot_escape", path="..")


def test_dotdot_that_stays_inside_is_fine(agent, box):
    (box / "sub").mkdir()
    (box / "f").write_text("ok")
    assert run(agent, "files.read", path="sub/../f")["content"] == "ok"


def test_absolute_paths_outside_the_root_are_refused(agent, box):
    secret = str(box.parent / "outside" / "secret")
    e = refused(agent, "files.read", "outside_root", path=secret)
    assert str(box) in str(e) and secret in str(e)
    refused(agent, "files.read", "outside_root", path="/etc/passwd")
    refused(agent, "files.delete", "outside_root", path=secret)
    refused(agent, "files.list", "outside_root", path="/")
    assert (box.parent / "outside" / "secret").exists()


def test_symlink_escapes_are_refused(agent, box):
    outside = box.parent / "outside"
    (box / "link").symlink_to(outside / "secret")
    (box / "dirlink").symlink_to(outside)
    e = refused(agent, "files.read", "symlink_escape", path="link")
    assert "a symbolic link leads to" in str(e)
    refused(agent, "files.read", "symlink_escape", path="dirlink/secret")
    refused(agent, "files.write", "symlink_escape", path="link", content="x", mode="overwrite")
    refused(agent, "files.write", "symlink_escape", path="dirlink/new", content="x")
    refused(agent, "files.list", "symlink_escape", path="dirlink")
    refused(agent, "files.delete", "symlink_escape", path="dirlink/secret")
    assert (outside / "secret").read_text() == "top secret"
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def test_symlinks_inside_the_root_work_and_delete_removes_the_link(agent, box):
    (box / "real").write_text("data")
    (box / "alias").symlink_to("real")
    assert run(agent, "files.read", path="alias")["content"] == "data"
    (box / "out").symlink_to(box.parent / "outside" / "secret")
    run(agent, "files.delete", path="out")  # the link is inside: it goes, its target stays
    assert not (box / "out").is_symlink()
    assert (box.parent / "outside" / "secret").exists()


@pytest.mark.parametrize("tool, args, nth", [
    ("files.read", {}, 2),                                 # walk's look, then the lstat to open
    ("files.write", {"content": "x", "mode": "append"}, 3),  # walk, the existing-file check, open
])
def test_a_file_swapped_for_a_link_while_being_opened_is_refused(agent, box, monkeypatch, tool,
                                                                   args, nth):
    (box / "f").write_text("mine")
    real_stat, calls = os.stat, []

    def swap_after_looking(name, *a, **k):
        st = real_stat(name, *a, **k)
        if name == "f":
            calls.append(name)
            if len(calls) == nth:               # after the last look, before the open
                os.unlink(box / "f")
                (box / "f").symlink_to(box.parent / "outside" / "secret")
        return st
    monkeypatch.setattr(os, "stat", swap_after_looking)
    e = refused(agent, tool, "symlink_escape", path="f", **args)
    assert "became a symbolic link" in str(e)
    assert (box.parent / "outside" / "secret").read_text() == "top secret"


def test_a_directory_swapped_for_a_link_mid_walk_cannot_lead_out(agent, box, monkeypatch):
    from aether import safepath
    (box / "d").mkdir()
    real_open = os.open

    def swap_then_open(name, flags, *a, **k):
        if name == "d" and not os.path.islink(box / "d"):
            os.rmdir(box / "d")
            (box / "d").symlink_to(box.parent / "outside")
        return real_open(name, flags, *a, **k)
    monkeypatch.setattr(safepath.os, "open", swap_then_open)
    refused(agent, "files.read", "symlink_escape", path="d/secret")
    refused(agent, "files.write", "symlink_escape", path="d/planted", content="x")
    assert sorted(p.name for p in (box.parent / "outside").iterdir()) == ["secret"]


def test_hard_links_to_files_outside_are_neither_read_nor_written(agent, box):
    secret = box.parent / "outside" / "secret"
    os.link(secret, box / "alias")
    e = refused(agent, "files.read", "hardlink", path="alias")
    assert "2 hard links" in str(e)
    refused(agent, "files.write", "hardlink", path="alias", content="pwned", mode="append")
    refused(agent, "files.write", "hardlink", path="alias", content="pwned", mode="overwrite")
    assert secret.read_text() == "top secret"
    assert run(ADMIN, "files.read", path=str(box / "alias"))["content"] == "top secret"


def test_an_overwrite_by_a_confined_caller_drops_set_id_bits(agent, box):
    (box / "tool").write_text("#!/bin/sh\n")
    os.chmod(box / "tool", 0o4755)
    run(agent, "files.write", path="tool", content="echo hi\n", mode="overwrite")
    assert stat.S_IMODE(os.stat(box / "tool").st_mode) == 0o755


def test_symbolic_link_loops_are_refused(agent, box):
    (box / "a").symlink_to("b")
    (box / "b").symlink_to("a")
    e = refused(agent, "files.read", "too_many_links", path="a")
    assert "40 symbolic links" in str(e)


def test_a_link_whose_target_climbs_out_with_dotdot_is_refused(agent, box):
    (box / "sub").mkdir()
    (box / "sub" / "up").symlink_to("../../outside/secret")
    refused(agent, "files.read", "symlink_escape", path="sub/up")


def test_a_name_too_long_is_the_callers_mistake(agent):
    with pytest.raises(tools.InvalidArguments) as info:
        run(agent, "files.read", path="x" * 300)
    assert "too long" in str(info.value) and info.value.details["rule"] == "name_too_long"
    with pytest.raises(tools.InvalidArguments):
        run(agent, "files.write", path="x" * 300, content="x")


def test_undecodable_names_are_listed_escaped_and_round_trip(agent, box):
    from aether.abi import protocol
    raw = os.fsencode(str(box)) + b"/caf\xe9.txt"
    with open(raw, "wb") as f:
        f.write(b"latin-1 name")
    got = run(agent, "files.list")
    entry = got["entries"][0]
    assert entry["name"] == "caf\udce9.txt" and entry["undecodable"] is True
    frame = protocol.encode({"id": 1, "result": got})      # encodable on the wire
    back = json.loads(frame)["result"]["entries"][0]["name"]
    assert run(agent, "files.read", path=back)["content"] == "latin-1 name"


def test_the_largest_write_and_read_fit_one_frame(agent, box):
    import base64
    from aether.abi import protocol
    content = base64.b64encode(os.urandom(files.WRITE_MAX)).decode()
    request = {"id": 1, "method": "tool.call",
               "params": {"name": "files.write", "args": {"path": "big", "content": content,
                                                          "encoding": "base64"}}}
    assert len(protocol.encode(request)) <= protocol.MAX_FRAME
    run(agent, "files.write", path="big", content=content, encoding="base64")
    got = run(agent, "files.read", path="big", max_bytes=files.READ_MAX, encoding="base64")
    assert len(protocol.encode({"id": 1, "result": got})) <= protocol.MAX_FRAME
    (box / "controls").write_bytes(b"\x01" * files.READ_MAX)     # 6 bytes each as JSON text
    got = run(agent, "files.read", path="controls", max_bytes=files.READ_MAX)
    assert len(protocol.encode({"id": 1, "result": got})) <= protocol.MAX_FRAME
    assert not got["eof"] and got["next_offset"] == got["bytes"] < files.READ_MAX


def test_a_disk_quota_stops_an_agents_writes(box):
    capped = Caller("agent:capped", os.getuid(), root=str(box), disk_quota=64 * 1024)
    run(capped, "files.write", path="a", content="x" * 32 * 1024)
    with pytest.raises(tools.ToolError) as info:
        run(capped, "files.write", path="b", content="x" * 40 * 1024)
    assert info.value.code == "quota_exceeded" and "limits.disk" in str(info.value)
    assert not (box / "b").exists()
    run(capped, "files.write", path="a", content="y" * 40 * 1024, mode="overwrite")  # replaces
    run(capped, "files.delete", path="a")
    run(capped, "files.write", path="b", content="x" * 40 * 1024)


def test_the_disk_reserve_is_the_systems(agent, box, monkeypatch):
    from aether import diskspace

    class Full:
        f_blocks, f_frsize = 1 << 16, 4096            # 256 MiB, as the image's data disk
    Full.f_bavail = (diskspace.reserve_bytes(Full) >> 12) + 1    # 4 KiB past the reserve
    monkeypatch.setattr(diskspace.os, "statvfs", lambda path: Full)
    with pytest.raises(tools.Unavailable) as info:
        run(agent, "files.write", path="fill", content="x" * 8192)
    assert "kept for the system" in str(info.value) and info.value.details["rule"] == "disk_reserve"
    run(agent, "files.write", path="small", content="x" * 100)
    run(ADMIN, "files.write", path=str(box / "system.log"), content="x" * 8192)


def test_device_files_and_fifos_are_never_opened(agent, box):
    os.mkfifo(box / "pipe")
    e = refused(agent, "files.read", "not_regular", path="pipe")  # would block if opened
    assert "fifo" in str(e)
    refused(agent, "files.write", "not_regular", path="pipe", content="x", mode="append")
    refused(ADMIN, "files.read", "not_regular", path="/dev/null")
    refused(ADMIN, "files.read", "not_regular", path="/dev/zero")


def test_privileged_callers_read_anything_but_never_write_proc_sys_dev(tmp_path):
    assert "Name:" in run(ADMIN, "files.read", path="/proc/self/status")["content"]
    refused(ADMIN, "files.write", "protected_path", path="/proc/sys/kernel/hostname",
            content="pwned", mode="overwrite")
    refused(ADMIN, "files.write", "protected_path", path="/dev/aether-test", content="x")
    refused(ADMIN, "files.delete", "protected_path", path="/sys/kernel")
    assert not os.path.exists("/dev/aether-test")
    run(ADMIN, "files.write", path=str(tmp_path / "admin.txt"), content="ok")
    assert (tmp_path / "admin.txt").read_text() == "ok"


def test_a_caller_without_a_root_may_not_use_files():
    lost = Caller("agent:lost", 1000)
    refused(lost, "files.list", "no_root")


def test_nul_in_a_path_is_invalid(agent):
    with pytest.raises(tools.InvalidArguments):
        run(agent, "files.read", path="a\0b")


# -- files: list and delete ---------------------------------------------------------------------

def test_list_entries(agent, box):
    (box / "b.log").write_text("12345")
    (box / "a.txt").write_text("")
    (box / "dir").mkdir()
    (box / "ln").symlink_to("a.txt")
    got = run(agent, "files.list")
    assert got["path"] == str(box) and got["total"] == 4 and not got["truncated"]
    by_name = {e["name"]: e for e in got["entries"]}
    assert [e["name"] for e in got["entries"]] == ["a.txt", "b.log", "dir", "ln"]
    assert by_name["b.log"]["type"] == "file" and by_name["b.log"]["size"] == 5
    assert by_name["dir"]["type"] == "directory"
    assert by_name["ln"] == {**by_name["ln"], "type": "symlink", "target": "a.txt"}
    assert abs(by_name["b.log"]["mtime"] - time.time()) < 60
    assert [e["name"] for e in run(agent, "files.list", pattern="*.log")["entries"]] == ["b.log"]
    limited = run(agent, "files.list", limit=2)
    assert limited["count"] == 2 and limited["truncated"] and limited["total"] == 4
    with pytest.raises(files.WrongType):
        run(agent, "files.list", path="b.log")
    with pytest.raises(tools.NotFound):
        run(agent, "files.list", path="nope")


def test_delete(agent, box):
    (box / "f").write_text("x")
    assert run(agent, "files.delete", path="f")["deleted"] == {"files": 1, "directories": 0}
    (box / "d/e").mkdir(parents=True)
    (box / "d/e/f").write_text("x")
    (box / "d/ln").symlink_to(box.parent / "outside")
    with pytest.raises(files.WrongType) as info:
        run(agent, "files.delete", path="d")
    assert "recursive" in str(info.value)
    out = run(agent, "files.delete", path="d", recursive=True)
    assert out["deleted"] == {"files": 2, "directories": 2}
    assert not (box / "d").exists() and (box.parent / "outside" / "secret").exists()
    with pytest.raises(tools.NotFound):
        run(agent, "files.delete", path="d")


@pytest.mark.parametrize("path", [".", "./", "", "sub/..", "/"])
def test_the_root_itself_cannot_be_deleted(agent, box, path):
    (box / "sub").mkdir()
    with pytest.raises((tools.PermissionDenied, tools.InvalidArguments)):
        run(agent, "files.delete", path=path, recursive=True)
    assert box.is_dir()


# -- processes ----------------------------------------------------------------------------------

@pytest.fixture
def sleeper():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    child.kill()
    child.wait()


def test_list_processes(agent, sleeper):
    got = run(agent, "processes.list", match="time.sleep(60)")
    assert [p["pid"] for p in got["processes"]] == [sleeper.pid]
    proc = got["processes"][0]
    assert proc["ppid"] == os.getpid() and proc["uid"] == os.getuid() and proc["state"] in "RS"
    assert proc["rss_bytes"] > 0 and proc["cgroup"] is not None and proc["owned"] is False
    everything = run(ADMIN, "processes.list")
    assert everything["total"] >= 2 and all(p["owned"] for p in everything["processes"])
    assert run(ADMIN, "processes.list", limit=1)["count"] == 1


def test_signal_needs_ownership(box, sleeper):
    stranger = Caller("agent:stranger", 1000, root=str(box))
    e = refused(stranger, "processes.signal", "own_processes_only", pid=sleeper.pid, signal="KILL")
    assert str(sleeper.pid) in str(e) and "cgroup" in str(e)
    assert sleeper.poll() is None
    owner = Caller("agent:owner", 1000, root=str(box), owns_pid=lambda pid: pid == sleeper.pid)
    assert run(owner, "processes.signal", pid=sleeper.pid)["sent"]
    assert sleeper.wait(timeout=10) == -15


def test_pid_1_and_aetherd_are_never_signalled():
    refused(ADMIN, "processes.signal", "not_pid1", pid=1)
    refused(ADMIN, "processes.signal", "not_aetherd", pid=os.getpid())


def test_signal_to_a_missing_process():
    with pytest.raises(tools.NotFound):
        run(ADMIN, "processes.signal", pid=processes.PID_MAX - 1, signal="CONT")


def test_in_cgroup_hook():
    mine = processes.cgroup_of(os.getpid())
    assert processes.in_cgroup(mine)(os.getpid())
    assert processes.in_cgroup("/")(os.getpid())
    assert not processes.in_cgroup(mine.rstrip("/") + "-not-a-sibling")(os.getpid())
    assert not processes.in_cgroup("/")(processes.PID_MAX - 1)


# -- network, clock, disk -----------------------------------------------------------------------

def test_network_interfaces_include_loopback(agent):
    lo = {i["name"]: i for i in run(agent, "network.interfaces")["interfaces"]}["lo"]
    assert "loopback" in lo["flags"] and lo["mtu"] > 0
    if "up" in lo["flags"]:
        assert {"address": "127.0.0.1", "prefix": 8} in lo["ipv4"]


def test_network_routes(agent):
    got = run(agent, "network.routes")
    json.dumps(got)
    for route in got["routes"]:
        assert route["family"] in ("ipv4", "ipv6") and "/" in route["destination"]


def test_clock(agent):
    got = run(agent, "clock.now")
    assert abs(got["wall"] - time.time()) < 5 and got["utc"].endswith("Z")
    assert got["uptime"] > 0 and got["monotonic"] > 0 and "utc_offset_seconds" in got["timezone"]
    assert iso8601(0, True) == "1970-01-01T00:00:00.000Z"
    assert iso8601(86400.25, True) == "1970-01-02T00:00:00.250Z"


def test_disk_usage(agent):
    got = run(agent, "disk.usage")
    root = {f["mount_point"]: f for f in got["filesystems"]}["/"]
    assert root["total_bytes"] > 0 and root["used_bytes"] + root["available_bytes"] <= root["total_bytes"]
    assert "proc" not in {f["fstype"] for f in got["filesystems"]}
    assert "proc" in {f["fstype"] for f in run(agent, "disk.usage", all=True)["filesystems"]}
    assert [f["mount_point"] for f in run(agent, "disk.usage", mount_point="/")["filesystems"]] == ["/"]
    with pytest.raises(tools.NotFound):
        run(agent, "disk.usage", mount_point="/no/such/mount")
    assert disk._unescape(r"/mnt/with\040space\134x") == "/mnt/with space\\x"


# -- fetch.url against a real server on 127.0.0.1 -----------------------------------------------

class _Web(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head=False):
        path = self.path
        if path == "/text":
            return self._send(200, "héllo wörld".encode(), "text/plain; charset=utf-8", head)
        if path == "/latin":
            return self._send(200, "wörld".encode("latin-1"), "text/plain; charset=ISO-8859-1", head)
        if path.startswith("/hop/"):
            n = int(path.rsplit("/", 1)[1])
            target = "/text" if n == 0 else f"/hop/{n - 1}"
            return self._send(302, b"", "text/plain", head, [("Location", target)])
        if path == "/to-ftp":
            return self._send(302, b"", "text/plain", head, [("Location", "ftp://example.org/")])
        if path == "/loop":
            return self._send(301, b"", "text/plain", head, [("Location", "/loop")])
        if path == "/slow":
            time.sleep(2)
            return self._send(200, b"late", "text/plain", head)
        if path == "/big":
            return self._send(200, b"x" * 100000, "application/octet-stream", head)
        if path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for piece in (b"one ", b"two ", b"three"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        self._send(404, b"not here", "text/plain", head)

    def _send(self, status, body, ctype, head, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


@pytest.fixture(scope="module")
def web():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Web)
    server.daemon_threads = True
    server.block_on_close = False
    server.handle_error = lambda request, address: None  # /slow's client hangs up early
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_text(web):
    got = run(ADMIN, "fetch.url", url=f"{web}/text")
    assert (got["status"], got["content"], got["truncated"]) == (200, "héllo wörld", False)
    assert got["headers"]["content-type"].startswith("text/plain") and got["bytes"] == 13
    assert run(ADMIN, "fetch.url", url=f"{web}/latin")["content"] == "wörld"


def test_fetch_head_binary_chunked_and_errors_as_results(web):
    head = run(ADMIN, "fetch.url", url=f"{web}/text", method="HEAD")
    assert head["status"] == 200 and head["content"] == "" and head["headers"]["content-length"] == "13"
    assert run(ADMIN, "fetch.url", url=f"{web}/chunked")["content"] == "one two three"
    missing = run(ADMIN, "fetch.url", url=f"{web}/nothing")
    assert (missing["status"], missing["content"]) == (404, "not here")


def test_fetch_max_bytes(web):
    got = run(ADMIN, "fetch.url", url=f"{web}/big", max_bytes=1000, encoding="base64")
    assert got["truncated"] and got["bytes"] == 1000
    import base64
    assert base64.b64decode(got["content"]) == b"x" * 1000


def test_fetch_follows_redirects_and_stops_loops(web):
    got = run(ADMIN, "fetch.url", url=f"{web}/hop/2")
    assert got["content"] == "héllo wörld" and got["url"] == f"{web}/text"
    assert got["redirects"] == [f"{web}/hop/2", f"{web}/hop/1", f"{web}/hop/0"]
    assert run(ADMIN, "fetch.url", url=f"{web}/hop/0", follow_redirects=False)["status"] == 302
    with pytest.raises(tools.FetchFailed) as info:
        run(ADMIN, "fetch.url", url=f"{web}/loop")
    assert "more than 5 redirects" in str(info.value)
    with pytest.raises(tools.FetchFailed) as info:
        run(ADMIN, "fetch.url", url=f"{web}/to-ftp")
    assert "redirects to ftp://example.org/" in str(info.value) and "http://" in str(info.value)


def test_fetch_timeout_is_bounded(web):
    started = time.monotonic()
    with pytest.raises(tools.FetchFailed) as info:
        run(ADMIN, "fetch.url", url=f"{web}/slow", timeout=0.3)
    assert info.value.details["reason"] == "timeout" and time.monotonic() - started < 1.5


def test_fetch_connection_refused(closed_port):
    with pytest.raises(tools.FetchFailed) as info:
        run(ADMIN, "fetch.url", url=f"http://127.0.0.1:{closed_port}/")
    assert "connection refused" in str(info.value) and info.value.details["reason"] == "refused"


@pytest.mark.parametrize("url", ["ftp://example.org/x", "file:///etc/passwd", "example.org",
                                 "http://user:pw@example.org/", "http://exa mple.org/",
                                 "http://bücher.example/", "http://h:99999/"])
def test_fetch_refuses_what_is_not_plain_http(url):
    with pytest.raises(tools.InvalidArguments) as info:
        run(ADMIN, "fetch.url", url=url)
    assert str(info.value).startswith("args.url: ")


def test_fetch_keeps_confined_agents_off_local_services(box, web):
    agent = Caller("agent:curious", 1000, root=str(box))
    e = refused(agent, "fetch.url", "local_network", url=f"{web}/text")
    assert "127.0.0.1" in str(e)
    refused(agent, "fetch.url", "local_network", url=f"http://localhost:{web.rsplit(':', 1)[1]}/text")
    trusted = Caller("agent:trusted", 1000, root=str(box), local_network=True)
    assert run(trusted, "fetch.url", url=f"{web}/text")["status"] == 200


def test_local_address_classification():
    for ip in ("127.0.0.1", "127.9.9.9", "0.0.0.0", "169.254.1.1", "::1", "::", "fe80::1%eth0",
               "::ffff:127.0.0.1"):
        assert fetch.is_local(ip), ip
    for ip in ("192.0.2.1", "10.0.0.1", "2001:db8::1", "::ffff:192.0.2.1"):
        assert not fetch.is_local(ip), ip


def test_https_without_ssl_says_so(web, monkeypatch):
    port = web.rsplit(":", 1)[1]
    monkeypatch.setitem(sys.modules, "ssl", None)
    with pytest.raises(tools.Unavailable) as info:
        run(ADMIN, "fetch.url", url=f"https://127.0.0.1:{port}/text")
    assert "no ssl module" in str(info.value) and "http://" in str(info.value)


def test_https_handshake_failure_is_a_fetch_failure(web):
    port = web.rsplit(":", 1)[1]
    with pytest.raises(tools.FetchFailed) as info:
        run(ADMIN, "fetch.url", url=f"https://127.0.0.1:{port}/text", timeout=5)
    assert info.value.details["reason"] in ("tls", "protocol")


def test_url_parsing():
    url = httpclient.parse_url("HTTP://Example.ORG:8080/a/b?q=1#frag")
    assert (url.scheme, url.host, url.port, url.target) == ("http", "example.org", 8080, "/a/b?q=1")
    assert str(httpclient.parse_url("http://[::1]/")) == "http://[::1]/"
    assert httpclient.parse_url("https://h?x").target == "/?x"
    assert httpclient.parse_url("http://h/ü").target == "/%C3%BC"
    base = httpclient.parse_url("http://h:81/a/b?c")
    assert httpclient.join_url(base, "/x") == "http://h:81/x"
    assert httpclient.join_url(base, "y") == "http://h:81/a/y"
    assert httpclient.join_url(base, "//other/z") == "http://other/z"
    assert httpclient.join_url(base, "https://o/") == "https://o/"


# -- the fuzz: nothing but ToolError comes out of call ------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12)

NAMES = sorted(EXPECTED)


def _guided_args(name):
    """Argument objects that look like the tool's own: its property names, with values that
    are random JSON or values of the declared type (so validation often passes)."""
    props = core.REGISTRY[name].schema["properties"]
    typed = {"string": st.text(max_size=12) | st.sampled_from(["a", "../x", "/", ".", "sub/f"]),
             "integer": st.integers(-3, 5000), "number": st.floats(0, 2), "boolean": st.booleans()}

    def value(prop):
        options = [json_values]
        if "enum" in prop:
            options.append(st.sampled_from(prop["enum"]))
        elif prop["type"] in typed:
            options.append(typed[prop["type"]])
        return st.one_of(*options)
    keys = st.sampled_from(sorted(props) + ["bogus"])
    return st.fixed_dictionaries({}, optional={k: value(p) for k, p in props.items()}) | \
        st.dictionaries(keys, json_values, max_size=4)


calls = st.one_of(
    st.tuples(st.sampled_from(NAMES), json_values),
    st.tuples(st.text(max_size=15) | json_values, json_values),
    st.sampled_from(NAMES).flatmap(lambda n: st.tuples(st.just(n), _guided_args(n))),
)


@pytest.fixture(scope="module")
def fuzz_caller(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz") / "agent"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f").write_text("data")
    return Caller("agent:fuzz", os.getuid(), root=str(root), owns_pid=lambda pid: False)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls)
def test_random_calls_raise_only_tool_errors(fuzz_caller, call):
    name, args = call
    original = httpclient.resolve
    httpclient.resolve = lambda host, port: original(b"127.0.0.1", port)  # never leave the machine
    try:
        result = tools.call(fuzz_caller, name, args)
    except tools.ToolError as e:
        assert str(e) and json.dumps(e.to_dict())
    else:
        json.dumps(result)
    finally:
        httpclient.resolve = original


def test_no_descriptor_leaks_on_any_outcome(agent, box):
    os.link(box.parent / "outside" / "secret", box / "alias")
    (box / "f").write_text("x")
    calls = [("files.read", {"path": "alias"}), ("files.read", {"path": "../x"}),
             ("files.read", {"path": "nope/x"}), ("files.write", {"path": "f", "content": "y"}),
             ("files.write", {"path": "g", "content": "y", "mode": "overwrite"}),
             ("files.list", {"path": "f"}), ("files.delete", {"path": "nope"}),
             ("files.read", {"path": "x" * 300})]
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        for name, args in calls:
            try:
                tools.call(agent, name, args)
            except tools.ToolError:
                pass
    assert len(os.listdir("/proc/self/fd")) == before
