"""Serving the ABI on aetherd's event loop: a Unix socket for the machine, the
virtio-serial port for the host.

Every connection has a Caller (identity.py), a frame reader, an output buffer
written as the peer drains it, and optional event subscriptions.  A handler
returns a result, raises an AbiError, or returns ``Deferred`` and answers
later; anything else it raises becomes an ``internal`` error and is logged:
no input can take aetherd down.
"""

import _socket
import os
import struct

from . import identity
from .protocol import (AbiError, FrameReader, Internal, MethodNotFound, TooLarge, Unavailable, encode,
                       parse_request)

OUT_LIMIT = 16 << 20      # bytes queued for a peer that does not read before we drop it
SO_PEERCRED = 17
UCRED = struct.Struct("iII")
HOST_RETRY = 1.0          # seconds between looks at a host port nobody has opened


class Deferred:
    """A handler's promise to answer later: call ``resolve(result)`` or ``fail(error)``."""

    def __init__(self):
        self._done = None

    def bind(self, done):
        self._done = done

    def resolve(self, result):
        if self._done:
            self._done(result, None)

    def fail(self, error):
        if self._done:
            self._done(None, error)


class Connection:
    def __init__(self, server, fd, caller, keep=None):
        self.server, self.fd, self.caller = server, fd, caller
        self.keep = keep                 # the socket object owning fd, if any
        self.reader = FrameReader()
        self.out = bytearray()
        self.subscriptions = None        # None, or a set of event kinds ("*" for all)
        self.closed = False

    def readable(self, _fd):
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            return self.close()
        for item in self.reader.feed(data):
            if isinstance(item, TooLarge):
                self.send({"id": None, "error": item.to_wire()})
            else:
                self.server.handle(self, item)

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

    def writable(self, _fd):
        try:
            written = os.write(self.fd, self.out[:262144])
        except BlockingIOError:
            return
        except OSError:
            return self.close()
        del self.out[:written]
        if not self.out:
            self.server.loop.remove_writer(self.fd)

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.server.loop.remove_reader(self.fd)
        self.server.loop.remove_writer(self.fd)
        self.server.connections.discard(self)
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
        self.listeners = []
        self.on_close = []
        self.unavailable = {}            # namespace -> why its calls cannot be served
        self.identify = identity.from_peer   # (pid, uid, gid) -> Caller

    # -- listening ----------------------------------------------------------------

    def listen(self, path, mode=0o666):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        sock.bind(path)
        os.chmod(path, mode)
        sock.listen(128)
        sock.setblocking(False)
        self.listeners.append(sock)
        self.loop.add_reader(sock.fileno(), lambda _fd: self._accept(sock))

    def _accept(self, listener):
        while True:
            try:
                fd, _addr = listener._accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.log.warning(f"abi: accept failed: {e}")
                return
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
            sock.setblocking(False)
            pid, uid, gid = UCRED.unpack(sock.getsockopt(_socket.SOL_SOCKET, SO_PEERCRED, UCRED.size))
            self.attach(sock.fileno(), self.identify(pid, uid, gid), keep=sock)

    def attach(self, fd, caller, keep=None):
        conn = Connection(self, fd, caller, keep)
        self.connections.add(conn)
        self.loop.add_reader(fd, conn.readable)
        return conn

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
            conn = self.attach(fd, identity.HOST)
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
