"""A small HTTP/1.1 client over a socket: what ``fetch.url`` and the model client need.

Why not ``http.client``: it imports ``email`` and tries ``import ssl`` at its top
level, so the image's stdlib closure (scripts/aetherbuild/stdlib.py) would carry
the email package and ``_ssl``, whose ``libssl.so.3`` the image does not stage,
and the image build fails.  This module needs only ``socket``.

* One request per connection (``Connection: close``).  Response bodies framed by
  Content-Length, chunked transfer coding, or the end of the connection.
* TLS: ``ssl`` is loaded by name when an https URL is used, so the image build
  does not follow it; where it is missing, https fails with ``TLSUnavailable``.
* Host names go to ``getaddrinfo`` as ASCII bytes: a ``str`` host would need the
  ``encodings.idna`` codec, which the image does not ship.  Non-ASCII host names
  are refused (write them in their ``xn--`` form).
* Time: ``timeout`` bounds every single wait (connect, send, each read);
  ``deadline`` (a ``time.monotonic()`` value) bounds the whole exchange.  Name
  resolution is the C library's and is not bounded by either.
* ``check_address(ip)`` is called for every address a name resolves to, before
  any connection is made; it raises to refuse (fetch.url keeps confined agents
  off the machine's own services with it).
"""

import socket
import time

DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_HEADER_LINE = 8192
MAX_HEADERS = 100
READ_SIZE = 65536


class HTTPClientError(Exception):
    """Base of the errors of an HTTP exchange."""


class BadURL(HTTPClientError):
    """The URL is not an http:// or https:// URL this client can use."""


class ConnectFailed(HTTPClientError):
    """The server could not be reached: name resolution, refusal, unreachable, TLS."""

    def __init__(self, message, reason):
        super().__init__(message)
        self.reason = reason  # "resolve", "refused", "unreachable", "tls"


class Timeout(HTTPClientError):
    """The server did not answer in time; ``phase`` is "connect" (nothing was sent) or "read"."""

    phase = "read"


class ProtocolError(HTTPClientError):
    """The server's answer is not well-formed HTTP/1.x."""


class TLSUnavailable(HTTPClientError):
    """https was asked for and this Python has no ssl module."""


class URL:
    """A parsed http(s) URL: scheme, host, port and the request target (path and query)."""

    __slots__ = ("scheme", "host", "port", "target")

    def __init__(self, scheme, host, port, target):
        self.scheme, self.host, self.port, self.target = scheme, host, port, target

    @property
    def authority(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def __str__(self):
        return f"{self.scheme}://{self.authority}{self.target}"


def parse_url(url):
    """A URL object, or BadURL saying what is wrong."""
    if not isinstance(url, str) or not url:
        raise BadURL("the URL must be a non-empty string")
    if any(ord(c) < 33 or c == "\x7f" for c in url):
        raise BadURL("the URL contains spaces or control characters")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        shown = scheme + "://" if sep else url[:40]
        raise BadURL(f"only http:// and https:// URLs are supported, not {shown}")
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, target = rest[:cut], rest[cut:].partition("#")[0]
    if "@" in authority:
        raise BadURL("user names and passwords in URLs are not supported")
    host, port = _split_authority(authority, scheme)
    if not target.startswith("/"):
        target = "/" + target
    return URL(scheme, host, port, _quote_non_ascii(target))


def _split_authority(authority, scheme):
    if authority.startswith("["):
        host, _, after = authority[1:].partition("]")
        if after and not after.startswith(":"):
            raise BadURL(f"malformed IPv6 host in {authority!r}")
        port = after[1:] if after else ""
    else:
        host, _, port = authority.partition(":")
    if not host:
        raise BadURL("the URL has no host")
    if not host.isascii():
        raise BadURL(f"non-ASCII host name {host!r}: write it in its xn-- (punycode) form")
    if port:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise BadURL(f"bad port {port!r}: expected a number from 1 to 65535")
        return host.lower(), int(port)
    return host.lower(), DEFAULT_PORTS[scheme]


def _quote_non_ascii(target):
    if target.isascii():
        return target
    return "".join(c if c.isascii() else "".join(f"%{b:02X}" for b in c.encode()) for c in target)


def join_url(base, location):
    """Where a redirect's Location points, relative to ``base`` (a URL object)."""
    if "://" in location.split("?")[0]:
        return location
    if location.startswith("//"):
        return f"{base.scheme}:{location}"
    origin = f"{base.scheme}://{base.authority}"
    if location.startswith("/"):
        return origin + location
    directory = base.target.split("?")[0].rpartition("/")[0]
    return f"{origin}{directory}/{location}"


def request(method, url, headers=(), body=None, timeout=30.0, deadline=None, check_address=None):
    """Send one request and return the Response once its status line and headers are in.

    ``url`` is a string or URL; ``headers`` a sequence of (name, value); ``body`` bytes.
    The caller reads the body from the Response and closes it (or uses ``with``).
    """
    url = url if isinstance(url, URL) else parse_url(url)
    if deadline is None:
        deadline = time.monotonic() + timeout
    head = _request_head(method, url, headers, body)
    try:
        sock = _connect(url, timeout, deadline, check_address)
    except Timeout as e:
        e.phase = "connect"
        raise
    try:
        stream = _Stream(sock, timeout, deadline, url)
        stream.send(head + (body or b""))
        return Response(stream, method)
    except BaseException:
        sock.close()
        raise


def _request_head(method, url, headers, body):
    if not method.isalpha() or not method.isupper():
        raise ValueError(f"bad HTTP method {method!r}")
    lines = [f"{method} {url.target} HTTP/1.1", f"Host: {url.authority}", "Connection: close",
             "Accept-Encoding: identity", "User-Agent: AetherOS"]
    for name, value in headers:
        if any(c in f"{name}{value}" for c in "\r\n\0") or ":" in name or not name:
            raise ValueError(f"bad HTTP header {name!r}")
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _wait(timeout, deadline, what):
    left = deadline - time.monotonic()
    if left <= 0:
        raise Timeout(f"{what}: no answer within the time allowed")
    return min(timeout, left)


def resolve(host, port):
    """getaddrinfo for TCP; ``host`` is ASCII bytes.  The one place names are looked up
    (tests replace it to keep fuzzed URLs off the network)."""
    return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)


