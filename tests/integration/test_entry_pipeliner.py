"""Concurrent scans share Redis round trips (services/entry/pipeliner.py),
against the real Redis: the same answers as one at a time, NOSCRIPT after a
script flush, a script error reaching only its caller, and a Redis that is
down or silent failing every caller in bounded time."""
import collections
import json
import socket
import time
import uuid

import eventlet
import pytest
import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

from services.entry.dependencies import GateCounters
from services.entry.pipeliner import QueuedTooLong
from services.entry.scanning import moment
from tests.conftest import REDIS_URL
from tests.integration.test_entry_lua import DAY, at, new_gate, ticket

VENUE = {"instantaneous_capacity": 0, "daily_capacity": 0, "entry_policy": "single"}
NOW = moment(at(10))


def counters_at(prefix, url=REDIS_URL, **kw):
    return GateCounters(redis_lib.Redis.from_url(url, decode_responses=True, **kw), prefix)


def batches(counters):
    """Sizes of the pipelines the sender sends, in order."""
    pipeliner, sizes = counters._scan, []
    send = pipeliner.send

    def counting(batch):
        sizes.append(len(batch))
        return send(batch)
    pipeliner.send = counting
    return sizes


def open_venue(counters, gate):
    # the database had nothing for this venue-day: no state rebuilds in these tests
    counters.redis.hset(counters.prefix + "entry:occ:%s:%s" % (gate["venue_id"], DAY),
                        mapping={"inside": 0, "admitted": 0, "fresh": "1"})


def put(counters, name, record):
    key = counters.prefix + "cred:test:" + name
    counters.redis.set(key, record if isinstance(record, str) else json.dumps(record), ex=60)
    return key


def scan(counters, gate, key, nonce=None):
    return counters.scan(gate, nonce or uuid.uuid4().hex, key, None, NOW, VENUE)


def concurrently(calls):
    """Run the calls in green threads at once; each one's result or exception."""
    def attempt(call):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 -- the test looks at it
            return exc
    threads = [eventlet.spawn(attempt, call) for call in calls]
    return [t.wait() for t in threads]


def held(counters, calls):
    """The calls all queued behind a round trip said to be in flight, then sent
    together: one pipeline, whatever the timing."""
    pipeliner = counters._scan
    pipeliner.busy = True
    threads = [eventlet.spawn(call) for call in calls]
    eventlet.sleep(0)             # every call is queued now
    assert len(pipeliner.queue) == len(calls)
    pipeliner._wake_sender()
    results = []
    for t in threads:
        try:
            results.append(t.wait())
        except Exception as exc:  # noqa: BLE001 -- the test looks at it
            results.append(exc)
    return results


def test_concurrent_scans_answer_as_sequential_ones(redis_prefix):
    """A mix of tickets, each scanned several times: per ticket the same
    answers whether the scans go one at a time or 16 at once through shared
    pipelines, and the venue ends with the same counts."""
    gate = new_gate()
    other = dict(new_gate(), venue_id="v-elsewhere")
    tickets = ([ticket(gate) for _ in range(8)]                                # 4 scans each
               + [ticket(gate, party_size=3) for _ in range(4)]
               + [ticket(gate, entry_policy="multi") for _ in range(4)]
               + [ticket(gate, status="cancelled") for _ in range(2)]
               + [ticket(other) for _ in range(2)] + [None, None])             # unknown
    plan = [i for i in range(len(tickets)) for _ in range(4)]
    outcomes = {}
    for mode in ("sequential", "concurrent"):
        counters = counters_at(redis_prefix + mode + ":")
        open_venue(counters, gate)
        keys = [put(counters, str(i), "-" if t is None else t) for i, t in enumerate(tickets)]
        sizes = batches(counters)
        calls = [lambda i=i: (i, scan(counters, gate, keys[i])) for i in plan]
        results = [call() for call in calls] if mode == "sequential" else []
        if mode == "concurrent":
            pool = eventlet.GreenPool(16)
            results = list(pool.imap(lambda call: call(), calls))
        answers = collections.defaultdict(collections.Counter)
        for i, (kind, answer, _raw) in results:
            answers[i][(kind, answer.admit, answer.reason)] += 1
        occupancy = counters.redis.hgetall(counters.prefix + "entry:occ:%s:%s" % (
            gate["venue_id"], DAY))
        outcomes[mode] = (dict(answers), occupancy)
        if mode == "sequential":
            assert sizes == []            # never more than one in flight: all sent directly
        else:
            assert max(sizes) > 1         # concurrent scans did share round trips
    assert outcomes["concurrent"] == outcomes["sequential"]
    answers, occupancy = outcomes["sequential"]
    assert answers[0] == {("new", True, "ok"): 1, ("new", False, "already_used"): 3}
    assert answers[8] == {("new", True, "ok"): 3, ("new", False, "already_used"): 1}
    assert occupancy["admitted"] == str(8 + 4 * 3 + 4)


