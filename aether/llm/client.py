"""Client: one configured endpoint; ``complete`` sends a request and reads a JSON answer
or an SSE stream (an _Exchange per call), within its timeout and deadline.
"""

import json

from .. import httpclient
from .errors import (BudgetExceeded, ContextOverflow, EndpointError, EndpointTimeout, EndpointUnreachable,
                     InvalidRequest, MalformedResponse, NotConfigured)
from .budget import refusal
from .wire import (DEFAULT_DEADLINE, DEFAULT_MAX_TOKENS, DEFAULT_TIMEOUT, MAX_LINE, MAX_REQUEST,
                   MAX_RESPONSE, REDACTED, chat_url, check_messages, estimate_prompt, tool_specs,
                   wire_messages)
from .answer import _Assembly, _clip, context_overflow, server_message, sse_events


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
