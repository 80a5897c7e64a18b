"""HTTP/1.1 on the wire (shared/httpwire.py): keep-alive, pipelining,
100-continue, and every request the parser refuses answered with the JSON
envelope and a closed connection, against a real service on a real socket."""
import json
import socket

import pytest
from marshmallow import Schema, fields

from shared.http import api, body
from shared.platform import PlatformEndpoints


class WordBody(Schema):
    word = fields.String(required=True)


class WireService(PlatformEndpoints):
    name = "wire"

    @api("POST", "/test/words", body=WordBody)
    def words(self, request):
        return 201, {"word": body(request)["word"], "query": request.args.to_dict()}

    @api("GET", "/test/things/<thing>")
    def thing(self, request, thing):
        return {"thing": thing}


@pytest.fixture
def address(start_services):
    client = start_services(WireService)
    host, port = client.base[len("http://"):].split(":")
    return host, int(port)


def connect(address):
    return socket.create_connection(address, timeout=5)


def read_response(sock, buffer=b""):
    """(status, headers, body, rest of the buffer); status None if closed."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return None, {}, b"", buffer
        buffer += chunk
    head, buffer = buffer.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(buffer) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buffer += chunk
    return status, headers, buffer[:length], buffer[length:]


def post(word, extra_headers=b"", path=b"/test/words"):
    payload = json.dumps({"word": word}).encode()
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + extra_headers + b"Content-Length: %d\r\n\r\n" % len(payload) + payload)


def closed(sock):
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_keep_alive_and_pipelined_requests(address):
    with connect(address) as sock:
        sock.sendall(post("one"))
        status, headers, data, rest = read_response(sock)
        assert status == 201 and json.loads(data)["word"] == "one"
        assert headers["connection"] == "keep-alive" and headers["date"]
        # two requests in one write: two answers, in order, same connection
        sock.sendall(post("two", path=b"/test/words?lang=zh") + post("three"))
        status, _, data, rest = read_response(sock)
        assert status == 201 and json.loads(data) == {"word": "two", "query": {"lang": "zh"}}
        status, _, data, rest = read_response(sock, rest)
        assert status == 201 and json.loads(data)["word"] == "three"


def test_http_1_0_closes_unless_keep_alive(address):
    with connect(address) as sock:
        sock.sendall(b"GET /health/live HTTP/1.0\r\n\r\n")
        status, headers, _, _ = read_response(sock)
        assert status == 200 and headers["connection"] == "close"
        assert closed(sock)
    with connect(address) as sock:
        sock.sendall(b"GET /health/live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert read_response(sock)[1]["connection"] == "keep-alive"
        sock.sendall(b"GET /health/live HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert read_response(sock)[0] == 200
        assert closed(sock)


def test_expect_100_continue(address):
    with connect(address) as sock:
        payload = b'{"word": "later"}'
        sock.sendall(b"POST /test/words HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                     % len(payload))
        assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(payload)
        status, _, data, _ = read_response(sock)
        assert status == 201 and json.loads(data)["word"] == "later"


def test_head_has_headers_only_and_paths_are_percent_decoded(address):
    with connect(address) as sock:
        sock.sendall(b"HEAD /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /test/things/a%20b%21 HTTP/1.1\r\nHost: x\r\n\r\n")
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(65536)
        head, rest = buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: " in head
        status, _, data, _ = read_response(sock, rest)  # the HEAD sent no body
        assert status == 200 and json.loads(data) == {"thing": "a b!"}


@pytest.mark.parametrize("raw, status, code", [
    (b"POST /test/words HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     411, "length_required"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414, "uri_too_long"),
    (b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, "headers_too_large"),
    (b"GET / HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 101 + b"\r\n", 431, "headers_too_large"),
    (b"GET /health/live\r\n\r\n", 400, "bad_request"),
    (b"GET /health/live HTTP/2.0\r\n\r\n", 400, "bad_request"),
    (b"G(T /health/live HTTP/1.1\r\n\r\n", 400, "bad_request"),
    (b"GET health HTTP/1.1\r\n\r\n", 400, "bad_request"),
    (b"GET /health/live HTTP/1.1\r\nHost : x\r\n\r\n", 400, "bad_request"),
    (b"GET /health/live HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n", 400, "bad_request"),
    (b"POST /test/words HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
     400, "bad_request"),
    (b"POST /test/words HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "bad_request"),
    (b"POST /test/words HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", 400, "bad_request"),
    (b"POST /test/words HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
     400, "bad_request"),
    # over MAX_BODY_BYTES: refused before a byte of the body is read
    (b"POST /test/words HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n", 413, "too_large"),
])
def test_refused_requests_get_the_envelope_and_a_closed_connection(address, raw, status, code):
    with connect(address) as sock:
        sock.sendall(raw)
        got, headers, data, _ = read_response(sock)
        assert got == status
        assert json.loads(data)["error"] == code
        assert headers["connection"] == "close"
        assert closed(sock)


def test_a_peer_that_vanishes_mid_request_harms_nobody(address):
    with connect(address) as sock:
        sock.sendall(b"POST /test/words HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"wo")
    with connect(address) as sock:
        sock.sendall(b"GET /test/things/x HTTP/1.1\r\nHost: x\r\n")  # headers never end
    with connect(address) as sock:
        sock.sendall(post("still here"))
        status, _, data, _ = read_response(sock)
        assert status == 201 and json.loads(data)["word"] == "still here"


def test_odd_paths_and_underscored_headers(address):
    with connect(address) as sock:
        # werkzeug would redirect "//" (merge_slashes): here it is no such route, not a 500
        sock.sendall(b"GET /test//things/x HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, data, rest = read_response(sock)
        assert status == 404 and json.loads(data)["error"] == "not_found"
        assert headers["connection"] == "keep-alive"
        # "Content_Length" is not Content-Length (nginx drops such headers too)
        sock.sendall(b"POST /test/words HTTP/1.1\r\nHost: x\r\nContent_Length: 5\r\n\r\n")
        status, _, data, _ = read_response(sock, rest)
        assert status == 400 and json.loads(data)["error"] == "bad_json"
