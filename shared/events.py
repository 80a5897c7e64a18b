"""Event names, versioned payload schemas, and who listens to what.

Events leave a service only through its outbox (shared.outbox), so an event is
published once its business write commits, and possibly more than once:
consumers record `event_id` in the same transaction as their effect
(`first_delivery`) and so handle redelivery harmlessly.

SUBSCRIPTIONS lists every handler queue. The publishing service declares these
queues before it publishes anything, so an event sent while a consumer is not
yet (or no longer) running waits in its queue instead of being dropped.

On the wire a message is a frame of consecutive events of one type
(`{"frame": 1, "events": [...], "request_ids": [...]}`, built by the outbox
relay) or, from an older publisher, a single event. `handler` accepts both.
"""
import contextlib
import datetime
import functools
import logging
import uuid

from kombu import Queue
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from nameko.events import event_handler as nameko_event_handler
from nameko.standalone.events import get_event_exchange
from sqlalchemy import Column, DateTime, String, Table, func
from sqlalchemy.dialects.postgresql import insert

from shared import logs

log = logging.getLogger(__name__)

# event types, by source service
BOOKING_CONFIRMED = "booking.confirmed"
BOOKING_CANCELLED = "booking.cancelled"
HOTEL_CREATED = "hotel.created"
ENTRY_ADMITTED = "entry.admitted"
ENTRY_EXITED = "entry.exited"
ENTRY_REFUSED = "entry.refused"
ENTRY_ANNULLED = "entry.annulled"
VENUE_OCCUPANCY_LEVEL = "venue.occupancy_level"
CHECKIN_COMPLETED = "checkin.completed"
CHECKIN_CHECKED_OUT = "checkin.checked_out"
ROOM_CONDITION_CHANGED = "room.condition_changed"

SOURCES = {
    "booking": (BOOKING_CONFIRMED, BOOKING_CANCELLED, HOTEL_CREATED),
    "entry": (ENTRY_ADMITTED, ENTRY_EXITED, ENTRY_REFUSED, ENTRY_ANNULLED, VENUE_OCCUPANCY_LEVEL),
    "checkin": (CHECKIN_COMPLETED, CHECKIN_CHECKED_OUT, ROOM_CONDITION_CHANGED),
}

# (source service, event type, consumer service, handler method)
SUBSCRIPTIONS = (
    ("booking", BOOKING_CANCELLED, "entry", "on_booking_cancelled"),
    ("booking", BOOKING_CONFIRMED, "entry", "on_booking_confirmed"),
    ("booking", HOTEL_CREATED, "checkin", "on_hotel_created"),
    ("booking", BOOKING_CANCELLED, "checkin", "on_booking_cancelled"),
    ("entry", ENTRY_ADMITTED, "booking", "on_entry_admitted"),
    ("entry", ENTRY_ANNULLED, "booking", "on_entry_annulled"),
    ("checkin", CHECKIN_COMPLETED, "booking", "on_checkin_completed"),
    ("checkin", CHECKIN_CHECKED_OUT, "booking", "on_checked_out"),
)


def queue_name(source, event_type, consumer, method):
    """The queue nameko's SERVICE_POOL event_handler consumes from."""
    return "evt-%s-%s--%s.%s" % (source, event_type, consumer, method)


def subscription_queues(source, config):
    exchange = get_event_exchange(source, config)
    return [Queue(queue_name(*sub), exchange=exchange, routing_key=sub[1],
                  durable=True, auto_delete=False, exclusive=False)
            for sub in SUBSCRIPTIONS if sub[0] == source]


class Frame(list):
    """The event payloads of one message, in order; `request_ids[i]` is the
    request id of event i (None when it had none)."""

    def __init__(self, payloads, request_ids):
        super().__init__(payloads)
        self.request_ids = request_ids


def frame_events(body):
    """The events a message carries: a frame's events, or a legacy single
    event (whatever it is: a malformed one is the handler's to drop)."""
    if isinstance(body, dict) and body.get("frame") == 1 and isinstance(body.get("events"), list):
        payloads = body["events"]
        request_ids = body.get("request_ids")
        if not isinstance(request_ids, list) or len(request_ids) != len(payloads):
            request_ids = [None] * len(payloads)
        return Frame(payloads, request_ids)
    return Frame([body], [None])


@contextlib.contextmanager
def logged_as(request_id):
    """Log lines inside carry `request_id` (a frame carries many requests'
    events, each logged under its own), else the worker's."""
    worker_request_id = logs.current_request_id()
    logs.set_request_id(request_id or worker_request_id)
    try:
        yield
    finally:
        logs.set_request_id(worker_request_id)


