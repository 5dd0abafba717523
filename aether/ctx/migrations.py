"""The context store's schema, as a registry of migrations.

``MIGRATIONS`` is an ordered list of ``(version, name, steps)``; a step is a
SQL string (one or more statements) or a callable ``step(conn)``.  The store
applies every migration newer than the database, each one together with its
row in the ``migrations`` table in a single transaction: a database is always
at exactly one recorded version (see ``store.migrate``).

Invariants kept by the schema itself, so no code path can break them:

* the journal refuses UPDATE and DELETE (triggers);
* memory rows are never deleted, and their text, tags, kind and scope never
  change (a purge blanks the text of a compacted or forgotten item and keeps
  a tombstone with the digest);
* ``memories_fts`` indexes exactly the live memories and ``compacted_fts``
  exactly the compacted ones (triggers on ``state``);
* each scope's usage counters (live and retained items and tokens) follow
  every insert and state change (triggers).
"""

GENESIS = "0" * 64          # prev_hash of journal entry 1

BASE = """
CREATE TABLE meta(
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE scopes(
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    owner           TEXT NOT NULL,
    created_at      REAL NOT NULL,
    quota_tokens    INTEGER,            -- NULL: the store default; -1: unlimited
    quota_items     INTEGER,
    live_items      INTEGER NOT NULL DEFAULT 0,
    live_tokens     INTEGER NOT NULL DEFAULT 0,
    retained_items  INTEGER NOT NULL DEFAULT 0,   -- compacted or forgotten, recoverable
    retained_tokens INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE grants(
    scope_id   INTEGER NOT NULL REFERENCES scopes(id),
    grantee    TEXT NOT NULL,
    mode       TEXT NOT NULL CHECK (mode IN ('read', 'read-write')),
    granted_by TEXT NOT NULL,
    granted_at REAL NOT NULL,
    PRIMARY KEY (scope_id, grantee)
) WITHOUT ROWID;
CREATE INDEX grants_grantee ON grants(grantee);

CREATE TABLE journal(
    seq       INTEGER PRIMARY KEY,
    ts        REAL NOT NULL,
    actor     TEXT NOT NULL,
    scope     TEXT NOT NULL,
    kind      TEXT NOT NULL,
    goal_id   INTEGER,
    body      TEXT NOT NULL,              -- canonical JSON
    origin    TEXT,                       -- '<store id>:<seq>:<hash>' for imported entries
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX journal_scope ON journal(scope, seq);
CREATE INDEX journal_goal ON journal(goal_id, seq) WHERE goal_id IS NOT NULL;
CREATE INDEX journal_ts ON journal(ts);
CREATE INDEX journal_origin ON journal(origin) WHERE origin IS NOT NULL;
CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal BEGIN
    SELECT RAISE(ABORT, 'the journal is append-only: entries cannot be changed');
END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal BEGIN
    SELECT RAISE(ABORT, 'the journal is append-only: entries cannot be deleted');
END;

CREATE TABLE memories(
    id            INTEGER PRIMARY KEY,
    scope_id      INTEGER NOT NULL REFERENCES scopes(id),
    kind          TEXT NOT NULL CHECK (kind IN ('fact', 'note', 'observation', 'summary')),
    text          TEXT,                   -- NULL once purged
    tags          TEXT NOT NULL DEFAULT '',
    importance    REAL NOT NULL CHECK (importance >= 0 AND importance <= 1),
    pinned        INTEGER NOT NULL DEFAULT 0 CHECK (pinned IN (0, 1)),
    tokens        INTEGER NOT NULL CHECK (tokens >= 0),
    digest        TEXT NOT NULL,          -- sha256 of the text, kept after a purge
    author        TEXT NOT NULL,
    created_at    REAL NOT NULL,
    last_used     REAL NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('live', 'compacted', 'forgotten', 'purged')),
    state_at      REAL NOT NULL,          -- when it entered its state
    compaction_id INTEGER,                -- the compaction that replaced it (state compacted)
    origin        TEXT                    -- '<store id>:<id>' for imported memories
);
CREATE INDEX mem_scope_created ON memories(scope_id, created_at);
CREATE INDEX mem_live_recent ON memories(scope_id, last_used) WHERE state = 'live';
CREATE INDEX mem_live_important ON memories(scope_id, importance) WHERE state = 'live';
CREATE INDEX mem_all_recent ON memories(last_used) WHERE state = 'live';
CREATE INDEX mem_all_important ON memories(importance) WHERE state = 'live';
CREATE INDEX mem_pinned ON memories(scope_id) WHERE pinned = 1 AND state = 'live';
CREATE INDEX mem_compaction ON memories(compaction_id) WHERE compaction_id IS NOT NULL;
CREATE INDEX mem_origin ON memories(origin) WHERE origin IS NOT NULL;

CREATE TABLE memory_events(
    memory_id INTEGER NOT NULL REFERENCES memories(id),
    ts        REAL NOT NULL,
    event     TEXT NOT NULL CHECK (event IN
                  ('compacted', 'restored', 'forgotten', 'purged', 'pinned', 'unpinned')),
    ref       INTEGER,                    -- the compaction, for compacted/restored
    actor     TEXT NOT NULL
);
CREATE INDEX memory_events_memory ON memory_events(memory_id, ts);

CREATE VIRTUAL TABLE memories_fts USING fts5(
    text, tags, sid, content='', tokenize='unicode61 remove_diacritics 2');
INSERT INTO memories_fts(memories_fts, rank) VALUES ('rank', 'bm25(1.0, 0.5, 0.0)');
CREATE VIRTUAL TABLE compacted_fts USING fts5(
    text, tags, sid, content='', tokenize='unicode61 remove_diacritics 2');
INSERT INTO compacted_fts(compacted_fts, rank) VALUES ('rank', 'bm25(1.0, 0.5, 0.0)');

CREATE TRIGGER mem_no_delete BEFORE DELETE ON memories BEGIN
    SELECT RAISE(ABORT, 'memories are never deleted: forget them; a purge removes their text');
END;
CREATE TRIGGER mem_immutable BEFORE UPDATE OF text, tags, kind, scope_id ON memories
WHEN NOT (new.state = 'purged' AND old.state <> 'purged') BEGIN
    SELECT RAISE(ABORT, 'a memory''s text, tags, kind and scope never change: forget it and remember a new one');
END;

CREATE TRIGGER mem_insert_live AFTER INSERT ON memories WHEN new.state = 'live' BEGIN
    INSERT INTO memories_fts(rowid, text, tags, sid) VALUES (new.id, new.text, new.tags, 's' || new.scope_id);
    UPDATE scopes SET live_items = live_items + 1, live_tokens = live_tokens + new.tokens
        WHERE id = new.scope_id;
END;
CREATE TRIGGER mem_insert_compacted AFTER INSERT ON memories WHEN new.state = 'compacted' BEGIN
    INSERT INTO compacted_fts(rowid, text, tags, sid) VALUES (new.id, new.text, new.tags, 's' || new.scope_id);
END;
CREATE TRIGGER mem_insert_retained AFTER INSERT ON memories
WHEN new.state IN ('compacted', 'forgotten') BEGIN
    UPDATE scopes SET retained_items = retained_items + 1, retained_tokens = retained_tokens + new.tokens
        WHERE id = new.scope_id;
END;

CREATE TRIGGER mem_leave_live AFTER UPDATE OF state ON memories
WHEN old.state = 'live' AND new.state <> 'live' BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, text, tags, sid)
        VALUES ('delete', old.id, old.text, old.tags, 's' || old.scope_id);
    UPDATE scopes SET live_items = live_items - 1, live_tokens = live_tokens - old.tokens
        WHERE id = old.scope_id;
END;
CREATE TRIGGER mem_enter_live AFTER UPDATE OF state ON memories
WHEN old.state <> 'live' AND new.state = 'live' BEGIN
    INSERT INTO memories_fts(rowid, text, tags, sid) VALUES (new.id, new.text, new.tags, 's' || new.scope_id);
    UPDATE scopes SET live_items = live_items + 1, live_tokens = live_tokens + new.tokens
        WHERE id = new.scope_id;
END;
CREATE TRIGGER mem_leave_compacted AFTER UPDATE OF state ON memories
WHEN old.state = 'compacted' AND new.state <> 'compacted' BEGIN
    INSERT INTO compacted_fts(compacted_fts, rowid, text, tags, sid)
        VALUES ('delete', old.id, old.text, old.tags, 's' || old.scope_id);
END;
CREATE TRIGGER mem_enter_compacted AFTER UPDATE OF state ON memories
WHEN old.state <> 'compacted' AND new.state = 'compacted' BEGIN
    INSERT INTO compacted_fts(rowid, text, tags, sid) VALUES (new.id, new.text, new.tags, 's' || new.scope_id);
END;
CREATE TRIGGER mem_leave_retained AFTER UPDATE OF state ON memories
WHEN old.state IN ('compacted', 'forgotten') AND new.state NOT IN ('compacted', 'forgotten') BEGIN
    UPDATE scopes SET retained_items = retained_items - 1, retained_tokens = retained_tokens - old.tokens
        WHERE id = old.scope_id;
END;
CREATE TRIGGER mem_enter_retained AFTER UPDATE OF state ON memories
WHEN old.state NOT IN ('compacted', 'forgotten') AND new.state IN ('compacted', 'forgotten') BEGIN
    UPDATE scopes SET retained_items = retained_items + 1, retained_tokens = retained_tokens + new.tokens
        WHERE id = new.scope_id;
END;
CREATE TRIGGER mem_retokenized AFTER UPDATE OF tokens ON memories
WHEN old.state = new.state AND old.tokens <> new.tokens BEGIN
    UPDATE scopes SET live_tokens = live_tokens + (new.tokens - old.tokens) * (new.state = 'live'),
        retained_tokens = retained_tokens
            + (new.tokens - old.tokens) * (new.state IN ('compacted', 'forgotten'))
        WHERE id = new.scope_id;
END;

CREATE TABLE compactions(
    id             INTEGER PRIMARY KEY,
    scope_id       INTEGER NOT NULL REFERENCES scopes(id),
    created_at     REAL NOT NULL,
    actor          TEXT NOT NULL,
    summariser     TEXT NOT NULL,
    summary_id     INTEGER REFERENCES memories(id),
    items          INTEGER NOT NULL,
    tokens         INTEGER NOT NULL,
    summary_tokens INTEGER NOT NULL,
    journal_seq    INTEGER,
    restored_at    REAL,
    restored_by    TEXT,
    purged_at      REAL
);
CREATE INDEX compactions_scope ON compactions(scope_id, created_at);
CREATE TABLE compaction_members(
    compaction_id INTEGER NOT NULL REFERENCES compactions(id),
    memory_id     INTEGER NOT NULL REFERENCES memories(id),
    PRIMARY KEY (compaction_id, memory_id)
) WITHOUT ROWID;
CREATE INDEX compaction_members_memory ON compaction_members(memory_id);

CREATE TABLE goals(
    id          INTEGER PRIMARY KEY,
    scope_id    INTEGER NOT NULL REFERENCES scopes(id),
    intent      TEXT NOT NULL,
    plan        TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL CHECK (status IN ('open', 'active', 'done', 'failed', 'abandoned')),
    outcome     TEXT,
    author      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    journal_seq INTEGER NOT NULL,         -- the entry of its latest change
    origin      TEXT
);
CREATE INDEX goals_scope ON goals(scope_id, status);
CREATE INDEX goals_origin ON goals(origin) WHERE origin IS NOT NULL;
CREATE TABLE goal_steps(
    goal_id     INTEGER NOT NULL REFERENCES goals(id),
    n           INTEGER NOT NULL,
    description TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'skipped')),
    outcome     TEXT,
    updated_at  REAL NOT NULL,
    journal_seq INTEGER NOT NULL,
    PRIMARY KEY (goal_id, n)
) WITHOUT ROWID;
"""

