"""The database connection: pragmas, transactions, migrations and error mapping.

Durability promise (docs/context-store.md has the long form):

* The database runs in WAL mode with ``synchronous=FULL``: COMMIT returns
  only after the WAL frames of the transaction are fsync()ed.  A call that
  returned (an acknowledged write) survives a crash of aetherd, a kernel
  panic and a power cut, provided the disk honours fsync.
* ``atomic()`` is the only way to write: BEGIN IMMEDIATE at the outer level,
  SAVEPOINT when nested, ROLLBACK (TO) on any exception.  Everything in one
  outer ``atomic()`` is acknowledged together, with one fsync: that is the
  group commit the ABI server uses for concurrent writers.
* ``atomic(durable=False)`` commits with ``synchronous=NORMAL`` (no fsync):
  used only for bookkeeping that may be lost (``last_used``).  WAL keeps
  commits in order, so such a commit is made durable by the next FULL one and
  can only be lost together with everything after it.
* A full disk, a read-only file or filesystem, a held lock or a corrupt file
  become StoreFullError, StoreReadOnlyError, StoreBusyError or
  StoreCorruptError; the transaction is rolled back and reads keep working.
* A store opened read-only (``read_only=True``; ContextStore's "auto" does so
  when the file or its file system cannot be written) reads with ``mode=ro``,
  or ``immutable=1`` when the file system is read-only and SQLite cannot make
  its shared-memory file there; every write transaction is refused up front
  with StoreReadOnlyError saying why (``read_only_reason``).

Threading: a Store is used by one thread (sqlite3's check_same_thread).  It
must not cross fork(): a forked child that calls it gets a StoreError, and
its close() leaves the connection alone (children should end with os._exit).
"""

import os
import sqlite3

from . import migrations as _migrations
from .errors import (SchemaError, StoreBusyError, StoreCorruptError, StoreError, StoreFullError,
                     StoreReadOnlyError)

BUSY_TIMEOUT_MS = 5000
CACHE_KIB = 16 * 1024
WAL_LIMIT_BYTES = 16 * 1024 * 1024    # the WAL is truncated to this after a checkpoint

# SQLite primary result codes (the low byte of the extended code).
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY = 5, 6, 8
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 10, 11, 13, 14, 26


_INHERITED: list = []   # connections a forked child must neither use nor close (see Store.close)


