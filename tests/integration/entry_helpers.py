"""Helpers for the entry tests: venue records as entry's reader expects them
(booking's `get_venue` shape), gates, and scans over HTTP."""
import json
import uuid

import redis as redis_lib

from tests.factories import credential, put_credential, put_device


def put_venue(config, venue_id=None, instantaneous=100, daily=1000, policy="single"):
    venue_id = venue_id or uuid.uuid4().hex
    client = redis_lib.Redis.from_url(config["REDIS_URL"], decode_responses=True)
    client.set(config["REDIS_PREFIX"] + "venue:" + venue_id, json.dumps({
        "venue_id": venue_id, "instantaneous_capacity": instantaneous,
        "daily_capacity": daily, "entry_policy": policy}), ex=3600)
    return venue_id


def gate(config, venue_id, direction="in"):
    return put_device(config, "gate", venue_id=venue_id, direction=direction)


def ticket(config, venue_id, **kw):
    return put_credential(config, credential(config, target_type="venue", target_id=venue_id,
                                             **kw))


def scan(api, key, medium, value, nonce=None, **extra):
    body = dict(medium=medium, value=value, nonce=nonce or uuid.uuid4().hex, **extra)
    return api.post("/v1/scans", device=key, json=body)


def entry_keys(client, prefix):
    return list(client.scan_iter(prefix + "entry:*", count=1000))


def flush_prefix(client, prefix):
    """Redis restarted without persistence: everything under the test's prefix goes."""
    keys = list(client.scan_iter(prefix + "*", count=1000))
    if keys:
        client.delete(*keys)


ADMIN = "duoyou-admin-dev"


def sql(config, statement, *params):
    """Rows from entry's own schema (the durable record)."""
    import psycopg2
    conn = psycopg2.connect(config["DATABASE_URL"], options="-csearch_path=entry")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def occupancy(api, venue_id):
    r = api.get("/v1/venues/%s/occupancy" % venue_id, token=ADMIN)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(predicate, timeout=5.0, interval=0.02):
    """Poll until `predicate()` is truthy; returns its value or None at the deadline."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
