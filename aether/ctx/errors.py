"""The context store's exceptions: one named class per way a call can fail.

Imports only aether/errors.py (a leaf: the roots every subsystem's errors share).
Every message says what was wrong and how to fix it; the ABI answers each with
the wire code aether.errors.WIRE_CODES gives its ``code`` (a stable short name).
"""

from .. import errors


class ContextError(errors.AetherError):
    """Base of every error the context store raises on purpose."""

    code = "ctx_error"


class InvalidArgument(ContextError, errors.InvalidArgument, ValueError):
    """A call's argument breaks its rule (type, range, format or size)."""

    code = "invalid_argument"


class NotFound(ContextError, errors.NotFound, LookupError):
    """The memory, goal, step, compaction, scope or grant named does not exist."""

    code = "not_found"


class PermissionDenied(ContextError, errors.PermissionDenied, PermissionError):
    """The caller lacks the grant the call needs on a scope."""

    code = "permission_denied"


class Conflict(ContextError, errors.Conflict):
    """The call contradicts the current state (an import over existing scopes, a restore of a restored compaction)."""

    code = "conflict"


class QuotaExceeded(ContextError):
    """A write would take a scope past its quota in a way compaction cannot fix (pinned items)."""

    code = "quota_exceeded"


class QuotaPending(ContextError):
    """The caller's quota is not known yet (what its home holds is being measured); try again soon."""

    code = "quota_pending"


class DiskReserved(ContextError):
    """The write would eat into the data disk's reserve, which only the system may use."""

    code = "disk_reserve"


class ExportFormatError(ContextError):
    """An export file is damaged, truncated, of another format or version, or fails its checksum."""

    code = "bad_export"


class StoreError(ContextError):
    """The database itself failed (I/O, corruption, schema) in a way the caller cannot fix by retrying the call."""

    code = "store_error"


class StoreFullError(StoreError):
    """The disk (or the file-size limit) is full: the write was not made; reads still work."""

    code = "store_full"


class StoreReadOnlyError(StoreError):
    """The database or its filesystem is read-only: the write was not made; reads still work."""

    code = "store_read_only"


class StoreBusyError(StoreError):
    """Another process holds the database's write lock (aetherd should be the only writer)."""

    code = "store_busy"


class StoreCorruptError(StoreError):
    """SQLite reports the database file is malformed."""

    code = "store_corrupt"


class SchemaError(StoreError):
    """The database's schema is newer than this code, or a migration failed (and was rolled back)."""

    code = "schema_error"
