"""Who may read and write which scope.

Principals are the callers' kernel identities, as the ABI server learned them
from the socket (SO_PEERCRED -> the agent's cgroup, aether.abi.identity):
``agent:<name>``, ``shell`` / ``shell:<tty>`` (the person at the console),
``host`` (the host's virtio-serial channel), ``system`` (aetherd itself) and
``uid:<n>`` (another local process).  The shell, host and system are
*privileged*: they see and may change everything.  A ``uid:<n>`` caller has
no scope of its own: it sees what it was granted.

Scopes hold memories, goals and journal entries:

* ``agent:<name>`` is owned by the principal of the same name and created
  on first use;
* ``shared:<name>`` is created explicitly (``create``) and owned by its
  creator;
* ``user`` (the console user's own memories) and ``system`` are owned by the
  shell and by system.

An owner reads and writes its scope and may grant others ``read`` or
``read-write`` on it (and revoke); a grant is the only way one agent sees
another's context.  Every refusal is a PermissionDenied naming the caller,
the scope and the grant that is missing.
"""

from .errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from .validate import GRANT_MODES, choice, principal, scope as check_scope

READ, WRITE = "read", "read-write"


def privileged(caller):
    """The shell, the host's channel and aetherd itself see everything."""
    return caller in ("system", "host", "shell") or caller.startswith("shell:")


def home(caller):
    """The scope a caller's writes go to when it names none (None for a uid:<n> caller)."""
    if caller.startswith("agent:"):
        return caller
    if caller.startswith("uid:"):
        return None
    return "system" if caller == "system" else "user"


def natural_owner(scope_name):
    """The owner a scope gets when it is created implicitly, or None if it must be created."""
    if scope_name.startswith("agent:"):
        return scope_name
    return {"system": "system", "user": "shell"}.get(scope_name)


