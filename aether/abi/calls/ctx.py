"""ctx.*: the context store (aether/ctx; docs/context-store.md), served from aetherd.

The caller's principal comes from the kernel (identity.py); the store checks
every grant.  Writes that arrive in the same pass of aetherd's loop are
committed together (``run_batch``: one fsync acknowledges all of them), and a
caller gets its answer only after that commit: an answered write is durable.

Paths for export and import are opened beneath the caller's tree
(aether/safepath.py): an agent's own home, ``/`` for the privileged.  The export
is written to a new temporary file (``O_EXCL``) in the directory so opened and
renamed over the name, so a link planted at the name or at ``<name>.tmp`` leads
nowhere; an agent's export belongs to its uid and counts against its disk quota.

Disk quotas (``disk_quota``): an agent's manifest ``limits.disk`` bounds its
home plus its rows in the store; other unprivileged principals get
DEFAULT_DISK_QUOTA for their rows; the system, the shell and the host have none.
"""

import os

from ..methods import ANY, PRIVILEGED, PUBLIC, Method, obj
from .. import checks
from ..protocol import AbiError, Internal, InvalidParams, NotFound, PermissionDenied, Unavailable, from_error
from ..deferred import Deferred
from ... import diskspace, safepath
from ...ctx import journal as jr, validate as limits
from ...ctx.errors import ContextError, QuotaPending

DEFAULT_DISK_QUOTA = 64 << 20      # bytes, for principals without a manifest (the manifest's default too)

def as_abi_error(e):
    """The ABI error for a store error (aether.errors.WIRE_CODES); the store's own code in data."""
    return from_error(e, {"ctx_code": getattr(e, "code", None)}, default=Unavailable)


def _store(d):
    if d.store is None:
        raise Unavailable(d.store_problem or "the context store is not open")
    return d.store


class Batcher:
    """Group the writes of one loop pass into one transaction (one fsync).

    ``on_commit()`` runs after each batch that committed (and was answered).
    """

    def __init__(self, d, on_commit=None):
        self.d, self.on_commit = d, on_commit
        self.pending = []

    def submit(self, name, kwargs):
        deferred = Deferred()
        if not self.pending:
            self.d.loop.call_later(0, self.flush)
        self.pending.append((name, kwargs, deferred))
        return deferred

    def flush(self):
        pending, self.pending = self.pending, []
        if not pending:
            return
        try:
            results = _store(self.d).run_batch([(name, kwargs) for name, kwargs, _ in pending])
        except Exception as e:  # noqa: BLE001 - the whole batch failed: nothing was written
            error = as_abi_error(e) if hasattr(e, "code") else Internal(str(e))
            for _n, _k, deferred in pending:
                deferred.fail(error)
            return
        for (_name, _kwargs, deferred), (status, value) in zip(pending, results):
            if status == "ok":
                deferred.resolve(value)
            else:
                deferred.fail(as_abi_error(value))
        if self.on_commit is not None:
            self.on_commit()


def _tree(d, caller):
    """The tree a caller's export and import paths are walked beneath (a safepath.Beneath)."""
    if caller.privileged:
        return safepath.Beneath("/", confined=False)
    if not caller.agent:
        raise PermissionDenied(f"{caller.principal} has no directory of its own to export to; "
                               "export from the shell, or as an agent into its home")
    home = d.supervisor.home(caller.agent)
    try:
        return safepath.Beneath(home)
    except OSError as e:
        raise Unavailable(f"the home {home} of {caller.principal} cannot be opened: {e.strerror}") from None


def _path_error(caller, path, e):
    if isinstance(e, safepath.Refused):
        return PermissionDenied(f"{caller.principal} may use files only inside its own directory: "
                                f"{path!r}: {e} (rule: {e.rule})", {"rule": e.rule})
    from ...tools.paths import oserror_tool_error
    if isinstance(e, FileNotFoundError):
        return NotFound(f"{e.filename or path} does not exist")
    mapped = oserror_tool_error(e, e.filename or path)
    return {"invalid_arguments": InvalidParams, "permission_denied": PermissionDenied,
            "unavailable": Unavailable}.get(mapped.code, Unavailable)(str(mapped))


