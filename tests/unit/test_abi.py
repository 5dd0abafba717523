"""The ABI's frames, errors and dispatch, fuzzed: no input can break the server."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from aether.abi import identity, protocol
from aether.abi.methods import ANY, PRIVILEGED, Method, obj
from aether.abi.server import Deferred, Server
from aether.schema import check_schema


class FakeLoop:
    def add_reader(self, *a): pass
    def remove_reader(self, *a): pass
    def add_writer(self, *a): pass
    def remove_writer(self, *a): pass
    def call_later(self, *a): pass


class FakeLog:
    def __init__(self):
        self.errors = []

    def exception(self, what, e):
        self.errors.append((what, e))

    def warning(self, msg): pass
    def debug(self, msg): pass


class FakeConn:
    def __init__(self, caller):
        self.caller = caller
        self.sent = []
        self.subscriptions = None

    def send(self, message):
        protocol.encode(message)                 # every answer goes on the wire as it is
        self.sent.append(message)


def boom(d, caller, params, conn):
    raise RuntimeError("handler bug")


def later(d, caller, params, conn):
    deferred = Deferred()
    d.pending.append(deferred)
    return deferred


class Ctx:
    pending = []


METHODS = {
    "t.echo": Method("t.echo", lambda d, c, p, conn: p, obj(["x"], x={"type": "integer"}), ANY, "echo"),
    "t.admin": Method("t.admin", lambda d, c, p, conn: "ok", obj(), PRIVILEGED, "admin only"),
    "t.boom": Method("t.boom", boom, obj(), ANY, "raises"),
    "t.later": Method("t.later", later, obj(), ANY, "answers later"),
}


def server():
    s = Server(FakeLoop(), METHODS, FakeLog(), Ctx())
    s.unavailable["ctx"] = "not yet"
    return s


AGENT = identity.Caller("agent:a", 10, 10000, 10000, agent="a")
SHELL = identity.Caller("shell", 11, 0, 0, privileged=True)


def answer(frame, caller=AGENT):
    conn = FakeConn(caller)
    server().handle(conn, frame if isinstance(frame, bytes) else json.dumps(frame).encode())
    assert len(conn.sent) == 1
    return conn.sent[0]


def test_a_good_call():
    assert answer({"id": 1, "method": "t.echo", "params": {"x": 3}}) == {"id": 1, "result": {"x": 3}}


@pytest.mark.parametrize("frame,code", [
    (b"{not json", "parse_error"),
    (b"\xff\xfe", "parse_error"),
    (b"[1, 2]", "invalid_request"),
    ({"method": "t.echo"}, "invalid_request"),
    ({"id": True, "method": "t.echo"}, "invalid_request"),
    ({"id": 1, "method": ""}, "invalid_request"),
    ({"id": 1, "method": "t.echo", "params": [1]}, "invalid_request"),
    ({"id": 1, "method": "t.echo", "params": {}, "extra": 1}, "invalid_request"),
    ({"id": 1, "method": "t.nope"}, "method_not_found"),
    ({"id": 1, "method": "t.echo", "params": {"x": "3"}}, "invalid_params"),
    ({"id": 1, "method": "t.echo", "params": {"x": 1, "y": 2}}, "invalid_params"),
    ({"id": 1, "method": "t.admin"}, "permission_denied"),
    ({"id": 1, "method": "t.boom"}, "internal"),
    ({"id": 1, "method": "ctx.window"}, "unavailable"),
])
def test_bad_requests_get_structured_errors(frame, code):
    reply = answer(frame)
    assert reply["error"]["code"] == code
    assert reply["error"]["message"]


def test_errors_are_addressed_to_the_request_when_possible():
    assert answer({"id": "abc", "method": "t.nope"})["id"] == "abc"
    assert answer({"id": 7, "method": 5})["id"] == 7


def test_privileged_callers_pass_the_access_check():
    assert answer({"id": 1, "method": "t.admin"}, SHELL) == {"id": 1, "result": "ok"}


def test_deferred_answers_arrive_later():
    s, conn = server(), FakeConn(AGENT)
    Ctx.pending.clear()
    s.handle(conn, b'{"id": 9, "method": "t.later"}')
    assert conn.sent == []
    Ctx.pending[0].resolve({"done": True})
    assert conn.sent == [{"id": 9, "result": {"done": True}}]


def test_frame_reader_splits_and_limits():
    r = protocol.FrameReader(limit=16)
    assert r.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert r.feed(b':2}\n\n') == [b'{"b":2}']
    out = r.feed(b"x" * 40)
    assert len(out) == 1 and isinstance(out[0], protocol.TooLarge)
    assert r.feed(b"yyy\n{}\n") == [b"{}"]        # the rest of the big frame is dropped


def test_a_run_of_blank_lines_is_dropped_in_one_step():
    r = protocol.FrameReader(limit=1 << 20)
    assert r.feed(b"\n" * 65536 + b' {"a":1}\n\r\n  \n{"b"') == [b'{"a":1}']
    assert r.feed(b":2}\n" + b"\n" * 1000) == [b'{"b":2}'] and len(r.buffer) == 0
    big = protocol.FrameReader(limit=16)                 # a skip still ends at the next newline
    assert isinstance(big.feed(b"x" * 40)[0], protocol.TooLarge)
    assert big.feed(b"\n{}\n") == [b"{}"]


def test_method_schemas_are_well_formed():
    from aether.abi.calls import table
    for method in table().values():
        check_schema(method.params, f"{method.name}.params")


# Text with lone surrogates too (what "\\ud800" in a frame decodes to), and nesting as
# deep as a hostile client likes.
any_text = st.text(st.characters(blacklist_categories=()), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | any_text,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(any_text.map(lambda t: t[:8]), c, max_size=4),
    max_leaves=12)
deep_values = st.integers(1, 400).flatmap(
    lambda n: st.sampled_from([[], {}]).map(lambda leaf: _nest(leaf, n)))


def _nest(leaf, depth):
    for i in range(depth):
        leaf = [leaf] if i % 2 else {"k": leaf}
    return leaf


requests = st.fixed_dictionaries(
    {"id": st.one_of(st.integers(), st.text(max_size=5), any_text.map(lambda t: t[:5]), st.none(),
                     st.booleans())},
    optional={"method": st.one_of(st.sampled_from(sorted(set(METHODS) - {"t.later"}) + ["ctx.x", "x"]),
                                        json_values),
              "params": json_values | deep_values.map(lambda v: {"x": v}), "junk": json_values})


@settings(max_examples=6000, deadline=None)
@given(requests)
def test_fuzz_structured_requests(request):
    reply = answer(request)
    assert ("result" in reply) != ("error" in reply)
    if "error" in reply:
        assert reply["error"]["code"] in protocol.ERRORS


@settings(max_examples=4000, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_raw_bytes(data):
    conn, s = FakeConn(AGENT), server()
    reader = protocol.FrameReader(limit=128)
    for item in reader.feed(data + b"\n"):
        if isinstance(item, protocol.TooLarge):
            continue
        s.handle(conn, item)
    for reply in conn.sent:
        assert reply.get("error", {}).get("code", "ok") in set(protocol.ERRORS) | {"ok"}


def test_a_lone_surrogate_in_the_id_still_gets_its_answer():
    conn, s = FakeConn(AGENT), server()
    s.handle(conn, b'{"id": "\\ud800", "method": "t.echo", "params": {"x": 1}}')
    s.handle(conn, b'{"id": 2, "method": "t.echo", "params": {"x": 2}}')
    assert [m["id"] for m in conn.sent] == ["\ud800", 2]
    assert json.loads(protocol.encode(conn.sent[0]))["id"] == "\ud800"     # reversible


@pytest.mark.parametrize("text", ["\ud800", "caf\udce9", "ok \udfff and \U0001f600"])
def test_encode_escapes_what_utf8_cannot_hold(text):
    frame = protocol.encode({"event": {"kind": "alert", "message": text}})
    assert frame.endswith(b"\n") and json.loads(frame)["event"]["message"] == text
    assert protocol.encode({"x": "plain é"}) == '{"x":"plain é"}\n'.encode()   # UTF-8 as before


@pytest.mark.parametrize("depth", [65, 200, 5000, 100000])
def test_deep_nesting_is_refused_not_crashed(depth):
    frame = b'{"id": 1, "method": "t.echo", "params": {"x": ' + b"[" * depth + b"]" * depth + b"}}"
    reply = answer(frame)
    assert reply["error"]["code"] in ("invalid_request", "parse_error")
    assert "deep" in reply["error"]["message"]
    deep = _nest([], 10000)
    with pytest.raises(protocol.TooLarge):
        protocol.encode({"result": deep})


@settings(max_examples=300, deadline=None)
@given(deep_values, any_text)
def test_fuzz_deep_and_unencodable_params(value, text):
    reply = answer({"id": text[:5] or 1, "method": "t.echo", "params": {"x": value, "y": text}})
    assert reply["error"]["code"] in protocol.ERRORS


# Pipelined floods: many requests in one write, through a real Connection on a socketpair.
floods = st.lists(requests, min_size=1, max_size=80).map(
    lambda rs: b"".join(json.dumps(r).encode() + b"\n" for r in rs))


class TurnLoop(FakeLoop):
    """Keeps what the server asks of the loop: readers, writers and the next turn's work."""

    def __init__(self):
        self.readers, self.writers, self.soon = {}, {}, []

    def add_reader(self, fd, cb): self.readers[fd] = cb
    def remove_reader(self, fd): self.readers.pop(fd, None)
    def add_writer(self, fd, cb): self.writers[fd] = cb
    def remove_writer(self, fd): self.writers.pop(fd, None)
    def call_soon(self, cb): self.soon.append(cb)
    def now(self): return 0.0


