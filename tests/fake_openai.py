"""A fake OpenAI-compatible chat-completions server on 127.0.0.1, for tests.

A real ``http.server`` on an ephemeral port, in a thread.  Each request takes the
next queued Reply (or a default one) and is recorded, so tests can assert what the
client sent (the ``Authorization`` header, the JSON body)::

    with FakeOpenAI() as server:
        server.queue(Reply(tool_calls=[("files_read", '{"path": "/etc/hostname"}')]))
        client = llm.Client(server.url, model="fake", api_key="sk-test")
        client.complete([{"role": "user", "content": "hi"}], stream=True)
        assert server.requests[0].headers["authorization"] == "Bearer sk-test"

A Reply answers as JSON or as an SSE stream (as the request asked, unless ``stream``
forces one), with content, tool calls, with or without usage, or as an HTTP error,
slowly, malformed, cut off, or with an error in the middle of the stream.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Reply:
    """What the server does with one request.

    content         the assistant's text (None: no content field, e.g. only tool calls)
    tool_calls      [(name, arguments string)] or [{"id", "name", "arguments"}]
    usage           True: a usage block (prompt 11, completion 7); a dict: that; None: none
    finish_reason   default "tool_calls" when there are tool calls, else "stop"
    status, error   an HTTP error status and the message in {"error": {"message": ...}}
    raw             exact body bytes (with ``content_type``), e.g. malformed JSON
    delay           seconds before the status line; ``chunk_delay`` between stream events
    stream          None: as the request asks; True/False: force SSE or JSON
    chunked         stream with chunked transfer coding (else until the connection closes)
    piece           characters per content/arguments fragment in a stream
    done            end the stream with ``data: [DONE]``
    drop_after      close the connection after this many events, finishing nothing
    stream_error    a message sent as ``data: {"error": ...}`` after the first event
    crlf, comments  CRLF line ends; ``: keep-alive`` comment lines between events
    repeat_name     repeat the function name in every tool-call fragment
    no_index        leave ``index`` out of tool-call fragments
    """

    def __init__(self, content="Hello from the fake model.", tool_calls=(), usage=True,
                 finish_reason=None, status=200, error=None, raw=None,
                 content_type="application/json", delay=0.0, chunk_delay=0.0, stream=None,
                 chunked=True, piece=4, done=True, drop_after=None, stream_error=None,
                 crlf=False, comments=False, repeat_name=False, no_index=False):
        self.content, self.usage, self.status, self.error = content, usage, status, error
        self.tool_calls = [c if isinstance(c, dict) else {"name": c[0], "arguments": c[1]}
                           for c in tool_calls]
        for i, call in enumerate(self.tool_calls):
            call.setdefault("id", f"call_fake_{i}")
        self.finish_reason = finish_reason or ("tool_calls" if self.tool_calls else "stop")
        self.raw, self.content_type = raw, content_type
        self.delay, self.chunk_delay, self.stream, self.chunked = delay, chunk_delay, stream, chunked
        self.piece, self.done, self.drop_after, self.stream_error = piece, done, drop_after, stream_error
        self.crlf, self.comments = crlf, comments
        self.repeat_name, self.no_index = repeat_name, no_index

    def usage_block(self):
        if self.usage is True:
            return {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        return self.usage or None

    def message(self):
        message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c["id"], "type": "function",
                 "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in self.tool_calls]
        return message

    def whole(self, model):
        answer = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
                  "choices": [{"index": 0, "message": self.message(),
                               "finish_reason": self.finish_reason}]}
        if self.usage_block():
            answer["usage"] = self.usage_block()
        return answer

    def events(self, model, include_usage):
        """The chunk objects of the stream, in order (without [DONE])."""
        def chunk(delta, finish=None, **extra):
            return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                    "model": model, "choices": [{"index": 0, "delta": delta,
                                                 "finish_reason": finish}], **extra}
        yield chunk({"role": "assistant", "content": "" if self.content is not None else None})
        text = self.content or ""
        for i in range(0, len(text), self.piece):
            yield chunk({"content": text[i:i + self.piece]})
        for index, call in enumerate(self.tool_calls):
            yield from self._call_chunks(chunk, index, call)
        yield chunk({}, self.finish_reason)
        if include_usage and self.usage_block():
            yield {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model,
                   "choices": [], "usage": self.usage_block()}

    def _call_chunks(self, chunk, index, call):
        def fragment(**fields):
            if not self.no_index:
                fields["index"] = index
            return chunk({"tool_calls": [fields]})
        yield fragment(id=call["id"], type="function",
                       function={"name": call["name"], "arguments": ""})
        args = call["arguments"]
        for i in range(0, len(args), self.piece):
            function = {"arguments": args[i:i + self.piece]}
            if self.repeat_name:
                function["name"] = call["name"]
            yield fragment(function=function)


class Request:
    """One request the server got."""

    def __init__(self, method, path, headers, body):
        self.method, self.path, self.headers, self.body = method, path, headers, body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):
        """Clients that hang up early (timeout tests) are expected; say nothing."""


class FakeOpenAI:
    """The server: ``url`` is the endpoint base (``http://127.0.0.1:PORT/v1``)."""

    def __init__(self):
        self.replies, self.requests = [], []
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.fake = self
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/v1"

    def queue(self, *replies):
        with self.lock:
            self.replies.extend(replies)

    def next_reply(self):
        with self.lock:
            return self.replies.pop(0) if self.replies else Reply()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        fake = self.server.fake
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = Request("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        with fake.lock:
            fake.requests.append(request)
        reply = fake.next_reply()
        time.sleep(reply.delay)
        if self.path not in ("/v1/chat/completions", "/chat/completions"):  # as llama.cpp
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        if reply.raw is not None:
            return self._send(reply.status, reply.raw, reply.content_type)
        if reply.status >= 400:
            return self._send(reply.status, {"error": {"message": reply.error or "failed",
                                                       "type": "fake_error"}})
        asked = request.json if isinstance(request.json, dict) else {}
        model = asked.get("model", "fake-model")
        stream = reply.stream if reply.stream is not None else bool(asked.get("stream"))
        if not stream:
            return self._send(200, reply.whole(model))
        include_usage = bool((asked.get("stream_options") or {}).get("include_usage"))
        self._stream(reply, reply.events(model, include_usage))

    def _send(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, reply, events):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        end = "\r\n" if reply.crlf else "\n"
        for n, event in enumerate(events):
            if reply.drop_after is not None and n >= reply.drop_after:
                self.close_connection = True  # cut off: no [DONE], no last chunk
                return
            text = (f": keep-alive{end}" if reply.comments else "") + \
                f"data: {json.dumps(event)}{end}{end}"
            self._write(reply, text.encode())
            if n == 0 and reply.stream_error:
                self._write(reply, f"data: {json.dumps({'error': {'message': reply.stream_error}})}"
                                   f"{end}{end}".encode())
            time.sleep(reply.chunk_delay)
        if reply.done:
            self._write(reply, f"data: [DONE]{end}{end}".encode())
        if reply.chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _write(self, reply, data):
        if reply.chunked:
            data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
        self.wfile.write(data)
        self.wfile.flush()