def export(d, caller, params, conn):
    """ctx.export: the file written beneath the caller's tree, as its uid, within its quota."""
    params = dict(params)
    if not caller.privileged and "scopes" not in params and caller.agent:
        params["scopes"] = [caller.principal]        # an agent's export: its own scope
    path = params.pop("path")
    store = _store(d)
    with _tree(d, caller) as tree:
        try:
            dir_fd, name, names = tree.walk(path, last="keep")
        except (safepath.Refused, OSError) as e:
            raise _path_error(caller, path, e) from None
        try:
            shown = tree.shown(names + [name]) if name else tree.shown(names)
            owner, limit = None, None
            if not caller.privileged:
                if caller.uid is not None and os.geteuid() == 0:
                    owner = (caller.uid, caller.gid if caller.gid is not None else -1)
                try:
                    limit = _room(d, caller, tree.top)
                except ContextError as e:        # the quota is being measured: busy, say why
                    raise as_abi_error(e) from None
            return _run(store.export, caller.principal, shown, target=(dir_fd, name), owner=owner,
                        max_bytes=limit, **params)
        finally:
            os.close(dir_fd)


def import_(d, caller, params, conn):
    """ctx.import: the file opened beneath the caller's tree (no link followed by the kernel)."""
    params = dict(params)
    path = params.pop("path")
    store = _store(d)
    if not caller.privileged:
        raise PermissionDenied(f"{caller.principal} may not import: only the shell or system imports context")
    with _tree(d, caller) as tree:
        try:
            fd, shown, _st = tree.open_file(path)
        except (safepath.Refused, OSError) as e:
            raise _path_error(caller, path, e) from None
    with open(fd, "rb") as f:
        return _run(store.import_, caller.principal, shown, file=f, **params)


def _run(method, *args, **kwargs):
    try:
        return method(*args, **kwargs)
    except Exception as e:
        if hasattr(e, "code") and type(e).__module__.startswith("aether.ctx"):
            raise as_abi_error(e) from None
        raise


def _room(d, caller, home):
    """Bytes an agent's export may take: what its quota and the disk's reserve leave."""
    left = disk_quota(d)(caller.principal)
    try:
        st = os.statvfs(home)
        free = diskspace.free_bytes(st, system=False)
    except OSError:
        free = None
    choices = [n for n in (left, free) if n is not None]
    return max(0, min(choices)) if choices else None


def agent_disk_limit(d, name):
    """The manifest's limits.disk of agent ``name`` (the default when it has none)."""
    agent = d.supervisor.agents.get(name)
    limit = getattr(getattr(agent, "manifest", None), "limits_disk", None)
    return limit if isinstance(limit, int) else DEFAULT_DISK_QUOTA


def store_options(d, path):
    """aetherd's ContextStore options: read-only when the disk is, the disk quotas, the reserve."""
    try:
        reserve = diskspace.reserve_bytes(os.statvfs(os.path.dirname(path)))
    except OSError:
        reserve = 0
    return {"read_only": "auto", "disk_quota": disk_quota(d), "reserve_bytes": reserve}


def disk_quota(d):
    """The store's ``disk_quota(principal)``: bytes its rows may still grow to (None: no quota).

    An agent's quota is shared between its home and the store: what its home holds
    is taken off."""
    def quota(principal):
        if principal in ("system", "host") or principal.startswith("shell"):
            return None
        if principal.startswith("agent:"):
            name = principal[len("agent:"):]
            home = os.path.realpath(d.supervisor.home(name))
            try:
                return agent_disk_limit(d, name) - diskspace.tree_bytes(home)
            except diskspace.Measuring as e:         # this write alone waits; the batch goes on
                raise QuotaPending(f"{principal}'s disk quota is its home plus its rows here, and {e}") from None
        return DEFAULT_DISK_QUOTA
    return quota


def call(name, write=False):
    """A handler that runs store.<name>(principal, **params)."""
    attr = "import_" if name == "import" else name

    def handler(d, caller, params, conn):
        params = dict(params)
        if name == "export" and not caller.privileged and "scopes" not in params and caller.agent:
            params["scopes"] = [caller.principal]        # an agent's export: its own scope
        if write:
            return d.batcher.submit(attr, {"caller": caller.principal, **params})
        try:
            return getattr(_store(d), attr)(caller.principal, **params)
        except Exception as e:
            if hasattr(e, "code") and type(e).__module__.startswith("aether.ctx"):
                raise as_abi_error(e) from None
            raise
    return handler


def info(d, caller, params, conn):
    return {**_store(d).info(), "model_compaction": d.resummariser.report()}


def _mapped(e):
    """What a check's step raised, as the ABI error its callers get."""
    if isinstance(e, AbiError):
        return e
    if hasattr(e, "code") and type(e).__module__.startswith("aether.ctx"):
        return as_abi_error(e)
    return Internal(f"the check failed ({type(e).__name__}: {e})")