class Access:
    """Scopes, their owners and grants, and the permission checks."""

    def __init__(self, db, clock):
        self.db, self.clock = db, clock
        self._ids = {}            # scope name -> (id, owner); scopes are never deleted
        self._names = {}          # scope id -> name

    # ---------------------------------------------------------------- scopes

    def lookup(self, name):
        """(id, owner) of a scope, or None if it does not exist."""
        hit = self._ids.get(name)
        if hit is None:
            row = self.db.one("SELECT id, owner FROM scopes WHERE name = ?", (name,))
            if row is None:
                return None
            hit = self._ids[name] = (row[0], row[1])
            self._names[row[0]] = name
        return hit

    def name_of(self, scope_id):
        """The name of a scope id (None if there is no such scope)."""
        name = self._names.get(scope_id)
        if name is None:
            row = self.db.one("SELECT name FROM scopes WHERE id = ?", (scope_id,))
            if row is not None:
                name = self._names[scope_id] = row[0]
        return name

    def ensure(self, name, owner=None):
        """The scope's (id, owner), creating an implicit scope (agent:*, user, system) on first use."""
        hit = self.lookup(name)
        if hit is not None:
            return hit
        owner = owner or natural_owner(name)
        if owner is None:
            raise NotFound(f"scope {name} does not exist; create it first with "
                           f"ctx.create_scope(scope={name!r})")
        return self._create(name, owner)

    def create(self, caller, name, owner=None):
        """Create a shared scope owned by the caller (or, for the privileged, by owner)."""
        check_scope(name)
        if owner is not None:
            principal(owner, "owner")
            if not privileged(caller) and owner != caller:
                raise PermissionDenied(f"{caller} may not create {name} for {owner}: only the shell "
                                       "or system creates scopes owned by someone else")
        if self.lookup(name) is not None:
            raise Conflict(f"scope {name} already exists (owner {self.lookup(name)[1]})")
        implicit = natural_owner(name)
        if implicit is not None and not privileged(caller) and caller != implicit:
            raise PermissionDenied(f"{caller} may not create {name}: it belongs to {implicit}")
        if implicit is not None and owner not in (None, implicit):
            raise InvalidArgument(f"owner={owner!r}: {name} always belongs to {implicit}")
        return self._create(name, owner or implicit or caller)

    def _create(self, name, owner):
        with self.db.atomic():
            cur = self.db.execute("INSERT INTO scopes(name, owner, created_at) VALUES (?, ?, ?)",
                                  (name, owner, self.clock()))
            self.db.on_rollback(self.forget_cache)
        self._ids[name] = (cur.lastrowid, owner)
        self._names[cur.lastrowid] = name
        return self._ids[name]

    def forget_cache(self):
        """Drop cached scope ids (after a rollback that may have undone a scope's creation)."""
        self._ids.clear()
        self._names.clear()

    # ---------------------------------------------------------------- checks

    def mode(self, caller, name):
        """'read-write', 'read' or None: what caller may do in scope name (which may not exist yet)."""
        if privileged(caller) or natural_owner(name) == caller:
            return WRITE                    # agent:<x> is always owned by agent:<x> (see create)
        hit = self.lookup(name)
        owner = hit[1] if hit else natural_owner(name)
        if owner == caller:
            return WRITE
        if hit is None:
            return None
        row = self.db.one("SELECT mode FROM grants WHERE scope_id = ? AND grantee = ?", (hit[0], caller))
        return row[0] if row else None

    def require(self, caller, name, need):
        """Raise PermissionDenied unless caller may `need` ('read' or 'read-write') scope name."""
        have = self.mode(caller, name)
        if have == WRITE or (need == READ and have == READ):
            return
        hit = self.lookup(name)
        if hit is None and natural_owner(name) is None:
            raise NotFound(f"scope {name} does not exist; create it first with "
                           f"ctx.create_scope(scope={name!r})")
        owner = hit[1] if hit else natural_owner(name)
        verb = "read" if need == READ else "write to"
        missing = "no grant" if have is None else "only a read grant"
        raise PermissionDenied(f"{caller} may not {verb} scope {name}: it has {missing} on {name}; "
                               f"{owner} or the shell can give one with ctx.grant(scope={name!r}, "
                               f"grantee={caller!r}, mode={need!r})")

    def readable(self, caller):
        """Names of the scopes caller may read, or None for all (privileged)."""
        if privileged(caller):
            return None
        owned = self.db.all("SELECT name FROM scopes WHERE owner = ?", (caller,))
        granted = self.db.all("SELECT s.name FROM grants g JOIN scopes s ON s.id = g.scope_id "
                              "WHERE g.grantee = ?", (caller,))
        names = {r[0] for r in owned} | {r[0] for r in granted}
        if caller.startswith("agent:"):
            names.add(caller)
        return sorted(names)

    def owned(self, owner):
        """Names of the scopes owner owns."""
        return [r[0] for r in self.db.all("SELECT name FROM scopes WHERE owner = ? ORDER BY name", (owner,))]

    def require_owner(self, caller, name, doing):
        """Raise unless caller owns scope name or is privileged."""
        hit = self.lookup(name)
        if hit is None:
            raise NotFound(f"scope {name} does not exist")
        if not privileged(caller) and hit[1] != caller:
            raise PermissionDenied(f"{caller} may not {doing} scope {name}: only its owner {hit[1]} "
                                   "or the shell may")
        return hit

    # ---------------------------------------------------------------- grants

    def grant(self, caller, name, grantee, mode):
        """Give grantee read or read-write on scope name (the owner or the privileged only)."""
        check_scope(name)
        principal(grantee, "grantee")
        choice(mode, "mode", GRANT_MODES)
        if privileged(grantee):
            raise InvalidArgument(f"grantee={grantee!r}: the shell and system already see every scope")
        if privileged(caller) or natural_owner(name) == caller:
            scope_id, owner = self.ensure(name)
        else:
            scope_id, owner = self.require_owner(caller, name, "grant access to")
        if grantee == owner:
            raise InvalidArgument(f"grantee={grantee!r}: {grantee} owns {name} already")
        with self.db.atomic():
            self.db.execute("INSERT INTO grants(scope_id, grantee, mode, granted_by, granted_at) "
                            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(scope_id, grantee) DO UPDATE SET "
                            "mode = excluded.mode, granted_by = excluded.granted_by, "
                            "granted_at = excluded.granted_at",
                            (scope_id, grantee, mode, caller, self.clock()))
        return {"scope": name, "grantee": grantee, "mode": mode, "granted_by": caller}

    def revoke(self, caller, name, grantee):
        """Remove grantee's grant on scope name."""
        check_scope(name)
        principal(grantee, "grantee")
        scope_id, _ = self.require_owner(caller, name, "revoke access to")
        with self.db.atomic():
            cur = self.db.execute("DELETE FROM grants WHERE scope_id = ? AND grantee = ?",
                                  (scope_id, grantee))
        if cur.rowcount == 0:
            raise NotFound(f"{grantee} has no grant on {name} to revoke")
        return {"scope": name, "grantee": grantee, "revoked_by": caller}

    def grants(self, caller, name=None):
        """Grants on one scope, or on every scope the caller owns (all of them when privileged)."""
        sql = ("SELECT s.name, g.grantee, g.mode, g.granted_by, g.granted_at FROM grants g "
               "JOIN scopes s ON s.id = g.scope_id")
        if name is not None:
            check_scope(name)
            self.require(caller, name, READ)
            rows = self.db.all(sql + " WHERE s.name = ? ORDER BY g.grantee", (name,))
        elif privileged(caller):
            rows = self.db.all(sql + " ORDER BY s.name, g.grantee")
        else:
            rows = self.db.all(sql + " WHERE s.owner = ? OR g.grantee = ? ORDER BY s.name, g.grantee",
                               (caller, caller))
        return [{"scope": r[0], "grantee": r[1], "mode": r[2], "granted_by": r[3], "granted_at": r[4]}
                for r in rows]
