"""Events in frames on the real broker and database: the outbox relay sends
each run of one event type in a claimed batch as one message; handlers get
every event once and in order (or the whole frame with batch=True), older
single-event messages still work; booking applies a frame of gate facts in one
statement, a redelivered frame changes nothing, a malformed event is dropped
alone, and a party ticket admitted twice in one frame counts two entries."""
import json
import uuid
from types import SimpleNamespace

import pytest
from eventlet import sleep as eventlet_sleep
from kombu import Connection, Queue
from nameko.standalone.events import event_dispatcher, get_event_exchange
from sqlalchemy import MetaData, insert, select

from shared import events, logs, outbox
from shared.database import create_schema, engine_for
from tests.integration.test_booking_support import city, sql, wait_for  # noqa: F401

ADMITTED, ANNULLED = events.ENTRY_ADMITTED, events.ENTRY_ANNULLED
EXITED, LEVEL = events.ENTRY_EXITED, events.VENUE_OCCUPANCY_LEVEL


@pytest.fixture
def relay(config):
    """The outbox relay of an `entry` publisher, driven by hand (one
    publish_pending is one claimed batch)."""
    metadata = MetaData()
    table = outbox.outbox_table(metadata)
    create_schema(engine_for(config["DATABASE_URL"], "relay"), "relay", metadata)
    publisher = outbox.Outbox("relay", table)
    publisher.container = SimpleNamespace(config=config, service_name="entry")
    publisher.setup()
    yield publisher
    publisher._disconnect()


def add(relay, *rows):
    """Outbox rows (event_type, payload, request_id); payloads enveloped
    unless given whole. Returns the payloads as written."""
    written = [(t, p if "event_id" in p else events.envelope(t, p), rid) for t, p, rid in rows]
    with relay.engine.begin() as conn:
        conn.execute(insert(relay.table), [
            {"event_type": t, "payload": p, "request_id": rid} for t, p, rid in written])
    return [p for _, p, _ in written]


def scan_fact(booking_id="b" * 32, reason="ok"):
    return {"scan_id": uuid.uuid4().hex, "venue_id": "v1", "gate_id": "g1",
            "booking_id": booking_id, "credential_id": "c1", "reason": reason, "party": 1}


def level_fact(level):
    return {"venue_id": "v1", "level": level, "previous_level": 0, "inside": 1,
            "instantaneous_capacity": 10}


def tap(config, source="entry"):
    """A queue that sees every event of `source`, declared before publishing."""
    name = "tap-" + uuid.uuid4().hex
    with Connection(config["AMQP_URI"]) as conn:
        Queue(name, exchange=get_event_exchange(source, config), routing_key="#",
              durable=False)(conn.default_channel).declare()
    return name


def drain(config, queue):
    with Connection(config["AMQP_URI"]) as conn:
        messages = []
        while True:
            message = conn.default_channel.basic_get(queue=queue, no_ack=True)
            if message is None:
                return messages
            messages.append(message)


def queue_depth(config, queue):
    with Connection(config["AMQP_URI"]) as conn:
        return conn.default_channel.queue_declare(queue=queue, passive=True)[1]


def published(relay):
    with relay.engine.begin() as conn:
        return [r[0] for r in conn.execute(
            select(relay.table.c.published_at.isnot(None)).order_by(relay.table.c.id))]


# -- the relay ----------------------------------------------------------------

def test_a_batch_of_mixed_rows_goes_out_as_frames_in_order(config, relay, monkeypatch):
    monkeypatch.setattr(outbox, "FRAME_EVENTS", 3)
    queue = tap(config)
    rows = ([(ADMITTED, scan_fact(), "r1")] * 4 + [(LEVEL, level_fact(50), "r1")]
            + [(ADMITTED, scan_fact(), None), (EXITED, scan_fact(), "r2"),
               (EXITED, scan_fact(), "r2")])
    payloads = add(relay, *rows)
    assert relay.publish_pending() == 8
    assert published(relay) == [True] * 8
    messages = drain(config, queue)
    got = [(m.delivery_info["routing_key"], json.loads(m.body)) for m in messages]
    assert [(key, body["events"], body["request_ids"]) for key, body in got] == [
        (ADMITTED, payloads[0:3], ["r1"] * 3), (ADMITTED, payloads[3:4], ["r1"]),
        (LEVEL, payloads[4:5], ["r1"]), (ADMITTED, payloads[5:6], [None]),
        (EXITED, payloads[6:8], ["r2", "r2"])]
    for m in messages:
        assert m.properties["content_type"] == "application/json"
        assert m.properties["content_encoding"] == "utf-8"
        assert m.properties["delivery_mode"] == 2   # persistent
    assert [(m.headers or {}).get("nameko.request_id") for m in messages] == \
        ["r1", "r1", "r1", None, "r2"]
    assert relay.publish_pending() == 0


