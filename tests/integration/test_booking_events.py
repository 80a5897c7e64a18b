"""Booking's events on the real broker: published from the outbox once the
booking commits, waiting in pre-declared queues for consumers that are not
running yet; and its own handlers applying gate and desk facts once."""
import json
import uuid

from kombu import Connection
from nameko.standalone.events import event_dispatcher

from shared import events
from tests.integration.test_booking_support import city, sql, wait_for  # noqa: F401

ENTRY_CONFIRMED = events.queue_name("booking", events.BOOKING_CONFIRMED, "entry",
                                    "on_booking_confirmed")


def take(config, queue):
    """The first event of one message from a queue (a frame or a single
    event), or None."""
    with Connection(config["AMQP_URI"]) as conn:
        message = conn.default_channel.basic_get(queue=queue, no_ack=True)
    return events.frame_events(json.loads(message.body))[0] if message else None


class EntryStandIn:
    """Plays the entry service's consumer (same service and method name, so
    the same queue); started only after the event was published."""
    name = "entry"
    seen = []

    @events.handler("booking", events.BOOKING_CONFIRMED)
    def on_booking_confirmed(self, payload):
        EntryStandIn.seen.append(payload)


def all_published(database_url):
    return sql(database_url, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)]


def test_confirmed_event_waits_for_a_consumer_started_later(city, config, database_url,
                                                            start_services):
    booking = city.book(city.tourist(), city.ticket()).json()
    wait_for(lambda: all_published(database_url))
    EntryStandIn.seen = []
    start_services(EntryStandIn)
    payload = wait_for(lambda: EntryStandIn.seen and EntryStandIn.seen[0])
    body = events.load(events.BOOKING_CONFIRMED, payload)
    assert body["booking_id"] == booking["booking_id"] and body["version"] == 1
    assert body["target_type"] == "venue" and body["target_id"] == city.venue_id
    assert body["credential"]["credential_id"] == booking["credential_id"]
    assert body["credential"]["status"] == "active"


def test_cancel_and_hotel_created_reach_their_queues(city, config, database_url):
    token = city.tourist()
    booking = city.book(token, city.stay()).json()
    assert city.api.post("/v1/bookings/%s/cancel" % booking["booking_id"],
                         token=token).status_code == 200
    wait_for(lambda: all_published(database_url))
    for consumer in ("entry", "checkin"):
        queue = events.queue_name("booking", events.BOOKING_CANCELLED, consumer,
                                  "on_booking_cancelled")
        body = events.load(events.BOOKING_CANCELLED, take(config, queue))
        assert body["booking_id"] == booking["booking_id"]
        assert body["credential"]["status"] == "cancelled"
    created = take(config, events.queue_name("booking", events.HOTEL_CREATED, "checkin",
                                             "on_hotel_created"))
    body = events.load(events.HOTEL_CREATED, created)
    assert body["hotel_id"] == city.hotel_id
    assert body["room_types"][0] == {"room_type": "标准间", "rooms": ["1201", "1202", "1203"]}
    rows = sql(database_url, "SELECT event_type, published_at IS NOT NULL FROM outbox ORDER BY id")
    assert rows == [("hotel.created", True), ("booking.confirmed", True),
                    ("booking.cancelled", True)]


def scan(city, booking, event_type, event_id=None):
    return events.envelope(event_type, {
        "scan_id": uuid.uuid4().hex, "venue_id": city.venue_id, "gate_id": "g1",
        "booking_id": booking["booking_id"], "credential_id": booking["credential_id"],
        "reason": "ok", "party": 1}) | ({"event_id": event_id} if event_id else {})


def status_of(database_url, booking_id):
    return sql(database_url, "SELECT status, entries FROM bookings WHERE booking_id = %s",
               (booking_id,))[0]


def test_gate_facts_are_applied_once(city, config, database_url):
    token = city.tourist()
    booking = city.book(token, city.ticket()).json()
    dispatch = event_dispatcher(config)
    admitted = scan(city, booking, events.ENTRY_ADMITTED)
    dispatch("entry", events.ENTRY_ADMITTED, admitted)
    dispatch("entry", events.ENTRY_ADMITTED, admitted)  # redelivered: no second entry
    wait_for(lambda: status_of(database_url, booking["booking_id"]) == ("used", 1))
    cancel = city.api.post("/v1/bookings/%s/cancel" % booking["booking_id"], token=token)
    assert cancel.status_code == 409 and cancel.json()["error"] == "not_cancellable"
    annulled = scan(city, booking, events.ENTRY_ANNULLED)
    dispatch("entry", events.ENTRY_ANNULLED, annulled)
    dispatch("entry", events.ENTRY_ANNULLED, annulled)
    wait_for(lambda: status_of(database_url, booking["booking_id"]) == ("confirmed", 0))
    assert sql(database_url, "SELECT count(*) FROM processed_events") == [(2,)]
    assert city.api.post("/v1/bookings/%s/cancel" % booking["booking_id"],
                         token=token).status_code == 200


