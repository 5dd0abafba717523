"""Agent packages against a real aetherd --host (aether/packages/): pack and deploy, the same
version again, a new version stopping the old one, rollback, automatic rollback (an import
error at start, a crash loop later), every kind of bad package, the upload's bounds (an
attacker's oversize, out-of-order and traversal uploads, an agent calling deploy), a disk
too small, and deployed agents coming back after aetherd restarts."""

import base64
import hashlib
import json
import os
import subprocess

import pytest

from aether.abi.protocol import AbiError
from aether.packages import format as fmt
from aether.packages.upload import upload

from .conftest import sleep_until
from .test_broker import Aetherd

pytestmark = pytest.mark.host

AGENT = """\
name = "{name}"
version = "{version}"
program = "{module}:main"
[backoff]
initial = "0.1s"
max = "0.2s"
"""
LOOP = """\
import signal, sys, time
def main(args):
    def bye(*_):
        print("{version} stopping", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, bye)
    print("{version} up", flush=True)
    while True:
        time.sleep(0.2)
"""


@pytest.fixture
def aetherd(tmp_path):
    started = []

    def start(data=None):
        d = Aetherd(tmp_path, "")
        started.append(d)
        return d
    yield start
    for d in started:
        d.stop()


def package(root, version, code=LOOP, name="greeter", module="greeter", extra=""):
    root.mkdir(parents=True, exist_ok=True)
    (root / "agent.toml").write_text(AGENT.format(name=name, version=version, module=module) + extra)
    (root / f"{module}.py").write_text(code.replace("{version}", version))
    return root


def inspect(c, name="greeter"):
    return c.call("agent.inspect", name=name)


def logs(c, name="greeter"):
    return c.call("agent.logs", name=name, lines=50)["lines"]


def versions(c, name="greeter"):
    return next(r for r in c.call("package.list") if r["name"] == name)


def alerts(c):
    return [e["message"] for e in c.call("sys.events", since=0, limit=10000) if e["kind"] == "alert"]


def send(c, data, size=None, sha=None):
    """Upload raw bytes by hand (no pack): begin, chunks, commit."""
    c.call("package.begin", size=size or len(data), sha256=sha or hashlib.sha256(data).hexdigest())
    for offset in range(0, len(data), 256 << 10):
        c.call("package.chunk", offset=offset, data=base64.b64encode(data[offset:offset + (256 << 10)]).decode())
    return c.call("package.commit")


def test_deploy_same_version_new_version_rollback_and_restart(aetherd, tmp_path):
    d = aetherd()
    c = d.connect()
    first = upload(c, str(package(tmp_path / "v1", "1.0.0")))
    assert first["state"] == "running" and first["changed"]
    sleep_until(lambda: "1.0.0 up" in logs(c), 10)
    again = upload(c, str(tmp_path / "v1"))
    assert not again["changed"] and "nothing to do" in again["message"]
    pid = inspect(c)["pid"]
    assert inspect(c)["pid"] == pid and inspect(c)["owner"] == "package"

    second = upload(c, str(package(tmp_path / "v2", "1.1.0")))
    assert second["state"] == "running" and "1.1.0" in second["message"]
    assert inspect(c)["pid"] != pid
    sleep_until(lambda: "1.1.0 up" in logs(c), 10)
    out = logs(c)                                # the old one had its SIGTERM first, then the new one
    assert out.index("1.0.0 stopping") < out.index("1.1.0 up")
    info = versions(c)
    assert info["current"] == "1.1.0" and [v["version"] for v in info["versions"]] == ["1.0.0", "1.1.0"]
    assert (d.data / "agents" / "greeter" / "1.0.0" / "greeter.py").exists()      # the old one kept

    back = c.call("package.rollback", name="greeter")
    assert back["version"] == "1.0.0" and back["state"] == "running"
    sleep_until(lambda: "1.0.0 up" in logs(c), 10)
    with pytest.raises(AbiError, match="no earlier version"):
        c.call("package.rollback", name="greeter")

    d.stop()                               # aetherd stops and starts again: the current version is back
    d.start()
    c = d.connect()
    sleep_until(lambda: inspect(c)["state"] == "running", 20)
    sleep_until(lambda: "1.0.0 up" in logs(c), 10)
    assert versions(c)["current"] == "1.0.0"
    assert not (d.data / "system" / "agents" / "greeter.json").exists()   # no durable record twice


