"""The model client: chat completions from one OpenAI-compatible endpoint.

Any server that speaks ``POST {endpoint}/chat/completions`` (llama.cpp, Ollama, vLLM,
a hosted API) configured by ``aether.llm.*``.  ``Client.complete`` sends the messages
(and tool specs), reads a JSON answer or an SSE stream, and returns a Completion:
content, tool calls with parsed arguments (malformed arguments are reported on the
call, never raised), finish reason and token usage.  Errors are LLMError subclasses
with one clear sentence each; the API key is sent as ``Authorization: Bearer <key>``,
and is never logged, returned, or shown: reprs and error texts redact it.

Endpoint: ``http://host:8080/v1`` -> ``http://host:8080/v1/chat/completions``; an
endpoint with no path gets ``/v1``; one already ending in ``/chat/completions`` is
used as it is.

Time: ``timeout`` bounds every wait (connecting, the first byte, each streamed piece);
``deadline`` bounds the whole call.  A call blocks its thread for at most ``deadline``
seconds plus name resolution.  A Client holds only its configuration: one Client may
serve many threads at once (each call has its own connection).

Budget (``budget=``, e.g. a TokenBudget): before anything is sent, the call needs
``prompt estimate + max_tokens`` tokens.  It is refused with BudgetExceeded when the
budget's ``remaining`` is zero or less than that; otherwise that much is reserved.
Afterwards the reservation is charged with the tokens used (the server's usage, or
the estimate below), or released when the server did no work (nothing could be sent,
or it answered an HTTP error).  A timeout, a broken stream or a malformed answer after
the request went out is charged the prompt estimate plus what was received.

Estimated usage (when the server reports none; ``usage.estimated`` is then true): one
token per 4 characters, rounded up, of the JSON text of the messages and tool specs
(prompt) and of the content and tool calls received (completion).  JSON text over-
counts a little, which errs on the side of the budget.
"""

import _thread
import json
import re

from . import httpclient

DEFAULT_TIMEOUT = 120.0
DEFAULT_DEADLINE = 600.0
DEFAULT_MAX_TOKENS = 1024
MAX_REQUEST = 8 * 1024 * 1024
MAX_RESPONSE = 16 * 1024 * 1024
MAX_LINE = 1024 * 1024
ROLES = ("system", "developer", "user", "assistant", "tool")
REDACTED = "[redacted]"


class LLMError(Exception):
    """A completion failed; ``code`` is stable and machine-readable."""

    code = "llm_error"

    def to_dict(self):
        return {"code": self.code, "message": str(self)}


class NotConfigured(LLMError):
    """No model endpoint is configured."""

    code = "not_configured"


class BudgetExceeded(LLMError):
    """The caller's token budget is spent or cannot cover the call; nothing was sent."""

    code = "budget_exceeded"


class InvalidRequest(LLMError):
    """The messages, tools or parameters are not a request this client can send."""

    code = "invalid_request"


class EndpointUnreachable(LLMError):
    """The endpoint could not be reached (refused, unresolvable, TLS unavailable)."""

    code = "unreachable"


class EndpointTimeout(LLMError):
    """The endpoint did not answer within the timeout or the deadline."""

    code = "timeout"


class EndpointError(LLMError):
    """The endpoint answered with an error: HTTP status and the server's own message."""

    code = "endpoint_error"

    def __init__(self, message, status=None, server_message=None):
        super().__init__(message)
        self.status, self.server_message = status, server_message

    def to_dict(self):
        return {**super().to_dict(), "status": self.status}


class ContextOverflow(EndpointError):
    """The endpoint refused the call: prompt and completion do not fit its context window.

    ``window``, ``requested`` and ``prompt_tokens`` are the server's numbers when it gave them.
    """

    code = "context_overflow"

    def __init__(self, message, status=None, server_message=None, window=None, requested=None,
                 prompt_tokens=None):
        super().__init__(message, status, server_message)
        self.window, self.requested, self.prompt_tokens = window, requested, prompt_tokens

    def to_dict(self):
        return {**super().to_dict(), "window": self.window, "requested": self.requested,
                "prompt_tokens": self.prompt_tokens}


class MalformedResponse(LLMError):
    """The endpoint's answer is not a chat completion (bad JSON, missing fields, cut stream)."""

    code = "malformed_response"


