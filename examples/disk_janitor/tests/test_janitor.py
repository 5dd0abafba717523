"""The disk janitor example: its scan, its request and its careful delete (unit), and the agent
under a real aetherd on the host: approved deletes exactly what was shown, denied deletes nothing
(and is not asked again)."""

import importlib.util
import json
import os
import time
import tomllib
from pathlib import Path

import pytest

from tests.host.conftest import sleep_until
from tests.host.test_broker import Aetherd

PACKAGE = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("janitor", PACKAGE / "janitor.py")
janitor = importlib.util.module_from_spec(spec)
spec.loader.exec_module(janitor)
OLD = time.time() - 40 * 86400


def put(path, size, mtime=OLD):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def homes(tmp_path):
    """An agents' homes directory with every kind of file the janitor must tell apart."""
    root = tmp_path / "home"
    outside = put(tmp_path / "outside" / "precious.bin", 8192)
    files = {
        "old": put(root / "web" / "old-big.bin", 8192),
        "deep": put(root / "web" / "sub" / "deep" / "old-big2.bin", 4096),
        "evil": put(root / "web" / "evil\x1b[2J\u202e.bin", 4096),
        "new": put(root / "web" / "new-big.bin", 8192, time.time()),
        "small": put(root / "web" / "old-small.txt", 10),
        "own": put(root / "disk-janitor" / "my-old-big.bin", 8192),
        "outside": outside,
    }
    (root / "web" / "link.bin").symlink_to(outside)
    (root / "web" / "linkdir").symlink_to(outside.parent)
    return root, files


def names(found):
    return sorted("/".join(c.parts) for c in found)


def test_scan_finds_large_old_regular_files_only(homes):
    root, _ = homes
    found, cut = janitor.scan(str(root), "disk-janitor", 1024, 86400)
    assert not cut
    assert names(found) == ["web/evil\x1b[2J\u202e.bin", "web/old-big.bin", "web/sub/deep/old-big2.bin"]
    assert found[0].parts == ("web", "old-big.bin")                 # largest first


def test_the_request_escapes_what_it_shows(homes):
    root, _ = homes
    found, _ = janitor.scan(str(root), "disk-janitor", 1024, 86400)
    asked, step, why, details = janitor.request(found, {"min_size": 1024, "min_age": 30 * 86400})
    assert step == "delete 3 files (16.0 KiB) in agents' homes" and "30 days" in why
    assert "web/evil\\x1b[2J\\u202e.bin" in details and "\x1b" not in details and "\u202e" not in details
    assert all(ch.isprintable() or ch == "\n" for ch in details) and len(asked) == 3


def test_delete_removes_only_the_file_that_was_shown(homes):
    root, files = homes
    found, _ = janitor.scan(str(root), "disk-janitor", 1024, 86400)
    old, deep = (next(c for c in found if c.parts[-1] == n) for n in ("old-big.bin", "old-big2.bin"))
    files["deep"].unlink()
    put(files["deep"], 4096)                                       # a new file under the same name
    assert janitor.delete(str(root), deep) == "it changed since it was shown" and files["deep"].exists()
    (root / "web" / "sub").rename(root / "web" / "sub2")
    (root / "web" / "sub").symlink_to(root / "web" / "sub2")        # a directory swapped for a link
    assert janitor.delete(str(root), deep) is not None and files["deep"].parent.exists()
    assert janitor.delete(str(root), old) is None and not files["old"].exists()
    assert files["outside"].exists()


def test_args():
    opts = janitor.parse(["--min-size", "64M", "--min-age", "30d", "--once", "--timeout", "60"])
    assert (opts["min_size"], opts["min_age"], opts["once"], opts["timeout"]) == (64 << 20, 30 * 86400, True, 60)
    with pytest.raises(SystemExit, match="usage"):
        janitor.parse(["--min-size"])
    with pytest.raises(SystemExit, match="unknown argument"):
        janitor.parse(["--frobnicate"])


def test_the_manifest_asks_for_the_privilege_it_needs():
    manifest = tomllib.loads((PACKAGE / "agent.toml").read_text())
    assert manifest["version"] == "1.0.0" and manifest["program"] == "janitor:main"
    assert manifest["user"] == "root" and manifest["grant"] == ["root", "unconfined"]


