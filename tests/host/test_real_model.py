"""aether.llm and aetherd's llm.complete against the real model server (tests/realmodel.py).

What is tested is what AetherOS sends, parses, streams, counts and cancels, against a
real engine (llama-cpp-python, SmolLM2-135M): not the quality of a 135M model's answers.
The engine's access log (one line per request) counts the requests that reached it.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from aether import llm
from aether.client import Client, ConnectionLost

from .conftest import REPO, sleep_until

pytestmark = pytest.mark.host

HELLO = [{"role": "user", "content": "Say hello in five words."}]
WEATHER_TOOL = {"name": "weather.get", "description": "The weather now in a city.",
                "schema": {"type": "object", "properties": {
                    "city": {"type": "string", "description": "the city's name",
                             "maxLength": 100000}},   # too large for a grammar: left out on the wire
                    "required": ["city"]}}
WEATHER_ASK = [{"role": "system", "content": "You are a helpful assistant with tools."},
               {"role": "user", "content": "Use the tool: what is the weather in Paris?"}]
CHAT_ASK = [{"role": "system", "content": "You are a friendly assistant. Only use a tool when "
                                          "asked about weather."},
            {"role": "user", "content": "Hi there, who are you?"}]


def client(server, **options):
    return llm.Client(server.base_url, model=server.model, **options)


def requests_seen(server):
    """How many chat-completion requests the engine has logged so far."""
    return server.log_path.read_text(errors="replace").count('"POST /v1/chat/completions')


def raw_stream(server, body):
    """The parsed chunks of a streamed answer, read without aether.llm."""
    request = urllib.request.Request(server.base_url + "/chat/completions",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    chunks = []
    with urllib.request.urlopen(request, timeout=60) as r:
        for line in r:
            line = line.decode().strip()
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                chunks.append(json.loads(line[5:]))
    return chunks


def test_a_completion_with_the_servers_own_usage(model_server):
    done = client(model_server).complete(HELLO, max_tokens=16)
    assert isinstance(done.content, str) and done.content.strip()
    assert done.finish_reason in ("stop", "length") and done.tool_calls == []
    usage = done.usage
    assert usage["estimated"] is False, "llama-cpp-python reports usage on a whole answer"
    assert usage["prompt_tokens"] > 5 and 1 <= usage["completion_tokens"] <= 16
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_a_streamed_completion_and_its_usage(model_server):
    sent = raw_stream(model_server, {"messages": HELLO, "max_tokens": 16, "stream": True,
                                     "stream_options": {"include_usage": True}})
    server_counts = any(isinstance(c.get("usage"), dict) for c in sent)
    pieces = []
    done = client(model_server).complete(HELLO, max_tokens=16, stream=True, on_delta=pieces.append)
    assert done.streamed and pieces and "".join(pieces) == done.content
    assert done.finish_reason in ("stop", "length")
    # Whatever the server sends decides which count the answer carries, and it says so.
    assert done.usage["estimated"] is (not server_counts)
    if not server_counts:
        assert done.usage["prompt_tokens"] == llm.estimate_prompt(HELLO, [])
        assert done.usage["completion_tokens"] == llm.estimate_tokens(done.content)


def test_a_tool_call_round_trip(model_server):
    c = client(model_server)
    budget = llm.TokenBudget(100000)
    called = c.complete(WEATHER_ASK, tools=[WEATHER_TOOL], max_tokens=64, budget=budget)
    assert called.finish_reason == "tool_calls", called
    call = called.tool_calls[0]
    assert call["name"] == "weather.get" and call["wire_name"] == "weather_get"
    assert call["error"] is None and isinstance(call["arguments"].get("city"), str)
    assert called.usage["estimated"] is False and budget.used == called.usage["total_tokens"]

    result = "Sunny and 21 degrees Celsius in Paris, with a light wind from the north-west."
    back = [*WEATHER_ASK, called.message(),
            {"role": "tool", "tool_call_id": call["id"], "content": result}]
    answer = c.complete(back, max_tokens=48)
    assert isinstance(answer.content, str) and answer.content.strip()
    assert answer.finish_reason in ("stop", "length")
    # The tool result reached the model's prompt (the format alone would drop it).
    without = c.complete(back[:-1], max_tokens=1)
    assert answer.usage["prompt_tokens"] - without.usage["prompt_tokens"] >= 15


def test_a_streamed_tool_call(model_server):
    done = client(model_server).complete(WEATHER_ASK, tools=[WEATHER_TOOL], max_tokens=64,
                                         stream=True)
    assert done.streamed and done.finish_reason == "tool_calls", done
    assert done.tool_calls[0]["name"] == "weather.get" and done.tool_calls[0]["error"] is None
    assert done.usage["estimated"] is False


@pytest.mark.parametrize("stream", [False, True])
def test_tools_offered_and_an_answer_in_words(model_server, stream):
    """The model may answer without a tool; the answer then has words in it."""
    done = client(model_server).complete(CHAT_ASK, tools=[WEATHER_TOOL], max_tokens=32,
                                         stream=stream)
    assert done.tool_calls == [] and done.content and done.content.strip(), done


def test_a_schema_too_large_for_a_grammar_does_not_kill_the_server(model_server):
    """Sent as it is (not through aether.llm): the engine drops the bound itself."""
    spec = {"type": "function", "function": {"name": "weather_get", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 100000}}}}}
    body = {"messages": WEATHER_ASK, "tools": [spec], "max_tokens": 32,
            "tool_choice": {"type": "function", "function": {"name": "weather_get"}}}
    request = urllib.request.Request(model_server.base_url + "/chat/completions",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as r:
        answer = json.load(r)
    assert answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "weather_get"
    assert model_server.answers()


def test_the_server_killed_in_the_middle_of_a_stream(model_server):
    c = client(model_server, timeout=20, deadline=60)
    budget = llm.TokenBudget(100000)
    pieces = []

    def on_delta(text):
        pieces.append(text)
        if len(pieces) == 3:
            assert model_server.kill(), "no engine process to kill"

    story = [{"role": "user", "content": "Write a long story about a cat who sails the sea."}]
    started = time.monotonic()
    try:
        with pytest.raises(llm.LLMError) as e:
            c.complete(story, max_tokens=400, temperature=0.8, stream=True, on_delta=on_delta,
                       budget=budget)
        took = time.monotonic() - started
        assert len(pieces) >= 3
        assert model_server.base_url in str(e.value) and took < 20, (str(e.value), took)
        assert isinstance(e.value, (llm.MalformedResponse, llm.EndpointUnreachable)), e.value
        # Charged what was spent: the prompt (it was evaluated) and what came back; no more.
        received = llm.estimate_tokens("".join(pieces))
        assert budget.reserved == 0
        assert budget.used == llm.estimate_prompt(story, []) + received
        # The supervisor brings the engine back by itself.
        model_server.wait_ready(60)
        assert "restarting in" in model_server.log_path.read_text()
        assert c.complete(HELLO, max_tokens=8).content is not None
    finally:
        if not model_server.answers():
            model_server.restart()


def test_a_prompt_over_the_context_is_refused_once_with_the_numbers(model_server):
    long = [{"role": "user", "content": "word " * (model_server.n_ctx + 500)}]
    budget = llm.TokenBudget(10 ** 6)
    before = requests_seen(model_server)
    with pytest.raises(llm.ContextOverflow) as e:
        client(model_server).complete(long, max_tokens=16, budget=budget)
    assert e.value.window == model_server.n_ctx and e.value.prompt_tokens > model_server.n_ctx
    assert e.value.requested == e.value.prompt_tokens + 16
    text = str(e.value)
    assert f"window is {model_server.n_ctx}" in text and "drop or shorten" in text
    assert e.value.to_dict()["code"] == "context_overflow"
    assert budget.used == 0 and budget.reserved == 0, "a refused call costs nothing"
    time.sleep(0.5)  # the access log line is written after the answer
    assert requests_seen(model_server) - before == 1, "one request, no retries"


# -- through aetherd -------------------------------------------------------------------------------

class HostAetherd:
    """A host aetherd whose aether.llm.* point at the real server."""

    def __init__(self, tmp_path, settings):
        run, data = tmp_path / "run", tmp_path / "data"
        data.mkdir(parents=True)
        (data / "config").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        self.log_path = tmp_path / "aetherd.log"
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aether.aetherd", "--host", "--run-dir", str(run),
                 "--data-dir", str(data)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                env=dict(os.environ, PYTHONPATH=str(REPO)))
        sleep_until(lambda: (run / "abi.sock").exists() or self.proc.poll() is not None, 30)
        self.sock = str(run / "abi.sock")
        try:
            self.client = Client(self.sock, timeout=120)
        except ConnectionLost as e:          # say why: aetherd's own words, not only "refused"
            raise AssertionError(f"{e}; aetherd exit status {self.proc.poll()}; its log:\n"
                                 + self.log_path.read_text()[-4000:]) from None

    def stop(self):
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def host_aetherd(model_server, tmp_path):
    """start(**settings) -> a HostAetherd configured for the real server (settings override)."""
    started = []

    def start(**extra):
        settings = {"llm.endpoint": model_server.base_url, "llm.model": model_server.model,
                    "llm.n_ctx": model_server.n_ctx}
        settings.update({k.replace("_", ".", 1): v for k, v in extra.items()})
        d = HostAetherd(tmp_path / f"aetherd{len(started)}", settings)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def aetherd_real(host_aetherd):
    d = host_aetherd()
    return d.client, d.log_path


def test_llm_complete_through_aetherd(aetherd_real):
    c, _ = aetherd_real
    done = c.call("llm.complete", messages=HELLO, max_tokens=16)
    assert isinstance(done["content"], str) and done["content"].strip()
    assert done["usage"]["estimated"] is False and done["usage"]["completion_tokens"] >= 1
    streamed = c.call("llm.complete", messages=HELLO, max_tokens=16, stream=True)
    assert streamed["content"].strip() and streamed["finish_reason"] in ("stop", "length")


def test_a_tool_call_through_aetherd(aetherd_real):
    c, _ = aetherd_real
    done = c.call("llm.complete", messages=WEATHER_ASK, tools=[WEATHER_TOOL], max_tokens=64)
    assert done["finish_reason"] == "tool_calls"
    assert done["tool_calls"][0]["name"] == "weather.get"
    assert isinstance(done["tool_calls"][0]["arguments"]["city"], str)


def test_over_the_window_aetherd_refuses_before_sending(model_server, host_aetherd):
    c = host_aetherd().client
    before = requests_seen(model_server)
    with pytest.raises(Exception) as e:
        c.call("llm.complete", messages=[{"role": "user", "content": "word " * model_server.n_ctx}],
               max_tokens=16)
    assert str(model_server.n_ctx) in str(e.value), e.value
    time.sleep(0.5)
    assert requests_seen(model_server) == before, "nothing reached the server"


def test_a_window_set_too_large_gets_the_servers_refusal_once(model_server, host_aetherd):
    """aether.llm.n_ctx says more than the server has: the server refuses, once."""
    c = host_aetherd(llm_n_ctx=8 * model_server.n_ctx).client
    before = requests_seen(model_server)
    with pytest.raises(Exception) as e:
        c.call("llm.complete", messages=[{"role": "user", "content": "word " * (model_server.n_ctx + 200)}],
               max_tokens=16)
    text = str(e.value)
    assert f"window is {model_server.n_ctx}" in text and "aether.llm.n_ctx" in text, text
    time.sleep(3)                     # long enough for any retry to show in the access log
    assert requests_seen(model_server) - before == 1, "one request, no retry storm"


def test_the_engine_killed_during_a_call_through_aetherd(model_server, host_aetherd):
    c = host_aetherd().client
    story = [{"role": "user", "content": "Write a long story about a cat who sails the sea."}]
    outcome = []

    def ask():
        try:
            outcome.append(("ok", c.call("llm.complete", messages=story, max_tokens=400,
                                         temperature=0.8, stream=True)))
        except Exception as e:  # noqa: BLE001 - the error is what is checked
            outcome.append(("error", e))

    import threading
    t = threading.Thread(target=ask, daemon=True)
    try:
        t.start()
        sleep_until(lambda: requests_seen(model_server) and model_server.engine_pids(), 10)
        time.sleep(1.0)                    # generating by now
        started = time.monotonic()
        assert model_server.kill()
        t.join(30)
        assert not t.is_alive(), "llm.complete hung after the engine died"
        assert time.monotonic() - started < 30
        kind, value = outcome[0]
        assert kind == "error", f"a killed engine gave an answer: {value}"
        assert model_server.base_url in str(value), value
        used = c.call("llm.usage")
        assert aetherd_still_answers(c) and used is not None
    finally:
        model_server.wait_ready(60)


def aetherd_still_answers(c):
    return c.call("abi.hello") is not None


# -- scripts/model-server itself ---------------------------------------------------------------

def test_model_server_stops_its_engine_on_sigterm(model_server, tmp_path):
    from tests.realmodel import RealModelServer
    other = RealModelServer(tmp_path).start(timeout=120)
    engines = other.engine_pids()
    assert engines and other.answers()
    assert other.stop() == 0, other.log_tail()
    assert not any(os.path.exists(f"/proc/{pid}") for pid in engines), "the engine outlived it"
    assert not other.answers()


def test_model_server_refuses_a_port_in_use_and_a_missing_model(model_server, tmp_path):
    server = [sys.executable, str(REPO / "scripts" / "model-server")]
    busy = subprocess.run([*server, "--port", str(model_server.port)], capture_output=True,
                          text=True, timeout=60)
    assert busy.returncode == 2 and f"port {model_server.port}" in busy.stderr
    assert "--port N" in busy.stderr and busy.stdout == ""
    missing = subprocess.run([*server, "--check"], capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, AETHER_MODEL_FILE=str(tmp_path / "none.gguf")))
    assert missing.returncode == 3 and "none.gguf is missing" in missing.stdout
    assert "make deps" in missing.stdout