def test_rows_stay_unpublished_when_the_broker_does_not_take_the_batch(config, relay):
    add(relay, (ADMITTED, scan_fact(), None), (LEVEL, level_fact(50), None))
    good_uri = relay.amqp_uri
    relay.amqp_uri = good_uri.rsplit("/", 1)[0] + "/no_such_vhost_" + uuid.uuid4().hex
    with pytest.raises(Exception):
        relay.publish_pending()
    assert published(relay) == [False, False]
    relay.amqp_uri = good_uri
    assert relay.publish_pending() == 2 and published(relay) == [True, True]


# -- consumers ----------------------------------------------------------------

class Listener:
    """Stands in for booking's consumers of entry's events (same queues)."""
    name = "booking"
    seen, frames, fail_at = [], [], set()

    @events.handler("entry", ADMITTED)
    def on_entry_admitted(self, payload):
        events.load(ADMITTED, payload)  # a malformed event raises ValidationError here
        Listener.seen.append((payload["event_id"], logs.current_request_id()))
        if payload["event_id"] in Listener.fail_at:
            Listener.fail_at.discard(payload["event_id"])
            raise RuntimeError("fails once")

    @events.handler("entry", ANNULLED, batch=True)
    def on_entry_annulled(self, frame):
        Listener.frames.append(([p["event_id"] for p in frame], frame.request_ids))


@pytest.fixture
def listener(start_services):
    Listener.seen, Listener.frames, Listener.fail_at = [], [], set()
    # one worker: messages are handled one after the other, as the order is checked
    return lambda: start_services(Listener, extra_config={"max_workers": 1})


def test_handlers_get_every_event_once_in_order_and_old_messages_too(config, relay, listener):
    admitted = add(relay, (ADMITTED, scan_fact(), "r1"), (ADMITTED, scan_fact(), "r2"),
                   (ANNULLED, scan_fact(), "r3"), (ANNULLED, scan_fact(), None),
                   (ADMITTED, scan_fact(), "r5"))
    assert relay.publish_pending() == 5
    legacy = events.envelope(ADMITTED, scan_fact())
    legacy_annulled = events.envelope(ANNULLED, scan_fact())
    dispatch = event_dispatcher(config)
    dispatch("entry", ADMITTED, legacy)              # what an older relay sent
    dispatch("entry", ANNULLED, legacy_annulled)
    listener()
    ids = [p["event_id"] for p in admitted]
    wait_for(lambda: len(Listener.seen) == 4 and len(Listener.frames) == 2)
    assert Listener.seen == [(ids[0], "r1"), (ids[1], "r2"), (ids[4], "r5"),
                             (legacy["event_id"], None)]
    assert Listener.frames == [([ids[2], ids[3]], ["r3", None]),
                               ([legacy_annulled["event_id"]], [None])]


def test_a_failing_handler_gets_the_whole_frame_again(config, relay, listener):
    admitted = add(relay, *[(ADMITTED, scan_fact(), None)] * 3)
    ids = [p["event_id"] for p in admitted]
    Listener.fail_at = {ids[1]}
    relay.publish_pending()
    listener()
    wait_for(lambda: len(Listener.seen) == 5)
    assert [e for e, _ in Listener.seen] == [ids[0], ids[1], ids[0], ids[1], ids[2]]


def test_a_malformed_event_is_dropped_and_the_events_after_it_still_handled(config, relay,
                                                                          listener):
    good = [events.envelope(ADMITTED, scan_fact()) for _ in range(2)]
    bad = dict(events.envelope(ADMITTED, scan_fact()))
    del bad["scan_id"]
    event_dispatcher(config)("entry", ADMITTED, {
        "frame": 1, "events": [good[0], bad, good[1]], "request_ids": ["a", "b", "c"]})
    listener()
    wait_for(lambda: len(Listener.seen) >= 2)
    eventlet_sleep(0.5)  # a requeued frame would come back at once
    assert Listener.seen == [(good[0]["event_id"], "a"), (good[1]["event_id"], "c")]


# -- booking applying frames of facts -----------------------------------------

def status_of(database_url, booking_id):
    return sql(database_url, "SELECT status, entries FROM bookings WHERE booking_id = %s",
               (booking_id,))[0]


def ticket(city, token, *seqs):
    """A booked venue ticket for the visitors with these ID sequence numbers
    (one ticket per ID number and day)."""
    booked = city.book(token, city.ticket(visitors=[(seq, "游客") for seq in seqs]))
    assert booked.status_code == 201, booked.text
    return booked.json()


BOOKING_ADMITTED = events.queue_name("entry", ADMITTED, "booking", "on_entry_admitted")