# -- under a real aetherd ------------------------------------------------------------------------------

def spawn(c):
    manifest = tomllib.loads((PACKAGE / "agent.toml").read_text())
    manifest.pop("version")
    manifest.update(program="examples.disk_janitor.janitor:main", restart="never",
                    args=["--once", "--min-size", "1k", "--min-age", "1d", "--timeout", "60"])
    c.call("agent.spawn", manifest=manifest)


def request_of(c):
    return sleep_until(lambda: [r for r in c.call("agent.requests")["pending"] if r["agent"] == "disk-janitor"], 30)[0]


def done(c):
    sleep_until(lambda: c.call("agent.inspect", name="disk-janitor")["state"] == "exited", 30)


@pytest.fixture
def daemon(tmp_path):
    d = Aetherd(tmp_path, "")
    yield d
    d.stop()


def planted(d, tmp_path):
    root = d.data / "home"
    outside = put(tmp_path / "outside" / "precious.bin", 8192)
    files = {"old": put(root / "web" / "old-big.bin", 8192), "deep": put(root / "web" / "a" / "b" / "old.bin", 4096),
             "new": put(root / "web" / "new.bin", 8192, time.time()), "own": put(root / "disk-janitor" / "mine.bin", 8192)}
    (root / "web" / "link.bin").symlink_to(outside)
    return files, outside


@pytest.mark.host
def test_approved_deletes_what_was_shown_and_nothing_else(daemon, tmp_path):
    files, outside = planted(daemon, tmp_path)
    c = daemon.connect()
    spawn(c)
    req = request_of(c)
    assert req["step"] == "delete 2 files (12.0 KiB) in agents' homes"
    assert "web/old-big.bin" in req["details"] and "web/a/b/old.bin" in req["details"]
    assert files["old"].exists() and files["deep"].exists()         # nothing before the yes
    c.call("agent.approve", id=req["id"])
    done(c)
    assert not files["old"].exists() and not files["deep"].exists()
    assert files["new"].exists() and files["own"].exists() and outside.exists()
    assert (daemon.data / "home" / "web" / "link.bin").is_symlink()
    notes = c.call("ctx.search", query="deleted", scopes=["agent:disk-janitor"])["items"]
    assert any("approved by shell: deleted 2 files" in m["text"] for m in notes)


@pytest.mark.host
def test_denied_deletes_nothing_and_is_not_asked_again(daemon, tmp_path):
    files, outside = planted(daemon, tmp_path)
    c = daemon.connect()
    spawn(c)
    c.call("agent.deny", id=request_of(c)["id"], note="keep them")
    done(c)
    assert all(f.exists() for f in files.values()) and outside.exists()
    logs = c.call("agent.logs", name="disk-janitor")["lines"]
    assert any("denied: nothing deleted" in line for line in logs)
    state = json.loads((daemon.data / "home" / "disk-janitor" / "state.json").read_text())
    assert len(state["denied"]) == 2
    c.call("agent.start", name="disk-janitor")
    sleep_until(lambda: any("nothing to clean" in line for line in c.call("agent.logs", name="disk-janitor")["lines"]), 30)
    assert not c.call("agent.requests")["pending"] and all(f.exists() for f in files.values())


@pytest.mark.host
def test_it_deploys_as_a_package_with_its_privilege(daemon, tmp_path):
    from aether.packages.upload import upload
    c = daemon.connect()
    from aether.abi.protocol import Conflict
    with pytest.raises(Conflict, match="asks for root, unconfined.*--allow root,unconfined"):
        upload(c, str(PACKAGE))                      # typing 'deploy' is not giving it root
    assert "disk-janitor-1.0.0 is current" in upload(c, str(PACKAGE), allow=("root", "unconfined"))["message"]
    info = c.call("agent.inspect", name="disk-janitor")
    assert info["program"] == "janitor:main"
    sleep_until(lambda: any("nothing to clean" in line for line in c.call("agent.logs", name="disk-janitor")["lines"]), 30)
