"""package.*: deploy agent packages (begin, chunk, commit, abort), roll back, remove, list versions.

The privileged only (the shell and the host): a package says what runs, as its own
agent.  The logic lives in aether/packages/deploy.py; this module maps it to the ABI.
"""

from ...agent.manifest import GRANTS
from ...packages import deploy, staging
from ..methods import NAME, PRIVILEGED, Method, obj
from ..protocol import Busy, Conflict, Internal, InvalidParams, Unavailable
from ..deferred import Deferred

ERRORS = {"invalid": InvalidParams, "conflict": Conflict, "busy": Busy, "unavailable": Unavailable,
          "not_found": Conflict, "budget": Conflict, "permission": Conflict, "failed": Conflict}


def _abi(e):
    return ERRORS.get(getattr(e, "kind", ""), Conflict)(str(e))


def _call(fn, *args):
    try:
        return fn(*args)
    except staging.DeployError as e:
        raise _abi(e) from None


def begin(d, caller, params, conn):
    return _call(deploy.of(d).begin, caller, conn, params["size"], params["sha256"])


def chunk(d, caller, params, conn):
    return _call(deploy.of(d).chunk, caller, params["offset"], params["data"])


def abort(d, caller, params, conn):
    return deploy.of(d).abort(caller)


def _deferred(start):
    """Run start(answer); answer with its result or error (a DeployError becomes an ABI error).
    An answer given at once (before the server binds the Deferred) is returned directly."""
    result, early = Deferred(), []

    def answer(value, error):
        if error is not None:
            error = _abi(error) if isinstance(error, staging.DeployError) else Internal(str(error))
        if not bound:
            return early.append((value, error))
        result.resolve(value) if error is None else result.fail(error)
    bound = False
    _call(start, answer)
    if early:
        value, error = early[0]
        if error is not None:
            raise error
        return value
    bound = True
    return result


def commit(d, caller, params, conn):
    return _deferred(lambda answer: deploy.of(d).commit(caller, answer, params.get("allow") or ()))


def rollback(d, caller, params, conn):
    return _deferred(lambda answer: deploy.of(d).rollback(caller, params["name"], answer))


def remove(d, caller, params, conn):
    return _deferred(lambda answer: deploy.of(d).remove(caller, params["name"], answer))


def listing(d, caller, params, conn):
    return deploy.of(d).listing()


SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "sha256 of the whole archive, hex"}
METHODS = [
    Method("package.begin", begin,
           obj(["size", "sha256"], size={"type": "integer", "minimum": 1, "maximum": staging.MAX_BYTES},
               sha256=SHA256), PRIVILEGED,
           "start uploading a NAME-VERSION.aether archive of size bytes (one upload per caller; "
           f"at most {staging.MAX_BYTES >> 20} MiB, and it must fit on the data partition); answers "
           "with chunk_bytes"),
    Method("package.chunk", chunk,
           obj(["offset", "data"], offset={"type": "integer", "minimum": 0},
               data={"type": "string", "maxLength": (staging.CHUNK_BYTES * 4) // 3 + 4,
                     "description": "base64 of the next bytes of the archive"}), PRIVILEGED,
           "the next chunk of the upload, at the offset where the last one ended"),
    Method("package.commit", commit,
           obj(allow={"type": "array", "maxItems": len(GRANTS),
                      "items": {"type": "string", "enum": list(GRANTS)}}), PRIVILEGED,
           "verify the upload (its sha256, every file's hash, the manifest, the disk space; a manifest "
           "that asks for grants (root, net, unconfined) is refused unless allow names each), install "
           "it under agents/<name>/<version>/, stop the running version and start this one; answers "
           "once it runs, or fails (then the previous version is started again); the same version "
           "again changes nothing"),
    Method("package.abort", abort, obj(), PRIVILEGED, "drop the caller's upload in progress"),
    Method("package.rollback", rollback, obj(["name"], name=NAME), PRIVILEGED,
           "make the version before the current one current again and start it (the current one "
           "stays installed)"),
    Method("package.remove", remove, obj(["name"], name=NAME), PRIVILEGED,
           "stop a deployed agent, take it out of the table and uninstall every version of it "
           "(its home and its name stay: a later deploy of that name is its again)"),
    Method("package.list", listing, obj(), PRIVILEGED,
           "every deployed agent: its current version, its state, the versions installed (sha256, "
           "size, status) and the order they were made current in"),
]