@settings(max_examples=300, deadline=None)
@given(floods)
def test_fuzz_pipelined_floods_are_answered_in_order_a_bounded_turn_at_a_time(flood):
    import socket
    from aether.abi import server as abi_server
    loop = TurnLoop()
    s = Server(loop, METHODS, FakeLog(), Ctx())
    ours, theirs = socket.socketpair()
    theirs.settimeout(5)
    conn = s.attach(ours.fileno(), AGENT, keep=ours)
    ran, turns = [], []
    handle = s.handle
    s.handle = lambda c, frame: ran.append(frame) or handle(c, frame)
    theirs.sendall(flood)
    answers = b""
    for _ in range(10000):
        before = len(ran)
        if loop.soon:
            work, loop.soon = loop.soon, []
            for cb in work:
                cb()
        elif ours.fileno() in loop.readers:
            loop.readers[ours.fileno()](ours.fileno())
        turns.append(len(ran) - before)
        for cb in list(loop.writers.values()):
            cb(ours.fileno())
        theirs.setblocking(False)
        try:
            answers += theirs.recv(1 << 20)
        except BlockingIOError:
            pass
        if answers.count(b"\n") == flood.count(b"\n") and not loop.soon:
            break
    sent = [json.loads(line) for line in flood.splitlines()]
    got = [json.loads(line) for line in answers.splitlines()]
    assert len(got) == len(sent)
    assert max(turns) <= abi_server.FRAMES_PER_TURN
    assert [g["id"] for g in got if "result" in g] == \
        [r["id"] for r, g in zip(sent, got) if "result" in g]
    assert conn.held == 0 and s.in_total == 0
    conn.close()
    theirs.close()
    assert s.out_total == 0 and not s.connections
