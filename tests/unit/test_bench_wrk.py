"""The wrk driver sends each line of its list once before it wraps, whatever
the thread count, and every scan nonce is unique (the gate benchmark relies on
both: a repeated line would be a cheap already_used refusal, a repeated nonce
a cheaper replay)."""
import collections
import http.server
import json
import shutil
import threading

import pytest

from bench import wrk

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")


def test_each_line_once_per_pass_and_nonces_unique():
    seen = collections.Counter()
    nonces = collections.Counter()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                seen[body["line"]] += 1
                nonces[body["nonce"]] += 1
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        lines = [wrk.line("POST", "/x", "", {"line": n, "nonce": "@NONCE@"}) for n in range(30)]
        result = wrk.run("http://127.0.0.1:%d" % server.server_address[1], lines,
                         connections=4, threads=2, duration=1, run_id="t")
    finally:
        server.shutdown()
    sent = sum(seen.values())
    # wrk counts answers it read; the server may have seen a few more in flight
    assert sent >= result["requests"] > 2 * len(lines)
    # each line once per pass through the list (the last pass may be partial)
    passes = sent // len(lines)
    assert all(passes <= seen[n] <= passes + 1 for n in range(len(lines))), seen
    assert max(nonces.values()) == 1
