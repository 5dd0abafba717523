"""Serving the ABI on aetherd's event loop: a Unix socket for the machine, the
virtio-serial port for the host.

Every connection has a Caller (identity.py), a frame reader, a queue of frames
waiting their turn, an output buffer written as the peer drains it, and
optional event subscriptions.  A handler returns a result, raises an AbiError,
or returns a ``Deferred`` (deferred.py) and answers later; anything else it raises becomes an
``internal`` error and is logged: no input can take aetherd down.

No peer can starve or exhaust the others (docs/security.md, "The ABI loop"):

- a connection runs at most FRAMES_PER_TURN requests (and not much more than
  TURN_SECONDS) per turn, then yields; it is not read again before its queue is empty,
  nor served while more than OUT_PAUSE bytes of its answers wait to be read;
- turns go round the principals, not the connections (``Server.serve``): one
  connection of each principal per round, privileged callers (console, host)
  first, and a round yields to the loop after ROUND_SECONDS, so a caller that
  opens many connections gets one share, and the console waits for no round;
- connections are capped per principal (PER_PRINCIPAL) and overall (a share of
  RLIMIT_NOFILE, at most MAX_CONNECTIONS; the last RESERVED slots only for
  privileged callers); a caller over a cap gets one ``unavailable`` frame
  saying which cap, then the connection closes;
- unfinished input held across all connections is bounded (IN_TOTAL), and so
  are answers queued (OUT_TOTAL): past either, the connection holding the most
  is told why and closed;
- ``accept`` failing for want of descriptors pauses accepting for
  ACCEPT_BACKOFF instead of spinning.
"""

import _socket
import collections
import errno
import os
import struct

from . import identity
from .deferred import Deferred
from .protocol import (AbiError, FrameReader, Internal, MethodNotFound, TooLarge, Unavailable, encode,
                       parse_request)

OUT_LIMIT = 16 << 20      # bytes queued for a peer that does not read before we drop it
OUT_PAUSE = 1 << 20       # a peer's unread answers above which its next requests wait
OUT_TOTAL = 64 << 20      # answers and events queued across every connection
IN_TOTAL = 16 << 20       # unfinished frames and queued requests held across every connection
FRAMES_PER_TURN = 16      # requests one connection runs before the others get a turn...
TURN_SECONDS = 0.05       # ...or fewer, once its turn has taken this long
ROUND_SECONDS = 0.1       # turns of other principals run before the loop polls again
READ_SIZE = 65536
MAX_CONNECTIONS = 512     # overall, and never more than FD_SHARE of RLIMIT_NOFILE
FD_SHARE = 0.5            # of the descriptors aetherd may open (the rest: agents' pipes, files, the store)
FD_RESERVE = 64
PER_PRINCIPAL = 64        # connections one agent or one local uid may hold
RESERVED = 16             # of the overall cap, slots only privileged callers (console, host) may take
ACCEPTS_PER_TURN = 64
ACCEPT_BACKOFF = 0.5      # seconds without accepting after EMFILE/ENFILE
NOTE_EVERY = 10.0         # seconds between two log lines about the same refusal
NO_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
SO_PEERCRED = 17
UCRED = struct.Struct("iII")
HOST_RETRY = 1.0          # seconds between looks at a host port nobody has opened