def chain_and_digests(d, caller, expected_head=None):
    """A Deferred answering ctx.verify's result: the journal's chain (one run for every caller,
    aether/abi/checks.py) checked against the caller's ``expected_head``, and the digests of the
    memories the caller may read (one run per principal), a slice per loop turn."""
    store = _store(d)
    try:
        anchor = jr.anchor(expected_head)
    except ContextError as e:
        raise as_abi_error(e) from None
    running, who, privileged = checks.of(d, _mapped), caller.principal, caller.privileged
    running.admit([("journal",), ("digests", who)], who, "journal's hash chain and memory digests", privileged)
    # The run covers the journal as it is when the last of its callers joined (``until``, raised
    # here), so a caller's expected_head from a verify just before is always inside it.
    head = store.db.one("SELECT max(seq) FROM journal")[0] or 0
    until = d.__dict__.setdefault("journal_check_until", [0])
    if ("journal",) in running.runs:
        until[0] = max(until[0], head)

    def chain_steps():
        until[0] = head
        return jr.verify_steps(store.db, until=until)
    chain = running.join(("journal",), chain_steps, who, "journal's hash chain", privileged)
    digests = running.join(("digests", who), lambda: store.check_digests_steps(who), who,
                           "check of memory digests", privileged)

    def combine(found):
        chain_result, digest_result = found
        try:
            result = dict(jr.check_anchor(store.db, chain_result, anchor))
        except Exception as e:
            raise _mapped(e) from None
        result["digests"] = digest_result
        result["ok"] = bool(result.get("ok")) and digest_result["ok"]
        return result
    return checks.then(checks.both(chain, digests), combine)


def verify(d, caller, params, conn):
    return chain_and_digests(d, caller, params.get("expected_head"))


def check(d, caller, params, conn):
    """SQLite's integrity check, the journal's hash chain and the stored digests, in one answer.
    The integrity check is one SQLite call (it holds the loop: privileged callers only); the
    chain and the digests run a slice at a time."""
    store = _store(d)
    integrity = store.db.integrity_check()

    return checks.then(chain_and_digests(d, caller),
                       lambda chain: {"integrity": integrity, "chain": chain, "digests": chain["digests"]})


# Built from the store's own limits (aether/ctx/validate.py; tests/unit/test_ctx_limits.py checks
# they agree): nothing the store accepts is refused here, and no name or list is unbounded.
SCOPE = {"type": "string", "maxLength": limits.MAX_SCOPE}        # a scope or a principal
WORD = {"type": "string", "maxLength": limits.MAX_NAME}          # a kind, a status, a tag
TEXT = {"type": "string", "maxLength": limits.MAX_TEXT_BYTES}    # characters: the store counts UTF-8 bytes
TAGS = {"type": "array", "items": WORD, "maxItems": limits.MAX_TAGS}
LIMIT = {"type": "integer", "minimum": 1, "maximum": limits.MAX_LIMIT}
INT = {"type": "integer", "minimum": 0}
ID = {"type": "integer", "minimum": 1}
NUM = {"type": "number"}
SCOPES = {"type": "array", "items": SCOPE, "maxItems": 100}
ANYV = {"type": ["object", "array", "string", "number", "integer", "boolean", "null"]}