def test_import_error_at_start_rolls_back_and_the_old_version_keeps_running(aetherd, tmp_path):
    d = aetherd()
    c = d.connect()
    upload(c, str(package(tmp_path / "v1", "1.0.0")))
    sleep_until(lambda: "1.0.0 up" in logs(c), 10)
    broken = package(tmp_path / "v2", "2.0.0", code="import nosuchmodule\n" + LOOP)
    with pytest.raises(AbiError, match="2.0.0 failed to start: .*nosuchmodule.*1.0.0 is started again"):
        upload(c, str(broken))
    sleep_until(lambda: inspect(c)["state"] == "running", 10)
    sleep_until(lambda: logs(c)[-1:] == ["1.0.0 up"] and logs(c).count("1.0.0 up") == 2, 10)
    info = versions(c)
    assert info["current"] == "1.0.0"
    assert next(v for v in info["versions"] if v["version"] == "2.0.0")["status"].startswith("failed")
    assert any("nosuchmodule" in m and "1.0.0 is started again" in m for m in alerts(c))


def test_a_version_that_crash_loops_later_is_rolled_back_with_an_alert(aetherd, tmp_path):
    d = aetherd()
    c = d.connect()
    upload(c, str(package(tmp_path / "v1", "1.0.0")))
    crash = "import sys, time\ndef main(args):\n    print('{version} crashing', flush=True)\n" \
            "    time.sleep(0.6)\n    sys.exit(3)\n"
    answer = upload(c, str(package(tmp_path / "v2", "2.0.0", code=crash,
                                   extra='[intensity]\nrestarts = 2\nperiod = "30s"\n')))
    assert answer["state"] == "running"          # it starts: the crash loop comes after the answer
    sleep_until(lambda: any("2.0.0 failed within its intensity window" in m and "2.0.0 crashing" in m
                            and "rolled back to 1.0.0" in m for m in alerts(c)), 30)
    sleep_until(lambda: inspect(c)["state"] == "running" and versions(c)["current"] == "1.0.0", 10)
    sleep_until(lambda: logs(c)[-1:] == ["1.0.0 up"], 10)


def test_first_version_failing_leaves_nothing_running(aetherd, tmp_path):
    c = aetherd().connect()
    with pytest.raises(AbiError, match="no earlier version to return to"):
        upload(c, str(package(tmp_path / "v1", "1.0.0", code="raise ImportError('no')\n")))
    assert versions(c)["current"] is None
    assert "greeter" not in [a["name"] for a in c.call("agent.list")]


def crafted(files, members=None, index_hash=None):
    from tests.unit.test_packages import archive
    return archive(files, members, index_hash).getvalue()


def _unchecked(toml, code):
    """An archive whose agent.toml breaks the manifest rules (pack refuses it: made by hand)."""
    import io
    import tarfile
    files = {"agent.toml": toml, "greeter.py": code}
    index = json.dumps({"format": 1, "name": "greeter", "version": "3.0.0", "requires": [],
                        "files": [[p, hashlib.sha256(b).hexdigest(), len(b), 0o644] for p, b in sorted(files.items())]},
                       sort_keys=True).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        fmt._add(tar, fmt.INDEX, index, 0o644)
        fmt._add(tar, fmt.INDEX_HASH, hashlib.sha256(index).hexdigest().encode(), 0o644)
        for p, b in sorted(files.items()):
            fmt._add(tar, "files/" + p, b, 0o644)
    return buf.getvalue()


GOOD_TOML = AGENT.format(name="greeter", version="3.0.0", module="greeter").encode()
GOOD_CODE = LOOP.replace("{version}", "3.0.0").encode()


@pytest.mark.parametrize("kind, build, message", [
    ("bad manifest", lambda: _unchecked(GOOD_TOML + b'colour = "red"\n', GOOD_CODE), "unknown field"),
    ("hash mismatch", lambda: crafted({"agent.toml": GOOD_TOML, "greeter.py": GOOD_CODE},
                                      [({"name": "files/agent.toml"}, GOOD_TOML),
                                       ({"name": "files/greeter.py"}, GOOD_CODE[:-2] + b"#\n")]), "hash mismatch"),
    ("path traversal", lambda: crafted({"agent.toml": GOOD_TOML, "greeter.py": GOOD_CODE},
                                       [({"name": "files/agent.toml"}, GOOD_TOML),
                                        ({"name": "files/../../../greeter.py"}, GOOD_CODE)]), "relative"),
    ("symlink member", lambda: crafted({"agent.toml": GOOD_TOML, "greeter.py": GOOD_CODE},
                                       [({"name": "files/agent.toml"}, GOOD_TOML),
                                        ({"name": "files/greeter.py", "type": b"2", "linkname": "/etc/shadow"},
                                         b"")]), "symbolic link"),
    ("not an archive", lambda: os.urandom(3000), "not a package archive"),
])
def test_a_bad_package_is_refused_and_the_running_version_keeps_running(aetherd, tmp_path, kind, build, message):
    d = aetherd()
    c = d.connect()
    upload(c, str(package(tmp_path / "v1", "1.0.0")))
    pid = inspect(c)["pid"]
    with pytest.raises(AbiError, match=message):
        send(c, build())
    assert inspect(c)["pid"] == pid and inspect(c)["state"] == "running"
    assert versions(c)["current"] == "1.0.0" and len(versions(c)["versions"]) == 1
    assert sorted(os.listdir(d.data / "agents" / "greeter")) == ["1.0.0", "record.json"]
    assert os.listdir(d.data / "system" / "uploads") == []
    assert not (tmp_path / "greeter.py").exists() and not (d.data / "greeter.py").exists()


