"""The upload's bounds (aether/packages/staging.py, as deploy.py uses them), with a fake aetherd: the time limit drops
an upload (and its staged file), at most MAX_UPLOADS at once machine-wide, a hang-up drops
the caller's upload, and the staging directory is aetherd's own (0700)."""

import os
import types

import pytest

from aether.packages import deploy, staging


class FakeLoop:
    def __init__(self):
        self.timers = []

    def call_later(self, delay, callback):
        self.timers.append((delay, callback))

    def call_soon(self, callback):
        self.timers.append((0, callback))


def fake_daemon(tmp_path):
    system = tmp_path / "system"
    system.mkdir(mode=0o700)
    layout = types.SimpleNamespace(system=str(system), migrated=lambda: True)
    sup = types.SimpleNamespace(layout=layout, broken=None, stop_timeout=1.0, agents={}, log=types.SimpleNamespace(
        warning=lambda *_: None, info=lambda *_: None))
    return types.SimpleNamespace(supervisor=sup, data_dir=str(tmp_path), loop=FakeLoop(),
                                 events=types.SimpleNamespace(subscribers=[]),
                                 server=types.SimpleNamespace(on_close=[]))


def caller(name):
    return types.SimpleNamespace(principal=name)


def test_an_upload_not_committed_in_time_is_dropped_with_its_file(tmp_path):
    d = fake_daemon(tmp_path)
    deployer = deploy.of(d)
    deployer.begin(caller("host"), "conn", 100, "0" * 64)
    staged = os.listdir(tmp_path / "system" / "uploads")
    assert len(staged) == 1 and oct((tmp_path / "system" / "uploads").stat().st_mode & 0o777) == "0o700"
    delay, expire = d.loop.timers[-1]
    assert delay == staging.UPLOAD_SECONDS
    expire()
    assert deployer.uploads == {} and os.listdir(tmp_path / "system" / "uploads") == []
    with pytest.raises(staging.DeployError, match="no upload in progress"):
        deployer.chunk(caller("host"), 0, "eA==")


def test_uploads_are_bounded_machine_wide_and_dropped_on_hang_up(tmp_path):
    d = fake_daemon(tmp_path)
    deployer = deploy.of(d)
    conns = [object() for _ in range(staging.MAX_UPLOADS)]
    for n, conn in enumerate(conns):
        deployer.begin(caller(f"p{n}"), conn, 10, "0" * 64)
    with pytest.raises(staging.DeployError, match="uploads are in progress") as e:
        deployer.begin(caller("late"), "connx", 10, "0" * 64)
    assert e.value.kind == "busy"
    for hook in d.server.on_close:
        hook(conns[0])
    assert "p0" not in deployer.uploads and len(os.listdir(tmp_path / "system" / "uploads")) == staging.MAX_UPLOADS - 1
    deployer.begin(caller("late"), "connx", 10, "0" * 64)


def test_the_size_cap_and_the_disk_are_checked_before_anything_is_staged(tmp_path, monkeypatch):
    d = fake_daemon(tmp_path)
    deployer = deploy.of(d)
    with pytest.raises(staging.DeployError, match="at most"):
        deployer.begin(caller("host"), "c", staging.MAX_BYTES + 1, "0" * 64)
    monkeypatch.setattr(deploy, "free_bytes", lambda path: 1000)
    with pytest.raises(staging.DeployError, match="too big for the data partition: .* needs 1200 bytes, 1000 are free"):
        deployer.begin(caller("host"), "c", 600, "0" * 64)
    assert deployer.uploads == {}
    assert not os.path.exists(tmp_path / "system" / "uploads") or os.listdir(tmp_path / "system" / "uploads") == []