def test_desk_facts_move_a_stay_in_house_then_departed(city, config, database_url):
    token = city.tourist()
    booking = city.book(token, city.stay()).json()
    dispatch = event_dispatcher(config)
    fact = {"stay_id": uuid.uuid4().hex, "booking_id": booking["booking_id"],
            "hotel_id": city.hotel_id, "room": "1201"}
    dispatch("checkin", events.CHECKIN_COMPLETED, events.envelope(events.CHECKIN_COMPLETED, fact))
    wait_for(lambda: status_of(database_url, booking["booking_id"])[0] == "in_house")
    assert city.api.get("/v1/bookings/" + booking["booking_id"],
                        token=token).json()["status"] == "in_house"
    dispatch("checkin", events.CHECKIN_CHECKED_OUT,
             events.envelope(events.CHECKIN_CHECKED_OUT, fact))
    wait_for(lambda: status_of(database_url, booking["booking_id"])[0] == "departed")
    # a late duplicate check-in event cannot move it back
    dispatch("checkin", events.CHECKIN_COMPLETED, events.envelope(events.CHECKIN_COMPLETED, fact))
    wait_for(lambda: sql(database_url, "SELECT count(*) FROM processed_events") == [(3,)])
    assert status_of(database_url, booking["booking_id"])[0] == "departed"


def test_malformed_events_are_dropped_not_looped(config, database_url):
    """A payload that fails its schema is dropped (requeueing would loop);
    the next good event is still applied, and once the service stops nothing
    is left in its queue."""
    import eventlet
    from nameko.runners import ServiceRunner
    from tests.conftest import Api
    from tests.integration.test_booking_support import City
    from services.booking.service import BookingService
    runner = ServiceRunner(config)
    runner.add_service(BookingService)
    runner.start()
    try:
        city = City(Api("http://%s" % config["WEB_SERVER_ADDRESS"]), config)
        booking = city.book(city.tourist(), city.ticket()).json()
        dispatch = event_dispatcher(config)
        dispatch("entry", events.ENTRY_ADMITTED, {"booking_id": booking["booking_id"]})
        dispatch("entry", events.ENTRY_ADMITTED, "not even an object")
        dispatch("entry", events.ENTRY_ADMITTED, scan(city, booking, events.ENTRY_ADMITTED))
        wait_for(lambda: status_of(database_url, booking["booking_id"]) == ("used", 1))
    finally:
        with eventlet.Timeout(10):
            runner.stop()
    with Connection(config["AMQP_URI"]) as conn:
        queue = events.queue_name("entry", events.ENTRY_ADMITTED, "booking", "on_entry_admitted")
        _, messages, _ = conn.default_channel.queue_declare(queue=queue, passive=True)
    assert messages == 0
    assert sql(database_url, "SELECT count(*) FROM processed_events") == [(1,)]


def test_fact_statements_follow_the_rules(city, database_url):
    """Each fact's one statement moves every status (and entry count) exactly
    as rules.py says, and a repeat of an event changes nothing."""
    from services.booking import ledger, rules
    from shared.database import engine_for
    engine = engine_for(database_url, "booking")
    token = city.tourist()
    kinds = {"venue_ticket": city.book(token, city.ticket()).json()["booking_id"],
             "hotel_stay": city.book(token, city.stay()).json()["booking_id"]}
    cases = [("admitted", "venue_ticket", lambda s, n: (rules.after_admission(s), n + 1)),
             ("annulled", "venue_ticket",
              lambda s, n: (rules.after_annulment(s, max(0, n - 1)), max(0, n - 1))),
             ("checked_in", "hotel_stay", lambda s, n: (rules.after_checkin(s), n)),
             ("checked_out", "hotel_stay", lambda s, n: (rules.after_checkout(s), n))]
    for fact, kind, expect in cases:
        booking_id = kinds[kind]
        for status in ledger.STATUSES:
            for entries in (0, 1, 2):
                sql(database_url, "UPDATE bookings SET status = %s, entries = %s "
                    "WHERE booking_id = %s", (status, entries, booking_id))
                event_id = uuid.uuid4().hex
                for _ in range(2):  # the second delivery is a no-op
                    with engine.begin() as conn:
                        ledger.apply_fact(conn, fact, event_id, "booking.test", booking_id)
                    moved, count = expect(status, entries)
                    assert status_of(database_url, booking_id) == (moved or status, count), \
                        (fact, status, entries)
    # a fact about the other kind of booking moves nothing
    with engine.begin() as conn:
        assert ledger.apply_fact(conn, "checked_in", uuid.uuid4().hex, "booking.test",
                                 kinds["venue_ticket"]) is None