def test_two_admissions_of_one_party_ticket_in_one_frame_count_two(city, config, database_url,
                                                                   relay):
    token = city.tourist()
    party, single = ticket(city, token, 1, 2), ticket(city, token, 3)
    add(relay, (ADMITTED, scan_fact(party["booking_id"]), None),
        (ADMITTED, scan_fact(single["booking_id"]), None),
        (ADMITTED, scan_fact(party["booking_id"]), None))
    assert relay.publish_pending() == 3
    wait_for(lambda: sql(database_url, "SELECT count(*) FROM processed_events") == [(3,)])
    assert status_of(database_url, party["booking_id"]) == ("used", 2)
    assert status_of(database_url, single["booking_id"]) == ("used", 1)


def test_a_frame_redelivered_after_a_failure_applies_nothing_twice(city, config, database_url,
                                                                   relay, monkeypatch):
    from services.booking.dependencies import BookingStore
    token = city.tourist()
    party, single = ticket(city, token, 1, 2), ticket(city, token, 3)
    real, calls = BookingStore.apply_facts, []

    def applied_then_lost(store, *args):
        calls.append(real(store, *args))   # committed ...
        if len(calls) == 1:
            raise ConnectionError("... but the ack never made it")
    monkeypatch.setattr(BookingStore, "apply_facts", applied_then_lost)
    add(relay, (ADMITTED, scan_fact(party["booking_id"]), None),
        (ADMITTED, scan_fact(party["booking_id"]), None),
        (ADMITTED, scan_fact(single["booking_id"]), None))
    relay.publish_pending()
    wait_for(lambda: len(calls) == 2)
    assert calls[1] == {}   # the redelivery moved nothing
    assert status_of(database_url, party["booking_id"]) == ("used", 2)
    assert status_of(database_url, single["booking_id"]) == ("used", 1)
    assert sql(database_url, "SELECT count(*) FROM processed_events") == [(3,)]
    wait_for(lambda: queue_depth(config, BOOKING_ADMITTED) == 0)


def test_a_malformed_event_is_dropped_and_the_rest_of_its_frame_applied(
        city, config, database_url, relay, caplog):
    token = city.tourist()
    first, second, third = (ticket(city, token, seq) for seq in (1, 2, 3))
    good = [events.envelope(ADMITTED, scan_fact(b["booking_id"])) for b in (first, third)]
    add(relay, (ADMITTED, good[0], "r1"),
        (ADMITTED, {"event_id": "e" * 65, "booking_id": second["booking_id"]}, "r2"),
        (ADMITTED, dict(events.envelope(ADMITTED, scan_fact(second["booking_id"])),
                        event_id="x" * 65), "r3"),  # too long for processed_events
        (ADMITTED, good[1], "r4"))
    relay.publish_pending()
    wait_for(lambda: status_of(database_url, third["booking_id"]) == ("used", 1))
    assert status_of(database_url, first["booking_id"]) == ("used", 1)
    assert status_of(database_url, second["booking_id"]) == ("confirmed", 0)
    assert sql(database_url, "SELECT count(*) FROM processed_events") == [(2,)]
    wait_for(lambda: queue_depth(config, BOOKING_ADMITTED) == 0)
    dropped = [r for r in caplog.records if "dropped a malformed" in r.getMessage()]
    assert len(dropped) == 2


def test_fact_statements_on_many_events_of_one_booking_follow_the_rules(city, database_url):
    """A frame with n events of one booking leaves it as n events one after
    the other would (rules.py, as test_fact_statements_follow_the_rules
    checks for one event), and the same frame again changes nothing."""
    from services.booking import ledger, rules
    engine = engine_for(database_url, "booking")
    token = city.tourist()
    kinds = {"venue_ticket": city.book(token, city.ticket()).json()["booking_id"],
             "hotel_stay": city.book(token, city.stay()).json()["booking_id"]}
    one_event = [
        ("admitted", "venue_ticket", lambda s, n: (rules.after_admission(s) or s, n + 1)),
        ("annulled", "venue_ticket",
         lambda s, n: (rules.after_annulment(s, max(0, n - 1)) or s, max(0, n - 1))),
        ("checked_in", "hotel_stay", lambda s, n: (rules.after_checkin(s) or s, n)),
        ("checked_out", "hotel_stay", lambda s, n: (rules.after_checkout(s) or s, n))]
    for fact, kind, step in one_event:
        booking_id = kinds[kind]
        for status in ledger.STATUSES:
            for entries in (0, 1, 2, 3):
                for n in (2, 3):
                    sql(database_url, "UPDATE bookings SET status = %s, entries = %s "
                        "WHERE booking_id = %s", (status, entries, booking_id))
                    frame = {uuid.uuid4().hex: booking_id for _ in range(n)}
                    expected = (status, entries)
                    for _ in range(n):
                        expected = step(*expected)
                    for _ in range(2):   # the second delivery is a no-op
                        with engine.begin() as conn:
                            ledger.apply_facts(conn, fact, "booking.test", frame)
                        assert status_of(database_url, booking_id) == expected, \
                            (fact, status, entries, n)
