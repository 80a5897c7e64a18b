"""wrk (C, epoll) for closed-loop maximum throughput.

The requests to send are written to a file, one per line
(`METHOD<TAB>PATH<TAB>AUTHORIZATION<TAB>BODY`); the Lua script below cycles
through them and replaces `@NONCE@` in each body with a value unique to the
thread and request, so a replayed list still carries fresh scan nonces.
`done()` prints one JSON line with throughput and latency percentiles.
"""
import json
import os
import shutil
import subprocess
import tempfile

SCRIPT = r"""
-- `tid` stays global: thread:set() in setup() writes the thread's globals,
-- and a local of the same name would hide it (every thread would then send
-- the same nonces, i.e. replays).
local reqs, n, i = {}, 0, 0
local threads = {}
local counter = 0
tid = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    local method, path, auth, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    local headers = {["Content-Type"] = "application/json"}
    if auth ~= "" then headers["Authorization"] = auth end
    n = n + 1
    reqs[n] = {method = method, path = path, headers = headers, body = body}
  end
  i = 0
end

-- each thread takes every THREADS-th line from its own offset: threads that
-- all walked the list from the top would send every scan THREADS times
function request()
  local r = reqs[((i * THREADS + tid - 1) % n) + 1]
  i = i + 1
  local body = nil
  if r.body ~= "" then
    body = r.body:gsub("@NONCE@", "w" .. tid .. "-" .. i .. "-" .. RUNID)
  end
  return wrk.format(r.method, r.path, r.headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"status_errors":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
"""


def available():
    return shutil.which("wrk") is not None


def line(method, path, authorization="", body=None):
    text = "" if body is None else json.dumps(body, separators=(",", ":"))
    return "%s\t%s\t%s\t%s" % (method, path, authorization or "", text)


def run(base, lines, connections=16, threads=2, duration=10, run_id="0", timeout_s=5):
    """Closed-loop wrk run; returns a dict with rate, p50_ms, p99_ms, errors."""
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "requests.tsv")
        with open(data, "w") as f:
            f.write("\n".join(lines) + "\n")
        script = os.path.join(tmp, "script.lua")
        with open(script, "w") as f:
            f.write('RUNID = "%s"\nTHREADS = %d\n' % (run_id, threads) + SCRIPT)
        out = subprocess.run(
            ["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % duration,
             "--timeout", "%ds" % timeout_s, "-s", script, base, "--", data],
            capture_output=True, text=True, timeout=duration + 60)
    for text in out.stdout.splitlines():
        if text.startswith("WRKJSON "):
            raw = json.loads(text[len("WRKJSON "):])
            seconds = raw["duration_us"] / 1e6
            return {
                "rate": raw["requests"] / seconds if seconds else 0.0,
                "requests": raw["requests"],
                "p50_ms": raw["p50_us"] / 1000.0, "p90_ms": raw["p90_us"] / 1000.0,
                "p99_ms": raw["p99_us"] / 1000.0, "max_ms": raw["max_us"] / 1000.0,
                "non_2xx_3xx": raw["status_errors"],
                "socket_errors": raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
                "mode": "wrk closed/%dc" % connections,
            }
    raise RuntimeError("wrk gave no result: %s %s" % (out.stdout[-500:], out.stderr[-500:]))