# -- token budget -------------------------------------------------------------------------------

class TokenBudget:
    """A token allowance: ``reserve`` before a call, charge the actual use after.

    ``remaining`` is ``limit - used - reserved`` (never below zero).  Thread-safe.
    Charges may exceed a reservation (a low estimate): ``used`` then passes ``limit``
    and every later call is refused.
    """

    def __init__(self, limit, used=0):
        self.limit, self.used, self.reserved = int(limit), int(used), 0
        self._lock = _thread.allocate_lock()

    @property
    def remaining(self):
        return max(0, self.limit - self.used - self.reserved)

    def reserve(self, tokens):
        """A Reservation of ``tokens``, or BudgetExceeded when they are not left."""
        with self._lock:
            left = self.limit - self.used - self.reserved
            if tokens > left:
                raise BudgetExceeded(refusal(max(0, left), tokens, self.used, self.limit))
            self.reserved += tokens
        return Reservation(self, tokens)

    def charge(self, tokens):
        """Count ``tokens`` as used, with no reservation."""
        with self._lock:
            self.used += max(0, int(tokens))

    def _settle(self, reservation, tokens):
        with self._lock:
            self.reserved -= reservation.tokens
            self.used += max(0, int(tokens))

    def __repr__(self):
        return f"TokenBudget(limit={self.limit}, used={self.used}, reserved={self.reserved})"


class Reservation:
    """Tokens held for one call; settled once, by ``charge(actual)`` or ``release()``."""

    def __init__(self, budget, tokens):
        self.budget, self.tokens, self.settled = budget, tokens, False

    def charge(self, tokens):
        if not self.settled:
            self.settled = True
            self.budget._settle(self, tokens)

    def release(self):
        self.charge(0)


def refusal(left, needed, used=None, limit=None):
    """The sentence that refuses a call the budget cannot cover."""
    if left <= 0:
        spent = f": {used} of {limit} tokens used" if limit is not None else ""
        return f"token budget spent{spent}; the call was not sent"
    return (f"token budget cannot cover this call: it may use up to {needed} tokens "
            f"(prompt estimate + max_tokens) and {left} remain; the call was not sent "
            "(lower max_tokens or raise the budget)")


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