def test_upload_bounds_against_an_attacker(aetherd, tmp_path):
    d = aetherd()
    c = d.connect()
    sha = "0" * 64
    with pytest.raises(AbiError, match="size"):                              # over the cap: refused at once
        c.call("package.begin", size=(64 << 20) + 1, sha256=sha)
    c.call("package.begin", size=10, sha256=sha)
    with pytest.raises(AbiError, match="one at a time"):
        c.call("package.begin", size=10, sha256=sha)
    with pytest.raises(AbiError, match="pass the declared size"):           # more than declared: dropped
        c.call("package.chunk", offset=0, data=base64.b64encode(b"x" * 11).decode())
    with pytest.raises(AbiError, match="no upload in progress"):
        c.call("package.chunk", offset=0, data="eA==")
    c.call("package.begin", size=10, sha256=sha)
    c.call("package.chunk", offset=0, data=base64.b64encode(b"x" * 4).decode())
    with pytest.raises(AbiError, match="expected 4"):                       # out of order: dropped
        c.call("package.chunk", offset=8, data="eA==")
    c.call("package.begin", size=4, sha256=sha)
    c.call("package.chunk", offset=0, data=base64.b64encode(b"abcd").decode())
    with pytest.raises(AbiError, match="hash mismatch"):
        c.call("package.commit")
    c.call("package.begin", size=8, sha256=sha)
    c.call("package.chunk", offset=0, data=base64.b64encode(b"abcd").decode())
    with pytest.raises(AbiError, match="4 of 8 bytes"):
        c.call("package.commit")
    c.call("package.begin", size=8, sha256=sha)                           # a hang-up drops the upload
    c.close()
    c = d.connect()
    sleep_until(lambda: os.listdir(d.data / "system" / "uploads") == [], 5)
    assert c.call("package.abort") == {"aborted": False}


DEPLOYER = """\
import json
from aether.client import Client
def main(args):
    out = {}
    with Client() as c:
        for method, params in (("package.begin", {"size": 10, "sha256": "0" * 64}),
                               ("package.list", {}), ("package.rollback", {"name": "greeter"})):
            try:
                c.call(method, **params)
                out[method] = "allowed"
            except Exception as e:
                out[method] = getattr(e, "code", type(e).__name__)
    print(json.dumps(out), flush=True)
    import time
    time.sleep(30)
"""


def test_an_agent_may_not_deploy_list_or_roll_back(aetherd, tmp_path):
    c = aetherd().connect()
    upload(c, str(package(tmp_path / "sneaky", "1.0.0", code=DEPLOYER, name="sneaky", module="sneaky")))
    line = sleep_until(lambda: [ln for ln in logs(c, "sneaky") if ln.startswith("{")], 10)[0]
    assert json.loads(line) == {m: "permission_denied" for m in ("package.begin", "package.list", "package.rollback")}


def test_a_name_that_belongs_to_another_agent_is_refused(aetherd, tmp_path):
    c = aetherd().connect()
    c.call("agent.spawn", manifest={"name": "greeter", "program": "/bin/sh", "args": ["-c", "sleep 30"]})
    with pytest.raises(AbiError, match="belongs to shell"):
        upload(c, str(package(tmp_path / "v1", "1.0.0")))
    assert inspect(c)["program"] == "/bin/sh"


def test_a_package_too_big_for_the_data_partition_is_refused(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(small)]).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        d = Aetherd(small, "")
        try:
            c = d.connect()
            upload(c, str(package(tmp_path / "v1", "1.0.0")))
            big = package(tmp_path / "v2", "2.0.0")
            (big / "blob.bin").write_bytes(os.urandom(10 << 20))
            with pytest.raises(AbiError, match="too big for the data partition"):
                upload(c, str(big))
            assert inspect(c)["state"] == "running" and versions(c)["current"] == "1.0.0"
        finally:
            d.stop()
    finally:
        subprocess.run(["umount", "-l", str(small)])