# name -> (params schema, write?, path params (opened by HANDLERS beneath the caller's tree), doc)
CALLS = {
    "append": (obj(["kind"], kind=WORD, body=ANYV, scope=SCOPE, goal_id=ID), True, (),
               "append an entry to the hash-chained journal"),
    "journal": (obj(scope=SCOPE, kind=WORD, goal_id=ID, after_seq=INT, since=NUM, until=NUM,
                    limit=LIMIT,
                    newest_first={"type": "boolean"}), False, (), "read journal entries"),
    "verify": (obj(expected_head={"type": "object"}), False, (),
               "check the journal's hash chain; says where it breaks"),
    "remember": (obj(["text"], text=TEXT, kind=WORD, scope=SCOPE, tags=TAGS,
                     importance={"type": "number", "minimum": 0, "maximum": 1},
                     pinned={"type": "boolean"}), True, (), "store a memory in a scope"),
    "forget": (obj(["memory_id"], memory_id=ID), True, (), "forget a memory (recoverable until purged)"),
    "pin": (obj(["memory_id"], memory_id=ID, pinned={"type": "boolean"}), True, (),
            "pin or unpin a memory: pinned items come first in every window"),
    "recall": (obj(["memory_id"], memory_id=ID), False, (), "one memory by id"),
    "search": (obj(query={"type": "string", "maxLength": 2000}, scopes=SCOPES,
                   kinds={"type": "array", "items": WORD, "maxItems": 100}, state=WORD,
                   limit={"type": "integer", "minimum": 1, "maximum": 1000}), False, (),
               "full-text search over memories"),
    "window": (obj(query={"type": "string", "maxLength": 2000},
                   budget_tokens={"type": "integer", "minimum": 1, "maximum": limits.MAX_BUDGET_TOKENS},
                   scopes=SCOPES), False, (),
               "the best items for the caller under a token budget, and what was left out and why"),
    "create_goal": (obj(["intent"], intent=TEXT, plan=TEXT, steps={"type": "array", "items": TEXT},
                        scope=SCOPE), True, (), "record an intent and its plan"),
    "add_step": (obj(["goal_id", "description"], goal_id=ID, description=TEXT), True, (),
                 "add a step to a goal"),
    "update_step": (obj(["goal_id", "step", "status"], goal_id=ID, step=INT, status=WORD, outcome=ANYV),
                    True, (), "record a step's status and outcome"),
    "update_goal": (obj(["goal_id"], goal_id=ID, status=WORD, plan=TEXT, outcome=ANYV), True, (),
                    "record a goal's status, plan or outcome"),
    "goal": (obj(["goal_id"], goal_id=ID, history={"type": "boolean"}), False, (), "one goal with its steps"),
    "goals": (obj(scope=SCOPE, status=WORD, limit={"type": "integer", "minimum": 1, "maximum": 1000}),
              False, (), "goals, newest first"),
    "usage": (obj(scope=SCOPE), False, (), "items and tokens used against quota, per scope"),
    "set_quota": (obj(["scope"], scope=SCOPE, tokens=INT, items=INT), True, (), "set a scope's quota"),
    "pressure": (obj(principal=SCOPE), False, (), "context pressure (demand against budget), PSI-style"),
    "compact": (obj(["scope"], scope=SCOPE, tokens_target=INT, items_target=INT), True, (),
                "compact old, low-importance items into summaries (originals kept)"),
    "compacted": (obj(scope=SCOPE, since=NUM, limit={"type": "integer", "minimum": 1, "maximum": 1000}),
                  False, (), "what compaction replaced, and when"),
    "restore": (obj(["compaction_id"], compaction_id=ID), True, (), "bring compacted originals back"),
    "purge": (obj(older_than=NUM, scope=SCOPE), False, (),
              "delete compacted and forgotten originals past the retention policy"),
    "set_retention": (obj(["seconds"], seconds=NUM), False, (), "how long originals are kept"),
    "create_scope": (obj(["scope"], scope=SCOPE, owner=SCOPE, quota_tokens=INT, quota_items=INT), True, (),
                     "create a shared scope"),
    "scopes": (obj(), False, (), "the scopes the caller may read"),
    "grant": (obj(["scope", "grantee"], scope=SCOPE, grantee=SCOPE,
                  mode={"type": "string", "enum": ["read", "read-write"]}), True, (),
              "share a scope with another principal"),
    "revoke": (obj(["scope", "grantee"], scope=SCOPE, grantee=SCOPE), True, (), "take a grant back"),
    "grants": (obj(scope=SCOPE), False, (), "grants on the caller's scopes"),
    "export": (obj(["path"], path={"type": "string", "maxLength": 4096}, scopes=SCOPES), False, ("path",),
               "write one scope (or everything) to a single file"),
    "import": (obj(["path"], path={"type": "string", "maxLength": 4096},
                   on_conflict={"type": "string", "enum": ["refuse", "merge"]},
                   rename={"type": "object"}), False, ("path",), "read an export file into this store"),
    "as_of": (obj(["scope", "at"], scope=SCOPE, at=NUM, limit=LIMIT),
              False, (), "what a scope held at an earlier time"),
}

# Calls that change nothing: a plain local uid may make them (the store shows it what it was granted).
READS = frozenset({"journal", "verify", "recall", "search", "window", "goal", "goals", "usage", "pressure",
                   "compacted", "scopes", "grants", "as_of"})
HANDLERS = {"export": export, "import": import_,     # calls that open a path the caller named
            "verify": verify}                         # ... and the long check (a slice per loop turn)
METHODS = [Method(f"ctx.{name}", HANDLERS.get(name) or call(name, write), schema,
                  PUBLIC if name in READS else ANY, doc)
           for name, (schema, write, _paths, doc) in CALLS.items()]
METHODS.append(Method("ctx.info", info, obj(), PUBLIC,
                      "where the store lives, whether it is durable (a data disk) or in memory, its journal "
                      "head, and what rewriting summaries with the model did and cost"))
METHODS.append(Method("ctx.check", check, obj(), PRIVILEGED,
                      "PRAGMA integrity_check, the journal's hash chain and every stored digest"))
