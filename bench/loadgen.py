"""A small HTTP/1.1 load client (asyncio, keep-alive, loopback only).

Two modes:
- `open_loop`: a fixed arrival rate. Request i is due at t0 + i/rate whether
  or not earlier ones have answered; its latency is measured from when it was
  DUE, so a stalled server is not hidden (no coordinated omission).
- `closed_loop`: N connections each sending its next request as soon as the
  previous one answered: the maximum throughput the server (or this client)
  sustains.

Both are bounded in time and in count. Requests come from a callable
`make(i) -> Request` so every request can carry its own nonce or key, and an
optional `on_response(i, request, status, body)` sees each answer.
"""
import asyncio
import collections
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Request:
    method: str
    path: str
    headers: dict = field(default_factory=dict)
    body: object = None  # dict (sent as JSON), bytes or None

    def encode(self, host):
        body = self.body
        if isinstance(body, (dict, list)):
            body = json.dumps(body, separators=(",", ":")).encode()
        lines = ["%s %s HTTP/1.1" % (self.method, self.path), "Host: %s" % host,
                 "Connection: keep-alive"]
        for key, value in self.headers.items():
            lines.append("%s: %s" % (key, value))
        if body is not None:
            lines.append("Content-Type: application/json")
            lines.append("Content-Length: %d" % len(body))
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        return head + body if body else head


@dataclass
class Result:
    name: str
    mode: str
    sent: int = 0
    completed: int = 0
    elapsed: float = 0.0
    latencies: list = field(default_factory=list)  # seconds
    statuses: collections.Counter = field(default_factory=collections.Counter)
    errors: collections.Counter = field(default_factory=collections.Counter)
    target_rate: float = None
    late: int = 0  # open loop: requests that could not start on time

    @property
    def rate(self):
        return self.completed / self.elapsed if self.elapsed else 0.0

    def percentile(self, p):
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
        return ordered[index]

    @property
    def error_count(self):
        return sum(self.errors.values()) + sum(n for s, n in self.statuses.items() if s >= 500)

    def summary(self):
        return {"name": self.name, "mode": self.mode, "rate": round(self.rate, 1),
                "completed": self.completed, "p50_ms": _ms(self.percentile(50)),
                "p99_ms": _ms(self.percentile(99)), "statuses": dict(self.statuses),
                "errors": dict(self.errors), "target_rate": self.target_rate}


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000, 2)


class _Conn:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    async def roundtrip(self, payload):
        if self.writer is None:
            await self.open()
        self.writer.write(payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, close = 0, False, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                body += await self.reader.readexactly(size + 2)
                body = body[:-2]
        else:
            body = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body


def _split(base):
    parts = urlsplit(base)
    return parts.hostname, parts.port or 80


async def _one(conn, host, request, result, started, on_response, index):
    try:
        status, body = await asyncio.wait_for(conn.roundtrip(request.encode(host)), 10)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
        conn.close()
        result.errors[type(exc).__name__] += 1
        return
    result.latencies.append(time.perf_counter() - started)
    result.statuses[status] += 1
    result.completed += 1
    if on_response is not None:
        on_response(index, request, status, body)


async def _closed(base, make, connections, duration, count, result, on_response):
    host, port = _split(base)
    hostport = "%s:%d" % (host, port)
    counter = iter(range(count))
    deadline = time.perf_counter() + duration

    async def worker():
        conn = _Conn(host, port)
        try:
            while time.perf_counter() < deadline:
                index = next(counter, None)
                if index is None:
                    return
                request = make(index)
                if request is None:
                    return
                result.sent += 1
                await _one(conn, hostport, request, result, time.perf_counter(), on_response, index)
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    result.elapsed = time.perf_counter() - t0


async def _open(base, make, rate, duration, count, max_connections, result, on_response):
    host, port = _split(base)
    hostport = "%s:%d" % (host, port)
    idle = []
    opened = 0
    slots = asyncio.Semaphore(max_connections)
    total = min(count, int(rate * duration))
    tasks = []
    t0 = time.perf_counter()

    async def fire(index, request, due):
        nonlocal opened
        async with slots:
            conn = idle.pop() if idle else None
            if conn is None:
                conn = _Conn(host, port)
                opened += 1
            if time.perf_counter() - due > 0.005:
                result.late += 1
            await _one(conn, hostport, request, result, due, on_response, index)
            idle.append(conn)

    for index in range(total):
        due = t0 + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        request = make(index)
        if request is None:
            break
        result.sent += 1
        tasks.append(asyncio.ensure_future(fire(index, request, due)))
    await asyncio.gather(*tasks)
    result.elapsed = time.perf_counter() - t0
    for conn in idle:
        conn.close()


def closed_loop(name, base, make, connections=16, duration=10.0, count=10 ** 9,
                on_response=None):
    result = Result(name, "closed/%dc" % connections)
    asyncio.run(_closed(base, make, connections, duration, count, result, on_response))
    return result


def open_loop(name, base, make, rate, duration=10.0, count=10 ** 9, max_connections=64,
              on_response=None):
    result = Result(name, "open@%g/s" % rate, target_rate=rate)
    asyncio.run(_open(base, make, rate, duration, count, max_connections, result, on_response))
    return result