def _connect(url, timeout, deadline, check_address):
    try:
        infos = resolve(url.host.encode("ascii"), url.port)
    except socket.gaierror as e:
        raise ConnectFailed(f"cannot resolve host {url.host}: {e.strerror}", "resolve") from None
    if check_address is not None:
        for info in infos:
            check_address(info[4][0])
    failure = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_wait(timeout, deadline, f"connecting to {url.authority}"))
            sock.connect(address)
            return _tls(sock, url, timeout, deadline) if url.scheme == "https" else sock
        except TimeoutError:
            sock.close()
            raise Timeout(f"connecting to {url.authority} timed out after {timeout:g} s") from None
        except OSError as e:
            sock.close()
            failure = e
        except BaseException:
            sock.close()
            raise
    if isinstance(failure, ConnectionRefusedError):
        raise ConnectFailed(f"cannot connect to {url.authority}: connection refused", "refused")
    reason = failure.strerror if failure and failure.strerror else str(failure)
    raise ConnectFailed(f"cannot connect to {url.authority}: {reason}", "unreachable")


def load_ssl():
    """The ssl module, or TLSUnavailable.  Loaded by name so the image build does not ship it."""
    import importlib
    try:
        return importlib.import_module("ssl")
    except ImportError:
        raise TLSUnavailable("https is not available: this system's Python has no ssl module "
                             "(the AetherOS image ships without OpenSSL); use an http:// URL") from None


def _tls(sock, url, timeout, deadline):
    ssl = load_ssl()
    context = ssl.create_default_context()
    sock.settimeout(_wait(timeout, deadline, f"TLS handshake with {url.authority}"))
    try:
        return context.wrap_socket(sock, server_hostname=url.host)
    except ssl.SSLCertVerificationError as e:
        raise ConnectFailed(f"the TLS certificate of {url.host} could not be verified: "
                            f"{e.verify_message}", "tls") from None
    except ssl.SSLError as e:
        raise ConnectFailed(f"TLS handshake with {url.authority} failed: {e.reason or e}",
                            "tls") from None


