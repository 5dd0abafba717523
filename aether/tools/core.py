"""The tools' vocabulary: who calls (Caller), what can go wrong (ToolError and its
kinds), and the registry the tool modules fill with the ``tool`` decorator.

A leaf module: it imports only ``aether.schema``.
"""

from .. import errors, schema as _schema

REGISTRY: dict[str, "Tool"] = {}


class Caller:
    """Who is calling a tool, as the ABI server learned it from the kernel (SO_PEERCRED).

    ``principal`` names the caller in messages ("agent:sysmon", "console:ttyS0").
    ``uid``/``gid`` own what a confined caller creates (when aetherd runs as root).
    ``root`` is the directory tree a non-privileged caller is confined to (its data
    directory); ``privileged`` is the person at the console or the host admin, who may
    touch every file except writes under /proc, /sys and /dev.
    ``owns_pid(pid) -> bool`` decides which processes a non-privileged caller may signal
    (``processes.in_cgroup(path)`` builds one for a cgroup subtree); without it, none.
    ``local_network``: may ``fetch.url`` reach this machine's own addresses (loopback,
    unspecified, link-local)?  Defaults to ``privileged``.
    ``disk_quota``: the bytes a confined caller's data directory may hold (None: no
    quota; the data disk's reserve for the system applies to every confined caller).
    """

    __slots__ = ("principal", "uid", "gid", "root", "privileged", "local_network", "_owns_pid",
                 "disk_quota")

    def __init__(self, principal, uid, root=None, privileged=False, owns_pid=None, gid=None,
                 local_network=None, disk_quota=None):
        if root is not None and not str(root).startswith("/"):
            raise ValueError(f"Caller root must be an absolute path, not {root!r}")
        self.principal, self.uid, self.gid = principal, uid, gid
        self.root = None if root is None else str(root)
        self.privileged = bool(privileged)
        self.local_network = self.privileged if local_network is None else bool(local_network)
        self._owns_pid = owns_pid
        self.disk_quota = disk_quota

    def owns_pid(self, pid):
        if self.privileged:
            return True
        return bool(self._owns_pid(pid)) if self._owns_pid is not None else False

    def __repr__(self):
        kind = "privileged" if self.privileged else f"root={self.root!r}"
        return f"Caller({self.principal!r}, uid={self.uid}, {kind})"


class ToolError(errors.AetherError):
    """A tool call failed; ``code`` is a stable machine-readable kind, str() says why."""

    code = "failed"

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details

    def to_dict(self):
        return {"code": self.code, "message": str(self), **self.details}


class UnknownTool(ToolError):
    """No tool has that name."""

    code = "unknown_tool"


class InvalidArguments(ToolError, errors.InvalidArgument):
    """The arguments do not match the tool's schema; nothing ran."""

    code = "invalid_arguments"


class PermissionDenied(ToolError, errors.PermissionDenied):
    """The caller may not do this; the message names the caller, the object and the rule."""

    code = "permission_denied"


class NotFound(ToolError, errors.NotFound):
    """The file, directory or process does not exist."""

    code = "not_found"


class AlreadyExists(ToolError, errors.Conflict):
    """The target exists and the call asked not to replace it."""

    code = "already_exists"


class TooLarge(ToolError):
    """A size limit was reached."""

    code = "too_large"


class Unavailable(ToolError):
    """This system cannot do it (no /proc, no ssl module...)."""

    code = "unavailable"


class FetchFailed(ToolError):
    """A URL could not be fetched: the name did not resolve, the server refused or timed out."""

    code = "fetch_failed"


class ToolFailed(ToolError):
    """The tool ran and failed (an OS error, or a bug reported instead of raised)."""

    code = "failed"


class Tool:
    """One built-in tool: its name, documentation, argument schema, risk and function.

    ``risky``: the call can destroy data, stop processes or send data off the machine
    (the intent shell asks first).  ``risky_if`` narrows that to argument values,
    ``{"mode": ["overwrite"]}``: risky only when ``mode`` is one of those (after defaults).
    """

    __slots__ = ("name", "description", "doc", "schema", "risky", "risky_if", "func")

    def __init__(self, name, func, schema, risky=False, risky_if=None):
        doc = (func.__doc__ or "").strip()
        self.name, self.func, self.schema = name, func, schema
        self.description, _, rest = doc.partition("\n")
        self.doc = _dedent(rest)
        self.risky, self.risky_if = bool(risky or risky_if), risky_if

    def is_risky(self, args):
        if self.risky_if is None:
            return self.risky
        return any(args.get(key) in values for key, values in self.risky_if.items())

    def describe(self):
        entry = {"name": self.name, "description": self.description, "schema": self.schema,
                 "risky": self.risky}
        if self.risky_if is not None:
            entry["risky_if"] = self.risky_if
        if self.doc:
            entry["doc"] = self.doc
        return entry


def _dedent(text):
    lines = text.strip("\n").splitlines()
    indents = [len(x) - len(x.lstrip()) for x in lines if x.strip()]
    cut = min(indents, default=0)
    return "\n".join(x[cut:] for x in lines).strip()


def tool(name, schema, risky=False, risky_if=None):
    """Register the decorated ``func(caller, args)`` as the tool ``name``."""
    def register(func):
        if name in REGISTRY:
            raise ValueError(f"tool {name} is registered twice")
        REGISTRY[name] = Tool(name, func, schema, risky, risky_if)
        return func
    return register


def args_schema(properties, required=()):
    """The usual tool argument schema: an object with these properties and nothing else."""
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


def validation_error(e):
    """An InvalidArguments from a schema.ValidationError, keeping its parts as details."""
    return InvalidArguments(str(e), path=e.path, rule=e.rule, expected=e.expected, got=e.got)


ValidationError = _schema.ValidationError
