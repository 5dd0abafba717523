"""The pieces of the real-model-server work that need no server: the schemas aether/llm/
sends, how it reads a context overflow, and finding the virtio NIC (aether/netif.py)."""

import os

import pytest

from aether import llm, netif


def test_wire_schema_drops_bounds_a_grammar_cannot_take():
    schema = {"type": "object", "properties": {
        "path": {"type": "string", "maxLength": 4096, "minLength": 1},
        "tags": {"type": "array", "maxItems": 100000, "items": {"type": "string", "maxLength": 8}},
        "odd": {"type": "string", "maxLength": "many"}}, "required": ["path"]}
    wire = llm.wire_schema(schema)
    props = wire["properties"]
    assert props["path"] == {"type": "string", "minLength": 1}
    assert props["tags"] == {"type": "array", "items": {"type": "string", "maxLength": 8}}
    assert props["odd"] == {"type": "string"}
    assert wire["required"] == ["path"]
    assert schema["properties"]["path"]["maxLength"] == 4096, "the caller's schema is not changed"


def test_tool_specs_send_wire_schemas_for_entries_and_ready_specs():
    entry = {"name": "files.write", "schema": {"type": "object", "properties": {
        "text": {"type": "string", "maxLength": 1 << 20}}}}
    ready = {"type": "function", "function": {"name": "w", "parameters": {
        "type": "object", "properties": {"text": {"type": "string", "maxLength": 1 << 20}}}}}
    specs, names = llm.tool_specs([entry, ready])
    for spec in specs:
        assert spec["function"]["parameters"]["properties"]["text"] == {"type": "string"}
    assert names == {"files_write": "files.write"}


def test_wire_schema_refuses_absurd_nesting():
    schema = {}
    for _ in range(100):
        schema = {"type": "object", "properties": {"a": schema}}
    with pytest.raises(llm.InvalidRequest, match="nests deeper"):
        llm.wire_schema(schema)


@pytest.mark.parametrize("answer,numbers", [
    ({"error": {"message": "This model's maximum context length is 2048 tokens. However, you "
                           "requested 3026 tokens (3010 in the messages, 16 in the completion). "
                           "Please reduce the length of the messages or completion.",
                "type": "invalid_request_error", "code": "context_length_exceeded"}},
     (2048, 3026, 3010)),
    ({"error": {"message": "Requested tokens (3010) exceed context window of 2048"}},
     (2048, 3010, 3010)),
    ({"error": {"message": "too long", "code": "context_length_exceeded"}}, (None, None, None)),
])
def test_context_overflow_is_read_with_its_numbers(answer, numbers):
    assert llm.context_overflow(answer, llm.server_message(answer)) == numbers


def test_other_errors_are_not_overflows():
    answer = {"error": {"message": "model 'x' not found", "code": "model_not_found"}}
    assert llm.context_overflow(answer, llm.server_message(answer)) is None


def test_virtio_nics_are_found_by_driver(tmp_path):
    drivers = tmp_path / "drivers"
    for name in ("virtio_net", "e1000"):
        (drivers / name).mkdir(parents=True)
    net = tmp_path / "net"
    for nic, driver in (("eth1", "virtio_net"), ("eth0", "virtio_net"), ("enp1", "e1000")):
        (net / nic / "device").mkdir(parents=True)
        os.symlink(drivers / driver, net / nic / "device" / "driver")
    (net / "lo").mkdir()
    assert netif.virtio_nics(str(net)) == ["eth0", "eth1"]
    assert netif.user_net(str(tmp_path / "none")) == "no virtio network interface"
