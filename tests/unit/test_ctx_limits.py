"""The ABI's ctx.* schemas and the context store enforce the same limits (one source:
aether/ctx/validate.py): what abi.hello publishes is what the store accepts, no looser."""

import pytest

from aether.abi.calls import ctx as calls
from aether.ctx import validate as limits
from aether.ctx.errors import InvalidArgument
from aether.schema import ValidationError, validate

SCHEMAS = {f"ctx.{m}": schema for m, (schema, _w, _p, _d) in calls.CALLS.items()}
SCOPE_FIELDS = ("scope", "grantee", "owner", "principal")
WORD_FIELDS = ("kind", "status", "state")
TEXT_FIELDS = ("text", "intent", "plan", "description")


def fields(name):
    return [(method, s["properties"][name]) for method, s in SCHEMAS.items() if name in s["properties"]]


@pytest.mark.parametrize("name", SCOPE_FIELDS + WORD_FIELDS + TEXT_FIELDS + ("tags", "scopes", "limit"))
def test_every_field_is_bounded_by_the_stores_constant(name):
    expected = {**dict.fromkeys(SCOPE_FIELDS, limits.MAX_SCOPE), **dict.fromkeys(WORD_FIELDS, limits.MAX_NAME),
                **dict.fromkeys(TEXT_FIELDS, limits.MAX_TEXT_BYTES)}
    found = fields(name)
    assert found, f"no ctx call has a {name!r} field: update this test"
    for method, schema in found:
        if name == "tags":
            assert schema["maxItems"] == limits.MAX_TAGS, method
            assert schema["items"]["maxLength"] == limits.MAX_NAME, method
        elif name == "scopes":
            assert schema["items"]["maxLength"] == limits.MAX_SCOPE and schema["maxItems"], method
        elif name == "limit":
            assert schema["maximum"] <= limits.MAX_LIMIT, method
        else:
            assert schema["maxLength"] == expected[name], (method, name)


def wire(method, params):
    return validate(SCHEMAS[method], params, "params")


def test_the_longest_scope_the_store_accepts_passes_the_wire_and_one_more_character_does_not():
    longest = "shared:" + "s" * limits.MAX_NAME
    assert len(longest) == limits.MAX_SCOPE
    assert limits.scope(longest) == longest
    wire("ctx.usage", {"scope": longest})
    with pytest.raises(ValidationError):
        wire("ctx.usage", {"scope": longest + "s"})
    with pytest.raises(InvalidArgument):
        limits.scope(longest + "s")


def test_tags_the_store_accepts_pass_the_wire_and_more_are_refused_by_both():
    tags = [f"t{i}".ljust(limits.MAX_NAME, "x") for i in range(limits.MAX_TAGS)]
    limits.tags(tags)
    wire("ctx.remember", {"text": "x", "tags": tags})
    too_many = tags + ["one-more"]
    with pytest.raises(ValidationError):
        wire("ctx.remember", {"text": "x", "tags": too_many})
    with pytest.raises(InvalidArgument):
        limits.tags(too_many)
    with pytest.raises(ValidationError):
        wire("ctx.remember", {"text": "x", "tags": ["t" * (limits.MAX_NAME + 1)]})


def test_text_at_the_stores_limit_passes_the_wire_and_past_it_is_refused():
    text = "x" * limits.MAX_TEXT_BYTES
    assert limits.text(text) == text
    wire("ctx.remember", {"text": text})
    with pytest.raises(ValidationError):
        wire("ctx.remember", {"text": text + "x"})
    # characters on the wire, bytes in the store: a text short in characters but long in
    # UTF-8 passes the wire and the store still refuses it
    wide = "\u00e9" * (limits.MAX_TEXT_BYTES // 2 + 1)
    wire("ctx.remember", {"text": wide})
    with pytest.raises(InvalidArgument):
        limits.text(wide)
