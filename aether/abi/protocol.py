"""Frames and errors of the agent ABI.

A frame is one JSON object on one line (UTF-8, ``\\n``-terminated), at most
``MAX_FRAME`` bytes.  A request is ``{"id": <int|str>, "method": "<ns.name>",
"params": {...}}``; the answer is ``{"id": ..., "result": ...}`` or ``{"id": ...,
"error": {"code": "<code>", "message": "<what was wrong and how to fix it>"}}``.
Events pushed to subscribers are ``{"event": {...}}``.  A bad frame gets an
error answer and the connection stays usable.

Everything that goes out is encodable: a string holding a lone surrogate (an
id or alert text sent as ``"\\ud800"``, a file name that is not UTF-8) is
written with JSON escapes (``ensure_ascii``) instead of making the encoder
raise.  A request nested deeper than MAX_DEPTH is refused before anything
walks it.
"""

import json
import re

from .. import errors

MAX_FRAME = 1 << 20          # bytes in one frame, newline included
MAX_DEPTH = 64               # levels of nested arrays and objects in one request


class AbiError(errors.AetherError):
    """Base of the errors a call can answer with."""

    code = "internal"

    def __init__(self, message, data=None):
        super().__init__(message)
        self.message = message
        self.data = data

    def to_wire(self):
        error = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class ParseError(AbiError):
    """The frame is not valid JSON."""
    code = "parse_error"


class InvalidRequest(AbiError):
    """The frame is JSON but not a request object."""
    code = "invalid_request"


class TooLarge(AbiError):
    """The frame is longer than MAX_FRAME."""
    code = "too_large"


class MethodNotFound(AbiError):
    """No such method."""
    code = "method_not_found"


class InvalidParams(AbiError, errors.InvalidArgument):
    """The params do not match the method's schema."""
    code = "invalid_params"


class PermissionDenied(AbiError, errors.PermissionDenied):
    """The caller may not do this."""
    code = "permission_denied"


class NotFound(AbiError, errors.NotFound):
    """The thing named does not exist."""
    code = "not_found"


class Conflict(AbiError, errors.Conflict):
    """The request contradicts the current state (e.g. the name is taken)."""
    code = "conflict"


class Unavailable(AbiError):
    """The subsystem is not available (not configured, or not built yet)."""
    code = "unavailable"


class BudgetExhausted(AbiError):
    """The caller's budget cannot cover the call."""
    code = "budget_exhausted"


class Busy(AbiError):
    """The model broker's queue is full (overall or for this caller); try again later."""
    code = "busy"


class Internal(AbiError):
    """A bug on the server side; the connection stays usable."""
    code = "internal"


ERRORS = {cls.code: cls for cls in (ParseError, InvalidRequest, TooLarge, MethodNotFound,
                                    InvalidParams, PermissionDenied, NotFound, Conflict,
                                    Unavailable, BudgetExhausted, Busy, Internal)}
# any subsystem's error code -> the ABI error that answers it (aether.errors.WIRE_CODES, the one table)
CODES = {code: ERRORS[wire] for code, wire in errors.WIRE_CODES.items()}


def from_error(e, data=None, default=Internal):
    """The ABI error that answers ``e`` (the context store's, a tool's...): by its ``code``,
    through CODES; ``default`` for a code no subsystem declares."""
    return CODES.get(getattr(e, "code", ""), default)(str(e), data)


def encode(message):
    """One frame (bytes, newline-terminated) for a JSON-serialisable message.

    UTF-8 as it is; a message holding text that is not valid Unicode (lone
    surrogates) is written with ``\\uXXXX`` escapes instead, so encoding never
    fails on a string.  TooLarge when the frame would pass MAX_FRAME.
    """
    try:
        text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        data = text.encode() + b"\n"
    except UnicodeEncodeError:
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"
    except RecursionError:
        raise TooLarge("the message is nested too deeply to encode") from None
    if len(data) > MAX_FRAME:
        raise TooLarge(f"the message is {len(data)} bytes; frames are limited to {MAX_FRAME}")
    return data


def too_deep(value, limit=MAX_DEPTH):
    """Is ``value`` nested more than ``limit`` levels deep? (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def parse_request(line):
    """(id, method, params) from one frame's bytes, or raise an AbiError.

    The id is returned as soon as it is known, through the exception's
    ``request_id`` attribute, so the error can be addressed to it.
    """
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, ValueError) as e:
        raise ParseError(f"the frame is not valid UTF-8 JSON: {e}") from None
    except RecursionError:
        raise ParseError(f"the frame is nested too deeply to parse; requests nest at most "
                         f"{MAX_DEPTH} levels") from None
    if not isinstance(message, dict):
        raise InvalidRequest(f"a request is a JSON object, got {type(message).__name__}")
    request_id = message.get("id")
    try:
        if not isinstance(request_id, (int, str)) or isinstance(request_id, bool):
            raise InvalidRequest("a request needs an \"id\" (integer or string)")
        method = message.get("method")
        if not isinstance(method, str) or not method:
            raise InvalidRequest("a request needs a \"method\" string, e.g. \"sys.info\"")
        params = message.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InvalidRequest(f"\"params\" must be an object, got {type(params).__name__}")
        extra = set(message) - {"id", "method", "params"}
        if extra:
            raise InvalidRequest(f"unknown request fields: {', '.join(sorted(extra))}")
        if too_deep(params, MAX_DEPTH - 1):
            raise InvalidRequest(f"\"params\" nests arrays and objects more than {MAX_DEPTH} "
                                 "levels deep; flatten it")
    except AbiError as e:
        e.request_id = request_id if isinstance(request_id, (int, str)) else None
        raise
    return request_id, method, params


NOT_BLANK = re.compile(rb"[^ \t\r\n]")


class FrameReader:
    """Splits a byte stream into frames; oversized frames become TooLarge items."""

    def __init__(self, limit=MAX_FRAME):
        self.limit = limit
        self.buffer = bytearray()
        self.skipping = False

    def feed(self, data):
        """Return a list of frames (bytes) and TooLarge errors, in stream order."""
        out = []
        self.buffer.extend(data)
        while True:
            if not self.skipping:
                self._drop_blank()
            newline = self.buffer.find(b"\n")
            if newline < 0:
                if len(self.buffer) >= self.limit:
                    if not self.skipping:
                        out.append(TooLarge(f"frame longer than {self.limit} bytes; "
                                            "it was discarded up to the next newline"))
                    self.skipping = True
                    self.buffer.clear()
                return out
            frame = bytes(self.buffer[:newline])
            del self.buffer[:newline + 1]
            if self.skipping:
                self.skipping = False
                continue
            if len(frame) + 1 > self.limit:
                out.append(TooLarge(f"frame of {len(frame) + 1} bytes is longer than {self.limit}"))
            elif frame.strip():
                out.append(frame)

    def _drop_blank(self):
        """Blank lines are no frames: drop a run of them in one step, not a line at a time
        (64 KiB of newlines would otherwise be 65,536 turns of the loop above)."""
        first = NOT_BLANK.search(self.buffer)
        if first is None:
            self.buffer.clear()
        elif first.start():
            del self.buffer[:first.start()]