class Connection:
    def __init__(self, server, fd, caller, keep=None):
        self.server, self.fd, self.caller = server, fd, caller
        self.keep = keep                 # the socket object owning fd, if any
        self.reader = FrameReader()
        self.queue = collections.deque() # frames read and not yet run (from one read at most)
        self.queued = 0                  # bytes of those frames
        self.held = 0                    # input bytes this connection holds (reader + queue)
        self.out = bytearray()
        self.reading = False
        self.scheduled = False           # a turn is queued on the loop
        self.subscriptions = None        # None, or a set of event kinds ("*" for all)
        self.closed = False

    # -- input: read, then run a bounded number of frames per turn

    def readable(self, _fd):
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            return self.close()
        for item in self.reader.feed(data):
            self.queue.append(item)
            self.queued += len(item) if isinstance(item, bytes) else 0
        self._account()
        if self.queue:
            self._stop_reading()
            self._schedule()
        self.server.check_input()

    def turn(self):
        """Run up to FRAMES_PER_TURN queued frames, then yield; read again once the queue is empty."""
        self.scheduled = False
        ran, until = 0, self.server.loop.now() + TURN_SECONDS
        while self.queue and ran < FRAMES_PER_TURN and len(self.out) < OUT_PAUSE and not self.closed \
                and (ran == 0 or self.server.loop.now() < until):
            item = self.queue.popleft()
            self.queued -= len(item) if isinstance(item, bytes) else 0
            ran += 1
            if isinstance(item, TooLarge):
                self.send({"id": None, "error": item.to_wire()})
            else:
                self.server.handle(self, item)
        if self.closed:
            return
        self._account()
        if self.queue and len(self.out) < OUT_PAUSE:
            self._schedule()
        elif not self.queue:
            self.start_reading()
        # else: waiting for the peer to read its answers (writable() schedules the next turn)

    def start_reading(self):
        if not self.reading and not self.closed:
            self.reading = True
            self.server.loop.add_reader(self.fd, self.readable)

    def _stop_reading(self):
        if self.reading:
            self.reading = False
            self.server.loop.remove_reader(self.fd)

    def _schedule(self):
        if not self.scheduled:
            self.scheduled = True
            self.server.want_turn(self)

    def _account(self):
        held = len(self.reader.buffer) + self.queued
        self.server.in_total += held - self.held
        self.held = held

    # -- output

    def send(self, message):
        if self.closed:
            return
        try:
            frame = encode(message)
        except AbiError as e:
            frame = encode({"id": message.get("id"), "error": e.to_wire()})
        if len(self.out) + len(frame) > OUT_LIMIT:
            self.server.log.warning(f"abi: {self.caller.principal} is not reading its answers; "
                                    "closing its connection")
            return self.close()
        if not self.out:
            self.server.loop.add_writer(self.fd, self.writable)
        self.out.extend(frame)
        self.server.out_total += len(frame)
        self.server.check_output()

    def writable(self, _fd):
        try:
            written = os.write(self.fd, self.out[:262144])
        except BlockingIOError:
            return
        except OSError:
            return self.close()
        del self.out[:written]
        self.server.out_total -= written
        if not self.out:
            self.server.loop.remove_writer(self.fd)
        if self.queue and len(self.out) < OUT_PAUSE:
            self._schedule()

    def refuse(self, error):
        """Tell the peer why (one frame, best effort) and close."""
        try:
            os.write(self.fd, encode({"id": None, "error": error.to_wire()}))
        except OSError:
            pass
        self.close()

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.queue.clear()
        self.queued = 0
        self.reader.buffer.clear()
        self._account()
        self.server.out_total -= len(self.out)
        self.out.clear()
        self._stop_reading()
        self.server.loop.remove_reader(self.fd)
        self.server.loop.remove_writer(self.fd)
        self.server.forget(self)
        if self.keep is not None:
            self.keep.close()
        else:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.server.closed(self)


