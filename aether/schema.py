"""A small, strict JSON Schema validator: the subset the built-in tools declare.

Keywords: ``type`` (object, array, string, integer, number, boolean, null, or a
list of them), ``description``, ``properties``, ``required``,
``additionalProperties`` (true or false only), ``items``, ``enum``,
``minimum``/``maximum``, ``minLength``/``maxLength`` (code points),
``minItems``/``maxItems``, ``pattern`` (Python ``re``, unanchored like JSON
Schema's) and ``default``.  Anything else in a schema is an error of the
schema (``check_schema``), so a typo such as ``maxlength`` cannot silently
switch a rule off.

Strictness: ``true`` is not an integer, ``1.0`` is (as JSON Schema says; the
result holds ``1``), NaN and infinities are not numbers.

``validate`` returns the value with defaults filled in and never changes its
argument.  A failure is a ``ValidationError`` naming the path, the rule, the
expectation and the offending value, e.g.
``args.max_bytes: expected an integer >= 1, got -5``.
"""

TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
KEYWORDS = frozenset({"type", "description", "properties", "required", "additionalProperties",
                      "items", "enum", "minimum", "maximum", "minLength", "maxLength",
                      "minItems", "maxItems", "pattern", "default", "title"})
SHOWN = 60  # characters of an offending value quoted in a message


class ValidationError(ValueError):
    """A value does not match its schema; names the path, the rule and what was expected."""

    def __init__(self, path, rule, expected, value=None, got=None):
        self.path, self.rule, self.expected = path, rule, expected
        self.got = got if got is not None else show(value)
        super().__init__(f"{path}: expected {expected}, got {self.got}")


class SchemaError(ValueError):
    """A schema itself is malformed (unknown keyword, wrong type of a keyword, bad default)."""


def show(value, limit=SHOWN):
    """A short, JSON-like rendering of an offending value, with its type for non-strings."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = repr(value[:limit])
        return text + f"... ({len(value)} characters)" if len(value) > limit else text
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= limit else text[:limit] + "..."
    if isinstance(value, dict):
        return f"an object with {len(value)} propert{'y' if len(value) == 1 else 'ies'}"
    if isinstance(value, list):
        return f"an array of {len(value)} item{'' if len(value) == 1 else 's'}"
    return f"a {type(value).__name__}"


def type_of(value):
    """The JSON type name of a Python value (bool before int: True is not 1 here)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _finite(x):
    return x == x and x not in (float("inf"), float("-inf"))


def _matches_type(value, name):
    kind = type_of(value)
    if name == "number":
        return kind == "integer" or (kind == "number" and _finite(value))
    if name == "integer":
        return kind == "integer" or (kind == "number" and _finite(value) and value.is_integer())
    return kind == name


ARTICLES = {"object": "an object", "array": "an array", "string": "a string",
            "integer": "an integer", "number": "a number", "boolean": "a boolean",
            "null": "null"}


def _noun(schema):
    types = schema.get("type")
    if types is None:
        return "a value"
    if isinstance(types, str):
        return ARTICLES[types]
    return " or ".join(ARTICLES[t] for t in types)


def child(path, key):
    """``args.path`` for identifier-like keys, ``args["odd key"]`` otherwise, ``args[3]`` for items."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{key!r}]"


def validate(schema, value, path="args"):
    """The value checked against ``schema``, with defaults filled in; ValidationError if not."""
    types = schema.get("type")
    if types is not None:
        names = (types,) if isinstance(types, str) else types
        matched = next((n for n in names if _matches_type(value, n)), None)
        if matched is None:
            raise ValidationError(path, "type", _noun(schema), value)
        if matched == "integer" and isinstance(value, float):
            value = int(value)
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        options = ", ".join(show(o) for o in schema["enum"])
        raise ValidationError(path, "enum", f"one of {options}", value)
    if isinstance(value, dict):
        return _validate_object(schema, value, path)
    if isinstance(value, list):
        return _validate_array(schema, value, path)
    if isinstance(value, str):
        _validate_string(schema, value, path)
    elif type_of(value) in ("integer", "number"):
        _validate_number(schema, value, path)
    return value


def _same(a, b):
    """JSON equality: 1 == 1.0, but true != 1."""
    ta, tb = type_of(a), type_of(b)
    if ta in ("integer", "number") and tb in ("integer", "number"):
        return a == b
    return ta == tb and a == b


def _validate_object(schema, value, path):
    properties = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in value:
            sub = properties.get(name, {})
            what = _noun(sub) + (f" ({sub['description']})" if "description" in sub else "")
            raise ValidationError(child(path, name), "required", what, got="nothing (required)")
    if schema.get("additionalProperties", True) is False:
        for name in value:
            if name not in properties:
                allowed = ", ".join(sorted(properties)) or "none"
                raise ValidationError(child(path, name) if isinstance(name, str) else path,
                                      "additionalProperties",
                                      f"only known properties ({allowed})",
                                      got=f"unknown property {show(name)}")
    out = {}
    for name, item in value.items():
        sub = properties.get(name)
        out[name] = validate(sub, item, child(path, name)) if sub is not None else item
    for name, sub in properties.items():
        if name not in out and "default" in sub:
            out[name] = _copy(sub["default"])
    return out


def _copy(value):
    """A deep copy of a JSON value (defaults must not be shared between calls)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _validate_array(schema, value, path):
    if "minItems" in schema and len(value) < schema["minItems"]:
        raise ValidationError(path, "minItems", f"an array of at least {schema['minItems']} items",
                              value)
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        raise ValidationError(path, "maxItems", f"an array of at most {schema['maxItems']} items",
                              value)
    items = schema.get("items")
    if items is None:
        return list(value)
    return [validate(items, item, child(path, i)) for i, item in enumerate(value)]


