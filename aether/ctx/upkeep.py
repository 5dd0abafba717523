"""ContextStore's upkeep (a mixin of aether/ctx/api.py's ContextStore): quotas, usage and
pressure, compaction and its summaries, the model-spend rows, purging and retention.

The methods follow api.py's rules: the caller's principal first, every argument
validated, the caller's grant checked, one transaction, plain JSON-able data back.
"""

from . import access as acl
from . import spend as spend_rows
from . import validate as check
from .access import READ, WRITE
from .errors import InvalidArgument, NotFound, PermissionDenied
from .quota import psi_lines


class Upkeep:
    """Keeping scopes within their bounds, and what compaction did (ContextStore inherits it)."""

    # ------------------------------------------------------- quota, usage

    def usage(self, caller, scope=None):
        """Usage (live and retained items and tokens, quota, storage pressure) of one scope or all readable."""
        caller = check.principal(caller)
        if scope is not None:
            scope = check.scope(scope)
            self.access.require(caller, scope, READ)
            rows = self.quotas.usage([scope])
            if not rows:
                raise NotFound(f"scope {scope} does not exist yet (nothing was stored in it)")
            return rows[0]
        names = self.access.readable(caller)
        result = {"scopes": self.quotas.usage(names)}
        if names is None:
            result["system"] = self.quotas.totals()
        return result

    def set_quota(self, caller, scope, tokens=None, items=None):
        """Set a scope's quota (tokens, items: a number, 'max' or None for the default); shell/system only."""
        caller = check.principal(caller)
        scope = check.scope(scope)
        if not acl.privileged(caller):
            raise PermissionDenied(f"{caller} may not set quotas: only the shell or system sets them")
        tokens, items = check.quota_value(tokens, "tokens"), check.quota_value(items, "items")
        with self.db.atomic():
            scope_id, _ = self.access.ensure(scope)
            self.quotas.set(scope_id, tokens, items)
            self._journal(caller, scope, "ctx.quota", {"tokens": tokens, "items": items})
            compactions = self._maybe_compact(scope_id, caller)
        result = self.quotas.usage([scope])[0]
        if compactions:
            result["compactions"] = compactions
        return result

    def pressure(self, caller, principal=None):
        """Context pressure (PSI-like) of a principal (default: the caller; '*' or for the shell: system-wide)."""
        caller = check.principal(caller)
        if principal is None:
            principal = "*" if acl.privileged(caller) else caller
        if principal != "*":
            check.principal(principal, "principal")
        if principal != caller and not acl.privileged(caller):
            raise PermissionDenied(f"{caller} may read only its own pressure, not {principal}'s")
        window = self.pressure_window.report(principal)
        if principal == "*":
            scopes = self.quotas.usage()
        else:
            owned = self.access.owned(principal)
            scopes = self.quotas.usage(owned) if owned else []
        worst = max((s["storage_pressure"] for s in scopes), default=0.0)
        return {"principal": "system" if principal == "*" else principal, "window": window,
                "storage": {"max_pressure": worst, "over_quota": [s["scope"] for s in scopes
                                                                  if s["storage_pressure"] > 1.0],
                            "scopes": scopes},
                "psi": [f"storage max={worst:.2f}"] + psi_lines(window)}

    # ----------------------------------------------------------- compaction

    def compact(self, caller, scope, tokens_target=None, items_target=None):
        """Compact a scope now (default: down to 75% of its quota); return the compactions made."""
        caller = check.principal(caller)
        scope = check.scope(scope)
        self.access.require(caller, scope, WRITE)
        hit = self.access.lookup(scope)
        if hit is None:
            raise NotFound(f"scope {scope} does not exist")
        if tokens_target is not None:
            check.positive_int(tokens_target, "tokens_target", allow_zero=True)
        if items_target is not None:
            check.positive_int(items_target, "items_target", allow_zero=True)
        made = self.compactor.compact(hit[0], caller, tokens_target, items_target)
        return {"scope": scope, "compactions": [self._compaction(c) for c in made]}

    def compacted(self, caller, scope=None, since=None, limit=100):
        """Compactions in the caller's readable scopes (newest first): what each replaced, and its state."""
        caller = check.principal(caller)
        ids = self._readable_ids(caller, scope)
        if ids == []:
            return []
        where, params = ["created_at >= ?"], [check.timestamp(since, "since") or 0.0]
        if ids is not None:
            where.append(f"scope_id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        rows = self.db.all(f"SELECT id FROM compactions WHERE {' AND '.join(where)} "
                           "ORDER BY created_at DESC, id DESC LIMIT ?", (*params, check.limit(limit)))
        return [self._compaction(r[0]) for r in rows]

    def _compaction(self, compaction_id):
        row = self.db.one("SELECT id, scope_id, created_at, actor, summariser, summary_id, items, tokens, "
                          "summary_tokens, journal_seq, restored_at, restored_by, purged_at "
                          "FROM compactions WHERE id = ?", (compaction_id,))
        keys = ("id", "scope", "created_at", "actor", "summariser", "summary_id", "items", "tokens",
                "summary_tokens", "journal_seq", "restored_at", "restored_by", "purged_at")
        result = dict(zip(keys, row))
        result["scope"] = self.access.name_of(row[1])
        result["replaced"] = [r[0] for r in self.db.all(
            "SELECT memory_id FROM compaction_members WHERE compaction_id = ? ORDER BY memory_id", (row[0],))]
        result["state"] = "purged" if row[12] else "restored" if row[10] else "compacted"
        return result

    def restore(self, caller, compaction_id):
        """Bring back what a compaction replaced; its summary is retired (forgotten)."""
        caller = check.principal(caller)
        row = self.db.one("SELECT scope_id FROM compactions WHERE id = ?",
                          (check.ident(compaction_id, "compaction_id"),))
        if row is None:
            raise NotFound(f"compaction {compaction_id} does not exist")
        self.access.require(caller, self.access.name_of(row[0]), WRITE)
        return self.compactor.restore(compaction_id, caller)

    def compactions_since(self, after_id=None):
        """(the newest compaction's id, ids of the compactions made in this store, not imported, after
        after_id, oldest first): how aetherd follows new compactions (after_id=None: where to start)."""
        return self.compactor.made_after(after_id)

    def summary_request(self, compaction_id):
        """For aetherd's model summariser: a compaction's originals and the tokens a new summary's
        text may use; Conflict when its summary may no longer be replaced (restored, purged,
        summary compacted, forgotten or pinned)."""
        return self.compactor.summary_request(check.ident(compaction_id, "compaction_id"))

    def resummarise(self, caller, compaction_id, summary_id, text, summariser, model_tokens=None):
        """Supersede a compaction's summary (if it is still summary_id, live and unpinned) with text
        under the same header; the old one is forgotten. Shell/system only (aetherd's model summariser)."""
        caller = check.principal(caller)
        if not acl.privileged(caller):
            raise PermissionDenied(f"{caller} may not replace summaries: only the shell or system does")
        text = check.text(text)
        if not isinstance(summariser, str) or not 0 < len(summariser) <= 200:
            raise InvalidArgument(f"summariser={summariser!r}: give the summariser's name (1 to 200 characters)")
        if model_tokens is not None:
            check.positive_int(model_tokens, "model_tokens", allow_zero=True)
        return self.compactor.supersede(check.ident(compaction_id, "compaction_id"),
                                        check.ident(summary_id, "summary_id"), text, summariser, caller,
                                        model_tokens)

    # ---------------------------------------------------------- model spend

    def spend_accounts(self):
        """Every model-token account (ctx/spend.py); aetherd's ledger only, never the ABI."""
        return spend_rows.load(self.db)

    def spend_save(self, rows):
        """Write accounts durably (one transaction): acknowledged when this returns."""
        spend_rows.save(self.db, rows, self.clock)

    def spend_delete(self, principal):
        spend_rows.delete(self.db, principal)

    def purge(self, caller, older_than=None, scope=None):
        """Remove the text of items compacted or forgotten more than older_than seconds ago
        (default: the retention policy); tombstones stay. Shell/system, or an owner for its scope."""
        caller = check.principal(caller)
        if scope is None and not acl.privileged(caller):
            raise PermissionDenied(f"{caller} may purge only a scope it owns: give scope=")
        ids = None
        if scope is not None:
            scope = check.scope(scope)
            self.access.require_owner(caller, scope, "purge")
            ids = [self.access.lookup(scope)[0]]
        if older_than is None:
            policy = self.db.meta("retention_seconds")
            if policy is None:
                raise InvalidArgument("older_than: no retention policy is set; give older_than (seconds) "
                                      "or set a policy with ctx.set_retention(seconds)")
            older_than = float(policy)
        older_than = check.seconds(older_than, "older_than")
        return self.compactor.purge(self.clock() - older_than, ids, caller)

    def set_retention(self, caller, seconds):
        """Set (seconds) or clear (None) the retention policy purge() applies by default; shell/system only."""
        caller = check.principal(caller)
        if not acl.privileged(caller):
            raise PermissionDenied(f"{caller} may not set the retention policy: only the shell or system")
        with self.db.atomic():
            if seconds is None:
                self.db.execute("DELETE FROM meta WHERE key = 'retention_seconds'")
            else:
                self.db.set_meta("retention_seconds", check.seconds(seconds, "seconds"))
            self._journal(caller, "system", "ctx.retention", {"seconds": seconds})
        return {"retention_seconds": seconds}