class Client:
    """One configured endpoint.  ``complete`` does the work; see the module docstring."""

    def __init__(self, endpoint=None, model=None, api_key=None, timeout=DEFAULT_TIMEOUT,
                 max_tokens=DEFAULT_MAX_TOKENS, deadline=DEFAULT_DEADLINE):
        self.endpoint = (endpoint or "").strip() or None
        self.model = model or None
        self._key = api_key or None
        self.problem = None  # a bad setting: every call refuses with it, nothing raises here
        self.timeout = self._number("timeout", timeout, float, DEFAULT_TIMEOUT)
        self.deadline = self._number("deadline", deadline, float, DEFAULT_DEADLINE)
        self.max_tokens = self._number("max_tokens", max_tokens, int, DEFAULT_MAX_TOKENS)
        if self.endpoint is not None:
            try:
                httpclient.parse_url(chat_url(self.endpoint))
            except httpclient.BadURL as e:
                self.problem = f"aether.llm.endpoint={self.endpoint!r} is not usable: {e}"

    def _number(self, key, value, kind, default):
        try:
            number = kind(value)
            if number > 0:
                return number
        except (TypeError, ValueError):
            pass
        self.problem = f"aether.llm.{key}={value!r} is not usable: expected a positive number"
        return default

    @classmethod
    def from_config(cls, values):
        """A Client from ``aether.llm.*`` values: endpoint, model, api_key, timeout, max_tokens."""
        keys = ("endpoint", "model", "api_key", "timeout", "max_tokens", "deadline")
        return cls(**{k: values[k] for k in keys if values.get(k) not in (None, "")})

    @property
    def configured(self):
        return self.endpoint is not None and self.problem is None

    def __repr__(self):
        key = "set" if self._key else "none"
        return (f"Client(endpoint={self.endpoint!r}, model={self.model!r}, api_key=<{key}>, "
                f"timeout={self.timeout:g})")

    def redact(self, text):
        """``text`` with the API key replaced by [redacted]; so are its first 8 and last 6
        characters when it is long enough for those to be its own (servers echo them)."""
        key = self._key
        if key and len(key) >= 4:
            text = text.replace(key, REDACTED)
            if len(key) >= 16:
                text = text.replace(key[:8], REDACTED).replace(key[-6:], REDACTED)
        return text

    def complete(self, messages, tools=None, stream=False, max_tokens=None, temperature=None,
                 tool_choice=None, budget=None, on_delta=None):
        """Ask the model; a Completion, or an LLMError subclass.

        ``tools``: tool.list entries or OpenAI specs.  ``on_delta(text)`` is called with
        each piece of content as it streams.  ``budget``: see the module docstring.
        """
        if self.problem is not None:
            raise NotConfigured(self.problem)
        if self.endpoint is None:
            raise NotConfigured("no model endpoint configured: set aether.llm.endpoint="
                                "http://HOST:PORT/v1 (and aether.llm.model=NAME if the server "
                                "serves several models)")
        check_messages(messages)
        specs, names = tool_specs(tools)
        limit = self.max_tokens if max_tokens is None else max_tokens
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidRequest(f"max_tokens must be a positive integer, not {limit!r}")
        body = self._body(messages, specs, names, stream, limit, temperature, tool_choice)
        prompt = estimate_prompt(messages, specs)
        reservation = _reserve(budget, prompt + limit)
        exchange = _Exchange(self, names, prompt, on_delta)
        try:
            completion = exchange.run(body, stream)
        except BaseException:
            if reservation is not None:
                reservation.charge(exchange.spent())
            raise
        if reservation is not None:
            reservation.charge(completion.usage["total_tokens"])
        return completion

    def _body(self, messages, specs, names, stream, limit, temperature, tool_choice):
        request = {"messages": wire_messages(messages), "max_tokens": limit, "stream": bool(stream)}
        if self.model:
            request["model"] = self.model
        if specs:
            request["tools"] = specs
        if tool_choice is not None:
            request["tool_choice"] = _wire_choice(tool_choice, names)
        if temperature is not None:
            request["temperature"] = temperature
        if stream:
            request["stream_options"] = {"include_usage": True}
        try:
            data = json.dumps(request, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as e:
            raise InvalidRequest(f"the request is not JSON-serialisable: {e}") from None
        if len(data) > MAX_REQUEST:
            raise InvalidRequest(f"the request is {len(data)} bytes, more than {MAX_REQUEST}")
        return data

    def _headers(self, stream):
        headers = [("Content-Type", "application/json"),
                   ("Accept", "text/event-stream" if stream else "application/json")]
        if self._key:
            headers.append(("Authorization", f"Bearer {self._key}"))
        return headers


def _wire_choice(choice, names):
    """``tool_choice`` naming a tool by its own name (files.read) gets the wire name."""
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict):
        wire = {ours: wire for wire, ours in names.items()}.get(function.get("name"))
        if wire is not None:
            return {**choice, "function": {**function, "name": wire}}
    return choice


def _reserve(budget, needed):
    """Refuse before sending when the budget cannot cover ``needed``; else reserve it."""
    if budget is None:
        return None
    left = budget.remaining
    if left <= 0 or left < needed:
        raise BudgetExceeded(refusal(left, needed, getattr(budget, "used", None),
                                     getattr(budget, "limit", None)))
    return budget.reserve(needed)


