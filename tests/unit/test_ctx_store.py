"""The context store's database layer: pragmas, atomic(), migrations, errors, full and read-only disks."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from aether.ctx import ContextStore, SchemaError, StoreError, StoreReadOnlyError
from aether.ctx import migrations
from aether.ctx.store import Store, current_version, split_sql, translate

from ctx_helpers import Clock
import ctx_helpers

clock, store = ctx_helpers.clock, ctx_helpers.store      # fixtures

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_wal_and_full_sync(store):
    assert store.db.one("PRAGMA journal_mode")[0] == "wal"
    assert store.db.one("PRAGMA synchronous")[0] == 2          # FULL
    assert store.db.one("PRAGMA foreign_keys")[0] == 1
    assert store.db.integrity_check() == "ok"


def test_fts5_is_available():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
    assert sqlite3.sqlite_version_info >= (3, 40, 0)


def test_migrations_are_recorded_once(tmp_path):
    path = tmp_path / "c.db"
    ContextStore(path).close()
    s = ContextStore(path)
    rows = s.db.all("SELECT version, name FROM migrations")
    assert rows == [(v, name) for v, name, _ in migrations.MIGRATIONS]
    assert s.db.version == migrations.LATEST
    s.close()


def extra_migration(fail=False):
    def data_step(db):
        db.execute("INSERT INTO extra VALUES ('from N+1')")
        if fail:
            raise RuntimeError("boom in the middle")
    return (migrations.LATEST + 1, "test: an extra table",
            ["CREATE TABLE extra(x TEXT); CREATE INDEX extra_x ON extra(x);", data_step])


def test_migration_n_to_n_plus_1_in_one_transaction(tmp_path):
    path = tmp_path / "c.db"
    ContextStore(path).close()                                    # a database at version N
    with pytest.raises(SchemaError, match=r"migration \d+ \(test: an extra table\) failed and was rolled back"):
        Store(path, migrations=migrations.MIGRATIONS + [extra_migration(fail=True)])
    db = Store(path)
    assert current_version(db) == migrations.LATEST                    # still N, nothing half-done
    assert db.one("SELECT 1 FROM sqlite_master WHERE name IN ('extra', 'extra_x')") is None
    db.close()
    db = Store(path, migrations=migrations.MIGRATIONS + [extra_migration()])
    assert current_version(db) == migrations.LATEST + 1
    assert db.all("SELECT x FROM extra") == [("from N+1",)]
    assert db.one("SELECT name FROM migrations WHERE version = ?", (migrations.LATEST + 1,))[0] == \
        "test: an extra table"
    db.close()


def test_a_newer_database_is_refused(tmp_path):
    path = tmp_path / "c.db"
    Store(path, migrations=migrations.MIGRATIONS + [extra_migration()]).close()
    with pytest.raises(SchemaError, match="newer than this AetherOS knows"):
        Store(path)


def test_split_sql_keeps_triggers_whole():
    statements = split_sql("CREATE TABLE a(x); CREATE TRIGGER t AFTER INSERT ON a BEGIN "
                           "SELECT 1; SELECT 2; END; INSERT INTO a VALUES (';');")
    assert len(statements) == 3
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")


def test_atomic_nests_with_savepoints(store):
    db = store.db
    with db.atomic():
        db.execute("INSERT INTO meta VALUES ('outer', '1')")
        with pytest.raises(ZeroDivisionError):
            with db.atomic():
                db.execute("INSERT INTO meta VALUES ('inner', '1')")
                1 / 0  # noqa: B018 - the error under test
        db.execute("INSERT INTO meta VALUES ('after', '1')")
    keys = {r[0] for r in db.all("SELECT key FROM meta")}
    assert {"outer", "after"} <= keys and "inner" not in keys
    with pytest.raises(KeyError):
        with db.atomic():
            db.execute("INSERT INTO meta VALUES ('rolled back', '1')")
            raise KeyError("x")
    assert db.one("SELECT 1 FROM meta WHERE key = 'rolled back'") is None
    assert not db.conn.in_transaction


def test_relaxed_commit_restores_full_sync(store):
    with store.db.atomic(durable=False):
        assert store.db.one("PRAGMA synchronous")[0] == 1
    assert store.db.one("PRAGMA synchronous")[0] == 2


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist; create it"):
        ContextStore(tmp_path / "nope" / "c.db")


def test_read_only_store_reads_and_refuses_writes(tmp_path):
    path = tmp_path / "c.db"
    s = ContextStore(path)
    mid = s.remember("agent:a", "the sky is blue")["id"]
    s.close()
    ro = ContextStore(path, read_only=True)
    assert ro.recall("agent:a", mid)["text"] == "the sky is blue"
    assert ro.window("agent:a", "sky", 100)["items"][0]["id"] == mid
    with pytest.raises(StoreReadOnlyError, match="read-only.*the write was not made and reads still work"):
        ro.remember("agent:a", "another")
    with pytest.raises(StoreReadOnlyError):
        ro.append("agent:a", "note")
    assert ro.recall("agent:a", mid)["text"] == "the sky is blue"
    ro.close()


def test_translate_names_the_failure():
    class Fake(sqlite3.OperationalError):
        pass
    for code, cls, words in ((13, "StoreFullError", "full"), (8, "StoreReadOnlyError", "read-only"),
                             (5, "StoreBusyError", "only writer"), (11, "StoreCorruptError", "damaged")):
        exc = Fake("x")
        exc.sqlite_errorcode = code
        err = translate(exc, "committing", "/var/lib/aether/context.db")
        assert type(err).__name__ == cls and words in str(err)


def test_filesystem_and_info(store):
    info = store.info()
    assert info["schema_version"] == migrations.LATEST and info["store_id"]
    assert info["filesystem"]["type"] is not None
    assert info["durable"] == (info["filesystem"]["type"] not in ("tmpfs", "ramfs", "rootfs"))


# --------------------------------------------------------------- full and read-only disks

DISK_SCRIPT = textwrap.dedent("""
    import json, os, subprocess, sys
    sys.path.insert(0, {repo!r})
    from aether.ctx import ContextStore, StoreFullError, StoreReadOnlyError
    mnt = sys.argv[1]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], check=True)
    out = {{}}
    s = ContextStore(os.path.join(mnt, "c.db"))
    first = s.remember("agent:a", "the first memory, written while there was room")["id"]
    head = s.append("agent:a", "note", {{"n": 0}})
    n, error = 0, None
    try:
        while n < 100000:
            s.remember("agent:a", "filler " + str(n) + " " + "x" * 2000, importance=0.9)
            s.append("agent:a", "note", {{"n": n, "pad": "y" * 1000}})
            n += 1
    except StoreFullError as exc:
        error = str(exc)
    out["writes_before_full"] = n
    out["error"] = error
    out["read_after_full"] = s.recall("agent:a", first)["text"]
    out["window_after_full"] = len(s.window("agent:a", "memory", 500)["items"])
    out["verify_after_full"] = s.verify("shell")["ok"]
    out["integrity"] = s.db.integrity_check()
    try:
        s.remember("agent:a", "still full " + "x" * 2000)     # as large as the write that failed
        out["second_write"] = "accepted"
    except StoreFullError:
        out["second_write"] = "StoreFullError"
    s.close()
    r = subprocess.run(["mount", "-o", "remount,ro", mnt], capture_output=True, text=True)
    out["remount"] = r.returncode
    ro = ContextStore(os.path.join(mnt, "c.db"))
    out["ro_read"] = ro.recall("agent:a", first)["text"]
    try:
        ro.remember("agent:a", "on a read-only disk")
        out["ro_write"] = "accepted"
    except StoreReadOnlyError as exc:
        out["ro_write"] = "StoreReadOnlyError: " + str(exc)
    out["ro_read_after"] = ro.window("agent:a", "first", 200)["items"][0]["id"] == first
    ro.close()
    print(json.dumps(out))