def test_aetherctl_pack_deploy_versions_rollback(aetherd, tmp_path):
    d = aetherd()
    sock = str(d.run / "abi.sock")

    def ctl(*args):
        done = subprocess.run([os.sys.executable, "-m", "aether.ctl", "--socket", sock, *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, PYTHONPATH=str(fmt.__file__).rsplit("/aether/", 1)[0]))
        return done.returncode, done.stdout + done.stderr
    package(tmp_path / "v1", "1.0.0")
    assert ctl("pack", "v1")[0] == 0
    code, out = ctl("deploy", "greeter-1.0.0.aether")
    assert code == 0 and "greeter-1.0.0 is current" in out
    package(tmp_path / "v1", "1.1.0")
    code, out = ctl("deploy", "v1")
    assert code == 0 and "greeter-1.1.0 is current" in out
    code, out = ctl("agents", "--versions")
    assert "* 1.1.0" in out and "  1.0.0" in out
    code, out = ctl("rollback", "greeter")
    assert code == 0 and "greeter-1.0.0 is current" in out
    code, out = ctl("deploy", "nowhere")
    assert code != 0 and "neither a package directory" in out


def test_packages_baked_into_the_image_are_installed_at_boot_and_never_replace_a_newer_one(
        aetherd, tmp_path, monkeypatch):
    image = tmp_path / "image-packages"
    image.mkdir()
    fmt.pack(str(package(tmp_path / "v1", "1.0.0")), str(image))
    (image / "junk-1.0.0.aether").write_bytes(os.urandom(2000))          # a bad one: refused alone
    monkeypatch.setenv("AETHER_IMAGE_PACKAGES", str(image))
    d = aetherd()
    c = d.connect()
    sleep_until(lambda: inspect(c)["state"] == "running", 20)
    info = versions(c)
    assert info["current"] == "1.0.0" and info["versions"][0]["status"] in ("from the image", "ok")
    assert any("junk-1.0.0.aether is not installed" in m for m in alerts(c))
    upload(c, str(package(tmp_path / "v2", "1.1.0")))                     # deployed later: it wins
    d.stop()
    d.start()
    c = d.connect()
    sleep_until(lambda: inspect(c)["state"] == "running", 20)
    assert versions(c)["current"] == "1.1.0"
    fmt.pack(str(package(tmp_path / "v3", "2.0.0")), str(image))           # a newer image: it upgrades
    d.stop()
    d.start()
    c = d.connect()
    sleep_until(lambda: versions(c)["current"] == "2.0.0" and inspect(c)["state"] == "running", 20)
    assert [v["version"] for v in versions(c)["versions"]] == ["1.0.0", "1.1.0", "2.0.0"]


def test_a_deployed_agent_stopped_on_purpose_stays_stopped_across_a_restart(aetherd, tmp_path):
    d = aetherd()
    c = d.connect()
    upload(c, str(package(tmp_path / "v1", "1.0.0")))
    c.call("agent.stop", name="greeter")
    sleep_until(lambda: inspect(c)["state"] == "stopped", 10)
    sleep_until(lambda: json.loads((d.data / "agents" / "greeter" / "record.json").read_text()).get("stopped"), 5)
    d.stop()
    d.start()
    c = d.connect()
    assert inspect(c)["state"] == "stopped" and "stopped on purpose" in inspect(c)["reason"]
    c.call("agent.start", name="greeter")
    sleep_until(lambda: inspect(c)["state"] == "running", 10)
    sleep_until(lambda: not json.loads((d.data / "agents" / "greeter" / "record.json").read_text()).get("stopped"), 5)
    d.stop()
    d.start()
    c = d.connect()
    sleep_until(lambda: inspect(c)["state"] == "running", 10)


def test_undeploy_stops_the_agent_and_uninstalls_every_version(aetherd, tmp_path):
    d = aetherd()
    c = d.connect()
    upload(c, str(package(tmp_path / "v1", "1.0.0")))
    upload(c, str(package(tmp_path / "v2", "1.1.0")))
    done = c.call("package.remove", name="greeter")
    assert done["removed"] == ["1.0.0", "1.1.0"]
    assert "greeter" not in [a["name"] for a in c.call("agent.list")]
    assert not (d.data / "agents" / "greeter").exists()
    with pytest.raises(AbiError, match="no package 'greeter'"):
        c.call("package.remove", name="greeter")
    d.stop()
    d.start()
    c = d.connect()
    assert "greeter" not in [a["name"] for a in c.call("agent.list")]
    assert upload(c, str(tmp_path / "v1"))["state"] == "running"          # the name is still package's


def test_a_version_that_could_never_start_is_refused_before_the_old_one_stops(aetherd, tmp_path):
    c = aetherd().connect()
    upload(c, str(package(tmp_path / "v1", "1.0.0")))
    pid = inspect(c)["pid"]
    with pytest.raises(AbiError, match="more than the whole pool"):
        upload(c, str(package(tmp_path / "v2", "2.0.0", extra='[limits]\nmemory = "900G"\n')))
    assert inspect(c)["pid"] == pid and versions(c)["current"] == "1.0.0"