class Store:
    """One SQLite database file, set up for durable acknowledged writes."""

    def __init__(self, path, read_only=False, migrations=None, check_same_thread=True):
        self.pid = os.getpid()
        self.path = os.fspath(path)
        self.read_only = bool(read_only)
        self.read_only_reason = read_only if isinstance(read_only, str) else "opened read-only"
        self._depth = 0
        self._rollback_hooks = []
        self.rollbacks = 0          # bumped by every rollback: caches of what the database holds compare it
        self.journal_head = None    # (rollbacks, seq, hash) cached by journal.append
        self.conn = self._connect(check_same_thread)
        try:
            self._configure()
            self.version = migrate(self, migrations or _migrations.MIGRATIONS)
        except BaseException:
            self.conn.close()
            raise

    # ---------------------------------------------------------------- set-up

    def _connect(self, check_same_thread):
        target, uri = self.path, False
        if self.read_only:
            return self._connect_read_only(check_same_thread)
        if self.path != ":memory:":
            parent = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(parent):
                raise StoreError(f"cannot open the context store {self.path}: the directory {parent} "
                                 "does not exist; create it (it is the data location, /var/lib/aether)")
        try:
            return sqlite3.connect(target, uri=uri, isolation_level=None, cached_statements=256,
                                   check_same_thread=check_same_thread)
        except sqlite3.Error as exc:
            raise translate(exc, f"opening {self.path}", self.path) from exc

    def _connect_read_only(self, check_same_thread):
        """mode=ro; on a read-only file system where that cannot open a WAL database
        (no -shm file can be made), immutable=1: nobody can change it there."""
        base = "file:" + _quote_uri(os.path.abspath(self.path)) + "?mode=ro"
        try:
            conn = sqlite3.connect(base, uri=True, isolation_level=None, cached_statements=256,
                                   check_same_thread=check_same_thread)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error as exc:
            if not _read_only(os.path.dirname(os.path.abspath(self.path))):
                raise translate(exc, f"opening {self.path} read-only", self.path) from exc
        if _size(self.path + "-wal"):
            self.read_only_reason += ("; its write-ahead log could not be read on the read-only disk, "
                                      "so the last writes before the disk went read-only are not shown")
        try:
            conn = sqlite3.connect(base + "&immutable=1", uri=True, isolation_level=None,
                                   cached_statements=256, check_same_thread=check_same_thread)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error as exc:
            raise translate(exc, f"opening {self.path} read-only", self.path) from exc

    def _configure(self):
        try:
            execute = self.conn.execute
            execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not self.read_only:
                mode = execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal" and self.path != ":memory:":
                    raise StoreError(f"{self.path}: SQLite refused WAL mode (got {mode!r}); the "
                                     "filesystem must support shared memory (mmap) for WAL")
                execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
            execute("PRAGMA synchronous = FULL")
            execute("PRAGMA foreign_keys = ON")
            execute("PRAGMA temp_store = MEMORY")
            execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        except sqlite3.Error as exc:
            raise translate(exc, f"setting up {self.path}", self.path) from exc

    def writable(self):
        """True when a write transaction can start (False on a read-only file or filesystem)."""
        if self.read_only:
            return False
        if self._depth:
            return True
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("ROLLBACK")
            return True
        except sqlite3.Error:
            return False

    def close(self):
        """Close the connection (a clean close checkpoints and removes the WAL).

        In a forked child the connection is not closed but kept referenced: a
        close there could checkpoint and remove the WAL the parent is using.
        """
        if self.conn is not None:
            if os.getpid() != self.pid:
                _INHERITED.append(self.conn)
            else:
                self.conn.close()
            self.conn = None

    def check_process(self):
        """Refuse use from a forked child (SQLite connections must not cross fork())."""
        if os.getpid() != self.pid:
            raise StoreError(f"the context store {self.path} was opened by process {self.pid}; this "
                             f"forked child ({os.getpid()}) must not use it: open a store of its own "
                             "or ask the parent")

    # ---------------------------------------------------------- transactions

    def atomic(self, durable=True, savepoint=True):
        """Context manager: one transaction (outer) or savepoint (nested); see the module doc.

        savepoint=False: when nested, join the enclosing transaction without a
        savepoint (for a write that is one statement, or that leaves a
        consistent state wherever it fails: an error still reaches the outer
        block, which rolls back unless it handles the error).
        """
        return _Atomic(self, durable, savepoint)

    @property
    def in_transaction(self):
        return self._depth > 0

    def on_rollback(self, hook):
        """Call hook() if the current transaction or savepoint rolls back (cache invalidation)."""
        self._rollback_hooks.append(hook)

    def _run_rollback_hooks(self, clear):
        hooks = list(self._rollback_hooks)
        if clear:
            self._rollback_hooks.clear()
        for hook in hooks:
            hook()

    # ---------------------------------------------------------------- access

    def execute(self, sql, params=()):
        """Run one statement; SQLite errors become Store*Error."""
        if os.getpid() != self.pid:
            self.check_process()
        try:
            return self.conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise translate(exc, _what(sql), self.path) from exc

    def one(self, sql, params=()):
        """The first row of a query, or None."""
        return self.execute(sql, params).fetchone()

    def all(self, sql, params=()):
        """Every row of a query."""
        return self.execute(sql, params).fetchall()

    def executemany(self, sql, rows):
        try:
            return self.conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise translate(exc, _what(sql), self.path) from exc

    def meta(self, key, default=None):
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0] if row else default

    def set_meta(self, key, value):
        with self.atomic():
            self.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, str(value)))

    def integrity_check(self):
        """'ok', or SQLite's first complaints joined by '; '."""
        rows = self.all("PRAGMA integrity_check(10)")
        return "; ".join(r[0] for r in rows)


