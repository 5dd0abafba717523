"""Moving context between machines: one file out, the same file in.

The file is JSON Lines, UTF-8, one record per line (read and written as a
stream: an export of a million items needs no more memory than the id maps):

1. a header ``{"format": "aether-context-export", "version": 1, "store_id",
   "exported_at", "exported_by", "scopes": [...] | "all", "estimator",
   "journal_complete"}``;
2. records tagged by ``type``, in this order: ``scope``, ``grant``,
   ``memory`` (every state, tombstones included), ``compaction``,
   ``member``, ``event``, ``goal``, ``step``, ``journal``; ids are the
   exporting store's;
3. a trailer ``{"type": "end", "records": <lines before it>, "sha256":
   <hex digest of every byte before the trailer line>}``.

Import checks the trailer first (a truncated or altered file is refused
before anything is written), then the journal's hashes: link by link from
entry 1 for a full export, entry by entry for a scope export (the entries
of one scope are not consecutive).  Everything is then written in one
transaction with new ids (memories, compactions, goals and journal entries
are renumbered; references follow), keeping the original times so that
as-of queries work on the new machine.  Journal entries are appended to the
local chain with ``origin = <store id>:<seq>:<hash>``.

Conflicts: an exported scope that exists locally (other than ``system``,
which every machine has and which always merges) is refused (``Conflict``)
unless ``on_conflict="merge"`` (add to it; memories, goals and journal
entries already imported from the same origin are skipped, so importing a
file twice changes nothing) or ``rename={"agent:a": "agent:b"}`` maps it to
another name.

Writing: the file goes to a new temporary file beside the target, created with
``O_CREAT | O_EXCL | O_NOFOLLOW`` relative to the directory's descriptor (so
nothing planted there, a symbolic link least of all, is ever opened), fsync()ed
and renamed over the target (which replaces a link at that name, never its
target).  The ABI hands in a directory descriptor it opened beneath the caller's
tree (aether/safepath.py), the owner to give the file and a size limit (the
caller's disk quota); reading, it hands in the file it opened the same way.
"""

import hashlib
import json
import os

from . import journal as jr
from . import validate as check
from .errors import Conflict, ContextError, ExportFormatError, QuotaExceeded
from .memories import digest as text_digest
from .migrations import GENESIS
from .tokens import item_tokens

FORMAT, VERSION = "aether-context-export", 1
ORDER = ("scope", "grant", "memory", "compaction", "member", "event", "goal", "step", "journal")
EVENTS = ("compacted", "restored", "forgotten", "purged", "pinned", "unpinned")
MEMORY_FIELDS = ("id", "scope", "kind", "text", "tags", "importance", "pinned", "tokens", "digest",
                 "author", "created_at", "last_used", "state", "state_at", "compaction_id", "origin")


# ------------------------------------------------------------------- export


class _Writer:
    """A new temporary file in ``dir_fd``, renamed to ``name`` when finished."""

    def __init__(self, dir_fd, name, shown, owner=None, max_bytes=None):
        self.dir_fd, self.name, self.shown, self.max_bytes = dir_fd, name, shown, max_bytes
        self.tmp = f".{name[:200]}.{os.urandom(6).hex()}.tmp"
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dir_fd)
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, 0o644 if owner is None else 0o640)
        except BaseException:
            os.close(fd)
            os.unlink(self.tmp, dir_fd=dir_fd)
            raise
        self.file = open(fd, "wb")
        self.hash, self.records, self.bytes = hashlib.sha256(), 0, 0

    def write(self, record):
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
                + "\n").encode("utf-8", "surrogatepass")
        self.bytes += len(line)
        if self.max_bytes is not None and self.bytes > self.max_bytes:
            raise QuotaExceeded(f"the export passed {self.max_bytes} bytes, what the caller's disk quota "
                                "leaves; nothing was written: export fewer scopes, or free space")
        self.hash.update(line)
        self.file.write(line)
        self.records += 1

    def finish(self):
        trailer = {"type": "end", "records": self.records, "sha256": self.hash.hexdigest()}
        self.file.write((json.dumps(trailer) + "\n").encode())
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        try:
            os.fsync(self.dir_fd)
        except OSError:
            pass
        return trailer

    def abandon(self):
        self.file.close()
        try:
            os.unlink(self.tmp, dir_fd=self.dir_fd)
        except OSError:
            pass


