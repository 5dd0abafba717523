"""Argument checks shared by the context store's public calls.

Each function returns the normalised value or raises InvalidArgument with a
message naming the argument, the rule, the offending value and a fix.  The
vocabularies (memory kinds, goal and step states, principal and scope names)
live here so that every module spells them the same way.
"""

import re

from .errors import InvalidArgument

KINDS = ("fact", "note", "observation", "summary")
GOAL_STATUSES = ("open", "active", "done", "failed", "abandoned")
STEP_STATUSES = ("pending", "running", "done", "failed", "skipped")
GRANT_MODES = ("read", "read-write")

# The store's limits, defined here only: the ABI's schemas (aether/abi/calls/ctx.py) are
# built from them, and tests/unit/test_ctx_limits.py checks that the two agree.
MAX_TEXT_BYTES = 64 * 1024          # one memory, one plan, one outcome
MAX_BODY_BYTES = 256 * 1024         # one journal entry's body, canonical JSON
MAX_TAGS = 32
MAX_LIMIT = 10_000
MAX_BUDGET_TOKENS = 10_000_000
MAX_NAME = 64                       # characters in a name: an agent's or a scope's, a kind, a tag
MAX_SCOPE = len("shared:") + MAX_NAME   # the longest scope or principal name, "shared:<name>"

_NAME = rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME - 1}}}"
PRINCIPAL_RE = re.compile(rf"(?:system|host|shell(?::[A-Za-z0-9_.-]{{1,32}})?|agent:{_NAME}|uid:[0-9]{{1,10}})\Z")
SCOPE_RE = re.compile(rf"(?:system|user|(?:agent|shared):{_NAME})\Z")
KIND_RE = re.compile(rf"[a-z][a-z0-9_.-]{{0,{MAX_NAME - 1}}}\Z")
TAG_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.:/-]{{0,{MAX_NAME - 1}}}\Z")


def _fail(name, rule, value, fix=""):
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    raise InvalidArgument(f"{name}={shown}: {rule}" + (f"; {fix}" if fix else ""))


def principal(value, name="caller"):
    """'system', 'host', 'shell' (or 'shell:<tty>'), 'agent:<name>' or 'uid:<n>' (as aether.abi.identity names them)."""
    if not isinstance(value, str) or not PRINCIPAL_RE.match(value):
        _fail(name, "must be 'system', 'host', 'shell', 'shell:<tty>', 'agent:<name>' or 'uid:<n>'", value,
              "names use letters, digits, '_', '.', '-' (at most 64)")
    return value


def scope(value, name="scope"):
    """'system', 'user', 'agent:<name>' or 'shared:<name>'."""
    if not isinstance(value, str) or not SCOPE_RE.match(value):
        _fail(name, "must be 'system', 'user', 'agent:<name>' or 'shared:<name>'", value,
              "names use letters, digits, '_', '.', '-' (at most 64)")
    return value


def scopes(values, name="scopes"):
    """A list of distinct scope names, or None (meaning: every scope the caller may read)."""
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values:
        _fail(name, "must be a non-empty list of scope names, or null for all readable scopes", values)
    return sorted({scope(v, name) for v in values})


def text(value, name="text", allow_empty=False):
    """A string of at most MAX_TEXT_BYTES UTF-8 bytes, not blank unless allowed."""
    if not isinstance(value, str):
        _fail(name, "must be a string", value)
    if not allow_empty and not value.strip():
        _fail(name, "must not be empty or blank", value)
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_TEXT_BYTES:
        _fail(name, f"is {size} bytes; the limit is {MAX_TEXT_BYTES}", value[:40],
              "split it into several items")
    if "\x00" in value:
        _fail(name, "must not contain NUL characters", value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        _fail(name, "contains lone surrogates (not valid Unicode text)", value)
    return value


def kind(value):
    """One of KINDS."""
    if value not in KINDS:
        _fail("kind", f"must be one of {', '.join(KINDS)}", value)
    return value


def journal_kind(value):
    """A dotted lower-case event name such as 'agent.exit' or 'tool.call'."""
    if not isinstance(value, str) or not KIND_RE.match(value):
        _fail("kind", "must be a lower-case event name such as 'agent.exit' or 'tool.call' "
                      "(letters, digits, '_', '.', '-'; at most 64)", value)
    return value


def tags(values):
    """A list of tags; returned sorted, de-duplicated and space-joined."""
    if values is None:
        return ""
    if isinstance(values, str):
        values = values.split()
    if not isinstance(values, (list, tuple)):
        _fail("tags", "must be a list of strings", values)
    if len(values) > MAX_TAGS:
        _fail("tags", f"has {len(values)} tags; the limit is {MAX_TAGS}", values)
    for tag in values:
        if not isinstance(tag, str) or not TAG_RE.match(tag):
            _fail("tags", "each tag is 1-64 letters, digits or _ . : / - and starts with a letter "
                          "or digit", tag)
    return " ".join(sorted(set(values)))


def importance(value):
    """A number from 0 (trivia) to 1 (essential)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        _fail("importance", "must be a number from 0 to 1", value, "0.5 is the default")
    return float(value)


def flag(value, name):
    """A boolean."""
    if not isinstance(value, bool):
        _fail(name, "must be true or false", value)
    return value


def positive_int(value, name, high=None, allow_zero=False):
    """An int in 1..high (0..high with allow_zero)."""
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low \
            or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        _fail(name, f"must be an integer {bound}", value)
    return value


def ident(value, name):
    """A row id: a positive integer."""
    return positive_int(value, name)


def limit(value, name="limit"):
    """A result count in 1..MAX_LIMIT."""
    return positive_int(value, name, MAX_LIMIT)


def budget(value):
    """A token budget in 1..MAX_BUDGET_TOKENS."""
    return positive_int(value, "budget_tokens", MAX_BUDGET_TOKENS)


def timestamp(value, name):
    """Seconds since the epoch (a finite number), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or value in (float("inf"), float("-inf")):
        _fail(name, "must be a time in seconds since the epoch (a number)", value)
    return float(value)


def seconds(value, name):
    """A non-negative duration in seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e12:
        _fail(name, "must be a number of seconds (0 or more)", value)
    return float(value)


def choice(value, name, choices):
    """One of choices."""
    if value not in choices:
        _fail(name, f"must be one of {', '.join(choices)}", value)
    return value


def quota_value(value, name):
    """A quota: a positive int, 'max' (unlimited, stored as -1) or None (the store default)."""
    if value is None:
        return None
    if value == "max":
        return -1
    return positive_int(value, name, 1 << 40)
