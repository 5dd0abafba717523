"""fetch.url: GET or HEAD an http:// or https:// URL (risky: it sends data off the machine).

Redirects are followed (at most MAX_REDIRECTS), each hop checked like the first.
A caller without ``local_network`` (confined agents, by default) may not reach this
machine's own addresses (loopback, unspecified, link-local): every address a name
resolves to is checked before connecting, so DNS cannot point it home either.
https needs Python's ssl module, which the AetherOS image does not ship today; the
call then says so (``unavailable``).  See aether/httpclient.py for the client.
"""

import time

from .files import ANSWER_MAX as FILES_ANSWER_MAX
from .core import FetchFailed, InvalidArguments, PermissionDenied, Unavailable, args_schema, tool

FETCH_DEFAULT = 256 * 1024
FETCH_MAX = 512 * 1024          # as files.read: the answer, base64 included, fits one 1 MiB frame
MAX_REDIRECTS = 5
HINTS = {"resolve": "; check the host name, and that this machine has a network and a DNS server "
                    "(network.interfaces, network.routes)"}
REDIRECTS = (301, 302, 303, 307, 308)
TEXT_CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "us-ascii": "ascii", "ascii": "ascii",
                 "iso-8859-1": "latin-1", "latin-1": "latin-1", "latin1": "latin-1"}


def is_local(ip):
    """Is ``ip`` one of this machine's own kinds of address (loopback, any, link-local)?"""
    import _socket
    if ":" in ip:
        raw = _socket.inet_pton(_socket.AF_INET6, ip.split("%")[0])
        if raw[:12] == bytes(10) + b"\xff\xff":
            return is_local(_socket.inet_ntoa(raw[12:]))
        return raw in (bytes(15) + b"\x01", bytes(16)) or (raw[0] == 0xFE and raw[1] & 0xC0 == 0x80)
    raw = _socket.inet_aton(ip)
    return raw[0] in (0, 127) or raw[:2] == b"\xa9\xfe"


def address_check(caller, url):
    if caller.local_network:
        return None

    def check(ip):
        if is_local(ip):
            raise PermissionDenied(
                f"{caller.principal} may not fetch {url}: it leads to {ip}, an address of this "
                "machine (rule: confined callers do not reach local services)",
                caller=caller.principal, path=url, rule="local_network")
    return check


@tool("fetch.url", args_schema({
    "url": {"type": "string", "minLength": 1, "maxLength": 2048,
            "description": "an http:// or https:// URL"},
    "method": {"type": "string", "enum": ["GET", "HEAD"], "default": "GET",
               "description": "GET fetches the body, HEAD only the status and headers"},
    "timeout": {"type": "number", "minimum": 0.1, "maximum": 60, "default": 10,
                "description": "seconds for the whole exchange, redirects included"},
    "max_bytes": {"type": "integer", "minimum": 1, "maximum": FETCH_MAX, "default": FETCH_DEFAULT,
                  "description": f"keep at most this many bytes of the body (at most {FETCH_MAX})"},
    "encoding": {"type": "string", "enum": ["text", "base64"], "default": "text",
                 "description": "body as text (decoded by its charset, else UTF-8) or base64"},
    "follow_redirects": {"type": "boolean", "default": True,
                         "description": f"follow up to {MAX_REDIRECTS} redirects"},
}, required=["url"]), risky=True)
def fetch_url(caller, args):
    """Fetch a URL over HTTP(S): status, headers and body (risky: sends data off the machine).

    Any HTTP status is a result, not an error: look at ``status``.  ``truncated`` says
    the body was longer than ``max_bytes``.  Only GET and HEAD; no cookies, no
    credentials, no custom headers.
    """
    from .. import httpclient
    started = time.monotonic()
    deadline = started + args["timeout"]
    url, hops = args["url"], []
    try:
        while True:
            parsed = httpclient.parse_url(url)
            response = httpclient.request(args["method"], parsed, [("Accept", "*/*")],
                                          timeout=args["timeout"], deadline=deadline,
                                          check_address=address_check(caller, url))
            with response:
                location = response.header("location")
                if response.status in REDIRECTS and location and args["follow_redirects"]:
                    if len(hops) >= MAX_REDIRECTS:
                        raise FetchFailed(f"more than {MAX_REDIRECTS} redirects, last to {location}",
                                          url=url, reason="redirects")
                    hops.append(url)
                    url = httpclient.join_url(parsed, location)
                    continue
                body, truncated = response.read(args["max_bytes"])
                return _result(response, str(parsed), body, truncated, hops, args, started)
    except httpclient.BadURL as e:
        if hops:
            raise FetchFailed(f"{hops[-1]} redirects to {url[:200]}, which cannot be fetched: {e}",
                              url=url, reason="redirect") from None
        raise InvalidArguments(f"args.url: {e}", path="args.url", rule="url") from None
    except httpclient.TLSUnavailable as e:
        raise Unavailable(str(e)) from None
    except httpclient.ConnectFailed as e:
        hint = HINTS.get(e.reason, "; check the URL, and that the server is up and reachable")
        raise FetchFailed(f"{e}{hint}", url=url, reason=e.reason) from None
    except httpclient.Timeout as e:
        raise FetchFailed(f"{url}: timed out ({e}); retry, or give a longer timeout (at most 60 s)",
                          url=url, reason="timeout") from None
    except httpclient.ProtocolError as e:
        raise FetchFailed(f"{url}: bad answer: {e}", url=url, reason="protocol") from None


def _result(response, url, body, truncated, hops, args, started):
    content_type = response.header("content-type", "")
    headers = {}
    for name, value in response.headers[:64]:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value[:1024]
    result = {"url": url, "status": response.status, "reason": response.reason,
              "headers": headers, "content_type": content_type, "bytes": len(body),
              "truncated": truncated, "redirects": hops, "encoding": args["encoding"],
              "elapsed_seconds": round(time.monotonic() - started, 3)}
    if args["encoding"] == "base64":
        import base64
        result["content"] = base64.b64encode(body).decode("ascii")
    else:
        result["content"], lossy = _text(body, content_type, truncated)
        if lossy:
            result["lossy"] = True
        if len(result["content"]) > FETCH_MAX // 2:      # JSON escapes may grow it past a frame
            import json
            while len(json.dumps(result["content"], ensure_ascii=False).encode("utf-8", "surrogatepass")) \
                    > FILES_ANSWER_MAX:
                result["content"] = result["content"][:len(result["content"]) // 2]
                result["truncated"] = True
    return result


def _text(body, content_type, truncated):
    from .files import _whole_characters
    charset = "utf-8"
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset":
            charset = TEXT_CHARSETS.get(value.strip('"').lower(), "utf-8")
    if charset == "utf-8" and truncated:
        body = _whole_characters(body)
    try:
        return body.decode(charset), False
    except UnicodeDecodeError:
        return body.decode(charset, "replace"), True
