"""What goes to the endpoint: the limits, token estimates, the chat URL, tool specs and
their schemas as a server's grammar can take them, and the messages' check.
"""

import json

from .errors import InvalidRequest

DEFAULT_TIMEOUT = 120.0
DEFAULT_DEADLINE = 600.0
DEFAULT_MAX_TOKENS = 1024
MAX_REQUEST = 8 * 1024 * 1024
MAX_RESPONSE = 16 * 1024 * 1024
MAX_LINE = 1024 * 1024
ROLES = ("system", "developer", "user", "assistant", "tool")
REDACTED = "[redacted]"
# -- estimates ----------------------------------------------------------------------------------

def estimate_tokens(text):
    """One token per 4 characters, rounded up: the documented fallback."""
    return (len(text) + 3) // 4


def estimate_prompt(messages, specs):
    text = json.dumps(messages, ensure_ascii=False)
    return estimate_tokens(text) + (estimate_tokens(json.dumps(specs, ensure_ascii=False))
                                    if specs else 0)


# -- requests -----------------------------------------------------------------------------------

def chat_url(endpoint):
    """The chat-completions URL of an endpoint base URL (see the module docstring)."""
    base, sep, query = endpoint.partition("?")
    base = base.rstrip("/")
    if not base.endswith("/chat/completions"):
        rest = base.split("://", 1)[-1]
        if "/" not in rest:
            base += "/v1"
        base += "/chat/completions"
    return base + sep + query


def tool_specs(tools):
    """(OpenAI tool specs, {wire name: our name}) from tool.list entries or ready specs.

    OpenAI function names allow only letters, digits, _ and -: ``files.read`` goes on
    the wire as ``files_read`` and tool calls map back to ``files.read``.  Parameter
    schemas go out as ``wire_schema`` makes them.
    """
    specs, names = [], {}
    for entry in tools or ():
        if not isinstance(entry, dict):
            raise InvalidRequest("each tool must be an object (a tool.list entry or an OpenAI spec)")
        if entry.get("type") == "function" and isinstance(entry.get("function"), dict):
            function = entry["function"]
            if "parameters" in function:
                entry = {**entry, "function": {**function,
                                               "parameters": wire_schema(function["parameters"])}}
            specs.append(entry)
            continue
        if not isinstance(entry.get("name"), str) or not isinstance(entry.get("schema"), dict):
            raise InvalidRequest("a tool needs a name and a schema, or type 'function'")
        wire = "".join(c if c.isalnum() or c in "_-" else "_" for c in entry["name"])[:60]
        while wire in names:
            wire += "_"
        names[wire] = entry["name"]
        specs.append({"type": "function", "function": {
            "name": wire, "description": entry.get("description", ""),
            "parameters": wire_schema(entry["schema"])}})
    return specs, names


# Servers compile tool schemas into a grammar for the arguments; llama.cpp expands a bound
# such as maxLength 4000 into thousands of rules and crashes (SIGSEGV) on it: every later
# call is then refused.  Bounds above this are left out of what is sent: the arguments
# that come back are checked against the tool's full schema before the tool runs.
WIRE_BOUND_MAX = 256
BOUND_KEYS = frozenset(("maxLength", "minLength", "maxItems", "minItems", "maxProperties",
                        "minProperties"))
WIRE_SCHEMA_DEPTH = 32


def wire_schema(schema, depth=0):
    """``schema`` as sent to the server: without BOUND_KEYS over WIRE_BOUND_MAX (or that are
    not integers); nesting deeper than WIRE_SCHEMA_DEPTH is refused."""
    if depth > WIRE_SCHEMA_DEPTH:
        raise InvalidRequest(f"a tool schema nests deeper than {WIRE_SCHEMA_DEPTH} levels")
    if isinstance(schema, list):
        return [wire_schema(item, depth + 1) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {key: wire_schema(value, depth + 1) for key, value in schema.items()
            if not (key in BOUND_KEYS and (not isinstance(value, int) or isinstance(value, bool)
                                           or value > WIRE_BOUND_MAX))}


def wire_messages(messages):
    """``messages`` as sent: an assistant message that only calls tools goes without its
    ``content`` (OpenAI allows null or no content; llama-cpp-python's server refuses null)."""
    return [{k: v for k, v in m.items() if k != "content"}
            if m.get("role") == "assistant" and m.get("content") is None and m.get("tool_calls")
            else m for m in messages]


def check_messages(messages):
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list of {role, content} objects")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidRequest(f"messages[{i}] must be an object whose role is one of "
                                 f"{', '.join(ROLES)}")
