"""aether.llm against a real OpenAI-compatible HTTP server on 127.0.0.1 (tests/fake_openai.py)."""

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from aether import llm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_openai import FakeOpenAI, Reply  # noqa: E402

KEY = "sk-test-0123456789abcdef-SECRET"
HELLO = [{"role": "user", "content": "hello"}]
READ_TOOL = {"name": "files.read", "description": "Read a file.",
             "schema": {"type": "object", "properties": {"path": {"type": "string"}},
                        "required": ["path"], "additionalProperties": False}}


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def client(server):
    return llm.Client(server.url, model="fake-model", api_key=KEY, timeout=5)


# -- configuration ------------------------------------------------------------------------------

def test_without_an_endpoint_the_call_says_so():
    for client in (llm.Client(), llm.Client.from_config({}), llm.Client.from_config({"endpoint": ""})):
        assert not client.configured
        with pytest.raises(llm.NotConfigured) as info:
            client.complete(HELLO)
        assert str(info.value).startswith("no model endpoint configured: set aether.llm.endpoint=")
        assert info.value.to_dict()["code"] == "not_configured"


@pytest.mark.parametrize("settings, text", [
    ({"endpoint": "ftp://models.example/v1"}, "aether.llm.endpoint='ftp://models.example/v1' is not usable"),
    ({"endpoint": "http://h/v1", "timeout": "soon"}, "aether.llm.timeout='soon' is not usable"),
    ({"endpoint": "http://h/v1", "max_tokens": "0"}, "aether.llm.max_tokens='0' is not usable"),
])
def test_bad_settings_never_raise_at_start_but_every_call_says_why(settings, text):
    client = llm.Client.from_config(settings)
    assert not client.configured
    with pytest.raises(llm.NotConfigured) as info:
        client.complete(HELLO)
    assert str(info.value).startswith(text)


def test_from_config_takes_the_aether_llm_keys(server):
    client = llm.Client.from_config({"endpoint": server.url, "model": "m", "api_key": KEY,
                                     "timeout": "7", "max_tokens": "99", "unrelated": 1})
    assert (client.timeout, client.max_tokens, client.model) == (7.0, 99, "m")
    client.complete(HELLO)
    assert server.requests[0].json["max_tokens"] == 99


@pytest.mark.parametrize("endpoint, url", [
    ("http://h:8080/v1", "http://h:8080/v1/chat/completions"),
    ("http://h:8080/v1/", "http://h:8080/v1/chat/completions"),
    ("http://h:8080", "http://h:8080/v1/chat/completions"),
    ("http://h:8080/", "http://h:8080/v1/chat/completions"),
    ("https://api.example/openai/v1", "https://api.example/openai/v1/chat/completions"),
    ("http://h/v1/chat/completions", "http://h/v1/chat/completions"),
    ("http://h/v1?api-version=2", "http://h/v1/chat/completions?api-version=2"),
])
def test_chat_url(endpoint, url):
    assert llm.chat_url(endpoint) == url


def test_the_key_is_never_shown(client):
    assert KEY not in repr(client) and "api_key=<set>" in repr(client)
    assert "api_key=<none>" in repr(llm.Client("http://h/v1"))
    assert client.redact(f"bad key {KEY}") == "bad key [redacted]"
    assert KEY[:8] not in client.redact(f"key starting {KEY[:8]}...")
    echoed = f"Incorrect API key provided: {KEY[:3]}*****{KEY[-6:]}"     # as OpenAI's servers say it
    assert KEY[-6:] not in client.redact(echoed), "the key's tail is shown"


# -- non-streaming ------------------------------------------------------------------------------

def test_a_plain_completion_and_the_request_it_sent(server, client):
    result = client.complete(HELLO, temperature=0.2)
    assert result.content == "Hello from the fake model." and result.finish_reason == "stop"
    assert result.usage == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
                            "estimated": False}
    assert result.tool_calls == [] and not result.streamed and result.model == "fake-model"
    json.dumps(result.to_dict())
    sent = server.requests[0]
    assert sent.method == "POST" and sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == {"model": "fake-model", "messages": HELLO, "max_tokens": 1024,
                         "stream": False, "temperature": 0.2}
    assert KEY not in json.dumps(result.to_dict())


def test_no_key_no_authorization_header(server):
    llm.Client(server.url).complete(HELLO)
    assert "authorization" not in server.requests[0].headers
    assert "model" not in server.requests[0].json


