"""The loop's turns, the ABI server's accept back-off and caps, and the bounded line reader."""

import errno
import os

from hypothesis import given, settings, strategies as st

from aether.abi import identity, server as abi_server
from aether.abi.server import Server
from aether.loop import Loop
from aether.spawn import CUT_MARK, LineBuffer


class RecordingLoop:
    def __init__(self):
        self.readers, self.later, self.t = {}, [], 0.0

    def add_reader(self, fd, cb): self.readers[fd] = cb
    def remove_reader(self, fd): self.readers.pop(fd, None)
    def add_writer(self, fd, cb): pass
    def remove_writer(self, fd): pass
    def call_soon(self, cb): pass
    def call_later(self, delay, cb): self.later.append((delay, cb))
    def now(self): return self.t


class Log:
    def __init__(self):
        self.warnings = []

    def warning(self, text): self.warnings.append(text)
    def info(self, text): pass


class Exhausted:
    """A listening socket whose accept always fails for want of descriptors."""

    def __init__(self):
        self.accepts = 0

    def fileno(self):
        return 99

    def _accept(self):
        self.accepts += 1
        raise OSError(errno.EMFILE, "Too many open files")


def test_accept_out_of_descriptors_backs_off_instead_of_spinning():
    loop, log = RecordingLoop(), Log()
    s = Server(loop, {}, log, None)
    listener = Exhausted()
    s._listen_on(listener)
    for _ in range(50):                       # the loop would call it this often while it spins
        if 99 in loop.readers:
            loop.readers[99](99)
    assert listener.accepts == 1 and 99 not in loop.readers
    assert loop.later and loop.later[0][0] == abi_server.ACCEPT_BACKOFF
    loop.later.pop()[1]()                     # the back-off ends: accepting again
    assert 99 in loop.readers
    loop.t += 1.0
    loop.readers[99](99)
    assert len(log.warnings) == 1 and "pausing" in log.warnings[0]   # one line per NOTE_EVERY
    loop.t += abi_server.NOTE_EVERY
    loop.later.pop()[1]()
    loop.readers[99](99)
    assert len(log.warnings) == 2 and "1 more like it" in log.warnings[1]


def test_the_last_slots_are_kept_for_privileged_callers():
    s = Server(RecordingLoop(), {}, Log(), None)
    s.max_connections = abi_server.RESERVED + 2
    agents = [identity.Caller(f"agent:a{i}", uid=20000 + i, agent=f"a{i}") for i in range(3)]
    for caller in agents[:2]:
        r, w = os.pipe()
        s.attach(r, caller)
        os.close(w)
    s.connections.update(object.__new__(abi_server.Connection) for _ in range(abi_server.RESERVED - 2))
    assert s.admit(agents[2]) is not None and "unprivileged" in s.admit(agents[2])
    assert s.admit(identity.Caller("shell", uid=0, privileged=True)) is None


def test_the_connection_cap_follows_the_descriptor_limit(monkeypatch):
    import resource
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 4096))
    assert abi_server.connection_cap() == (1024 - abi_server.FD_RESERVE) // 2
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1 << 20, 1 << 20))
    assert abi_server.connection_cap() == abi_server.MAX_CONNECTIONS


def test_call_soon_runs_next_turn_after_the_ready_descriptors():
    loop = Loop(on_error=lambda e: None)
    seen = []
    r, w = os.pipe()
    loop.add_reader(r, lambda fd: seen.append(("read", os.read(fd, 10))))

    def again():
        seen.append("soon")
        loop.call_soon(again)                 # queued for the next turn, not run in this one
    loop.call_soon(again)
    os.write(w, b"x")
    loop.run_once(max_wait=5)
    assert seen == [("read", b"x"), "soon"]
    loop.run_once(max_wait=5)                 # soon work pending: the poll does not wait
    assert seen[-1] == "soon" and len(seen) == 3
    os.close(r)
    os.close(w)


def test_line_buffer_splits_cuts_and_marks():
    b = LineBuffer(8)
    assert b.feed(b"ab\ncd") == ["ab"]
    assert b.feed(b"efghijkl") == ["cdefghij" + CUT_MARK.format(8)]
    assert b.feed(b"mnop" * 1000) == []        # the rest of the long line is dropped
    assert b.feed(b"\nq\n12345678\n") == ["q", "12345678"]
    assert b.feed(b"tail") == [] and b.end() == "tail" and b.end() is None


def test_line_buffer_is_linear_in_what_it_is_fed():
    import time
    b = LineBuffer()
    chunk = b"x" * 65536
    started = time.process_time()
    for _ in range(1600):                     # 100 MiB of one line
        b.feed(chunk)
    assert time.process_time() - started < 2.0
    assert b.cutting and not b.pending         # given once (cut), the rest dropped as it comes


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=40) | st.sampled_from([b"\n", b"\n\n", b"\xc3", b"\xa9"]), max_size=30),
       st.integers(1, 24))
def test_fuzz_line_buffer_matches_a_plain_split(chunks, limit):
    b = LineBuffer(limit)
    got = [line for c in chunks for line in b.feed(c)]
    rest = b.end()
    got += [rest] if rest is not None else []
    whole = b"".join(chunks)
    parts = whole.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    assert len(got) == len(parts)
    for line, raw in zip(got, parts):
        if len(raw) <= limit:
            assert line == raw.decode("utf-8", "replace")
        else:
            assert line.endswith(CUT_MARK.format(limit))
            assert len(line.encode("utf-8")) <= limit * 3 + len(CUT_MARK) + 8



def test_the_socket_path_appears_only_once_it_listens(tmp_path, monkeypatch):
    """A client that waits for the path and connects at once is never refused: while the
    socket is bound but not yet listening, the path still holds what was there before (here
    a stale file a crash left), and the socket has its mode before anyone can reach it."""
    import socket
    import stat
    path = tmp_path / "abi.sock"
    path.write_text("stale")
    at_chmod = []
    real_chmod = os.chmod

    def chmod_and_look(target, mode):         # the moment between bind and listen
        real_chmod(target, mode)
        at_chmod.append(path.read_bytes() if path.is_file() else "a socket already")

    monkeypatch.setattr(abi_server.os, "chmod", chmod_and_look)
    s = Server(RecordingLoop(), {}, Log(), None)
    s.listen(str(path), mode=0o640)
    monkeypatch.undo()
    assert at_chmod == [b"stale"], "the path was the new socket before it listened"
    info = os.stat(path)
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["abi.sock"], "no staging name left behind"
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(path))                 # into the backlog at once, before any accept
    client.close()
    s.listeners[0].close()