def handler(source, event_type, batch=False):
    """An event handler that is listed in SUBSCRIPTIONS, called once per event
    of a message, in order, with the log request id of that event; with
    `batch=True`, once per message with its Frame (a list of payloads).

    A failing call sends the whole message back to the queue (requeue) instead
    of dropping it; events of it already handled come again, which their
    handlers absorb (first_delivery). A malformed event (the handler's schema
    load raises ValidationError or TypeError) is dropped with a log line, one
    event at a time; a batch handler drops its own."""
    def decorate(fn):
        if not any(s[0] == source and s[1] == event_type and s[3] == fn.__name__
                   for s in SUBSCRIPTIONS):
            raise RuntimeError("%s is not in shared.events.SUBSCRIPTIONS" % fn.__name__)

        if batch:
            @functools.wraps(fn)
            def consume(self, body):
                return fn(self, frame_events(body))
        else:
            @functools.wraps(fn)
            def consume(self, body):
                frame = frame_events(body)
                for payload, request_id in zip(frame, frame.request_ids):
                    with logged_as(request_id):
                        try:
                            fn(self, payload)
                        except (ValidationError, TypeError):
                            # never transient: requeueing would loop on it and
                            # hold back every event after it in the frame
                            log.warning("dropped a malformed %s event", event_type)
        return nameko_event_handler(source, event_type, requeue_on_error=True)(consume)
    return decorate


# -- payloads ---------------------------------------------------------------

class EventSchema(Schema):
    version = fields.Integer(required=True)
    # consumers key processed_events (64 characters) by it
    event_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    occurred_at = fields.String(required=True)


class BookingConfirmedV1(EventSchema):
    booking_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["hotel_stay", "venue_ticket"]))
    target_type = fields.String(required=True)
    target_id = fields.String(required=True)
    credential = fields.Dict(required=True)   # shared.credentials record


class BookingCancelledV1(EventSchema):
    booking_id = fields.String(required=True)
    kind = fields.String(required=True)
    target_type = fields.String(required=True)
    target_id = fields.String(required=True)
    credential = fields.Dict(required=True)


class HotelCreatedV1(EventSchema):
    hotel_id = fields.String(required=True)
    name = fields.String(required=True)
    room_types = fields.List(fields.Dict(), required=True)  # [{room_type, rooms: [..]}]


class EntryScanV1(EventSchema):
    scan_id = fields.String(required=True)
    venue_id = fields.String(required=True)
    gate_id = fields.String(required=True)
    booking_id = fields.String(allow_none=True)
    credential_id = fields.String(allow_none=True)
    reason = fields.String(required=True)
    party = fields.Integer(load_default=1)


class OccupancyLevelV1(EventSchema):
    venue_id = fields.String(required=True)
    level = fields.Integer(required=True)        # 0, 50, 75 or 90 (percent band)
    previous_level = fields.Integer(required=True)
    inside = fields.Integer(required=True)
    instantaneous_capacity = fields.Integer(required=True)


class CheckinCompletedV1(EventSchema):
    stay_id = fields.String(required=True)
    booking_id = fields.String(required=True)
    hotel_id = fields.String(required=True)
    room = fields.String(required=True)


class CheckedOutV1(CheckinCompletedV1):
    pass


class RoomConditionChangedV1(EventSchema):
    hotel_id = fields.String(required=True)
    room = fields.String(required=True)
    condition = fields.String(required=True)
    previous = fields.String(allow_none=True)


PAYLOADS = {
    BOOKING_CONFIRMED: BookingConfirmedV1,
    BOOKING_CANCELLED: BookingCancelledV1,
    HOTEL_CREATED: HotelCreatedV1,
    ENTRY_ADMITTED: EntryScanV1,
    ENTRY_EXITED: EntryScanV1,
    ENTRY_REFUSED: EntryScanV1,
    ENTRY_ANNULLED: EntryScanV1,
    VENUE_OCCUPANCY_LEVEL: OccupancyLevelV1,
    CHECKIN_COMPLETED: CheckinCompletedV1,
    CHECKIN_CHECKED_OUT: CheckedOutV1,
    ROOM_CONDITION_CHANGED: RoomConditionChangedV1,
}


@functools.lru_cache(maxsize=None)
def _schema(event_type, unknown=None):
    """One schema instance per event type and use (building one per event
    cost more than validating with it)."""
    return PAYLOADS[event_type]() if unknown is None else PAYLOADS[event_type](unknown=unknown)


def envelope(event_type, payload, validate=True):
    """Payload plus version, event id and time, validated against its schema.
    `validate=False`: for a hot producer whose payload shape a contract test
    pins (the consumers still load every event against its schema)."""
    body = dict(payload, version=1, event_id=uuid.uuid4().hex,
                occurred_at=datetime.datetime.now(datetime.timezone.utc).isoformat())
    if validate:
        errors = _schema(event_type).validate(body)
        if errors:
            raise ValueError("invalid %s payload: %s" % (event_type, errors))
    return body


def load(event_type, body):
    """A received payload, checked against its schema (unknown keys kept out)."""
    return _schema(event_type, EXCLUDE).load(body)


# -- idempotent consumers ---------------------------------------------------

def processed_events_table(metadata):
    return Table(
        "processed_events", metadata,
        Column("event_id", String(64), primary_key=True),
        Column("consumer", String(100), primary_key=True),
        Column("processed_at", DateTime(timezone=True), server_default=func.now()),
    )


def first_delivery(session, table, event_id, consumer):
    """True the first time `event_id` reaches `consumer`; call inside the
    transaction that applies the event's effect."""
    result = session.execute(
        insert(table).values(event_id=event_id, consumer=consumer)
        .on_conflict_do_nothing().returning(table.c.event_id))
    return result.first() is not None