class _Exchange:
    """One request and its answer; knows how much work the server did if it fails."""

    def __init__(self, client, names, prompt, on_delta):
        self.client, self.names, self.prompt, self.on_delta = client, names, prompt, on_delta
        self.worked = False  # did the server (maybe) process the prompt?
        self.assembly = None

    def spent(self):
        """Tokens to charge for a failed exchange (see the module docstring)."""
        if not self.worked:
            return 0
        received = self.assembly.completion_estimate() if self.assembly else 0
        return self.prompt + received

    def run(self, body, stream):
        client = self.client
        url = chat_url(client.endpoint)
        try:
            response = httpclient.request("POST", url, client._headers(stream), body,
                                          timeout=client.timeout,
                                          deadline=_deadline(client.deadline))
            self.worked = True
            with response:
                return self._answer(response)
        except httpclient.TLSUnavailable as e:
            raise EndpointUnreachable(f"cannot reach model endpoint {client.endpoint}: {e}") from None
        except httpclient.ConnectFailed as e:
            hint = " (is the model server running?)" if e.reason == "refused" else ""
            raise EndpointUnreachable(client.redact(f"cannot reach model endpoint "
                                                    f"{client.endpoint}: {e}{hint}")) from None
        except httpclient.Timeout as e:
            self.worked = e.phase != "connect"
            raise EndpointTimeout(f"model endpoint {client.endpoint} did not answer in time "
                                  f"(aether.llm.timeout={client.timeout:g} s): {e}") from None
        except httpclient.ProtocolError as e:
            hint = " (the server stopped or crashed mid-answer?)" if "closed" in str(e) else ""
            raise MalformedResponse(client.redact(f"model endpoint {client.endpoint}: {e}"
                                                  f"{hint}")) from None

    def _answer(self, response):
        if response.status >= 400:
            self.worked = False  # refused: no generation happened
            raise self._http_error(response)
        ctype = (response.header("content-type") or "").lower()
        self.assembly = _Assembly(self.names, self.on_delta)
        if "text/event-stream" in ctype:
            return self._stream(response.lines(MAX_LINE))
        data, truncated = response.read(MAX_RESPONSE)
        if truncated:
            raise MalformedResponse(f"the answer is larger than {MAX_RESPONSE} bytes")
        if data.lstrip().startswith(b"data:"):  # a stream sent without its content type
            return self._stream(iter(data.split(b"\n")))
        return self._json(data, response.status)

    def _json(self, data, status):
        try:
            answer = json.loads(data)
        except ValueError as e:
            raise MalformedResponse(self.client.redact(
                f"model endpoint {self.client.endpoint} answered HTTP {status} with something "
                f"that is not JSON ({e}): {_clip(data)}")) from None
        self.assembly.whole(answer)
        return self.assembly.result(self.prompt, streamed=False)

    def _stream(self, lines):
        total = 0
        for event, data in sse_events(lines):
            total += len(data)
            if total > MAX_RESPONSE:
                raise MalformedResponse(f"the stream is larger than {MAX_RESPONSE} bytes")
            if data.startswith("[DONE]"):
                return self.assembly.result(self.prompt, streamed=True)
            try:
                chunk = json.loads(data)
            except ValueError:
                raise MalformedResponse(self.client.redact(
                    f"the stream sent an event that is not JSON: {_clip(data)}")) from None
            if event == "error" or (isinstance(chunk, dict) and chunk.get("error")):
                raise self._error_in(chunk, "during the stream")
            self.assembly.chunk(chunk)
        if self.assembly.finish_reason is not None:
            return self.assembly.result(self.prompt, streamed=True)
        raise MalformedResponse(f"the stream from {self.client.endpoint} ended after {total} "
                                "bytes, before [DONE] and before a finish_reason: the server "
                                "closed it mid-answer (did it stop or crash?)")

    def _http_error(self, response):
        data, _ = response.read(65536)
        try:
            answer = json.loads(data)
        except ValueError:
            answer = data.decode("utf-8", "replace").strip()[:500] or "(empty body)"
        return self._error_in(answer, f"HTTP {response.status} {response.reason}".strip(),
                              response.status)

    def _error_in(self, answer, when, status=None):
        message = self.client.redact(server_message(answer))
        overflow = context_overflow(answer, message)
        if overflow is not None:
            window, requested, prompt = overflow
            numbers = (f"the call needs {requested} tokens ({prompt} of prompt, "
                       f"{requested - prompt} of max_tokens), the endpoint's window is {window}"
                       if window and requested and prompt is not None else
                       "the call does not fit the endpoint's context window")
            return ContextOverflow(
                f"model endpoint {self.client.endpoint} refused the call ({when}): {numbers}: "
                "drop or shorten the oldest messages, or lower max_tokens (aether.llm.n_ctx "
                f"is the window aetherd assumes). The server said: {message}", status=status,
                server_message=message, window=window, requested=requested, prompt_tokens=prompt)
        hint = {401: " (check aether.llm.api_key)", 403: " (check aether.llm.api_key)",
                404: " (check aether.llm.endpoint, usually ending in /v1, and aether.llm.model)",
                429: " (rate limited: try again later)"}.get(status, "")
        return EndpointError(f"model endpoint {self.client.endpoint} answered {when}: "
                             f"{message}{hint}", status=status, server_message=message)


