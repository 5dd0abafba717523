"""The built-in tools: what replaces the userland, served by the ABI as ``tool.list`` and
``tool.call``.

One module per group (files, processes, network, clock, disk, fetch); each tool has a
dotted name, a one-line description (the first line of its function's docstring) and
longer ``doc``, a JSON schema for its arguments (aether.schema's subset), a risk flag,
and a function ``(caller, args) -> JSON-serialisable result``.

``call(caller, name, args)`` validates the arguments before anything runs, runs the
tool, and returns its result or raises a ToolError subclass (``code`` is stable,
``to_dict()`` is ready for the wire).  It never raises anything else: an OSError
comes out as the error its errno names (ENAMETOOLONG: invalid_arguments; ENOSPC,
EROFS, timeouts, DNS failures: unavailable; EACCES: permission_denied), and an
unexpected exception inside a tool as ToolFailed naming the tool.

Heavy modules (base64, fnmatch, socket, the HTTP client) load inside the tools that
use them, so importing this package stays cheap.
"""

from . import core
from .core import (AlreadyExists, Caller, FetchFailed, InvalidArguments, NotFound,
                   PermissionDenied, ToolError, ToolFailed, TooLarge, UnknownTool, Unavailable)
from . import clock, disk, fetch, files, network, processes  # noqa: F401  (they register)
from .paths import WrongType

__all__ = ["Caller", "ToolError", "UnknownTool", "InvalidArguments", "PermissionDenied",
           "NotFound", "AlreadyExists", "TooLarge", "Unavailable", "FetchFailed", "ToolFailed",
           "WrongType", "list_tools", "get", "call", "is_risky", "validate"]


def list_tools():
    """[{name, description, doc, schema, risky[, risky_if]}] sorted by name, for tool.list."""
    return [core.REGISTRY[name].describe() for name in sorted(core.REGISTRY)]


def get(name):
    """The Tool called ``name``, or UnknownTool listing the names closest to it."""
    if not isinstance(name, str):
        raise UnknownTool(f"a tool name is a string like 'files.read', not {core._schema.show(name)}")
    found = core.REGISTRY.get(name)
    if found is None:
        close = close_names(name)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise UnknownTool(f"unknown tool {name[:80]!r}{hint} (tool.list lists them all)",
                          suggestions=close)
    return found


def validate(name, args):
    """The arguments of tool ``name`` checked, with defaults filled in; InvalidArguments if bad."""
    tool = get(name)
    if args is None:
        args = {}
    try:
        return core._schema.validate(tool.schema, args, "args")
    except core.ValidationError as e:
        raise core.validation_error(e) from None


def is_risky(name, args):
    """Would this call be risky (the shell asks first)?  Judged on validated arguments."""
    return get(name).is_risky(validate(name, args))


def call(caller, name, args):
    """Run tool ``name`` for ``caller``: the result, or a ToolError subclass, nothing else."""
    tool = get(name)
    checked = validate(name, args)
    try:
        return tool.func(caller, checked)
    except ToolError:
        raise
    except OSError as e:     # named by its errno: the caller's mistake, or the system's state
        what = f"{name}: {e.filename}" if isinstance(e.filename, str) else name
        raise files.oserror_tool_error(e, what) from None
    except Exception as e:  # a bug in a tool must not take the ABI server down
        raise ToolFailed(f"{name} failed unexpectedly: {type(e).__name__}: {e}", tool=name) from e


def close_names(name, limit=3):
    """Registered names within a small edit distance of ``name``, closest first."""
    scored = sorted((_distance(name.lower(), known), known) for known in core.REGISTRY)
    cutoff = max(2, len(name) // 3)
    same_group = [k for k in sorted(core.REGISTRY) if k.split(".")[0] == name.split(".")[0]]
    found = [known for score, known in scored if score <= cutoff]
    return (found or same_group)[:limit]


def _distance(a, b):
    """Levenshtein distance (names are short)."""
    a, b = a[:64], b[:64]
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]
