"""A blocking client for the agent ABI: agents use it inside the image, tools on the host.

    from aether.client import Client
    with Client() as c:                       # $AETHER_SOCKET or /run/aether/abi.sock
        c.call("agent.spawn", manifest={...})
        for event in c.subscribe(["agent"]):  # blocks, yields events
            ...

Errors come back as the ABI's exception classes (aether.abi.protocol), so a
caller can catch PermissionDenied, NotFound, InvalidParams...
"""

import itertools
import json
import os
import socket
import time
from collections import deque

from .abi.protocol import ERRORS, AbiError, FrameReader, Internal, encode

DEFAULT_SOCKET = "/run/aether/abi.sock"
CONNECT_WAIT = 30.0          # seconds a client without a timeout waits for a full backlog


class ConnectionLost(AbiError):
    """The server closed the connection (or never answered)."""
    code = "connection_lost"


def _connect(sock, path, timeout):
    """Connect, waiting up to ``timeout`` while aetherd's listen backlog is full: a Unix
    socket with a timeout gets EAGAIN then, which is busy, not down (a peer that
    connects and closes in a loop fills the backlog; the console must still get in)."""
    deadline = time.monotonic() + (timeout if timeout is not None else CONNECT_WAIT)
    pause = 0.005
    while True:
        try:
            return sock.connect(path)
        except BlockingIOError:
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


class Client:
    def __init__(self, path=None, timeout=30.0, sock=None):
        self.path = path or os.environ.get("AETHER_SOCKET", DEFAULT_SOCKET)
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                _connect(sock, self.path, timeout)
            except OSError as e:
                sock.close()
                raise ConnectionLost(f"cannot connect to aetherd at {self.path}: {e.strerror or e} "
                                     "(is aetherd running? is AETHER_SOCKET right?)") from None
        else:
            sock.settimeout(timeout)
        self.sock = sock
        self.reader = FrameReader()
        self.frames = deque()
        self.events = deque()
        self.stray = deque(maxlen=100)
        self.ids = itertools.count(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def call(self, method, **params):
        request_id = next(self.ids)
        try:
            self.sock.sendall(encode({"id": request_id, "method": method, "params": params}))
        except (BrokenPipeError, ConnectionResetError):
            self._why_closed()
        while True:
            message = self._next()
            if "event" in message:
                self.events.append(message["event"])
                continue
            if message.get("id") != request_id:
                # an answer to something else, e.g. an error about an earlier bad frame
                self.stray.append(message)
                continue
            if "error" in message:
                raise _error(message["error"])
            return message.get("result")

    def _why_closed(self):
        """aetherd closed before our request went out: raise what it said first (a refusal
        such as the per-caller connection cap), or ConnectionLost."""
        while True:
            message = self._next()          # raises the refusal at the end of the stream
            if "event" in message:
                self.events.append(message["event"])
            else:
                self.stray.append(message)

    def think(self, input=None, tool_results=None, **options):
        """llm.think: send only what is new (a user turn, tool results); aetherd assembles the window
        from the thread and the store. options: thread, thread_id, goal_id, rules, tools, max_tokens..."""
        params = {k: v for k, v in options.items() if v is not None}
        if input is not None:
            params["input"] = input
        if tool_results:
            params["tool_results"] = list(tool_results)
        return self.call("llm.think", **params)

    def subscribe(self, kinds=("*",)):
        """Subscribe now; return an iterator that yields events as they come (blocking)."""
        self.call("sys.subscribe", kinds=list(kinds))
        return self._events()

    def _events(self):
        while True:
            while self.events:
                yield self.events.popleft()
            message = self._next()
            if "event" in message:
                yield message["event"]

    def _next(self):
        while not self.frames:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise ConnectionLost(f"aetherd did not answer within {self.sock.gettimeout():g}s") from None
            except ConnectionResetError:
                data = b""
            if not data:
                last = self.stray[-1] if self.stray else {}
                if last.get("id") is None and isinstance(last.get("error"), dict):
                    raise _error(last["error"])      # why aetherd closed it (e.g. a connection cap)
                raise ConnectionLost("aetherd closed the connection")
            for item in self.reader.feed(data):
                if isinstance(item, AbiError):
                    raise item
                self.frames.append(item)
        try:
            return json.loads(self.frames.popleft())
        except ValueError as e:
            raise Internal(f"aetherd sent a frame that is not JSON: {e}") from None


def _error(wire):
    cls = ERRORS.get(wire.get("code"), AbiError)
    error = cls(wire.get("message", "unknown error"), wire.get("data"))
    if cls is AbiError:
        error.code = wire.get("code", "error")
    return error
