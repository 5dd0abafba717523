"""ContextStore's sharing (a mixin of aether/ctx/api.py's ContextStore): shared scopes and
grants, export and verified import, and as-of queries over a scope's history.

The methods follow api.py's rules: the caller's principal first, every argument
validated, the caller's grant checked, one transaction, plain JSON-able data back.
"""

import os

from . import access as acl
from . import export as exporter
from . import history
from . import validate as check
from .access import READ
from .errors import InvalidArgument, NotFound, PermissionDenied


class Sharing:
    """Scopes shared between principals, and a store's contents moved or seen as of a time
    (ContextStore inherits it)."""

    # --------------------------------------------------------------- access

    def create_scope(self, caller, scope, owner=None, quota_tokens=None, quota_items=None):
        """Create a shared scope (owned by the caller, or by owner when the shell asks)."""
        caller = check.principal(caller)
        if (quota_tokens is not None or quota_items is not None) and not acl.privileged(caller):
            raise PermissionDenied(f"{caller} may not set quotas: only the shell or system sets them")
        tokens = check.quota_value(quota_tokens, "quota_tokens")
        items = check.quota_value(quota_items, "quota_items")
        with self.db.atomic():
            scope_id, owner = self.access.create(caller, check.scope(scope), owner)
            self.quotas.set(scope_id, tokens, items)
            self._journal(caller, scope, "ctx.scope", {"owner": owner, "quota_tokens": tokens,
                                                        "quota_items": items})
        return self.quotas.usage([scope])[0]

    def scopes(self, caller):
        """The scopes the caller may read, with usage and the caller's mode on each."""
        caller = check.principal(caller)
        rows = self.quotas.usage(self.access.readable(caller))
        for row in rows:
            row["mode"] = self.access.mode(caller, row["scope"])
        return rows

    def grant(self, caller, scope, grantee, mode="read"):
        """Let grantee read (or read-write) scope; the owner or the shell only."""
        caller = check.principal(caller)
        with self.db.atomic():
            result = self.access.grant(caller, scope, grantee, mode)
            self._journal(caller, scope, "ctx.grant", {"grantee": grantee, "mode": mode})
        return result

    def revoke(self, caller, scope, grantee):
        """Take grantee's grant on scope away."""
        caller = check.principal(caller)
        with self.db.atomic():
            result = self.access.revoke(caller, scope, grantee)
            self._journal(caller, scope, "ctx.revoke", {"grantee": grantee})
        return result

    def grants(self, caller, scope=None):
        """Grants on a scope, or those the caller gave or holds (all, for the shell)."""
        return self.access.grants(check.principal(caller), scope)

    # ----------------------------------------------------- export / import

    def export(self, caller, path, scopes=None, *, target=None, owner=None, max_bytes=None):
        """Write one or more scopes (None: everything, shell/system only) to a single file.

        ``target``, ``owner``, ``max_bytes``: see export.export (the ABI opens the
        directory beneath the caller's tree and passes its descriptor).
        """
        caller = check.principal(caller)
        names = check.scopes(scopes)
        if names is None and not acl.privileged(caller):
            raise PermissionDenied(f"{caller} may export only scopes it can read: give scopes=")
        for name in names or ():
            self.access.require(caller, name, READ)
            if self.access.lookup(name) is None:
                raise NotFound(f"scope {name} does not exist")
        header = {"type": "header", "format": exporter.FORMAT, "version": exporter.VERSION,
                  "store_id": self.store_id, "exported_at": self.clock(), "exported_by": caller,
                  "scopes": names if names is not None else "all", "estimator": self.estimator.name,
                  "journal_complete": names is None}
        result = exporter.export(self.db, names, path, header, target, owner, max_bytes)
        if not self.db.read_only:
            self._journal(caller, "system", "ctx.export", {"path": result["path"], "scopes": header["scopes"],
                                                           "sha256": result["sha256"]})
        return result

    def import_(self, caller, path, on_conflict="refuse", rename=None, *, file=None):
        """Import an export file (shell/system only): verified, renumbered, in one transaction.

        ``file``: the export already opened (binary), by the ABI beneath the caller's tree;
        ``path`` then only names it in messages."""
        caller = check.principal(caller)
        if not acl.privileged(caller):
            raise PermissionDenied(f"{caller} may not import: only the shell or system imports context")
        check.choice(on_conflict, "on_conflict", ("refuse", "merge"))
        rename = _rename_map(rename)
        path = os.fspath(path)
        header = exporter.check_file(path, file)
        importer = exporter.Importer(self.db, self.access, self.memories, self._journal, self.estimator,
                                     self.store_id, self.clock)
        try:
            return importer.run(caller, path, header, on_conflict, rename, file)
        finally:
            self.access.forget_cache()

    # --------------------------------------------------------------- as-of

    def as_of(self, caller, scope, at, limit=1000):
        """What scope's context held at time `at`: the items live then (newest first) and their pins."""
        caller = check.principal(caller)
        scope = check.scope(scope)
        self.access.require(caller, scope, READ)
        at = check.timestamp(at, "at")
        if at is None:
            raise InvalidArgument("at: give a time in seconds since the epoch")
        hit = self.access.lookup(scope)
        if hit is None:
            raise NotFound(f"scope {scope} does not exist")
        result = history.as_of(self.db, hit[0], scope, at, check.limit(limit))
        row = self.db.one("SELECT max(seq) FROM journal WHERE scope = ? AND ts <= ?", (scope, at))
        result["journal_seq"] = row[0] or 0
        return result


def _rename_map(rename):
    if rename is None:
        return {}
    if not isinstance(rename, dict):
        raise InvalidArgument("rename: give a mapping {'<scope in the file>': '<scope here>'}")
    return {check.scope(k, "rename key"): check.scope(v, "rename value") for k, v in rename.items()}
