"""One vocabulary of errors: each shared kind has one root, and one table maps every
subsystem's error codes to the ABI's wire codes."""

import pytest

from aether import errors
from aether.abi import protocol
from aether.ctx import errors as ctx_errors
from aether.tools import core as tool_errors

ROOTS = {
    errors.NotFound: (ctx_errors.NotFound, tool_errors.NotFound, protocol.NotFound),
    errors.PermissionDenied: (ctx_errors.PermissionDenied, tool_errors.PermissionDenied,
                              protocol.PermissionDenied),
    errors.Conflict: (ctx_errors.Conflict, tool_errors.AlreadyExists, protocol.Conflict),
    errors.InvalidArgument: (ctx_errors.InvalidArgument, tool_errors.InvalidArguments, protocol.InvalidParams),
}


@pytest.mark.parametrize("root", list(ROOTS), ids=lambda r: r.__name__)
def test_each_shared_kind_has_one_root(root):
    for cls in ROOTS[root]:
        assert issubclass(cls, root) and issubclass(cls, errors.AetherError), cls
        with pytest.raises(root):
            raise cls("x")


def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


def test_every_store_and_tool_error_code_has_a_wire_code():
    codes = {c.code for base in (ctx_errors.ContextError, tool_errors.ToolError)
             for c in (base, *subclasses(base)) if c.__module__ in (ctx_errors.__name__, tool_errors.__name__)}
    codes.discard("failed")              # a tool that failed for no named reason: internal, on purpose
    missing = sorted(codes - set(errors.WIRE_CODES))
    assert not missing, f"add these codes to aether.errors.WIRE_CODES: {missing}"
    assert set(errors.WIRE_CODES.values()) <= set(protocol.ERRORS)


@pytest.mark.parametrize("error, wire", [
    (ctx_errors.StoreFullError("full"), "unavailable"),
    (ctx_errors.StoreCorruptError("bad"), "internal"),
    (ctx_errors.QuotaExceeded("q"), "budget_exhausted"),
    (tool_errors.UnknownTool("no"), "method_not_found"),
    (tool_errors.AlreadyExists("there"), "conflict"),
    (tool_errors.ToolFailed("boom"), "internal"),
    (ValueError("not ours"), "internal"),
])
def test_from_error_answers_by_code(error, wire):
    answer = protocol.from_error(error, {"k": 1})
    assert answer.code == wire and answer.message == str(error) and answer.data == {"k": 1}
