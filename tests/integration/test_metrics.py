"""GET /metrics after real traffic through the three services: requests by
route and status, latency histograms for scans, check-ins and bookings,
decisions by reason, occupancy per venue, outbox backlog, cache hits and
misses, deadline RPCs. Counters are process-wide, so the test compares
before and after."""
import datetime
import time
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.clock import city_today
from services.booking.service import BookingService
from services.checkin.service import CheckinService
from services.entry.service import EntryService

ADMIN = "duoyou-admin-dev"
GUEST_ID = "11010519491231002X"
VISITOR_ID = "440524188001010014"


def samples(api):
    """{(name, frozenset(labels)): value} from /metrics."""
    r = api.get("/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(snapshot, name, **labels):
    return snapshot.get((name, frozenset(labels.items())), 0.0)


def poll(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


@pytest.fixture
def city(start_services):
    """All three services on one port, a venue, a hotel, their devices and a tourist."""
    api = start_services(BookingService, CheckinService, EntryService)

    def created(r):
        assert r.status_code == 201, r.text
        return r.json()

    venue = created(api.post("/v1/admin/venues", token=ADMIN, json={
        "name": "Metrics Museum", "kind": "museum", "daily_capacity": 100,
        "instantaneous_capacity": 50, "entry_policy": "single"}))["venue_id"]
    hotel = created(api.post("/v1/admin/hotels", token=ADMIN, json={
        "name": "Metrics Hotel", "district": "shenhe",
        "room_types": [{"room_type": "double", "price": 300, "rooms": ["1201", "1202"]}]}))["hotel_id"]
    gate = created(api.post("/v1/admin/devices", token=ADMIN, json={
        "kind": "gate", "venue_id": venue, "direction": "in"}))["key"]
    desk = created(api.post("/v1/admin/devices", token=ADMIN, json={
        "kind": "desk", "hotel_id": hotel}))["key"]
    tourist = created(api.post("/v1/tourists", json={"phone": "13800000001", "name": "张三"}))["token"]
    return api, venue, hotel, gate, desk, tourist


def test_metrics_cover_requests_latency_decisions_occupancy_outbox_and_cache(city):
    api, venue, hotel, gate, desk, tourist = city
    today = city_today()
    before = samples(api)

    ticket = api.post("/v1/bookings", token=tourist, headers={"Idempotency-Key": uuid.uuid4().hex},
                      json={"kind": "venue_ticket", "venue_id": venue, "date": today.isoformat(),
                            "visitors": [{"name": "李四", "id_number": VISITOR_ID}]})
    assert ticket.status_code == 201, ticket.text
    stay = api.post("/v1/bookings", token=tourist, headers={"Idempotency-Key": uuid.uuid4().hex},
                    json={"kind": "hotel_stay", "hotel_id": hotel, "room_type": "double",
                          "check_in": today.isoformat(),
                          "check_out": (today + datetime.timedelta(days=1)).isoformat(),
                          "guests": [{"name": "张三", "id_number": GUEST_ID}]})
    assert stay.status_code == 201, stay.text

    admitted = api.post("/v1/scans", device=gate, json={
        "medium": "code", "value": ticket.json()["code"], "nonce": uuid.uuid4().hex})
    assert admitted.status_code == 200 and admitted.json()["decision"] == "admit", admitted.text
    unknown = api.post("/v1/scans", device=gate, json={
        "medium": "code", "value": "ZZ" + uuid.uuid4().hex[:6].upper(), "nonce": uuid.uuid4().hex})
    assert unknown.json()["reason"] == "unknown", unknown.text

    # check-in by ID card once checkin has built the rooms from hotel.created
    def check_in():
        r = api.post("/v1/checkins", device=desk, json={"medium": "id_card", "value": GUEST_ID})
        return r if r.status_code == 201 else None
    assert poll(check_in), "check-in never succeeded"

    after = poll(lambda: (lambda s: s if all(
        ("duoyou_outbox_backlog", frozenset({"service": name}.items())) in s
        for name in ("booking", "entry", "checkin")) else None)(samples(api)))
    assert after, "outbox backlog gauges missing"

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    # requests by route and status
    assert grew("duoyou_http_requests_total", route="POST /v1/bookings", status="201") == 2
    assert grew("duoyou_http_requests_total", route="POST /v1/scans", status="200") == 2
    assert grew("duoyou_http_requests_total", route="POST /v1/checkins", status="201") == 1
    # latency histograms for scans, check-ins and bookings
    for route, count in (("POST /v1/scans", 2), ("POST /v1/checkins", 1), ("POST /v1/bookings", 2)):
        assert grew("duoyou_http_request_seconds_count", route=route) >= count
        assert grew("duoyou_http_request_seconds_bucket", route=route, le="+Inf") >= count
        assert ("duoyou_http_request_seconds_bucket",
                frozenset({"route": route, "le": "0.05"}.items())) in after
    # decisions by reason
    assert grew("duoyou_decisions_total", service="entry", decision="admit", reason="ok") == 1
    assert grew("duoyou_decisions_total", service="entry", decision="deny", reason="unknown") == 1
    assert grew("duoyou_decisions_total", service="checkin", decision="checked_in", reason="ok") == 1
    # occupancy per venue
    assert value(after, "duoyou_venue_inside", venue_id=venue) == 1
    # outbox backlog per service (a gauge the relay keeps current)
    for name in ("booking", "entry", "checkin"):
        assert value(after, "duoyou_outbox_backlog", service=name) >= 0
    # cache hits (device keys, the ticket) and misses (the unknown code); hit ratio in PromQL
    assert grew("duoyou_credential_cache_total", result="hit") >= 2
    assert grew("duoyou_credential_cache_total", result="miss") >= 1
    # the miss went to booking over a deadline RPC
    rpcs = sum(v for (n, labels), v in after.items()
               if n == "duoyou_rpc_calls_total" and dict(labels)["service"] == "booking")
    rpcs_before = sum(v for (n, labels), v in before.items()
                      if n == "duoyou_rpc_calls_total" and dict(labels)["service"] == "booking")
    assert rpcs > rpcs_before
    # the process's own memory, for the 150 MB RSS target
    assert value(after, "process_resident_memory_bytes") > 0


def test_metrics_never_carry_an_id_number(city):
    api, venue, hotel, gate, desk, tourist = city
    api.post("/v1/scans", device=gate, json={"medium": "id_card", "value": GUEST_ID,
                                             "nonce": uuid.uuid4().hex})
    api.post("/v1/checkins", device=desk, json={"medium": "id_card", "value": VISITOR_ID})
    text = api.get("/metrics").text
    assert GUEST_ID not in text and VISITOR_ID not in text
    assert GUEST_ID[:6] + "********" not in text  # not even masked: no per-person labels


def test_gate_scan_learns_the_venue_from_booking(start_services):
    """Nothing prefilled: entry's venue reader misses Redis and asks booking."""
    api = start_services(BookingService, CheckinService, EntryService)
    venue = api.post("/v1/admin/venues", token=ADMIN, json={
        "name": "Gap Museum", "kind": "museum", "daily_capacity": 10,
        "instantaneous_capacity": 5, "entry_policy": "single"}).json()["venue_id"]
    gate = api.post("/v1/admin/devices", token=ADMIN, json={
        "kind": "gate", "venue_id": venue, "direction": "in"}).json()["key"]
    r = api.post("/v1/scans", device=gate, json={"medium": "code", "value": "NOSUCH12",
                                                 "nonce": uuid.uuid4().hex})
    assert r.status_code == 200, r.text


def test_a_missing_rpc_method_is_a_503_and_counted(start_services, config):
    """A callee without the method (another version mid-rollout) answers 503
    `unavailable`, never a 500, and shows as an unavailable RPC."""
    from shared.http import api as http_api
    from shared.platform import PlatformEndpoints
    from shared.rpc import DeadlineRpc
    from nameko.rpc import rpc

    class Callee(PlatformEndpoints):
        name = "metrics_callee"

        @rpc
        def present(self):
            return "here"

    class Caller(PlatformEndpoints):
        name = "metrics_caller"
        callee = DeadlineRpc("metrics_callee")

        @http_api("GET", "/test/metrics/<method>")
        def call(self, request, method):
            return {"answer": self.callee.call(method)}

    start_services(Callee)
    api = start_services(Caller)
    before = samples(api)
    assert api.get("/test/metrics/present").json() == {"answer": "here"}
    r = api.get("/test/metrics/absent")
    assert r.status_code == 503 and r.json()["error"] == "unavailable", r.text
    after = samples(api)
    for method, outcome in (("present", "ok"), ("absent", "unavailable")):
        key = ("duoyou_rpc_calls_total",
               frozenset({"service": "metrics_callee", "method": method, "outcome": outcome}.items()))
        assert after.get(key, 0) - before.get(key, 0) == 1
    assert value(after, "duoyou_rpc_seconds_count", service="metrics_callee", method="present") >= 1