class _Atomic:
    """BEGIN IMMEDIATE / SAVEPOINT, then COMMIT / RELEASE, or ROLLBACK on an exception."""

    __slots__ = ("store", "durable", "savepoint", "name", "joined")

    def __init__(self, store, durable, savepoint):
        self.store, self.durable, self.savepoint, self.name = store, durable, savepoint, None
        self.joined = False

    def __enter__(self):
        store = self.store
        store.check_process()
        conn = store.conn
        if store.read_only and store._depth == 0:
            raise StoreReadOnlyError(f"the context store {store.path} is open read-only "
                                     f"({store.read_only_reason}): the write was not made and reads "
                                     "still work; remount the data disk read-write (check dmesg "
                                     "for disk errors) and restart aetherd to write again")
        if store._depth > 0 and not self.savepoint:
            self.joined = True
            store._depth += 1
            return store
        try:
            if store._depth == 0:
                if not self.durable:
                    conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("BEGIN IMMEDIATE")
            else:
                self.name = f"sp{store._depth}"
                conn.execute(f"SAVEPOINT {self.name}")
        except sqlite3.Error as exc:
            if store._depth == 0 and not self.durable:
                _restore_full(conn)
            raise translate(exc, "starting a transaction", store.path) from exc
        store._depth += 1
        return store

    def __exit__(self, exc_type, exc, tb):
        store = self.store
        store._depth -= 1
        if self.joined:
            return False
        if self.name is not None:
            return self._exit_savepoint(exc_type)
        try:
            if exc_type is None:
                self._commit()
            else:
                self._rollback()
        finally:
            if not self.durable:
                _restore_full(store.conn)
        return False

    def _exit_savepoint(self, exc_type):
        conn = self.store.conn
        try:
            if exc_type is not None:
                self.store.rollbacks += 1
                conn.execute(f"ROLLBACK TO {self.name}")
                self.store._run_rollback_hooks(clear=False)
            conn.execute(f"RELEASE {self.name}")
        except sqlite3.Error as exc:
            if exc_type is None:
                raise translate(exc, "releasing a savepoint", self.store.path) from exc
        return False

    def _commit(self):
        conn = self.store.conn
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise translate(exc, "committing", self.store.path) from exc
        self.store._rollback_hooks.clear()

    def _rollback(self):
        conn = self.store.conn
        self.store.rollbacks += 1
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass      # SQLite already rolled back (e.g. after SQLITE_FULL); nothing else to undo
        self.store._run_rollback_hooks(clear=True)


def _restore_full(conn):
    try:
        conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.Error:
        pass


# ------------------------------------------------------------------ migrations


def current_version(store):
    """The highest migration recorded in the database (0 for a new database)."""
    exists = store.one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'")
    if not exists:
        return 0
    row = store.one("SELECT max(version) FROM migrations")
    return row[0] or 0


def migrate(store, migrations):
    """Apply each pending migration with its record in one transaction; return the version."""
    known = migrations[-1][0] if migrations else 0
    version = current_version(store)
    if version > known:
        raise SchemaError(f"{store.path} has schema version {version}, newer than this AetherOS knows "
                          f"({known}); run a newer AetherOS, or open the store read-only")
    pending = [m for m in migrations if m[0] > version]
    if pending and store.read_only:
        raise StoreReadOnlyError(f"{store.path} needs schema migrations {pending[0][0]}..{known} "
                                 "but was opened read-only; open it writable once to upgrade it")
    for number, name, steps in pending:
        _apply(store, number, name, steps)
    return known if pending or version == known else version