class _Stream:
    """Buffered reads from the socket, each bounded by the timeout and the deadline."""

    def __init__(self, sock, timeout, deadline, url):
        self.sock, self.timeout, self.deadline, self.url = sock, timeout, deadline, url
        self.buffer = b""
        self.eof = False

    def send(self, data):
        try:
            self.sock.settimeout(_wait(self.timeout, self.deadline, f"sending to {self.url.authority}"))
            self.sock.sendall(data)
        except TimeoutError:
            raise Timeout(f"sending to {self.url.authority} timed out") from None
        except OSError as e:
            raise ConnectFailed(f"connection to {self.url.authority} lost while sending: "
                                f"{e.strerror or e}", "unreachable") from None

    def fill(self):
        """Read more from the socket into the buffer; False at the end of the connection."""
        if self.eof:
            return False
        what = f"waiting for {self.url.authority}"
        try:
            self.sock.settimeout(_wait(self.timeout, self.deadline, what))
            data = self.sock.recv(READ_SIZE)
        except TimeoutError:
            raise Timeout(f"{what}: no data for {self.timeout:g} s") from None
        except OSError as e:
            raise ProtocolError(f"connection to {self.url.authority} failed while reading: "
                                f"{e.strerror or e}") from None
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def readline(self, limit):
        while True:
            end = self.buffer.find(b"\n", 0, limit + 1)
            if end >= 0:
                line, self.buffer = self.buffer[:end + 1], self.buffer[end + 1:]
                return line
            if len(self.buffer) > limit:
                raise ProtocolError(f"a line from {self.url.authority} is longer than {limit} bytes")
            if not self.fill():
                line, self.buffer = self.buffer, b""
                return line

    def read_some(self, n):
        if not self.buffer and not self.fill():
            return b""
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def close(self):
        self.sock.close()


class Response:
    """Status, headers, and the body read as bytes (``read``) or as lines (``lines``)."""

    def __init__(self, stream, method):
        self.stream = stream
        while True:
            self.status, self.reason, self.headers = self._read_head()
            if not 100 <= self.status < 200 or self.status == 101:
                break
        no_body = method == "HEAD" or self.status in (101, 204, 304)
        self._chunks = iter(()) if no_body else self._body()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.stream.close()

    def header(self, name, default=None):
        name = name.lower()
        return next((v for k, v in self.headers if k == name), default)

    def _read_head(self):
        line = self.stream.readline(MAX_HEADER_LINE)
        if not line:
            raise ProtocolError(f"{self.stream.url.authority} closed the connection without answering")
        parts = line.decode("latin-1").strip().split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not (
                parts[1].isdigit() and len(parts[1]) == 3):
            raise ProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
        headers = []
        while True:
            line = self.stream.readline(MAX_HEADER_LINE)
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise ProtocolError("the connection closed inside the response headers")
            if len(headers) >= MAX_HEADERS:
                raise ProtocolError(f"more than {MAX_HEADERS} response headers")
            text = line.decode("latin-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and headers:
                headers[-1] = (headers[-1][0], headers[-1][1] + " " + text.strip())
                continue
            name, colon, value = text.partition(":")
            if not colon or not name.strip():
                raise ProtocolError(f"malformed response header: {text[:80]!r}")
            headers.append((name.strip().lower(), value.strip()))
        return int(parts[1]), parts[2] if len(parts) > 2 else "", headers

    def _body(self):
        if "chunked" in (self.header("transfer-encoding") or "").lower():
            return self._chunked()
        length = self.header("content-length")
        if length is not None:
            if not length.isdigit():
                raise ProtocolError(f"bad Content-Length {length!r}")
            return self._sized(int(length))
        return self._until_close()

    def _sized(self, length):
        left = length
        while left:
            data = self.stream.read_some(min(left, READ_SIZE))
            if not data:
                raise ProtocolError(f"the connection closed after {length - left} of {length} bytes")
            left -= len(data)
            yield data

    def _until_close(self):
        while True:
            data = self.stream.read_some(READ_SIZE)
            if not data:
                return
            yield data

    def _chunked(self):
        while True:
            line = self.stream.readline(1024)
            if not line:
                raise ProtocolError("the connection closed before the end of the body")
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size line {line[:40]!r}") from None
            if size == 0:
                while self.stream.readline(MAX_HEADER_LINE) not in (b"\r\n", b"\n", b""):
                    pass
                return
            yield from self._sized(size)
            if self.stream.readline(2) not in (b"\r\n", b"\n"):
                raise ProtocolError("a chunk is not followed by CRLF")

    def read(self, limit):
        """(up to ``limit`` bytes of the body, whether there was more)."""
        parts, size = [], 0
        for data in self._chunks:
            parts.append(data)
            size += len(data)
            if size > limit:
                self.close()
                return b"".join(parts)[:limit], True
        return b"".join(parts), False

    def lines(self, limit):
        """The body's lines as bytes, without their line ends (LF or CRLF)."""
        pending = b""
        for data in self._chunks:
            pending += data
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line[:-1] if line.endswith(b"\r") else line
            if len(pending) > limit:
                raise ProtocolError(f"a line of the response is longer than {limit} bytes")
        if pending:
            yield pending[:-1] if pending.endswith(b"\r") else pending
