"""HTTP/1.1 on the wire for shared.http's listener: a strict, small parser.

eventlet.wsgi (nameko's server) parses each request through http.server and
the email package and was a fifth of a gate scan's CPU. This reads exactly
what the services need: a request line, headers, and a body with a
Content-Length, keep-alive, `Expect: 100-continue`. Anything else is refused
with the JSON error envelope and the connection closed: chunked bodies (411),
lines or header blocks over the limits (414, 431), malformed syntax (400),
bodies over MAX_BODY_BYTES (413, never read).
"""
import io
import logging
import socket
import sys
import time
from urllib.parse import unquote_to_bytes

from shared.errors import ApiError

log = logging.getLogger(__name__)

MAX_LINE = 8192          # request line and each header line, bytes
MAX_HEADERS = 100
MAX_BLANK_LINES = 8
MAX_LENGTH_DIGITS = 18   # a Content-Length int() can always parse
DRAIN_BYTES = 1 << 20    # read (and drop) at most this much of a refused request's body
DRAIN_SECONDS = 1.0
MAX_HEADER_BYTES = 65536
IDLE_SECONDS = 75.0      # an idle keep-alive connection (nginx's default upstream keepalive 60 s)
TOKEN = (b"!#$%&'*+-.^_`|~0123456789"
         b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def is_token(text):
    """RFC 9110 token characters only (deleting them leaves nothing)."""
    return bool(text) and not text.translate(None, TOKEN)
REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 304: "Not Modified",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 411: "Length Required",
           413: "Content Too Large", 414: "URI Too Long", 415: "Unsupported Media Type",
           429: "Too Many Requests", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 503: "Service Unavailable"}


class Refused(Exception):
    """A request the wire layer answers itself, then closes the connection."""

    def __init__(self, code, message):
        super().__init__(message)
        self.error = ApiError(code, message)


_date = [0, b""]