def _apply(store, number, name, steps):
    try:
        with store.atomic():
            store.execute("CREATE TABLE IF NOT EXISTS migrations(version INTEGER PRIMARY KEY, "
                          "name TEXT NOT NULL, applied_at REAL NOT NULL)")
            for step in steps:
                if callable(step):
                    step(store)
                else:
                    for statement in split_sql(step):
                        store.execute(statement)
            store.execute("INSERT INTO migrations(version, name, applied_at) "
                          "VALUES (?, ?, strftime('%s', 'now'))", (number, name))
    except StoreError:
        raise
    except Exception as exc:
        raise SchemaError(f"migration {number} ({name}) failed and was rolled back: {exc}") from exc


def split_sql(script):
    """The complete statements of a SQL script (triggers' inner ';' included)."""
    statements, current = [], ""
    for piece in script.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n\t;"):
                statements.append(current.strip())
            current = ""
    if current.strip(" \n\t;"):
        raise SchemaError(f"incomplete SQL statement in a migration: {current.strip()[:80]!r}")
    return statements


# ---------------------------------------------------------------- error mapping


def translate(exc, doing, path):
    """A sqlite3 error as the StoreError subclass that says what happened and what to do."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    where = os.path.dirname(os.path.abspath(path)) if path != ":memory:" else "memory"
    if primary == SQLITE_FULL or (primary == SQLITE_IOERR and _disk_full(where)):
        return StoreFullError(f"{doing} failed: the disk holding {where} is full ({exc}); the write was "
                              "not made and reads still work; free space (purge old compacted items, "
                              "remove files) and retry")
    if primary == SQLITE_IOERR and _over_file_limit(path):
        return StoreFullError(f"{doing} failed: the database reached the process file-size limit "
                              f"(RLIMIT_FSIZE) ({exc}); the write was not made; raise the limit and retry")
    if primary == SQLITE_READONLY or (primary in (SQLITE_IOERR, SQLITE_CANTOPEN) and _read_only(where)):
        return StoreReadOnlyError(f"{doing} failed: {path} is read-only ({exc}); the write was not "
                                  "made and reads still work; remount the data disk read-write "
                                  "(check dmesg for disk errors) or fix the file's permissions")
    if primary in (SQLITE_BUSY, SQLITE_LOCKED):
        return StoreBusyError(f"{doing} failed: another process holds {path}'s lock ({exc}); aetherd "
                              "must be the only writer: stop the other process")
    if primary in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return StoreCorruptError(f"{doing} failed: {path} is damaged ({exc}); restore it from an "
                                 "export, or move it aside to start afresh")
    return StoreError(f"{doing} failed on {path}: {exc}")


def _statvfs(where):
    try:
        return os.statvfs(where)
    except OSError:
        return None


def _disk_full(where):
    st = _statvfs(where)
    return st is not None and st.f_bavail * st.f_frsize < 64 * 1024


def _read_only(where):
    st = _statvfs(where)
    return st is not None and bool(st.f_flag & os.ST_RDONLY)


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _over_file_limit(path):
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft == resource.RLIM_INFINITY:
        return False
    sizes = []
    for suffix in ("", "-wal"):
        try:
            sizes.append(os.path.getsize(path + suffix))
        except OSError:
            pass
    return any(size + 128 * 1024 >= soft for size in sizes)


def _what(sql):
    words = sql.split(None, 3)
    return "running " + " ".join(words[:3]) if words else "running a statement"


def _quote_uri(path):
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")


# ------------------------------------------------------------------ location


def filesystem(path):
    """(mount point, filesystem type) holding path, from /proc/self/mounts; (None, None) if unknown."""
    target = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    best = (None, None)
    try:
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                point = fields[1].replace("\\040", " ")
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and (best[0] is None or len(point) > len(best[0])):
                    best = (point, fields[2])
    except OSError:
        pass
    return best