# Model-token spend (aether/broker/spend.py keeps the ledger; ContextStore.spend_* reads and
# writes these rows): one account per principal, written durably before a call is sent
# (the reservation) and when it is settled, so a crash never forgets tokens in flight.
SPEND = """
CREATE TABLE spend(
    principal    TEXT PRIMARY KEY,
    parent       TEXT,                  -- the account this one was carved out of (a child agent)
    limit_tokens INTEGER CHECK (limit_tokens IS NULL OR limit_tokens >= 0),   -- NULL: unlimited
    period_s     REAL CHECK (period_s IS NULL OR period_s > 0),                 -- NULL: lifetime
    period_start REAL NOT NULL,
    used         INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
    reserved     INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    calls        INTEGER NOT NULL DEFAULT 0,
    updated_at   REAL NOT NULL
) WITHOUT ROWID;
"""

# Disk use per principal (issue 15): the bytes each principal's journal entries and memories
# hold, kept by triggers so no code path can write without being counted.  A row costs its
# text's UTF-8 bytes (a memory's twice: the full-text index holds it again) plus ROW_BYTES.
ROW_BYTES = 200
DISK = f"""
CREATE TABLE disk_usage(
    principal TEXT PRIMARY KEY,
    bytes     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO disk_usage(principal, bytes)
    SELECT actor, sum(length(CAST(body AS BLOB)) + {ROW_BYTES}) FROM journal GROUP BY actor;
INSERT INTO disk_usage(principal, bytes)
    SELECT author, sum(2 * coalesce(length(CAST(text AS BLOB)), 0) + length(tags) + {ROW_BYTES})
    FROM memories WHERE true GROUP BY author
    ON CONFLICT(principal) DO UPDATE SET bytes = bytes + excluded.bytes;
CREATE TRIGGER disk_journal AFTER INSERT ON journal BEGIN
    INSERT INTO disk_usage(principal, bytes) VALUES (new.actor, length(CAST(new.body AS BLOB)) + {ROW_BYTES})
    ON CONFLICT(principal) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER disk_memory AFTER INSERT ON memories BEGIN
    INSERT INTO disk_usage(principal, bytes)
    VALUES (new.author, 2 * coalesce(length(CAST(new.text AS BLOB)), 0) + length(new.tags) + {ROW_BYTES})
    ON CONFLICT(principal) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER disk_memory_purged AFTER UPDATE OF text ON memories
WHEN new.text IS NULL AND old.text IS NOT NULL BEGIN
    UPDATE disk_usage SET bytes = max(0, bytes - 2 * length(CAST(old.text AS BLOB)))
        WHERE principal = old.author;
END;
"""