def export(db, names, path, header, target=None, owner=None, max_bytes=None):
    """Write the scopes `names` (None: everything) to path; return the trailer plus counts.

    ``target``: (directory fd, name) to write into instead of opening path's directory
    (path is then only what the answer shows); ``owner``: (uid, gid) for the file;
    ``max_bytes``: refuse (QuotaExceeded, nothing written) past this size.
    """
    shown = os.fspath(path)
    dir_fd = None
    try:
        if target is None:
            dir_fd = os.open(os.path.dirname(os.path.abspath(shown)), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            target = (dir_fd, os.path.basename(shown))
        if not target[1] or target[1] in (".", ".."):
            raise ContextError(f"cannot write the export to {shown}: name a file, not a directory")
        writer = _Writer(target[0], target[1], shown, owner, max_bytes)
    except OSError as exc:
        if dir_fd is not None:
            os.close(dir_fd)
        raise ContextError(f"cannot write the export to {shown}: {exc.strerror}; choose a writable path") \
            from None
    try:
        writer.write(header)
        counts = _write_records(db, names, writer)
        trailer = writer.finish()
    except BaseException:
        writer.abandon()
        raise
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    return {"path": shown, "records": trailer["records"], "sha256": trailer["sha256"],
            "counts": counts, "bytes": writer.bytes}


def _write_records(db, names, writer):
    ids = _scope_ids(db, names)
    where, params = _in("scope_id", ids)
    counts = dict.fromkeys(ORDER, 0)
    queries = {
        "scope": (f"SELECT id, name, owner, created_at, quota_tokens, quota_items FROM scopes "
                  f"WHERE 1 {_in('id', ids)[0]} ORDER BY id", params, _scope_record),
        "grant": (f"SELECT s.name, g.grantee, g.mode, g.granted_by, g.granted_at FROM grants g JOIN scopes s "
                  f"ON s.id = g.scope_id WHERE 1 {_in('g.scope_id', ids)[0]} ORDER BY s.name, g.grantee",
                  params, lambda r, n: dict(zip(("scope", "grantee", "mode", "granted_by", "granted_at"), r))),
        "memory": (f"SELECT id, scope_id, kind, text, tags, importance, pinned, tokens, digest, author, "
                   f"created_at, last_used, state, state_at, compaction_id, origin FROM memories "
                   f"WHERE 1 {where} ORDER BY id", params, _memory_record),
        "compaction": (f"SELECT id, scope_id, created_at, actor, summariser, summary_id, items, tokens, "
                       f"summary_tokens, journal_seq, restored_at, restored_by, purged_at FROM compactions "
                       f"WHERE 1 {where} ORDER BY id", params, _compaction_record),
        "member": (f"SELECT compaction_id, memory_id FROM compaction_members WHERE compaction_id IN "
                   f"(SELECT id FROM compactions WHERE 1 {where}) ORDER BY compaction_id, memory_id",
                   params, lambda r, n: {"compaction_id": r[0], "memory_id": r[1]}),
        "event": (f"SELECT e.memory_id, e.ts, e.event, e.ref, e.actor FROM memory_events e JOIN memories m "
                  f"ON m.id = e.memory_id WHERE 1 {_in('m.scope_id', ids)[0]} ORDER BY e.rowid", params,
                  lambda r, n: dict(zip(("memory_id", "ts", "event", "ref", "actor"), r))),
        "goal": (f"SELECT id, scope_id, intent, plan, status, outcome, author, created_at, updated_at, "
                 f"journal_seq, origin FROM goals WHERE 1 {where} ORDER BY id", params, _goal_record),
        "step": (f"SELECT goal_id, n, description, status, outcome, updated_at, journal_seq FROM goal_steps "
                 f"WHERE goal_id IN (SELECT id FROM goals WHERE 1 {where}) ORDER BY goal_id, n", params,
                 lambda r, n: dict(zip(("goal_id", "n", "description", "status", "outcome", "updated_at",
                                        "journal_seq"), r))),
        "journal": (f"SELECT {jr.COLUMNS} FROM journal WHERE 1 {_in('scope', names)[0]} ORDER BY seq",
                    tuple(names or ()), _journal_record),
    }
    scope_names = dict(db.all("SELECT id, name FROM scopes"))
    for kind in ORDER:
        sql, args, build = queries[kind]
        cursor = db.execute(sql, args)
        while True:
            rows = cursor.fetchmany(1000)
            if not rows:
                break
            for row in rows:
                record = build(row, scope_names)
                record["type"] = kind
                writer.write(record)
                counts[kind] += 1
    return counts


def _scope_ids(db, names):
    if names is None:
        return None
    rows = db.all(f"SELECT id FROM scopes WHERE name IN ({','.join('?' * len(names))})", names)
    return [r[0] for r in rows]


def _in(column, values):
    if values is None:
        return "", ()
    return f"AND {column} IN ({','.join('?' * len(values))})", tuple(values)


def _scope_record(row, names):
    return dict(zip(("id", "name", "owner", "created_at", "quota_tokens", "quota_items"), row))


def _memory_record(row, names):
    record = dict(zip(MEMORY_FIELDS, row))
    record["scope"] = names[row[1]]
    record["tags"] = row[4].split() if row[4] else []
    record["pinned"] = bool(row[6])
    return record


def _compaction_record(row, names):
    record = dict(zip(("id", "scope", "created_at", "actor", "summariser", "summary_id", "items", "tokens",
                       "summary_tokens", "journal_seq", "restored_at", "restored_by", "purged_at"), row))
    record["scope"] = names[row[1]]
    return record


def _goal_record(row, names):
    record = dict(zip(("id", "scope", "intent", "plan", "status", "outcome", "author", "created_at",
                       "updated_at", "journal_seq", "origin"), row))
    record["scope"] = names[row[1]]
    return record


def _journal_record(row, names):
    return dict(zip(("seq", "ts", "actor", "scope", "kind", "goal_id", "body", "origin", "prev_hash",
                     "hash"), row))


# ------------------------------------------------------------------- import


def _lines(path, source):
    """The file to read: ``source`` (an open binary file, rewound) or ``path`` opened."""
    if source is not None:
        source.seek(0)
        return _Borrowed(source)
    return open(path, "rb")


class _Borrowed:
    """A file the caller owns, used as a context manager without closing it."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self.f

    def __exit__(self, *exc):
        return False


def check_file(path, source=None):
    """The header of an export file whose trailer checks out (one streaming pass); else ExportFormatError."""
    digest, count, previous, header = hashlib.sha256(), 0, None, None
    try:
        with _lines(path, source) as f:
            for line in _bounded(f, path):
                if previous is not None:
                    digest.update(previous)
                    count += 1
                    if count == 1:
                        header = _parse(previous, 1, path)
                previous = line
    except OSError as exc:
        raise ExportFormatError(f"cannot read {path}: {exc.strerror}") from None
    if previous is None or header is None:
        raise ExportFormatError(f"{path} is not an AetherOS context export (it has {count + (previous is not None)} "
                                "lines)")
    trailer = _parse(previous, count + 1, path)
    if trailer.get("type") != "end" or trailer.get("records") != count or \
            trailer.get("sha256") != digest.hexdigest():
        raise ExportFormatError(f"{path} fails its checksum: the file is truncated or was changed after "
                                "export; export it again")
    if header.get("format") != FORMAT:
        raise ExportFormatError(f"{path} is not an AetherOS context export (format {header.get('format')!r})")
    if header.get("version") != VERSION:
        raise ExportFormatError(f"{path} is export format version {header.get('version')!r}; this "
                                f"AetherOS reads version {VERSION}")
    return header


def records(path, only=None, source=None):
    """(line number, record) of every record between header and trailer, streamed in file order."""
    with _lines(path, source) as f:
        lines = _bounded(f, path)
        next(lines)
        previous = None
        for number, line in enumerate(lines, 2):
            if previous is not None and (only is None or previous[1].get("type") == only):
                yield previous
            previous = (number, _parse(line, number, path))


MAX_RECORD = 4 << 20     # bytes in one line of an export: far above any record aetherd writes


def _bounded(f, path):
    """The file's lines, each at most MAX_RECORD bytes: an overlong line is refused, not buffered."""
    number = 0
    while line := f.readline(MAX_RECORD + 1):
        number += 1
        if len(line) > MAX_RECORD:
            raise ExportFormatError(f"{path} line {number} is longer than {MAX_RECORD} bytes: not an "
                                    "export AetherOS wrote")
        yield line


def _parse(line, number, path):
    try:
        record = json.loads(line)
    except RecursionError:
        raise ExportFormatError(f"{path} line {number} is nested too deeply to be a record") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ExportFormatError(f"{path} line {number} is not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ExportFormatError(f"{path} line {number} is not a JSON object")
    return record


class Importer:
    """Writes a checked export into the store with new ids, in one transaction."""

    def __init__(self, db, access, memories, append_entry, estimator, store_id, clock):
        self.db, self.access, self.memories, self.append = db, access, memories, append_entry
        self.estimator, self.store_id, self.clock = estimator, store_id, clock

    def run(self, actor, path, header, on_conflict, rename, file=None):
        """Import the checked export at path (or in the open binary ``file``)."""
        self.file = file
        source = header.get("store_id")
        if not isinstance(source, str) or not source:
            raise ExportFormatError("the header has no store_id")
        _verify_journal(self._records(path, "journal"), header.get("journal_complete") is True)
        self.source, self.rename = source, rename
        self.recount = header.get("estimator") != self.estimator.name
        created = self._check_conflicts(self._records(path, "scope"), on_conflict)
        self.maps = {"memory": {}, "compaction": {}, "goal": {}, "seq": {}}
        self.fixups = {"memory": [], "compaction": [], "goal": [], "step": []}
        self.inserted = set()
        counts = dict.fromkeys(ORDER, 0)
        with self.db.atomic():
            position = 0
            for n, record in self._records(path):
                kind = record.get("type")
                if kind not in counts:
                    raise ExportFormatError(f"line {n}: unknown record type {kind!r}")
                if ORDER.index(kind) < position:
                    raise ExportFormatError(f"line {n}: a {kind} record after the {ORDER[position]} records")
                position = ORDER.index(kind)
                try:
                    counts[kind] += getattr(self, "_" + kind)(record, created) is not False
                except (KeyError, TypeError, ValueError, ContextError) as exc:
                    raise ExportFormatError(f"line {n} ({kind}): {exc}") from None
            self._fix_references()
            self.append(actor, "system", "ctx.import",
                        {"source": source, "exported_at": header.get("exported_at"),
                         "scopes": sorted(created), "counts": counts})
        return {"source": source, "counts": counts, "scopes_created": sorted(created)}

    def _records(self, path, only=None):
        return records(path, only, self.file)

    def _name(self, name):
        return check.scope(self.rename.get(name, name), "scope")

    def _check_conflicts(self, scope_records, on_conflict):
        existing, created = [], set()
        for n, record in scope_records:
            if not isinstance(record.get("name"), str):
                raise ExportFormatError(f"line {n}: a scope record without a name")
            name = self._name(record["name"])
            if self.access.lookup(name) is not None:
                if name != "system":            # every machine has its own; imported entries join it
                    existing.append(name)
            else:
                created.add(name)
        if existing and on_conflict != "merge":
            raise Conflict(f"the export holds scopes that exist here: {', '.join(sorted(existing))}; "
                           "import with on_conflict='merge' to add to them, or rename them with "
                           "rename={'<scope>': '<new name>'}")
        return created

    # One handler per record type; each returns False when it skipped a duplicate.

    def _scope(self, r, created):
        name = self._name(r["name"])
        if name in created:
            self.access.ensure(name, owner=check.principal(r["owner"], "owner"))
            self.db.execute("UPDATE scopes SET created_at = ?, quota_tokens = ?, quota_items = ? WHERE name = ?",
                            (float(r["created_at"]), _quota(r.get("quota_tokens")),
                             _quota(r.get("quota_items")), name))
            return True
        return False

    def _grant(self, r, created):
        name = self._name(r["scope"])
        if name not in created:
            return False
        scope_id, _ = self.access.lookup(name)
        self.db.execute("INSERT OR REPLACE INTO grants(scope_id, grantee, mode, granted_by, granted_at) "
                        "VALUES (?, ?, ?, ?, ?)", (scope_id, check.principal(r["grantee"], "grantee"),
                                                   check.choice(r["mode"], "mode", check.GRANT_MODES),
                                                   check.principal(r["granted_by"], "granted_by"),
                                                   float(r["granted_at"])))
        return True

    def _memory(self, r, created):
        origin = r.get("origin") or f"{self.source}:{r['id']}"
        scope_id, _ = self.access.lookup(self._name(r["scope"]))
        local = self._existing("memories", "id", origin, scope_id, r["id"], "digest", r["digest"])
        if local is not None:
            self.maps["memory"][r["id"]] = local
            return False
        text = r["text"]
        state = check.choice(r["state"], "state", ("live", "compacted", "forgotten", "purged"))
        if text is None and state != "purged":
            raise ExportFormatError(f"memory {r['id']} has no text but is {state}")
        if text is not None:
            check.text(text)
            if text_digest(text) != r["digest"]:
                raise ExportFormatError(f"memory {r['id']}'s text does not match its digest")
        tokens = item_tokens(self.estimator, text) if self.recount and text is not None else int(r["tokens"])
        local = self.memories.insert(
            scope_id, check.kind(r["kind"]), text, check.tags(r["tags"]), check.importance(r["importance"]),
            check.flag(r["pinned"], "pinned"), tokens, check.principal(r["author"], "author"),
            float(r["created_at"]), state=state, last_used=float(r["last_used"]),
            state_at=float(r["state_at"]), compaction_id=None, origin=origin, text_digest=r["digest"])
        self.maps["memory"][r["id"]] = local
        self.inserted.add(local)
        if r.get("compaction_id") is not None:
            self.fixups["memory"].append((local, r["compaction_id"]))
        return True

    def _existing(self, table, key, origin, scope_id, source_id, column=None, value=None):
        """The local id of a row already imported from origin into this scope (or, for this
        store's own export, the original row itself), else None."""
        row = self.db.one(f"SELECT {key} FROM {table} WHERE origin = ? AND scope_id = ?", (origin, scope_id))
        if row:
            return row[0]
        if self.source == self.store_id:
            match = f" AND {column} = ?" if column else ""
            row = self.db.one(f"SELECT {key} FROM {table} WHERE {key} = ? AND scope_id = ?{match}",
                              (source_id, scope_id, *((value,) if column else ())))
            return row[0] if row else None
        return None

    def _compaction(self, r, created):
        summary = self.maps["memory"].get(r["summary_id"])
        known = self.db.one("SELECT id FROM compactions WHERE summary_id = ?", (summary,)) if summary else None
        if known:
            self.maps["compaction"][r["id"]] = known[0]
            return False
        scope_id, _ = self.access.lookup(self._name(r["scope"]))
        cur = self.db.execute(
            "INSERT INTO compactions(scope_id, created_at, actor, summariser, summary_id, items, tokens, "
            "summary_tokens, restored_at, restored_by, purged_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (scope_id, float(r["created_at"]), check.principal(r["actor"], "actor"), str(r["summariser"]),
             summary, int(r["items"]), int(r["tokens"]), int(r["summary_tokens"]), r.get("restored_at"),
             r.get("restored_by"), r.get("purged_at")))
        self.maps["compaction"][r["id"]] = cur.lastrowid
        self.fixups["compaction"].append((cur.lastrowid, r.get("journal_seq")))
        return True

    def _member(self, r, created):
        cid, mid = self.maps["compaction"].get(r["compaction_id"]), self.maps["memory"].get(r["memory_id"])
        if cid is None or mid is None:
            raise ExportFormatError(f"member refers to compaction {r['compaction_id']} or memory "
                                    f"{r['memory_id']}, which the file does not hold")
        cur = self.db.execute("INSERT OR IGNORE INTO compaction_members(compaction_id, memory_id) VALUES (?, ?)",
                              (cid, mid))
        return cur.rowcount > 0

    def _event(self, r, created):
        mid = self.maps["memory"].get(r["memory_id"])
        if mid is None:
            raise ExportFormatError(f"event refers to memory {r['memory_id']}, which the file does not hold")
        if mid not in self.inserted:
            return False                    # the memory was imported before, with its events
        ref = self.maps["compaction"].get(r["ref"]) if r.get("ref") is not None else None
        self.db.execute("INSERT INTO memory_events(memory_id, ts, event, ref, actor) VALUES (?, ?, ?, ?, ?)",
                        (mid, float(r["ts"]), check.choice(r["event"], "event", EVENTS), ref,
                         check.principal(r["actor"], "actor")))
        return True

    def _goal(self, r, created):
        origin = r.get("origin") or f"{self.source}:{r['id']}"
        scope_id, _ = self.access.lookup(self._name(r["scope"]))
        local = self._existing("goals", "id", origin, scope_id, r["id"], "intent", r["intent"])
        if local is not None:
            self.maps["goal"][r["id"]] = local
            return False
        cur = self.db.execute(
            "INSERT INTO goals(scope_id, intent, plan, status, outcome, author, created_at, updated_at, "
            "journal_seq, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (scope_id, check.text(r["intent"], "intent"), check.text(r["plan"], "plan", allow_empty=True),
             check.choice(r["status"], "status", check.GOAL_STATUSES), r.get("outcome"),
             check.principal(r["author"], "author"), float(r["created_at"]), float(r["updated_at"]), origin))
        self.maps["goal"][r["id"]] = cur.lastrowid
        self.fixups["goal"].append((cur.lastrowid, r.get("journal_seq")))
        return True

    def _step(self, r, created):
        gid = self.maps["goal"].get(r["goal_id"])
        if gid is None:
            raise ExportFormatError(f"step refers to goal {r['goal_id']}, which the file does not hold")
        cur = self.db.execute(
            "INSERT OR IGNORE INTO goal_steps(goal_id, n, description, status, outcome, updated_at, journal_seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (gid, check.positive_int(r["n"], "n"), check.text(r["description"], "description"),
             check.choice(r["status"], "status", check.STEP_STATUSES), r.get("outcome"),
             float(r["updated_at"]), 0))
        if cur.rowcount:
            self.fixups["step"].append((gid, r["n"], r.get("journal_seq")))
        return cur.rowcount > 0

    def _journal(self, r, created):
        origin = r.get("origin") or f"{self.source}:{r['seq']}:{r['hash']}"
        scope = self._name(r["scope"])
        row = self.db.one("SELECT seq FROM journal WHERE origin = ? AND scope = ?", (origin, scope))
        if row is None and self.source == self.store_id:
            row = self.db.one("SELECT seq FROM journal WHERE seq = ? AND hash = ? AND scope = ?",
                              (r["seq"], r["hash"], scope))
        if row:
            self.maps["seq"][r["seq"]] = row[0]
            return False
        goal_id = self.maps["goal"].get(r["goal_id"]) if r.get("goal_id") is not None else None
        seq = self.append(check.principal(r["actor"], "actor"), scope,
                          check.journal_kind(r["kind"]), json.loads(r["body"]), goal_id,
                          ts=float(r["ts"]), origin=origin)
        self.maps["seq"][r["seq"]] = seq
        return True

    def _fix_references(self):
        """Point imported rows at the new ids of compactions and journal entries."""
        compactions, seqs = self.maps["compaction"], self.maps["seq"]
        self.db.executemany("UPDATE memories SET compaction_id = ? WHERE id = ?",
                            [(compactions[old], local) for local, old in self.fixups["memory"]
                             if old in compactions])
        self.db.executemany("UPDATE compactions SET journal_seq = ? WHERE id = ?",
                            [(seqs.get(old), cid) for cid, old in self.fixups["compaction"]])
        self.db.executemany("UPDATE goals SET journal_seq = ? WHERE id = ?",
                            [(seqs.get(old, 0), gid) for gid, old in self.fixups["goal"]])
        self.db.executemany("UPDATE goal_steps SET journal_seq = ? WHERE goal_id = ? AND n = ?",
                            [(seqs.get(old, 0), gid, n) for gid, n, old in self.fixups["step"]])


def _quota(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < -1 or value == 0:
        raise ExportFormatError(f"quota {value!r} is not a positive integer or -1")
    return value


def _verify_journal(entries, complete):
    """Each entry's hash, and for a complete journal every link from GENESIS."""
    prev = GENESIS
    for n, (line, r) in enumerate(entries, 1):
        try:
            expected = jr.entry_hash(r["prev_hash"], r["seq"], r["ts"], r["actor"], r["scope"], r["kind"],
                                     r.get("goal_id"), r.get("origin"), r["body"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ExportFormatError(f"line {line}: journal entry is missing fields or has wrong types") from None
        if expected != r["hash"]:
            raise ExportFormatError(f"line {line}: journal entry {r['seq']}'s content does not match its hash")
        if complete and (r["seq"] != n or r["prev_hash"] != prev):
            raise ExportFormatError(f"line {line}: the exported journal's chain breaks at entry {r['seq']}")
        prev = r["hash"]