class Server:
    """Dispatches requests to ``methods`` (name -> Method) for every connection."""

    def __init__(self, loop, methods, log, context):
        self.loop, self.methods, self.log, self.context = loop, methods, log, context
        self.connections = set()
        self.per_principal = {}          # principal -> connections open
        self.in_total = 0                # input bytes held by every connection
        self.out_total = 0               # output bytes queued for every connection
        self.max_connections = None      # from RLIMIT_NOFILE when listening starts
        self.listeners = []
        self.on_close = []
        self.unavailable = {}            # namespace -> why its calls cannot be served
        self.identify = identity.from_peer   # (pid, uid, gid) -> Caller
        self.waiting = (collections.OrderedDict(), collections.OrderedDict())  # privileged, others:
        self.serving = False             # principal -> deque of its connections waiting for a turn
        self._noted = {}                 # what -> (last time logged, refusals since)

    # -- listening ----------------------------------------------------------------

    def listen(self, path, mode=0o666):
        """Listen on the Unix socket ``path``. The socket is bound under a temporary name,
        given its mode and made to listen, then renamed onto ``path``: a client that sees
        the path can connect (no ECONNREFUSED between bind and listen, no moment with the
        umask's mode), and a stale socket left by a crash is replaced in one step."""
        base = os.path.basename(path)            # a staging name no longer than the final one
        hidden = ("." if not base.startswith(".") else ",") + base[1:]   # (AF_UNIX: at most 107 bytes)
        staging = os.path.join(os.path.dirname(path) or ".", hidden)
        try:
            os.unlink(staging)
        except FileNotFoundError:
            pass
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            sock.bind(staging)
            os.chmod(staging, mode)
            sock.listen(128)
            os.rename(staging, path)
        except BaseException:
            sock.close()
            try:
                os.unlink(staging)
            except FileNotFoundError:
                pass
            raise
        sock.setblocking(False)
        self.listeners.append(sock)
        if self.max_connections is None:
            self.max_connections = connection_cap()
        self._listen_on(sock)

    def _listen_on(self, sock):
        self.loop.add_reader(sock.fileno(), lambda _fd: self._accept(sock))

    def _accept(self, listener):
        for _ in range(ACCEPTS_PER_TURN):
            try:
                fd, _addr = listener._accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in NO_DESCRIPTORS:
                    return self._back_off(listener, e)
                self.log.warning(f"abi: accept failed: {e}")
                return
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
            sock.setblocking(False)
            pid, uid, gid = UCRED.unpack(sock.getsockopt(_socket.SOL_SOCKET, SO_PEERCRED, UCRED.size))
            self.attach(sock.fileno(), self.identify(pid, uid, gid), keep=sock)

    def _back_off(self, listener, error):
        """Out of descriptors: stop accepting for a while (the backlog waits) instead of spinning."""
        self.note("accept", f"abi: cannot accept connections ({error.strerror}); "
                            f"pausing for {ACCEPT_BACKOFF:g} s ({len(self.connections)} open)")
        self.loop.remove_reader(listener.fileno())
        self.loop.call_later(ACCEPT_BACKOFF, lambda: self._listen_on(listener))

    def attach(self, fd, caller, keep=None, admit=True):
        conn = Connection(self, fd, caller, keep)
        refusal = self.admit(caller) if admit else None
        self.connections.add(conn)
        self.per_principal[caller.principal] = self.per_principal.get(caller.principal, 0) + 1
        if refusal is not None:
            self.note(f"cap:{caller.principal}", f"abi: refused a connection from {caller.principal}: {refusal}")
            conn.refuse(Unavailable(refusal))
            return conn
        conn.start_reading()
        return conn

    def admit(self, caller):
        """Why a new connection from ``caller`` is refused, or None."""
        mine = self.per_principal.get(caller.principal, 0)
        if mine >= PER_PRINCIPAL:
            return (f"{caller.principal} already has {mine} connections open, the most one caller may "
                    f"hold ({PER_PRINCIPAL}); close some (one connection can carry many requests)")
        cap = self.max_connections or MAX_CONNECTIONS
        room = cap if caller.privileged else cap - RESERVED
        if len(self.connections) >= room:
            return (f"aetherd has {len(self.connections)} connections open, its limit "
                    f"({room}{'' if caller.privileged else f' for unprivileged callers, of {cap}'}); "
                    "retry later")
        return None

    def forget(self, conn):
        if conn in self.connections:
            self.connections.discard(conn)
            left = self.per_principal.get(conn.caller.principal, 1) - 1
            if left > 0:
                self.per_principal[conn.caller.principal] = left
            else:
                self.per_principal.pop(conn.caller.principal, None)

    # -- turns: round-robin between principals ----------------------------------------

    def want_turn(self, conn):
        """Queue a turn for ``conn`` behind its principal's other connections."""
        waiting = self.waiting[0 if conn.caller.privileged else 1]
        waiting.setdefault(conn.caller.principal, collections.deque()).append(conn)
        if not self.serving:
            self.serving = True
            self.loop.call_soon(self.serve)

    def serve(self):
        """One round: a turn for one connection of each waiting principal, privileged ones
        first; after ROUND_SECONDS the rest wait for the next turn of the loop (which polls first)."""
        self.serving = False
        until = self.loop.now() + ROUND_SECONDS
        for waiting in self.waiting:
            for principal in list(waiting):
                if waiting is self.waiting[1] and self.loop.now() >= until:
                    break
                conns = waiting.pop(principal)
                conn = conns.popleft()
                if conns:
                    waiting[principal] = conns       # its other connections: behind every other principal
                if not conn.closed:
                    conn.turn()
        if any(self.waiting) and not self.serving:
            self.serving = True
            self.loop.call_soon(self.serve)

    # -- bounds over every connection -----------------------------------------------

    def check_input(self):
        """Past IN_TOTAL: the connection holding the most unfinished input is told why and closed."""
        while self.in_total > IN_TOTAL and self.connections:
            biggest = max(self.connections, key=lambda c: c.held)
            if biggest.held == 0:
                return
            self.note("in_total", f"abi: {self.in_total} bytes of unfinished requests held, over "
                                  f"{IN_TOTAL}; closing {biggest.caller.principal}'s connection, which held "
                                  f"{biggest.held}")
            biggest.refuse(TooLarge(
                f"aetherd holds {self.in_total} bytes of unfinished requests across "
                f"{len(self.connections)} connections, more than it keeps ({IN_TOTAL}); this connection "
                f"held the most ({biggest.held} bytes) and is closed: send whole frames "
                "(each at most 1 MiB, newline-terminated) and retry"))

    def check_output(self):
        """Past OUT_TOTAL: the connection with the most unread answers is closed (it reads slowest)."""
        while self.out_total > OUT_TOTAL and self.connections:
            slowest = max(self.connections, key=lambda c: len(c.out))
            if not slowest.out:
                return
            self.note("out_total", f"abi: {self.out_total} bytes of answers queued, over {OUT_TOTAL}; "
                                   f"closing {slowest.caller.principal}'s connection, which had "
                                   f"{len(slowest.out)} unread")
            slowest.close()

    def note(self, what, text):
        """Log ``text``, but at most once per NOTE_EVERY seconds for the same ``what``."""
        now = self.loop.now()
        last, since = self._noted.get(what, (None, 0))
        if last is not None and now - last < NOTE_EVERY:
            self._noted[what] = (last, since + 1)
            return
        self._noted[what] = (now, 0)
        self.log.warning(text + (f" ({since} more like it since the last report)" if since else ""))

    def serve_port(self, name):
        """Serve the host over the virtio-serial port called ``name``; reopen it whenever
        the host goes away.  Without udev there is no /dev/virtio-ports/<name> link:
        the port is found by its name in sysfs."""
        def open_port():
            path = find_port(name)
            if path is None:
                self.log.info(f"abi: no virtio-serial port named {name}: the host channel is off")
                return
            try:
                fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
            except OSError as e:
                self.log.warning(f"abi: cannot open the host port {path}: {e.strerror}")
                return
            conn = self.attach(fd, identity.HOST, admit=False)      # the host is never turned away
            conn.reopen = lambda: self.loop.call_later(HOST_RETRY, open_port)

        self.on_close.append(lambda conn: getattr(conn, "reopen", None) and conn.reopen())
        open_port()

    def closed(self, conn):
        for callback in self.on_close:
            callback(conn)

    # -- requests -------------------------------------------------------------------

    def handle(self, conn, frame):
        request_id = None
        try:
            request_id, name, params = parse_request(frame)
            method = self.methods.get(name)
            if method is None and name.split(".")[0] in self.unavailable:
                raise Unavailable(self.unavailable[name.split(".")[0]])
            if method is None:
                raise MethodNotFound(f"no method {name!r}; abi.hello lists the methods "
                                     f"(namespaces: {', '.join(sorted({m.split('.')[0] for m in self.methods}))})")
            result = method.call(self.context, conn.caller, params, conn)
        except AbiError as e:
            if request_id is None:
                request_id = getattr(e, "request_id", None)
            return conn.send({"id": request_id, "error": e.to_wire()})
        except Exception as e:  # noqa: BLE001 - a handler bug must not end aetherd
            self.log.exception(f"abi: {conn.caller.principal} called {frame[:200]!r}", e)
            return conn.send({"id": request_id, "error": Internal(
                f"the server failed on this request ({type(e).__name__}: {e}); "
                "it has been logged and the connection stays usable").to_wire()})
        if isinstance(result, Deferred):
            def done(value, error, request_id=request_id):
                if error is not None:
                    wire = error.to_wire() if isinstance(error, AbiError) else Internal(str(error)).to_wire()
                    conn.send({"id": request_id, "error": wire})
                else:
                    conn.send({"id": request_id, "result": value})
            result.bind(done)
        else:
            conn.send({"id": request_id, "result": result})

    # -- events ---------------------------------------------------------------------

    def publish(self, event):
        """Send an event to every subscribed connection whose filter matches."""
        kind = event.get("kind", "")
        for conn in list(self.connections):
            subs = conn.subscriptions
            if subs and ("*" in subs or kind in subs or kind.split(".")[0] in subs):
                if conn.caller.sees(event):
                    conn.send({"event": event})


def find_port(name, sys_root="/sys/class/virtio-ports"):
    """The /dev node of the virtio-serial port called ``name``, or None."""
    try:
        ports = sorted(os.listdir(sys_root))
    except OSError:
        return None
    for port in ports:
        try:
            with open(os.path.join(sys_root, port, "name")) as f:
                if f.read().strip() == name:
                    return f"/dev/{port}"
        except OSError:
            continue
    return None


def connection_cap():
    """The overall connection cap: MAX_CONNECTIONS, or less when RLIMIT_NOFILE is low."""
    import resource
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(RESERVED + 8, min(MAX_CONNECTIONS, int((soft - FD_RESERVE) * FD_SHARE)))
