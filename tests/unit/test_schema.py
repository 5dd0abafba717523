"""aether.schema: the strict JSON Schema subset the tools declare."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aether.schema import SchemaError, ValidationError, check_schema, validate

READ = {"type": "object", "additionalProperties": False, "required": ["path"], "properties": {
    "path": {"type": "string", "minLength": 1, "maxLength": 10, "description": "file path"},
    "max_bytes": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
    "encoding": {"type": "string", "enum": ["text", "base64"], "default": "text"},
    "ratio": {"type": "number", "minimum": 0.5},
    "flag": {"type": "boolean"},
    "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}, "maxItems": 2},
    "maybe": {"type": ["string", "null"]},
}}


def error(value, schema=READ):
    with pytest.raises(ValidationError) as info:
        validate(schema, value)
    return info.value


def test_the_message_names_path_rule_expectation_and_value():
    e = error({"path": "a", "max_bytes": -5})
    assert str(e) == "args.max_bytes: expected an integer >= 1, got -5"
    assert (e.path, e.rule, e.expected, e.got) == ("args.max_bytes", "minimum", "an integer >= 1", "-5")


def test_defaults_are_filled_in_and_the_input_is_not_changed():
    value = {"path": "a"}
    assert validate(READ, value) == {"path": "a", "max_bytes": 50, "encoding": "text"}
    assert value == {"path": "a"}


@pytest.mark.parametrize("value, path, rule, text", [
    ({}, "args.path", "required", "expected a string (file path), got nothing (required)"),
    ({"path": 3}, "args.path", "type", "expected a string, got 3"),
    ({"path": ""}, "args.path", "minLength", "at least 1 character, got ''"),
    ({"path": "x" * 11}, "args.path", "maxLength", "at most 10 characters"),
    ({"path": "a", "max_bytes": 101}, "args.max_bytes", "maximum", "<= 100, got 101"),
    ({"path": "a", "max_bytes": True}, "args.max_bytes", "type", "an integer, got true"),
    ({"path": "a", "max_bytes": 2.5}, "args.max_bytes", "type", "an integer, got 2.5"),
    ({"path": "a", "max_bytes": "7"}, "args.max_bytes", "type", "an integer, got '7'"),
    ({"path": "a", "encoding": "hex"}, "args.encoding", "enum", "one of 'text', 'base64', got 'hex'"),
    ({"path": "a", "ratio": float("nan")}, "args.ratio", "type", "a number"),
    ({"path": "a", "ratio": 0.1}, "args.ratio", "minimum", "a number >= 0.5"),
    ({"path": "a", "flag": 1}, "args.flag", "type", "a boolean, got 1"),
    ({"path": "a", "tags": ["ok", "Bad"]}, "args.tags[1]", "pattern", "matching ^[a-z]+$"),
    ({"path": "a", "tags": ["a", "b", "c"]}, "args.tags", "maxItems", "at most 2 items"),
    ({"path": "a", "tags": "a"}, "args.tags", "type", "an array, got 'a'"),
    ({"path": "a", "maybe": 1}, "args.maybe", "type", "a string or null, got 1"),
    ({"path": "a", "colour": "red"}, "args.colour", "additionalProperties",
     "only known properties (encoding, flag, max_bytes, maybe, path, ratio, tags), "
     "got unknown property 'colour'"),
    ({"path": "a", "odd key": 1}, "args['odd key']", "additionalProperties", "unknown property"),
    ([], "args", "type", "expected an object, got an array of 0 items"),
    (None, "args", "type", "expected an object, got null"),
])
def test_each_rule_is_reported(value, path, rule, text):
    e = error(value)
    assert (e.path, e.rule) == (path, rule)
    assert text in str(e)
    assert str(e).startswith(path + ": expected ")


def test_long_values_are_truncated_in_messages():
    e = error({"path": "y" * 5000})
    assert len(str(e)) < 200 and "(5000 characters)" in str(e)


def test_integral_floats_are_integers_and_come_back_as_int():
    out = validate(READ, {"path": "a", "max_bytes": 7.0})
    assert out["max_bytes"] == 7 and type(out["max_bytes"]) is int


def test_null_and_union_types():
    assert validate(READ, {"path": "a", "maybe": None})["maybe"] is None
    assert validate({"type": "null"}, None) is None


def test_enum_compares_like_json():
    schema = {"enum": [1, "a"]}
    assert validate(schema, 1.0) == 1.0
    with pytest.raises(ValidationError):
        validate(schema, True)


def test_schemas_without_additional_properties_false_keep_extras():
    assert validate({"type": "object"}, {"x": 1}) == {"x": 1}


@pytest.mark.parametrize("schema, text", [
    ({"type": "strnig"}, "schema.type: must be one of"),
    ({"type": "string", "maxlength": 3}, "unknown keyword(s) maxlength"),
    ({"type": "object", "required": ["a"], "properties": {}}, "required: a not in properties"),
    ({"type": "integer", "minimum": 5, "maximum": 1}, "minimum 5 is above maximum 1"),
    ({"type": "integer", "default": "x"}, "schema.default: expected an integer"),
    ({"type": "string", "enum": ["a"], "default": "b"}, "schema.default: expected one of 'a'"),
    ({"type": "string", "enum": [1]}, "schema.enum[0]: expected a string"),
    ({"type": "string", "enum": []}, "non-empty array"),
    ({"type": "string", "pattern": "("}, "not a valid regular expression"),
    ({"type": "string", "minLength": -1}, "minLength: must be an integer >= 0"),
    ({"type": "object", "additionalProperties": {"type": "string"}}, "only true or false"),
    ({"type": "object", "properties": {"a": {"type": "integer", "maximum": "9"}}},
     "schema.properties.a.maximum: must be a finite number"),
    ({"type": "array", "items": {"tpye": "string"}}, "schema.items: unknown keyword(s) tpye"),
    ("string", "a schema must be an object"),
])
def test_malformed_schemas_are_refused(schema, text):
    with pytest.raises(SchemaError) as info:
        check_schema(schema)
    assert text in str(info.value)


def test_a_good_schema_passes():
    check_schema(READ)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_either_validates_or_raises_validation_error(value):
    try:
        out = validate(READ, value)
    except ValidationError as e:
        assert str(e).startswith("args")
        return
    assert set(out) >= {"path", "max_bytes", "encoding"}