def test_tool_calls_map_back_to_tool_names(server, client):
    server.queue(Reply(content=None, tool_calls=[("files_read", '{"path": "/etc/hostname"}'),
                                                 ("files_read", '{"path": "/etc/os-release"}')]))
    result = client.complete(HELLO, tools=[READ_TOOL])
    spec = server.requests[0].json["tools"][0]
    assert spec == {"type": "function", "function": {
        "name": "files_read", "description": "Read a file.", "parameters": READ_TOOL["schema"]}}
    assert result.content is None and result.finish_reason == "tool_calls"
    assert [(c["name"], c["arguments"]) for c in result.tool_calls] == [
        ("files.read", {"path": "/etc/hostname"}), ("files.read", {"path": "/etc/os-release"})]
    assert result.message() == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_fake_0", "type": "function",
         "function": {"name": "files_read", "arguments": '{"path": "/etc/hostname"}'}},
        {"id": "call_fake_1", "type": "function",
         "function": {"name": "files_read", "arguments": '{"path": "/etc/os-release"}'}}]}


def test_tool_choice_may_use_the_tool_name(server, client):
    choice = {"type": "function", "function": {"name": "files.read"}}
    client.complete(HELLO, tools=[READ_TOOL], tool_choice=choice)
    assert server.requests[0].json["tool_choice"] == {"type": "function",
                                                      "function": {"name": "files_read"}}