def _validate_string(schema, value, path):
    if "minLength" in schema and len(value) < schema["minLength"]:
        n = schema["minLength"]
        raise ValidationError(path, "minLength",
                              f"a string of at least {n} character{'s' if n != 1 else ''}", value)
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise ValidationError(path, "maxLength",
                              f"a string of at most {schema['maxLength']} characters", value)
    if "pattern" in schema:
        import re
        if re.search(schema["pattern"], value) is None:
            raise ValidationError(path, "pattern", f"a string matching {schema['pattern']}", value)


def _validate_number(schema, value, path):
    noun = _noun(schema) if schema.get("type") else "a number"
    if "minimum" in schema and value < schema["minimum"]:
        raise ValidationError(path, "minimum", f"{noun} >= {schema['minimum']}", value)
    if "maximum" in schema and value > schema["maximum"]:
        raise ValidationError(path, "maximum", f"{noun} <= {schema['maximum']}", value)


# -- checking the schemas themselves ------------------------------------------------------------

def check_schema(schema, path="schema"):
    """Raise SchemaError unless ``schema`` is well-formed in this module's subset."""
    if not isinstance(schema, dict):
        raise SchemaError(f"{path}: a schema must be an object, not {show(schema)}")
    unknown = set(schema) - KEYWORDS
    if unknown:
        raise SchemaError(f"{path}: unknown keyword(s) {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(sorted(KEYWORDS))})")
    _check_type_keyword(schema, path)
    for key in ("description", "title", "pattern"):
        if key in schema and not isinstance(schema[key], str):
            raise SchemaError(f"{path}.{key}: must be a string")
    _check_bounds(schema, path)
    if "pattern" in schema:
        import re
        try:
            re.compile(schema["pattern"])
        except re.error as e:
            raise SchemaError(f"{path}.pattern: not a valid regular expression: {e}") from None
    _check_object_keywords(schema, path)
    if "items" in schema:
        check_schema(schema["items"], f"{path}.items")
    if "enum" in schema:
        if not isinstance(schema["enum"], list) or not schema["enum"]:
            raise SchemaError(f"{path}.enum: must be a non-empty array")
        for i, option in enumerate(schema["enum"]):
            _check_instance(schema, option, f"{path}.enum[{i}]", enum=False)
    if "default" in schema:
        _check_instance(schema, schema["default"], f"{path}.default", enum=True)


def _check_type_keyword(schema, path):
    if "type" not in schema:
        return
    types = schema["type"]
    names = [types] if isinstance(types, str) else types
    if not isinstance(names, list) or not names or not all(n in TYPES for n in names):
        raise SchemaError(f"{path}.type: must be one of {', '.join(TYPES)} or a list of them, "
                          f"not {show(types)}")


def _check_bounds(schema, path):
    for key in ("minLength", "maxLength", "minItems", "maxItems"):
        if key in schema and (type_of(schema[key]) != "integer" or schema[key] < 0):
            raise SchemaError(f"{path}.{key}: must be an integer >= 0")
    for key in ("minimum", "maximum"):
        if key in schema and (type_of(schema[key]) not in ("integer", "number")
                              or not _finite(schema[key])):
            raise SchemaError(f"{path}.{key}: must be a finite number")
    for low, high in (("minLength", "maxLength"), ("minItems", "maxItems"), ("minimum", "maximum")):
        if low in schema and high in schema and schema[low] > schema[high]:
            raise SchemaError(f"{path}: {low} {schema[low]} is above {high} {schema[high]}")


def _check_object_keywords(schema, path):
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise SchemaError(f"{path}.properties: must be an object")
    for name, sub in properties.items():
        check_schema(sub, child(f"{path}.properties", name))
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(n, str) for n in required):
        raise SchemaError(f"{path}.required: must be an array of property names")
    missing = [n for n in required if n not in properties]
    if missing:
        raise SchemaError(f"{path}.required: {', '.join(missing)} not in properties")
    if "additionalProperties" in schema and not isinstance(schema["additionalProperties"], bool):
        raise SchemaError(f"{path}.additionalProperties: only true or false are supported")


def _check_instance(schema, value, path, enum):
    """An enum option or default must itself satisfy the schema (defaults also the enum)."""
    rules = schema if enum else {k: v for k, v in schema.items() if k != "enum"}
    rules = {k: v for k, v in rules.items() if k != "default"}
    try:
        validate(rules, value, path)
    except ValidationError as e:
        raise SchemaError(str(e)) from None