def test_one_ticket_scanned_by_many_gates_at_once_admits_once(redis_prefix):
    counters = counters_at(redis_prefix)
    gates = [dict(new_gate(), venue_id="v1") for _ in range(5)]
    open_venue(counters, gates[0])
    key = put(counters, "t", ticket(gates[0]))
    sizes = batches(counters)
    results = concurrently([lambda g=g: scan(counters, g, key) for g in gates * 10])
    assert [a.reason for _, a, _ in results].count("ok") == 1
    assert max(sizes) > 1


def test_noscript_after_a_script_flush_reloads_and_sends_again(redis_prefix):
    counters = counters_at(redis_prefix)
    gate = new_gate()
    open_venue(counters, gate)
    keys = [put(counters, str(i), ticket(gate)) for i in range(12)]
    assert scan(counters, gate, keys[0])[1].admit       # the script is loaded and used
    sizes = batches(counters)
    counters.redis.script_flush()                       # as after a Redis restart
    # a pipeline of queued scans meets NOSCRIPT
    results = held(counters, [lambda k=k: scan(counters, gate, k) for k in keys[1:]])
    assert [(kind, answer.reason) for kind, answer, _ in results] == [("new", "ok")] * 11
    assert sizes == [11]
    # and a lone scan sent directly
    counters.redis.script_flush()
    assert scan(counters, gate, keys[0])[1].reason == "already_used"
    # mid-run, with scans in flight
    more = [put(counters, "m%d" % i, ticket(gate)) for i in range(48)]
    calls = [lambda k=k: scan(counters, gate, k) for k in more]
    calls.insert(20, counters.redis.script_flush)
    results = concurrently(calls)
    results.pop(20)
    assert [(kind, answer.reason) for kind, answer, _ in results] == [("new", "ok")] * 48


def test_a_script_error_reaches_only_its_caller(redis_prefix):
    counters = counters_at(redis_prefix)
    gate = new_gate()
    open_venue(counters, gate)
    keys = [put(counters, str(i), ticket(gate)) for i in range(6)]
    keys.insert(3, put(counters, "broken", "{not json"))   # cjson.decode fails in the script
    sizes = batches(counters)
    results = held(counters, [lambda k=k: scan(counters, gate, k) for k in keys])
    assert sizes == [7]
    assert isinstance(results[3], redis_lib.ResponseError)
    assert not isinstance(results[3], (redis_lib.ConnectionError, redis_lib.TimeoutError))
    others = results[:3] + results[4:]
    assert [(kind, answer.reason) for kind, answer, _ in others] == [("new", "ok")] * 6


def test_redis_refusing_connections_fails_every_caller(redis_prefix):
    with socket.socket() as s:        # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    counters = counters_at(redis_prefix, "redis://127.0.0.1:%d/0" % port,
                           socket_connect_timeout=0.3, retry=Retry(NoBackoff(), 0))
    gate = new_gate()
    started = time.monotonic()
    results = concurrently([lambda: scan(counters, gate, redis_prefix + "cred:x")] * 16)
    assert all(isinstance(r, redis_lib.ConnectionError) for r in results), results
    assert time.monotonic() - started < 2


def test_a_silent_redis_fails_every_caller_within_the_deadline(redis_prefix):
    """Redis accepts the connection and never answers: the scan in flight times
    out on its socket, the queued ones at their deadline; none hangs."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)             # connections complete in the backlog, nothing reads
        counters = counters_at(redis_prefix, "redis://127.0.0.1:%d/0" % silent.getsockname()[1],
                               socket_timeout=1.0, socket_connect_timeout=1.0,
                               retry=Retry(NoBackoff(), 0))
        counters._scan.wait_seconds = 0.3
        gate = new_gate()
        started = time.monotonic()
        results = concurrently([lambda: scan(counters, gate, redis_prefix + "cred:x")] * 8)
        elapsed = time.monotonic() - started
    assert isinstance(results[0], redis_lib.TimeoutError)            # sent directly
    assert all(isinstance(r, QueuedTooLong) for r in results[1:]), results
    assert elapsed < 3


def test_a_call_past_its_deadline_is_never_sent(redis_prefix):
    counters = counters_at(redis_prefix)
    gate = new_gate()
    open_venue(counters, gate)
    key = put(counters, "t", ticket(gate))
    pipeliner = counters._scan
    pipeliner.busy = True             # a round trip said to be in flight, for longer than
    pipeliner.wait_seconds = 0.05     # the queued call may wait
    with pytest.raises(QueuedTooLong):
        scan(counters, gate, key, nonce="late")
    pipeliner._wake_sender()          # the round trip ends; the sender finds the queue
    eventlet.sleep(0.05)
    assert not pipeliner.busy and not pipeliner.queue
    nonce_key = counters.keys(gate["device_id"], "late", None, gate["venue_id"], DAY)[0]
    assert not counters.redis.exists(nonce_key)
    # the ticket was never used
    assert scan(counters, gate, key)[1].reason == "ok"