def test_openai_specs_pass_through(server, client):
    spec = {"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}}
    server.queue(Reply(tool_calls=[("ping", "")]))
    result = client.complete(HELLO, tools=[spec], tool_choice="auto")
    assert server.requests[0].json["tools"] == [spec]
    assert server.requests[0].json["tool_choice"] == "auto"
    assert result.tool_calls[0]["name"] == "ping" and result.tool_calls[0]["arguments"] == {}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("raw, error", [
    ('{"path": ', "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('"just a string"', "not a JSON object"),
])
def test_malformed_tool_arguments_are_reported_not_raised(server, client, stream, raw, error):
    server.queue(Reply(tool_calls=[("files_read", raw), ("files_read", '{"path": "ok"}')]))
    result = client.complete(HELLO, tools=[READ_TOOL], stream=stream)
    bad, good = result.tool_calls
    assert bad["arguments"] is None and error in bad["error"] and bad["arguments_json"] == raw
    assert good["arguments"] == {"path": "ok"} and good["error"] is None


def test_missing_usage_is_estimated_and_marked(server, client):
    server.queue(Reply(content="x" * 40, usage=None))
    result = client.complete(HELLO)
    prompt = llm.estimate_prompt(HELLO, [])
    assert result.usage == {"prompt_tokens": prompt, "completion_tokens": 10,
                            "total_tokens": prompt + 10, "estimated": True}


# -- streaming ----------------------------------------------------------------------------------

def test_streamed_content_arrives_in_pieces(server, client):
    pieces = []
    result = client.complete(HELLO, stream=True, on_delta=pieces.append)
    assert result.content == "Hello from the fake model." and result.streamed
    assert len(pieces) > 3 and "".join(pieces) == result.content
    assert result.usage["estimated"] is False and result.usage["total_tokens"] == 18
    sent = server.requests[0]
    assert sent.json["stream"] is True and sent.json["stream_options"] == {"include_usage": True}
    assert sent.headers["accept"] == "text/event-stream"


@pytest.mark.parametrize("options", [
    {}, {"chunked": False}, {"crlf": True, "comments": True}, {"repeat_name": True},
    {"no_index": True}, {"piece": 1}, {"piece": 1000},
], ids=["chunked", "until-close", "crlf-comments", "repeated-names", "no-index", "tiny", "whole"])
def test_streamed_tool_calls_are_assembled(server, client, options):
    arguments = '{"path": "/var/log/aether.log", "max_bytes": 4096}'
    server.queue(Reply(content="Reading.", tool_calls=[("files_read", arguments),
                                                        ("clock_now", "{}")], **options))
    result = client.complete(HELLO, tools=[READ_TOOL], stream=True)
    assert result.content == "Reading." and result.finish_reason == "tool_calls"
    calls = [(c["id"], c["name"], c["arguments"]) for c in result.tool_calls]
    assert calls == [("call_fake_0", "files.read", json.loads(arguments)),
                     ("call_fake_1", "clock_now", {})]


def test_stream_without_usage_is_estimated(server, client):
    server.queue(Reply(content="abcdefgh", usage=None))
    result = client.complete(HELLO, stream=True)
    assert result.usage["estimated"] and result.usage["completion_tokens"] == 2


def test_the_answer_format_follows_the_server_not_the_request(server, client):
    server.queue(Reply(stream=False), Reply(stream=True))
    assert client.complete(HELLO, stream=True).content == "Hello from the fake model."
    assert client.complete(HELLO, stream=False).content == "Hello from the fake model."


def test_a_stream_that_ends_with_a_finish_reason_but_no_done_is_accepted(server, client):
    server.queue(Reply(done=False, chunked=False))
    assert client.complete(HELLO, stream=True).finish_reason == "stop"


@pytest.mark.parametrize("chunked", [True, False])
def test_a_cut_stream_is_malformed(server, client, chunked):
    server.queue(Reply(drop_after=3, chunked=chunked))
    with pytest.raises(llm.MalformedResponse):
        client.complete(HELLO, stream=True)


def test_an_error_in_the_middle_of_a_stream(server, client):
    server.queue(Reply(stream_error=f"model crashed; key was {KEY}"))
    with pytest.raises(llm.EndpointError) as info:
        client.complete(HELLO, stream=True)
    assert "model crashed" in str(info.value) and KEY not in str(info.value)


def test_a_stream_event_that_is_not_json(server, client):
    server.queue(Reply(raw=b"data: {broken\n\ndata: [DONE]\n\n", content_type="text/event-stream"))
    with pytest.raises(llm.MalformedResponse) as info:
        client.complete(HELLO, stream=True)
    assert "not JSON" in str(info.value)


def test_server_sent_events_parsing():
    lines = [b": keep-alive", b"event: error", b"data: {\"a\":", b"data: 1}", b"", b"id: 3",
             b"data:[DONE]", b"", b"data: tail"]
    assert list(llm.sse_events(lines)) == [("error", '{"a":\n1}'), ("message", "[DONE]"),
                                           ("message", "tail")]


# -- errors -------------------------------------------------------------------------------------

def test_http_errors_carry_status_and_the_servers_message(server, client):
    server.queue(Reply(status=500, error="CUDA out of memory"))
    with pytest.raises(llm.EndpointError) as info:
        client.complete(HELLO)
    assert info.value.status == 500 and "HTTP 500" in str(info.value)
    assert "CUDA out of memory" in str(info.value)
    assert info.value.to_dict()["code"] == "endpoint_error"


def test_401_redacts_the_key_and_hints_at_the_setting(server, client):
    server.queue(Reply(status=401, error=f"Incorrect API key provided: {KEY}"))
    with pytest.raises(llm.EndpointError) as info:
        client.complete(HELLO)
    text = str(info.value)
    assert KEY not in text and "[redacted]" in text and "aether.llm.api_key" in text
    assert KEY not in (info.value.server_message or "")


def test_a_wrong_path_gives_a_404_with_a_hint(server):
    client = llm.Client(server.url.replace("/v1", "/openai/v1"))
    with pytest.raises(llm.EndpointError) as info:
        client.complete(HELLO)
    assert info.value.status == 404 and "ending in /v1" in str(info.value)


@pytest.mark.parametrize("raw, text", [
    (b"{not json", "not JSON"),
    (b'{"object": "chat.completion"}', "no choices"),
    (b'{"choices": [{"index": 0}]}', "no message"),
    (b"[]", "not a JSON object"),
])
def test_malformed_answers(server, client, raw, text):
    server.queue(Reply(raw=raw))
    with pytest.raises(llm.MalformedResponse) as info:
        client.complete(HELLO)
    assert text in str(info.value)


def test_error_body_with_status_200(server, client):
    server.queue(Reply(raw=b'{"error": {"message": "model not loaded"}}'))
    with pytest.raises(llm.EndpointError) as info:
        client.complete(HELLO)
    assert "model not loaded" in str(info.value)


def test_connection_refused(closed_port):
    client = llm.Client(f"http://127.0.0.1:{closed_port}/v1")
    with pytest.raises(llm.EndpointUnreachable) as info:
        client.complete(HELLO)
    assert "connection refused" in str(info.value) and "is the model server running?" in str(info.value)


def test_slow_answer_times_out(server):
    server.queue(Reply(delay=1.0))
    client = llm.Client(server.url, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(llm.EndpointTimeout) as info:
        client.complete(HELLO)
    assert time.monotonic() - started < 0.8 and "aether.llm.timeout=0.2" in str(info.value)


def test_a_stalled_stream_times_out(server):
    server.queue(Reply(chunk_delay=0.5))
    with pytest.raises(llm.EndpointTimeout):
        llm.Client(server.url, timeout=0.2).complete(HELLO, stream=True)


def test_the_deadline_bounds_a_stream_that_keeps_trickling(server):
    server.queue(Reply(content="y" * 100, piece=1, chunk_delay=0.02))
    client = llm.Client(server.url, timeout=1, deadline=0.3)
    started = time.monotonic()
    with pytest.raises(llm.EndpointTimeout):
        client.complete(HELLO, stream=True)
    assert time.monotonic() - started < 1.0


def test_https_without_ssl(server, monkeypatch):
    monkeypatch.setitem(sys.modules, "ssl", None)
    with pytest.raises(llm.EndpointUnreachable) as info:
        llm.Client(server.url.replace("http:", "https:")).complete(HELLO)
    assert "no ssl module" in str(info.value)


@pytest.mark.parametrize("messages, tools, max_tokens", [
    ([], None, None), ("hello", None, None), ([{"role": "wizard", "content": "x"}], None, None),
    (HELLO, None, 0), (HELLO, None, True), (HELLO, ["files.read"], None),
    (HELLO, [{"name": "x"}], None), ([{"role": "user", "content": float("nan")}], None, None),
])
def test_invalid_requests_are_refused_before_sending(server, client, messages, tools, max_tokens):
    with pytest.raises(llm.InvalidRequest):
        client.complete(messages, tools=tools, max_tokens=max_tokens)
    assert server.requests == []


# -- budget -------------------------------------------------------------------------------------

def needed(max_tokens=1024, messages=HELLO, tools=()):
    specs, _ = llm.tool_specs(tools)
    return llm.estimate_prompt(messages, specs) + max_tokens


def test_token_budget_accounting():
    budget = llm.TokenBudget(100)
    held = budget.reserve(60)
    assert (budget.remaining, budget.reserved) == (40, 60)
    with pytest.raises(llm.BudgetExceeded):
        budget.reserve(41)
    held.charge(25)
    held.charge(99)  # settled once
    assert (budget.used, budget.reserved, budget.remaining) == (25, 0, 75)
    budget.reserve(10).release()
    assert budget.remaining == 75
    budget.charge(500)  # more than the limit: spent, not negative
    assert budget.remaining == 0
    with pytest.raises(llm.BudgetExceeded) as info:
        budget.reserve(1)
    assert "token budget spent: 525 of 100 tokens used" in str(info.value)


def test_token_budget_is_thread_safe():
    budget = llm.TokenBudget(10 ** 9)

    def work():
        for _ in range(2000):
            budget.reserve(3).charge(2)
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (budget.used, budget.reserved) == (16000, 0)


def test_a_spent_budget_refuses_before_sending(server, client):
    budget = llm.TokenBudget(50, used=50)
    with pytest.raises(llm.BudgetExceeded) as info:
        client.complete(HELLO, budget=budget)
    assert "token budget spent" in str(info.value) and "not sent" in str(info.value)
    assert server.requests == [] and info.value.to_dict()["code"] == "budget_exceeded"


def test_a_budget_that_cannot_cover_max_tokens_refuses_before_sending(server, client):
    budget = llm.TokenBudget(needed(100) - 1)
    with pytest.raises(llm.BudgetExceeded) as info:
        client.complete(HELLO, budget=budget, max_tokens=100)
    assert f"up to {needed(100)} tokens" in str(info.value)
    assert server.requests == [] and budget.used == 0 and budget.reserved == 0


def test_exactly_enough_budget_is_enough_and_usage_is_charged(server, client):
    budget = llm.TokenBudget(needed(100))
    client.complete(HELLO, budget=budget, max_tokens=100)
    assert (budget.used, budget.reserved) == (18, 0)


def test_streamed_and_estimated_usage_is_charged(server, client):
    server.queue(Reply(content="abcd" * 10, usage=None))
    budget = llm.TokenBudget(10000)
    result = client.complete(HELLO, budget=budget, stream=True)
    assert result.usage["estimated"] and budget.used == result.usage["total_tokens"]


def test_failures_charge_only_work_the_server_may_have_done(server, client, closed_port):
    budget = llm.TokenBudget(10000)
    with pytest.raises(llm.EndpointUnreachable):
        llm.Client(f"http://127.0.0.1:{closed_port}/v1").complete(HELLO, budget=budget)
    server.queue(Reply(status=500))
    with pytest.raises(llm.EndpointError):
        client.complete(HELLO, budget=budget)
    assert (budget.used, budget.reserved) == (0, 0)
    server.queue(Reply(delay=0.5))
    with pytest.raises(llm.EndpointTimeout):
        llm.Client(server.url, timeout=0.1).complete(HELLO, budget=budget)
    prompt = llm.estimate_prompt(HELLO, [])
    assert (budget.used, budget.reserved) == (prompt, 0)
    server.queue(Reply(content="z" * 40, drop_after=12))
    with pytest.raises(llm.MalformedResponse):
        client.complete(HELLO, budget=budget, stream=True)
    assert budget.used > 2 * prompt and budget.reserved == 0


def test_usage_normalisation():
    assert llm.normal_usage({"prompt_tokens": 3, "completion_tokens": 4}, 100, 100) == {
        "prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "estimated": False}
    assert llm.normal_usage({"total_tokens": 50}, 20, 99)["completion_tokens"] == 30
    assert llm.normal_usage({"prompt_tokens": "x", "completion_tokens": -1}, 5, 6)["estimated"]
    assert llm.normal_usage(None, 5, 6)["total_tokens"] == 11
