"""Entry and the rest of the city: cancellations reach every gate within a
second, events leave through the outbox, and a dead booking is a quick 503."""
import time
import uuid

import pytest
import redis as redis_lib
from kombu import Connection
from nameko.standalone.events import event_dispatcher

from shared import events
from shared.clock import city_today
from shared.config import setting
from services.booking.service import BookingService
from services.entry.service import EntryService
from tests.factories import put_credential, valid_id_number
from tests.integration.entry_helpers import (ADMIN, gate, occupancy, put_venue, scan, sql, ticket,
                                             wait_for)


def _cancelled_event(record):
    return events.envelope(events.BOOKING_CANCELLED, {
        "booking_id": record["booking_id"], "kind": "venue_ticket", "target_type": "venue",
        "target_id": record["target_id"], "credential": dict(record, status="cancelled")})


def _refused_as_cancelled(entry, key, record):
    return lambda: scan(entry, key, "code", record["code"]).json()["reason"] == "cancelled"


def test_cancellation_through_booking_reaches_the_gate_within_a_second(start_services, config):
    api = start_services(BookingService, EntryService)
    venue = api.post("/v1/admin/venues", token=ADMIN, json={
        "name": "沈阳故宫", "kind": "museum", "daily_capacity": 100,
        "instantaneous_capacity": 50, "entry_policy": "single"})
    assert venue.status_code == 201, venue.text
    venue_id = venue.json()["venue_id"]
    device = api.post("/v1/admin/devices", token=ADMIN,
                      json={"kind": "gate", "venue_id": venue_id, "direction": "in"})
    assert device.status_code == 201, device.text
    key = device.json()["key"]
    token = api.post("/v1/tourists", json={"phone": "13800000001", "name": "张三"}).json()["token"]
    number = valid_id_number(seq=41)
    booked = api.post("/v1/bookings", token=token, headers={"Idempotency-Key": uuid.uuid4().hex},
                      json={"kind": "venue_ticket", "venue_id": venue_id,
                            "date": city_today(config).isoformat(),
                            "visitors": [{"name": "张三", "id_number": number}]})
    assert booked.status_code == 201, booked.text
    booking = booked.json()
    stale = wait_for(lambda: _record(config, booking["code"]))  # booking cached it
    assert stale["status"] == "active"

    assert api.post("/v1/bookings/%s/cancel" % booking["booking_id"],
                    token=token).status_code == 200
    started = time.monotonic()
    # entry's own revocation, proved by putting the stale (active) record back
    assert wait_for(lambda: sql(config, "SELECT reason FROM revocations") == [("cancelled",)],
                    timeout=1.0)
    put_credential(config, stale)
    assert scan(api, key, "id_card", number).json()["reason"] == "cancelled"
    assert time.monotonic() - started < 1.0


def _record(config, code):
    import json
    client = redis_lib.Redis.from_url(config["REDIS_URL"], decode_responses=True)
    raw = client.get(config["REDIS_PREFIX"] + "cred:code:" + code)
    return json.loads(raw) if raw else None


def test_booking_cancelled_event_revokes_even_a_stale_record(start_services, config):
    entry = start_services(EntryService)
    venue = put_venue(config)
    key = gate(config, venue)
    record = ticket(config, venue)
    dispatch = event_dispatcher(config)
    body = _cancelled_event(record)
    dispatch("booking", events.BOOKING_CANCELLED, body)
    dispatch("booking", events.BOOKING_CANCELLED, body)   # redelivery: harmless
    assert wait_for(_refused_as_cancelled(entry, key, record), timeout=1.0)
    put_credential(config, record)                         # stale: still "active"
    assert scan(entry, key, "code", record["code"]).json()["reason"] == "cancelled"
    assert sql(config, "SELECT count(*) FROM processed_events") == [(1,)]
    assert sql(config, "SELECT credential_id, reason FROM revocations") == \
        [(record["credential_id"], "cancelled")]


def test_a_cancellation_sent_while_entry_was_down_is_applied_on_start(start_services, config):
    # booking's outbox declares entry's queue before publishing (SUBSCRIPTIONS)
    with Connection(setting(config, "AMQP_URI")) as conn:
        channel = conn.channel()
        for queue in events.subscription_queues("booking", config):
            queue.maybe_bind(channel)
            queue.declare()
    venue = put_venue(config)
    key = gate(config, venue)
    record = ticket(config, venue)
    event_dispatcher(config)("booking", events.BOOKING_CANCELLED, _cancelled_event(record))
    entry = start_services(EntryService)
    put_credential(config, record)   # the record in Redis says "active"
    assert wait_for(_refused_as_cancelled(entry, key, record), timeout=3.0)


def test_confirmed_event_warms_the_cache(start_services, config, redis_client):
    start_services(EntryService)
    venue = put_venue(config)
    from tests.factories import credential
    record = credential(config, target_type="venue", target_id=venue)
    event_dispatcher(config)("booking", events.BOOKING_CONFIRMED, events.envelope(
        events.BOOKING_CONFIRMED, {"booking_id": record["booking_id"], "kind": "venue_ticket",
                                   "target_type": "venue", "target_id": venue,
                                   "credential": record}))
    assert wait_for(lambda: redis_client.get(
        config["REDIS_PREFIX"] + "cred:" + record["credential_id"]), timeout=2.0)