# Threads (issue 11; aether/ctx/threads.py): one per agent (or per agent and name), each turn a
# row that is never changed, hash-chained per thread like the journal.  A turn holds what went
# into the window by reference (memory ids, turn numbers), what was left out and why, what
# came back, the tool calls and their results.  Older turns are summarised into
# thread_summaries (every version kept; the turns themselves stay, so nothing is lost).
THREADS = f"""
CREATE TABLE threads(
    id          INTEGER PRIMARY KEY,
    owner       TEXT NOT NULL,                -- the principal whose thread it is
    name        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    rules       TEXT NOT NULL DEFAULT '',
    goal_id     INTEGER,
    turns       INTEGER NOT NULL DEFAULT 0,
    tokens      INTEGER NOT NULL DEFAULT 0,
    head_hash   TEXT NOT NULL,
    UNIQUE (owner, name)
);
CREATE TABLE thread_turns(
    id        INTEGER PRIMARY KEY,
    thread_id INTEGER NOT NULL REFERENCES threads(id),
    n         INTEGER NOT NULL,
    ts        REAL NOT NULL,
    role      TEXT NOT NULL CHECK (role IN ('input', 'answer')),
    body      TEXT NOT NULL,                  -- canonical JSON
    text      TEXT NOT NULL,                  -- its searchable text
    tokens    INTEGER NOT NULL CHECK (tokens >= 0),
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    UNIQUE (thread_id, n)
);
CREATE VIRTUAL TABLE turns_fts USING fts5(
    text, sid, content='', tokenize='unicode61 remove_diacritics 2');
CREATE TRIGGER turn_no_update BEFORE UPDATE ON thread_turns BEGIN
    SELECT RAISE(ABORT, 'a thread is append-only: turns cannot be changed');
END;
CREATE TRIGGER turn_no_delete BEFORE DELETE ON thread_turns BEGIN
    SELECT RAISE(ABORT, 'a thread is append-only: turns cannot be deleted');
END;
CREATE TRIGGER turn_insert AFTER INSERT ON thread_turns BEGIN
    INSERT INTO turns_fts(rowid, text, sid) VALUES (new.id, new.text, 's' || new.thread_id);
    UPDATE threads SET turns = turns + 1, tokens = tokens + new.tokens, head_hash = new.hash
        WHERE id = new.thread_id;
    INSERT INTO disk_usage(principal, bytes)
        SELECT owner, 2 * length(CAST(new.body AS BLOB)) + {ROW_BYTES} FROM threads WHERE id = new.thread_id
    ON CONFLICT(principal) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
CREATE TABLE thread_summaries(
    id         INTEGER PRIMARY KEY,
    thread_id  INTEGER NOT NULL REFERENCES threads(id),
    through_n  INTEGER NOT NULL,              -- it summarises turns 1..through_n
    text       TEXT NOT NULL,
    tokens     INTEGER NOT NULL,
    summariser TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX thread_summaries_thread ON thread_summaries(thread_id, id);
"""

