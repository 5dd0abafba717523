"""One vocabulary of errors for all of aether, and one mapping to the ABI's wire codes.

Leaf module (imports nothing).  Every error a subsystem raises on purpose derives
from AetherError; the kinds several subsystems share have one root each here, so
``except errors.NotFound`` catches the context store's, the tools' and the ABI's:

    AetherError
    ├── InvalidArgument    (ctx.errors.InvalidArgument, tools.core.InvalidArguments,
    │                       abi.protocol.InvalidParams)
    ├── NotFound           (ctx, tools, abi)
    ├── PermissionDenied   (ctx, tools, abi)
    └── Conflict           (ctx, tools.core.AlreadyExists, abi)

Each error's ``code`` is its subsystem's stable name for its kind (``store_full``,
``wrong_type``); WIRE_CODES says which ABI error code (aether/abi/protocol.py)
answers each one, for every subsystem: it is the only such table.
"""


class AetherError(Exception):
    """Root of every error AetherOS raises on purpose; ``code`` names its kind."""

    code = "failed"


class InvalidArgument(AetherError):
    """An argument breaks its rule (type, range, format or size)."""

    code = "invalid_argument"


class NotFound(AetherError):
    """The thing named does not exist."""

    code = "not_found"


class PermissionDenied(AetherError):
    """The caller may not do this."""

    code = "permission_denied"


class Conflict(AetherError):
    """The call contradicts the current state."""

    code = "conflict"


# an error's code (any subsystem's) -> the ABI error code it is answered with
WIRE_CODES = {
    # shared kinds
    "not_found": "not_found", "permission_denied": "permission_denied", "conflict": "conflict",
    "quota_exceeded": "budget_exhausted",
    # the context store (aether/ctx/errors.py)
    "invalid_argument": "invalid_params", "bad_export": "invalid_params", "ctx_error": "invalid_params",
    "store_full": "unavailable", "store_read_only": "unavailable", "store_busy": "unavailable",
    "store_error": "unavailable", "disk_reserve": "unavailable", "quota_pending": "busy",
    "store_corrupt": "internal", "schema_error": "internal",
    # the tools (aether/tools/core.py)
    "unknown_tool": "method_not_found", "invalid_arguments": "invalid_params", "wrong_type": "invalid_params",
    "already_exists": "conflict", "too_large": "too_large", "unavailable": "unavailable",
    "fetch_failed": "unavailable",
    # a home's size being measured a slice at a time (aether/diskspace.py)
    "disk_measuring": "busy",
}