def test_every_decision_leaves_an_event_in_the_outbox(start_services, config):
    entry = start_services(EntryService)
    venue = put_venue(config, instantaneous=4)
    way_in, way_out = gate(config, venue), gate(config, venue, direction="out")
    tickets = [ticket(config, venue) for _ in range(4)]
    for record in tickets:
        assert scan(entry, way_in, "code", record["code"]).json()["reason"] == "ok"
    assert scan(entry, way_in, "code", tickets[0]["code"]).json()["reason"] == "already_used"
    assert scan(entry, way_out, "code", tickets[0]["code"]).json()["decision"] == "admit"
    rows = sql(config, "SELECT event_type, payload FROM outbox ORDER BY id")
    kinds = [t for t, _ in rows]
    assert kinds.count("entry.admitted") == 4
    assert kinds.count("entry.refused") == 1 and kinds.count("entry.exited") == 1
    levels = [(p["previous_level"], p["level"]) for t, p in rows
              if t == "venue.occupancy_level"]
    assert levels == [(0, 50), (50, 75), (75, 90), (90, 75)]
    admitted = next(p for t, p in rows if t == "entry.admitted")
    assert admitted["booking_id"] == tickets[0]["booking_id"]
    assert admitted["venue_id"] == venue and admitted["event_id"]
    # the relay publishes them
    assert wait_for(lambda: sql(config, "SELECT count(*) FROM outbox "
                                        "WHERE published_at IS NULL") == [(0,)], timeout=5.0)
    assert occupancy(entry, venue)["level"] == 75


def test_booking_unreachable_on_a_cache_miss_is_a_quick_503(start_services, config):
    entry = start_services(EntryService)   # no booking in this vhost
    venue = put_venue(config)
    key = gate(config, venue)
    started = time.monotonic()
    r = scan(entry, key, "code", "NOTCACHED1")
    assert r.status_code == 503 and r.json()["error"] == "unavailable"
    r = scan(entry, key, "id_card", valid_id_number(seq=5))
    assert r.status_code == 503
    assert time.monotonic() - started < 5.0     # the reader's deadline, not a hang
    assert sql(config, "SELECT count(*) FROM scans") == [(0,)]


def test_booking_hung_on_a_cache_miss_is_a_503_at_the_deadline(start_services, config):
    # a booking queue that nobody consumes: the request waits for the deadline only
    from kombu import Exchange, Queue
    with Connection(setting(config, "AMQP_URI")) as conn:
        exchange = Exchange("nameko-rpc", type="topic", durable=True)
        queue = Queue("rpc-booking", exchange=exchange, routing_key="booking.*", durable=True)
        queue.maybe_bind(conn.channel())
        queue.declare()
    entry = start_services(EntryService)
    venue = put_venue(config)
    key = gate(config, venue)
    started = time.monotonic()
    r = scan(entry, key, "code", "NOTCACHED2")
    elapsed = time.monotonic() - started
    assert r.status_code == 503 and r.json()["error"] == "unavailable"
    assert "did not answer" in r.json()["message"]
    assert 0.5 < elapsed < 5.0


@pytest.fixture
def redis_client(config):
    return redis_lib.Redis.from_url(config["REDIS_URL"], decode_responses=True)


def test_redis_down_is_a_503_not_a_500(start_services, config):
    entry = start_services(EntryService, extra_config={"REDIS_URL": "redis://127.0.0.1:1/0"})
    r = scan(entry, "dk_whatever", "code", "ABCDEFGH")
    assert r.status_code == 503 and r.json()["error"] == "unavailable"
    r = entry.get("/v1/venues/v1/occupancy", token=ADMIN)
    assert r.status_code == 503
    assert sql(config, "SELECT count(*) FROM scans") == [(0,)]


def test_venue_capacities_come_from_booking_on_a_cache_miss(start_services, config,
                                                            redis_client):
    api = start_services(BookingService, EntryService)
    venue_id = api.post("/v1/admin/venues", token=ADMIN, json={
        "name": "图书馆", "kind": "library", "daily_capacity": 1,
        "instantaneous_capacity": 1, "entry_policy": "multi"}).json()["venue_id"]
    key = api.post("/v1/admin/devices", token=ADMIN,
                   json={"kind": "gate", "venue_id": venue_id}).json()["key"]
    first, second = ticket(config, venue_id), ticket(config, venue_id)
    assert redis_client.get(config["REDIS_PREFIX"] + "venue:" + venue_id) is None
    assert scan(api, key, "code", first["code"]).json()["reason"] == "ok"
    assert scan(api, key, "code", second["code"]).json()["reason"] == "capacity_full"
    cached = redis_client.get(config["REDIS_PREFIX"] + "venue:" + venue_id)
    assert cached and '"instantaneous_capacity":1' in cached
    occ = occupancy(api, venue_id)
    assert (occ["instantaneous_capacity"], occ["daily_capacity"], occ["level"]) == (1, 1, 90)
