"""Helpers for the check-in tests (no tests here): a started check-in
service with one hotel's rooms, desks and locks, and a police link that can
be taken down.

Rooms come from the booking service's `hotel.created` event, sent into the
test's vhost as booking would send it.
"""
import uuid

import pytest
from nameko.standalone.events import event_dispatcher

from shared import events
from tests.factories import wait_for, credential, put_credential, put_device

from services.checkin.service import CheckinService

ROOM_TYPES = [
    {"room_type": "king", "rooms": ["1201", "1202", "305", "301", "1105"]},
    {"room_type": "twin", "rooms": ["401", "402"]},
]




def send_event(config, event_type, payload, source="booking"):
    dispatch = event_dispatcher(config)
    body = events.envelope(event_type, payload)
    dispatch(source, event_type, body)
    return body


def create_hotel(config, api, room_types=ROOM_TYPES, admin=None):
    hotel_id = uuid.uuid4().hex
    send_event(config, events.HOTEL_CREATED,
               {"hotel_id": hotel_id, "name": "东北大厦", "room_types": room_types})
    total = sum(len(rt["rooms"]) for rt in room_types)
    wait_for(lambda: len(rooms(api, hotel_id, config)) == total)
    return hotel_id


def rooms(api, hotel_id, config):
    r = api.get("/v1/hotels/%s/rooms" % hotel_id, token=config["ADMIN_TOKEN"])
    assert r.status_code == 200, r.text
    return {room["room"]: room for room in r.json()["rooms"]}


def set_condition(api, config, hotel_id, room, condition):
    return api.post("/v1/hotels/%s/rooms/%s/condition" % (hotel_id, room),
                    token=config["ADMIN_TOKEN"], json={"condition": condition})


class Hotel:
    """One hotel of the test: its id, desk, kiosk and lock keys."""

    def __init__(self, config, api):
        self.config = config
        self.api = api
        self.hotel_id = create_hotel(config, api)
        self.desk = put_device(config, "desk", hotel_id=self.hotel_id)
        self.desk2 = put_device(config, "desk", hotel_id=self.hotel_id)
        self.kiosk = put_device(config, "kiosk", hotel_id=self.hotel_id)
        self.lock = put_device(config, "lock", hotel_id=self.hotel_id)

    def booking(self, room_type="king", **kwargs):
        record = credential(self.config, target_type="hotel", target_id=self.hotel_id,
                            room_type=room_type, **kwargs)
        return put_credential(self.config, record)

    def check_in(self, body, device=None):
        return self.api.post("/v1/checkins", device=device or self.desk, json=body)

    def rooms(self):
        return rooms(self.api, self.hotel_id, self.config)


class FlakyPoliceLink:
    """A police link that fails while `down` is set (class-wide switch)."""
    down = False
    received = []

    def __init__(self, engine, config):
        pass

    def send(self, registration):
        if FlakyPoliceLink.down:
            raise ConnectionError("police link down")
        FlakyPoliceLink.received.append(registration)


class BatchPoliceLink(FlakyPoliceLink):
    """Takes a whole batch in one call; records each batch's size."""
    batches = []

    def send(self, registration):
        raise AssertionError("a link with send_batch gets batches")

    def send_batch(self, registrations):
        if FlakyPoliceLink.down:
            raise ConnectionError("police link down")
        BatchPoliceLink.batches.append(len(registrations))
        FlakyPoliceLink.received.extend(registrations)


@pytest.fixture
def checkin_api(start_services):
    return start_services(CheckinService)


@pytest.fixture
def hotel(config, checkin_api):
    return Hotel(config, checkin_api)


def queued_events(config, queue_name):
    """Take every event waiting in `queue_name` (a subscriber's queue), the
    events of each frame in order."""
    import json
    from kombu import Connection
    from shared.events import frame_events
    bodies = []
    with Connection(config["AMQP_URI"]) as conn:
        channel = conn.channel()
        while True:
            message = channel.basic_get(queue_name, no_ack=True)
            if message is None:
                return bodies
            bodies.extend(frame_events(json.loads(message.body)))


def wait_for_event(config, queue_name, match, timeout=10.0):
    seen = []

    def check():
        seen.extend(queued_events(config, queue_name))
        return [body for body in seen if match(body)]
    return wait_for(check, timeout)


def db_rows(config, table):
    """Rows of a checkin table, read straight from PostgreSQL."""
    from sqlalchemy import create_engine, select
    engine = create_engine(config["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://"),
                           connect_args={"options": "-csearch_path=checkin"})
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(table)).mappings().all()]
    finally:
        engine.dispose()
