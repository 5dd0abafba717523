"""The context store: durable, budgeted context as an OS-managed resource.

aetherd owns one ``ContextStore`` (a SQLite database in WAL mode on the data
location, /var/lib/aether/context.db) and exposes its methods as the ABI's
``ctx.*`` calls.  One module per noun:

``store``       connection, pragmas, ``atomic()``, migrations, error mapping
``migrations``  the migrations registry (tables, indexes, triggers)
``journal``     the append-only, hash-chained record of what happened
``memories``    facts, notes, observations and summaries, per scope
``goals``       intents, plans, steps and outcomes, linked to the journal
``tokens``      the token estimator interface and its deterministic default
``terms``       query words -> a cost-bounded FTS5 match expression
``window``      budgeted context windows (pinned, BM25, recency, importance)
``quota``       quotas, usage and PSI-like context pressure
``compaction``  over-quota scopes -> summaries, restore, purge
``history``     as-of queries
``access``      principals, scopes, grants, permission checks
``export``      one-file export and verified import
``api``         ``ContextStore``, the façade the ABI calls
``upkeep``, ``sharing``: ContextStore's quota/compaction/retention and scope/grant/export/as-of calls
``errors``, ``validate``: the exceptions and the argument checks

docs/context-store.md describes the data model, the algorithms and the
durability promise.  Only the standard library is used; of the rest of aether,
only the leaf aether/errors.py (the roots its errors share with the tools' and the ABI's).
"""

from .api import ContextStore, DEFAULT_PATH
from .errors import (Conflict, ContextError, ExportFormatError, InvalidArgument, NotFound,
                     PermissionDenied, QuotaExceeded, SchemaError, StoreBusyError, StoreCorruptError,
                     StoreError, StoreFullError, StoreReadOnlyError)

__all__ = ["ContextStore", "DEFAULT_PATH", "Conflict", "ContextError", "ExportFormatError",
           "InvalidArgument", "NotFound", "PermissionDenied", "QuotaExceeded", "SchemaError",
           "StoreBusyError", "StoreCorruptError", "StoreError", "StoreFullError", "StoreReadOnlyError"]