def http_date():
    now = int(time.time())
    if _date[0] != now:
        _date[0], _date[1] = now, time.strftime(
            "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)).encode()
    return _date[1]


def read_line(reader, limit, code, what):
    line = reader.readline(limit + 1)
    if len(line) > limit:
        raise Refused(code, "%s longer than %d bytes" % (what, limit))
    return line


def read_request(reader, server_name, server_port, remote, max_body, continue_100):
    """The WSGI environ of the next request, or None when the peer closed."""
    line = read_line(reader, MAX_LINE, "uri_too_long", "request line")
    for _ in range(MAX_BLANK_LINES):  # RFC 9112 2.2: ignore empty lines before a request
        if line not in (b"\r\n", b"\n"):
            break
        line = read_line(reader, MAX_LINE, "uri_too_long", "request line")
    if not line:
        return None
    if not line.endswith(b"\n"):
        return None  # the peer closed mid-line
    parts = line.rstrip(b"\r\n").split(b" ")
    if len(parts) != 3 or not is_token(parts[0]):
        raise Refused("bad_request", "malformed request line")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise Refused("bad_request", "only HTTP/1.0 and HTTP/1.1")
    if target.startswith(b"http://") or target.startswith(b"https://"):
        target = b"/" + target.split(b"/", 3)[3] if target.count(b"/") >= 3 else b"/"
    if not target.startswith(b"/"):
        raise Refused("bad_request", "the request target must be a path")
    path, _, query = target.partition(b"?")
    environ = {
        "REQUEST_METHOD": method.decode("ascii"), "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"), "RAW_URI": target.decode("latin-1"),
        "SERVER_NAME": server_name, "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": version.decode("ascii"), "REMOTE_ADDR": remote[0],
        "REMOTE_PORT": str(remote[1]), "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    total = 0
    for _ in range(MAX_HEADERS + 1):
        line = read_line(reader, MAX_LINE, "headers_too_large", "a header line")
        total += len(line)
        if total > MAX_HEADER_BYTES:
            raise Refused("headers_too_large", "headers longer than %d bytes" % MAX_HEADER_BYTES)
        if line in (b"\r\n", b"\n"):
            break
        if not line.endswith(b"\n"):
            return None
        name, colon, value = line.partition(b":")
        if not colon or not is_token(name):
            # also refuses obsolete line folding and "Name : value" (smuggling vectors)
            raise Refused("bad_request", "malformed header line")
        if b"_" in name:
            # as nginx does: "Content_Length" must not pass for Content-Length
            continue
        key = name.decode("ascii").upper().replace("-", "_")
        value = value.strip(b" \t\r\n").decode("latin-1")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        if key in environ:
            if key == "CONTENT_LENGTH" and environ[key] != value:
                raise Refused("bad_request", "conflicting Content-Length headers")
            if key != "CONTENT_LENGTH":
                environ[key] += "," + value
        else:
            environ[key] = value
    else:
        raise Refused("headers_too_large", "more than %d header lines" % MAX_HEADERS)
    if "HTTP_TRANSFER_ENCODING" in environ:
        raise Refused("length_required", "send the body with a Content-Length, not chunked")
    length = environ.get("CONTENT_LENGTH", "")
    if length:
        if not (length.isascii() and length.isdigit()) or len(length) > MAX_LENGTH_DIGITS:
            raise Refused("bad_request", "Content-Length must be a number")
        size = int(length)
        if size > max_body:
            raise Refused("too_large", "request body exceeds %d bytes" % max_body)
        if (size and environ["SERVER_PROTOCOL"] == "HTTP/1.1"
                and environ.get("HTTP_EXPECT", "").lower() == "100-continue"):
            continue_100()
        body = reader.read(size) if size else b""
        if len(body) != size:
            return None  # the peer closed mid-body
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    return environ


def keep_alive(environ):
    connection = environ.get("HTTP_CONNECTION", "").lower()
    if environ["SERVER_PROTOCOL"] == "HTTP/1.1":
        return "close" not in connection
    return "keep-alive" in connection


def response_bytes(status, headers, body, keep, head_only):
    """Status line, headers and body as one buffer (one send)."""
    out = [b"HTTP/1.1 ", status.encode("latin-1"), b"\r\n"]
    has_length = False
    for name, value in headers:
        if name.lower() == "content-length":
            has_length = True
        elif name.lower() == "connection":
            continue
        out += [name.encode("latin-1"), b": ", str(value).encode("latin-1"), b"\r\n"]
    if not has_length:
        out += [b"Content-Length: ", str(len(body)).encode(), b"\r\n"]
    out += [b"Date: ", http_date(), b"\r\n",
            b"Connection: keep-alive\r\n\r\n" if keep else b"Connection: close\r\n\r\n"]
    if not head_only:
        out.append(body)
    return b"".join(out)


def drain(sock):
    """After refusing a request whose body we did not read: stop sending, and
    read a bounded amount of what the client is still sending, so it (or a
    proxy) reads our answer instead of a reset."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(DRAIN_SECONDS)
        deadline, left = time.monotonic() + DRAIN_SECONDS, DRAIN_BYTES
        while left > 0 and time.monotonic() < deadline:
            chunk = sock.recv(min(left, 65536))
            if not chunk:
                break
            left -= len(chunk)
    except (OSError, socket.timeout):
        pass


def serve_connection(sock, addr, app, server_name, server_port, max_body, refuse):
    """Requests on one connection until it closes. `refuse(ApiError)`: the
    (status line, headers, body) the app would send for that error."""
    sock.settimeout(IDLE_SECONDS)
    reader = sock.makefile("rb", 65536)

    def continue_100():
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    def answer_and_close(error):
        status, headers, body = refuse(error)
        sock.sendall(response_bytes(status, headers, body, False, False))

    try:
        while True:
            try:
                environ = read_request(reader, server_name, server_port, addr, max_body,
                                       continue_100)
            except Refused as exc:
                answer_and_close(exc.error)
                drain(sock)
                return
            except (OSError, socket.timeout):
                raise
            except Exception:  # a parser bug: answer, never drop the connection silently
                log.exception("unparseable request")
                answer_and_close(ApiError("bad_request", "malformed request"))
                return
            if environ is None:
                return
            captured = []

            def start_response(status, headers, exc_info=None):
                captured[:] = [status, headers]
                return lambda data: None  # the legacy write() callable: unused here

            try:
                result = app(environ, start_response)
                try:
                    body = b"".join(result)
                finally:
                    if hasattr(result, "close"):
                        result.close()
            except Exception:  # a bug above the entrypoint's own catch-all
                log.exception("unhandled error serving %s", environ.get("PATH_INFO"))
                answer_and_close(ApiError("internal", "internal error"))
                return
            keep = keep_alive(environ)
            sock.sendall(response_bytes(captured[0], captured[1], body, keep,
                                        environ["REQUEST_METHOD"] == "HEAD"))
            if not keep:
                return
    except (OSError, socket.timeout):
        pass  # the peer went away or idled out
    finally:
        try:
            reader.close()
            sock.close()
        except OSError:
            pass