def _deadline(seconds):
    import time
    return time.monotonic() + seconds


def _clip(data, limit=200):
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    return text[:limit] + ("..." if len(text) > limit else "")


def server_message(answer):
    """The error message in a server's answer: {"error": {"message"}}, {"error": "..."},
    {"message"}, {"detail"}, or the text itself."""
    if isinstance(answer, dict):
        error = answer.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"][:1000]
        if isinstance(error, str):
            return error[:1000]
        for key in ("message", "detail"):
            if isinstance(answer.get(key), str):
                return answer[key][:1000]
        return _clip(json.dumps(answer), 500)
    return _clip(answer if isinstance(answer, str) else json.dumps(answer), 500)


_OVERFLOW_CODES = ("context_length_exceeded", "context_overflow")
_OVERFLOW_WORDS = ("context length", "context window", "context size", "exceed_context")


def context_overflow(answer, message):
    """(window, requested, prompt tokens) when the server's error says the call does not fit
    its context (OpenAI's and llama.cpp's servers' wording; numbers None when not given),
    else None."""
    error = answer.get("error") if isinstance(answer, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    lowered = message.lower()
    if code not in _OVERFLOW_CODES and not any(w in lowered for w in _OVERFLOW_WORDS):
        return None
    numbers = [int(n) for n in re.findall(r"\d+", message)[:6]]
    window = requested = prompt = None
    if "maximum context length is" in lowered and len(numbers) >= 3:
        window, requested, prompt = numbers[0], numbers[1], numbers[2]
    elif "requested tokens" in lowered and len(numbers) >= 2:      # llama.cpp's own words
        prompt, window = numbers[0], numbers[1]
        requested = prompt
    return window, requested, prompt


def sse_events(lines):
    """(event type, data) of each server-sent event in ``lines`` (bytes, no line ends).

    Multi-line data is joined with newlines; ``:`` comment lines (keep-alives) and
    fields other than ``event`` and ``data`` are ignored.
    """
    event, data = None, []
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if not line:
            if data:
                yield event or "message", "\n".join(data)
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
    if data:
        yield event or "message", "\n".join(data)


# -- answers ------------------------------------------------------------------------------------

class _Assembly:
    """A completion put together from a whole answer or from streamed chunks."""

    def __init__(self, names, on_delta):
        self.names, self.on_delta = names, on_delta
        self.content, self.calls = [], {}
        self.finish_reason = self.usage = self.model = None
        self.has_content = False

    def whole(self, answer):
        if not isinstance(answer, dict):
            raise MalformedResponse(f"the answer is not a JSON object: {_clip(json.dumps(answer))}")
        if answer.get("error"):
            raise EndpointError(f"the model endpoint answered with an error: "
                                f"{server_message(answer)}", server_message=server_message(answer))
        choices = answer.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise MalformedResponse(f"the answer has no choices: {_clip(json.dumps(answer))}")
        message = choices[0].get("message")
        if not isinstance(message, dict):
            raise MalformedResponse("the answer's first choice has no message")
        self._take(message, whole=True)
        self.finish_reason = choices[0].get("finish_reason")
        self._meta(answer)

    def chunk(self, chunk):
        if not isinstance(chunk, dict):
            raise MalformedResponse(f"a stream chunk is not a JSON object: {_clip(json.dumps(chunk))}")
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise MalformedResponse("a stream chunk's choices is not a list")
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                delta = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            self._take(delta, whole=False)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        self._meta(chunk)

    def _meta(self, answer):
        if isinstance(answer.get("usage"), dict):
            self.usage = answer["usage"]
        if isinstance(answer.get("model"), str):
            self.model = answer["model"]

    def _take(self, part, whole):
        text = part.get("content")
        if isinstance(text, str):
            self.has_content = True
            if text:
                self.content.append(text)
                if self.on_delta is not None and not whole:
                    self.on_delta(text)
        calls = part.get("tool_calls")
        if isinstance(calls, list):
            for position, fragment in enumerate(calls):
                if isinstance(fragment, dict):
                    self._fragment(fragment, position if whole else None)

    def _fragment(self, fragment, position):
        index = fragment.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = position if position is not None else self._guess_index(fragment)
        slot = self.calls.setdefault(index, {"id": None, "name": "", "arguments": []})
        if isinstance(fragment.get("id"), str) and fragment["id"] and not slot["id"]:
            slot["id"] = fragment["id"]
        function = fragment.get("function")
        if not isinstance(function, dict):
            return
        name = function.get("name")
        if isinstance(name, str) and name and name != slot["name"]:
            slot["name"] += name  # servers that repeat the whole name are ignored above
        arguments = function.get("arguments")
        if isinstance(arguments, (dict, list)):
            arguments = json.dumps(arguments)
        if isinstance(arguments, str):
            slot["arguments"].append(arguments)

    def _guess_index(self, fragment):
        """A fragment without ``index``: a new call if it brings a new id, else the last one."""
        ident = fragment.get("id")
        if ident and all(slot["id"] != ident for slot in self.calls.values()):
            return len(self.calls)
        return max(self.calls, default=0)

    def tool_calls(self):
        calls = []
        for index in sorted(self.calls):
            slot = self.calls[index]
            raw = "".join(slot["arguments"])
            arguments, error = parse_arguments(raw)
            calls.append({"id": slot["id"] or f"call_{index}",
                          "name": self.names.get(slot["name"], slot["name"]),
                          "wire_name": slot["name"], "arguments": arguments,
                          "arguments_json": raw, "error": error})
        return calls

    def completion_estimate(self):
        text = "".join(self.content)
        for slot in self.calls.values():
            text += slot["name"] + "".join(slot["arguments"])
        return estimate_tokens(text)

    def result(self, prompt, streamed):
        calls = self.tool_calls()
        content = "".join(self.content) if self.has_content or not calls else None
        return Completion(content, calls, self.finish_reason,
                          normal_usage(self.usage, prompt, self.completion_estimate()),
                          self.model, streamed)


def parse_arguments(raw):
    """(arguments as a dict, None) or (None, what is wrong with them)."""
    if not raw.strip():
        return {}, None
    try:
        value = json.loads(raw)
    except ValueError as e:
        return None, f"the arguments are not valid JSON ({e}): {_clip(raw, 120)}"
    if not isinstance(value, dict):
        return None, f"the arguments are not a JSON object: {_clip(raw, 120)}"
    return value, None


def normal_usage(usage, prompt, completion):
    """{prompt_tokens, completion_tokens, total_tokens, estimated} from the server's usage,
    or from the estimates when it sent none (or nonsense)."""
    def count(key):
        value = usage.get(key) if isinstance(usage, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
    p, c, t = count("prompt_tokens"), count("completion_tokens"), count("total_tokens")
    if p is not None and c is not None:
        return {"prompt_tokens": p, "completion_tokens": c,
                "total_tokens": t if t is not None and t >= p + c else p + c, "estimated": False}
    if t is not None:
        return {"prompt_tokens": p if p is not None else min(prompt, t),
                "completion_tokens": c if c is not None else t - min(prompt, t),
                "total_tokens": t, "estimated": False}
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion, "estimated": True}


class Completion:
    """A model's answer: ``content`` (None when it only called tools), ``tool_calls``
    ([{id, name, wire_name, arguments, arguments_json, error}]), ``finish_reason``,
    ``usage`` ({prompt_tokens, completion_tokens, total_tokens, estimated}), ``model``."""

    __slots__ = ("content", "tool_calls", "finish_reason", "usage", "model", "streamed")

    def __init__(self, content, tool_calls, finish_reason, usage, model=None, streamed=False):
        self.content, self.tool_calls, self.finish_reason = content, tool_calls, finish_reason
        self.usage, self.model, self.streamed = usage, model, streamed

    def to_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}

    def message(self):
        """The assistant message to append to ``messages`` before the tool results."""
        message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c["id"], "type": "function",
                 "function": {"name": c["wire_name"], "arguments": c["arguments_json"]}}
                for c in self.tool_calls]
        return message

    def __repr__(self):
        return (f"Completion(content={_clip(self.content or '', 60)!r}, "
                f"tool_calls={len(self.tool_calls)}, finish_reason={self.finish_reason!r})")