""")


def run_in_private_mount(tmp_path, script):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to mount a small tmpfs")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot create a mount namespace here")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    (tmp_path / "disk.py").write_text(script.format(repo=REPO))
    out = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                          str(tmp_path / "disk.py"), str(mnt)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_full_disk_then_read_only_disk(tmp_path):
    out = run_in_private_mount(tmp_path, DISK_SCRIPT)
    assert out["writes_before_full"] > 5
    assert "disk holding" in out["error"] and "is full" in out["error"] and "reads still work" in out["error"]
    assert out["read_after_full"] == "the first memory, written while there was room"
    assert out["window_after_full"] >= 1
    assert out["verify_after_full"] is True
    assert out["integrity"] == "ok"
    assert out["second_write"] == "StoreFullError"
    assert out["remount"] == 0
    assert out["ro_read"] == "the first memory, written while there was room"
    assert out["ro_write"].startswith("StoreReadOnlyError: ") and "remount the data disk" in out["ro_write"]
    assert out["ro_read_after"] is True


FSIZE_SCRIPT = textwrap.dedent("""
    import json, os, resource, signal, sys
    sys.path.insert(0, {repo!r})
    from aether.ctx import ContextStore, StoreFullError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    s = ContextStore(sys.argv[1] + "/c.db")
    first = s.remember("agent:a", "written before the limit")["id"]
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 1024 * 1024, resource.RLIM_INFINITY))
    error = None
    try:
        for n in range(100000):
            s.remember("agent:a", "filler " + str(n) + " " + "x" * 3000)
    except StoreFullError as exc:
        error = str(exc)
    print(json.dumps({{"error": error, "read": s.recall("agent:a", first)["text"],
                      "integrity": s.db.integrity_check()}}))
""")


def test_file_size_limit_is_a_full_error(tmp_path):
    (tmp_path / "fsize.py").write_text(FSIZE_SCRIPT.format(repo=REPO))
    out = subprocess.run([sys.executable, str(tmp_path / "fsize.py"), str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["error"] and ("RLIMIT_FSIZE" in result["error"] or "is full" in result["error"])
    assert result["read"] == "written before the limit"
    assert result["integrity"] == "ok"


def test_store_is_usable_after_reopen(tmp_path):
    clock = Clock()
    s = ContextStore(tmp_path / "c.db", clock=clock)
    s.append("system", "boot", {"n": 1})
    s.close()
    s = ContextStore(tmp_path / "c.db", clock=clock)
    assert s.append("system", "boot", {"n": 2})["seq"] == 2
    assert s.verify("shell")["ok"]
    s.close()


def test_a_forked_child_cannot_use_the_store(store):
    store.remember("agent:a", "before the fork")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # the child: must be refused, and must not close
        os.close(r)
        try:
            store.remember("agent:a", "from the child")
            verdict = b"accepted"
        except StoreError as exc:
            verdict = b"refused" if b"forked child" in str(exc).encode() else b"other"
        store.close()
        os.write(w, verdict)
        os._exit(0)
    os.close(w)
    verdict = os.read(r, 100)
    os.close(r)
    os.waitpid(pid, 0)
    assert verdict == b"refused"
    assert store.remember("agent:a", "after the fork")["id"] == 2
    assert store.db.integrity_check() == "ok"