# Tool calls (issue 11; aether/ctx/toolcalls.py): the ledger that makes ``tool.call`` with a
# ``call_id`` run at most once per (owner, call_id).  A row is written 'started' before the tool
# runs and 'done' or 'failed' with its result in the same transaction as its one journal entry.
# A 'started' row left by an aetherd that is gone is a call *in doubt*.  Rows count toward the
# owner's disk use (triggers), and only the newest toolcalls.KEEP per owner are kept.
TOOL_CALLS = f"""
CREATE TABLE tool_calls(
    id          INTEGER PRIMARY KEY,
    owner       TEXT NOT NULL,                -- the caller's principal
    call_id     TEXT NOT NULL,                -- the caller's name for this call
    tool        TEXT NOT NULL,
    args_digest TEXT NOT NULL,                -- sha256 of the canonical arguments
    status      TEXT NOT NULL CHECK (status IN ('started', 'done', 'failed')),
    instance    TEXT NOT NULL,                -- the aetherd that started it
    started_at  REAL NOT NULL,
    finished_at REAL,
    outcome     TEXT,                         -- canonical JSON: {{"result": ...}} or {{"error": ...}}
    journal_seq INTEGER,
    bytes       INTEGER NOT NULL DEFAULT {ROW_BYTES},
    UNIQUE (owner, call_id)
);
CREATE TRIGGER tool_call_insert AFTER INSERT ON tool_calls BEGIN
    INSERT INTO disk_usage(principal, bytes) VALUES (new.owner, new.bytes)
    ON CONFLICT(principal) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER tool_call_update AFTER UPDATE OF bytes ON tool_calls BEGIN
    UPDATE disk_usage SET bytes = bytes + new.bytes - old.bytes WHERE principal = new.owner;
END;
CREATE TRIGGER tool_call_delete AFTER DELETE ON tool_calls BEGIN
    UPDATE disk_usage SET bytes = max(0, bytes - old.bytes) WHERE principal = old.owner;
END;
"""

# (version, name, steps): append only; never edit a migration that has shipped.
MIGRATIONS = [
    (1, "base: journal, scopes, grants, memories, full-text indexes, compactions, goals", [BASE]),
    (2, "spend: model-token accounts, reserved before a call and settled after", [SPEND]),
    (3, "disk: bytes each principal's journal entries and memories hold", [DISK]),
    (4, "threads: each agent's hash-chained turns, by reference, with summaries of older turns", [THREADS]),
    (5, "tool calls: a ledger that runs each (owner, call_id) at most once", [TOOL_CALLS]),
]

LATEST = MIGRATIONS[-1][0]
