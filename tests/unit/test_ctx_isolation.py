"""The context store against a hostile agent and a hostile disk (issue 15).

Tampered rows are found by ctx.verify; an agent's disk quota and the system's
reserve hold; a read-only disk keeps reads working; an export never follows a
link planted beside its target; text that is not Unicode is refused per op.
"""

import os
import sqlite3
import subprocess

import pytest

from aether.ctx import ContextStore, InvalidArgument, QuotaExceeded, StoreError, StoreReadOnlyError
from aether.ctx import api as ctx_api
from aether.ctx.errors import DiskReserved
from aether.ctx.migrations import MIGRATIONS, ROW_BYTES

import ctx_helpers
from ctx_helpers import open_store

clock, store = ctx_helpers.clock, ctx_helpers.store      # fixtures


# -- digests --------------------------------------------------------------------------------------

def tamper(path, memory_id, text):
    """Change a memory's text behind the store's back, as someone with the file would."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER mem_immutable")
    conn.execute("UPDATE memories SET text = ? WHERE id = ?", (text, memory_id))
    conn.commit()
    conn.close()


def test_text_edited_in_the_database_file_is_found(tmp_path, clock):
    path = tmp_path / "ctx.db"
    s = open_store(path, clock)
    kept = s.remember("agent:a", "the backup server is hermes")["id"]
    changed = s.remember("agent:a", "the door code is 1234")["id"]
    s.close()
    tamper(path, changed, "the door code is 0000")
    s = open_store(path, clock)
    verdict = s.verify("shell")
    assert verdict["ok"] is False
    assert verdict["digests"]["mismatched"] == 1 and verdict["digests"]["checked"] == 2
    row = verdict["digests"]["rows"][0]
    assert row["memory_id"] == changed and row["scope"] == "agent:a" and row["stored"] != row["computed"]
    assert kept not in [r["memory_id"] for r in verdict["digests"]["rows"]]
    assert s.check_digests("agent:other")["checked"] == 0        # only what the caller may read
    s.close()


def test_an_untouched_store_verifies(store):
    store.remember("agent:a", "fine")
    assert store.verify("agent:a")["ok"] is True


# -- disk quota and reserve -------------------------------------------------------------------

def test_an_agents_disk_quota_holds_and_the_others_write_on(tmp_path, clock):
    s = open_store(tmp_path / "ctx.db", clock, disk_quota=lambda p: 4000 if p == "agent:greedy" else None)
    results = s.run_batch([("append", {"caller": "agent:greedy", "kind": "note", "body": {"x": "y" * 3000}}),
                           ("append", {"caller": "agent:greedy", "kind": "note", "body": {"x": "y" * 3000}}),
                           ("append", {"caller": "agent:calm", "kind": "note", "body": {"x": 1}}),
                           ("remember", {"caller": "agent:greedy", "text": "z" * 3000})])
    assert [r[0] for r in results] == ["ok", "error", "ok", "error"]
    assert isinstance(results[1][1], QuotaExceeded) and "limits.disk" in str(results[1][1])
    assert s.disk_bytes("agent:greedy") == 3000 + len('{"x":""}') + ROW_BYTES
    s.append("system", "boot", {"big": "b" * 10000})              # the system has no quota
    s.close()


def test_the_reserve_is_kept_for_the_system(tmp_path, clock, monkeypatch):
    s = open_store(tmp_path / "ctx.db", clock, reserve_bytes=1 << 20)

    class Nearly:
        f_frsize, f_blocks, f_bavail = 4096, 1 << 16, ((1 << 20) >> 12) + 1    # 4 KiB past it
    monkeypatch.setattr(ctx_api.os, "statvfs", lambda path: Nearly)
    s.append("agent:a", "note", {"small": 1})
    with pytest.raises(DiskReserved, match="kept for the system"):
        s.append("agent:a", "note", {"x": "y" * 8000})
    with pytest.raises(DiskReserved):
        s.remember("agent:a", "y" * 4000)
    s.append("system", "alert", {"x": "y" * 8000})
    s.remember("shell", "the user's note " * 200, scope="user")
    s.close()


def test_migration_3_counts_what_was_written_before(tmp_path, clock):
    path = tmp_path / "ctx.db"
    old = open_store(path, clock, migrations=MIGRATIONS[:2])
    old.append("agent:a", "note", {"n": 1})
    old.remember("agent:a", "an old memory")
    old.close()
    s = open_store(path, clock)
    assert s.db.version == MIGRATIONS[-1][0] >= 3      # migration 3 ran (and any later ones)
    assert s.disk_bytes("agent:a") == len('{"n":1}') + ROW_BYTES + 2 * len("an old memory") + ROW_BYTES
    s.close()


def test_a_purge_gives_the_bytes_back(store, clock):
    mid = store.remember("agent:a", "x" * 1000)["id"]
    before = store.disk_bytes("agent:a")
    store.forget("agent:a", mid)
    clock.advance(10)
    store.purge("shell", older_than=1)
    assert store.disk_bytes("agent:a") == before - 2000


# -- text that is not Unicode -----------------------------------------------------------------

def test_a_lone_surrogate_fails_only_its_own_op(store):
    results = store.run_batch([("append", {"caller": "agent:a", "kind": "alert", "body": {"m": "\ud800"}}),
                               ("append", {"caller": "agent:b", "kind": "note", "body": {"m": "ok"}})])
    assert results[0][0] == "error" and isinstance(results[0][1], InvalidArgument)
    assert "surrogate" in str(results[0][1])
    assert results[1][0] == "ok"
    assert store.verify("shell")["ok"] is True


# -- export: no link planted beside the target is followed ---------------------------------------

def test_an_export_never_opens_a_planted_link(tmp_path, store):
    victim = tmp_path / "victim"
    victim.write_text("root's file")
    home = tmp_path / "home"
    home.mkdir()
    (home / "out.json.tmp").symlink_to(victim)              # the old code opened path + ".tmp"
    store.remember("agent:a", "mine")
    dir_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    try:
        store.export("agent:a", str(home / "out.json"), scopes=["agent:a"], target=(dir_fd, "out.json"))
        (home / "link.json").symlink_to(victim)                # a link at the name itself is replaced
        store.export("agent:a", str(home / "link.json"), scopes=["agent:a"], target=(dir_fd, "link.json"))
    finally:
        os.close(dir_fd)
    assert victim.read_text() == "root's file"
    assert not (home / "link.json").is_symlink() and '"aether-context-export"' in (home / "link.json").read_text()
    assert sorted(p.name for p in home.iterdir()) == ["link.json", "out.json", "out.json.tmp"]


def test_an_export_past_its_size_limit_leaves_nothing(tmp_path, store):
    for i in range(50):
        store.remember("agent:a", f"memory number {i} " * 20)
    with pytest.raises(QuotaExceeded):
        store.export("agent:a", str(tmp_path / "big.json"), scopes=["agent:a"], max_bytes=2000)
    assert list(tmp_path.glob("*big*")) == [] and list(tmp_path.glob(".*tmp")) == []


# -- a read-only data disk --------------------------------------------------------------------

@pytest.fixture
def ro_mount(tmp_path):
    """A tmpfs we can remount read-only (needs root, as the data disk's own mount does)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a file system needs root")
    where = tmp_path / "disk"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "none", str(where)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


WRITER = """
import os, sys
from aether.ctx import ContextStore
s = ContextStore(sys.argv[1])
print(s.remember("agent:a", "the sky is blue")["id"], flush=True)
if sys.argv[2] != "clean":
    os._exit(0)            # a crash: the write-ahead log and its index stay behind
s.close()
"""


@pytest.mark.parametrize("how", ["clean", "crashed", "crashed-no-shm"])
def test_a_read_only_disk_keeps_reads_and_refuses_writes_clearly(ro_mount, how):
    path = ro_mount / "context.db"
    out = subprocess.run([os.sys.executable, "-c", WRITER, str(path), how], capture_output=True,
                         text=True, check=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                             os.path.abspath(__file__)))))
    mid = int(out.stdout)
    if how == "crashed-no-shm":
        os.unlink(str(path) + "-shm")
    subprocess.run(["mount", "-o", "remount,ro", str(ro_mount)], check=True)
    if how == "crashed-no-shm":
        # Without the log's index SQLite cannot read the log on a read-only disk, and the main
        # file holds nothing yet: the store cannot open, and says why.
        with pytest.raises(StoreError, match="read-only"):
            ContextStore(path, read_only="auto")
        return
    ro = ContextStore(path, read_only="auto")
    info = ro.info()
    assert info["read_only"] is True and "read-only" in info["read_only_reason"]
    assert ro.recall("agent:a", mid)["text"] == "the sky is blue"
    assert ro.search("agent:a", "sky")["items"][0]["id"] == mid
    with pytest.raises(StoreReadOnlyError, match="reads still work"):
        ro.remember("agent:a", "another")
    with pytest.raises(StoreReadOnlyError):
        ro.run_batch([("append", {"caller": "system", "kind": "boot"})])
    ro.close()
