"""Rooms, housekeeping and check-in stats on the real servers."""
import datetime

from kombu import Connection, Exchange, Queue

from shared import events
from tests.factories import valid_id_number

from test_checkin_support import (Hotel, checkin_api, hotel, queued_events,  # noqa: F401
                                  rooms, send_event, set_condition, wait_for)


def listen(config, event_type):
    """A queue of our own bound to checkin's events of `event_type`."""
    name = "test-%s" % event_type
    with Connection(config["AMQP_URI"]) as conn:
        queue = Queue(name, Exchange("checkin.events", type="topic", durable=True),
                      routing_key=event_type)
        queue(conn.channel()).declare()
    return name


def test_hotel_created_makes_rooms_once(hotel):
    got = hotel.rooms()
    assert sorted(got) == ["1105", "1201", "1202", "301", "305", "401", "402"]
    assert got["1201"]["floor"] == 12 and got["305"]["floor"] == 3
    assert got["401"]["room_type"] == "twin"
    assert {r["condition"] for r in got.values()} == {"clean"}
    set_condition(hotel.api, hotel.config, hotel.hotel_id, "1201", "dirty")
    # the same hotel announced again (a redelivery or a replay): nothing reset or doubled
    send_event(hotel.config, events.HOTEL_CREATED, {
        "hotel_id": hotel.hotel_id, "name": "东北大厦",
        "room_types": [{"room_type": "king", "rooms": ["1201", "1301"]}]})
    wait_for(lambda: "1301" in hotel.rooms())
    again = hotel.rooms()
    assert len(again) == 8 and again["1201"]["condition"] == "dirty"


def test_housekeeping_transitions_and_event(hotel):
    queue = listen(hotel.config, events.ROOM_CONDITION_CHANGED)

    def move(room, condition):
        return set_condition(hotel.api, hotel.config, hotel.hotel_id, room, condition)
    r = move("1201", "inspected")
    assert r.status_code == 200 and r.json()["condition"] == "inspected"
    assert move("1201", "dirty").status_code == 200
    r = move("1201", "inspected")            # dirty must be cleaned first
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    assert move("1201", "out_of_order").status_code == 200
    assert move("1201", "clean").status_code == 409
    assert move("1201", "dirty").status_code == 200
    assert move("1201", "dirty").status_code == 200        # no change, no event
    assert move("1201", "clean").status_code == 200
    seen = []

    def five_events():
        seen.extend(queued_events(hotel.config, queue))
        return seen if len(seen) >= 5 else None
    got = wait_for(five_events)
    assert [(e["previous"], e["condition"]) for e in got] == [
        ("clean", "inspected"), ("inspected", "dirty"), ("dirty", "out_of_order"),
        ("out_of_order", "dirty"), ("dirty", "clean")]
    assert {e["hotel_id"] for e in got} == {hotel.hotel_id} and {e["room"] for e in got} == {"1201"}


def test_occupied_room_cannot_go_out_of_order(hotel):
    number = valid_id_number(400)
    hotel.booking(id_numbers=(number,))
    room = hotel.check_in({"medium": "id_card", "value": number}).json()["room"]
    r = set_condition(hotel.api, hotel.config, hotel.hotel_id, room, "out_of_order")
    assert r.status_code == 409
    assert set_condition(hotel.api, hotel.config, hotel.hotel_id, room, "dirty").status_code == 200
    assert hotel.rooms()[room]["occupied"]


def test_housekeeping_bad_input_and_access(hotel, config, checkin_api):
    path = "/v1/hotels/%s/rooms/1201/condition" % hotel.hotel_id
    r = hotel.api.post(path, device=hotel.desk, json={"condition": "sparkling"})
    assert r.status_code == 400 and "condition" in r.json()["fields"]
    r = hotel.api.post("/v1/hotels/%s/rooms/9999/condition" % hotel.hotel_id, device=hotel.desk,
                       json={"condition": "dirty"})
    assert r.status_code == 404
    other = Hotel(config, checkin_api)
    assert hotel.api.post(path, device=other.desk, json={"condition": "dirty"}).status_code == 403
    assert hotel.api.post(path, device=hotel.lock, json={"condition": "dirty"}).status_code == 403
    assert hotel.api.post(path, token="wrong", json={"condition": "dirty"}).status_code == 401
    assert hotel.api.get("/v1/hotels/%s/rooms" % hotel.hotel_id).status_code == 401
    assert hotel.api.get("/v1/hotels/%s/rooms" % hotel.hotel_id, device=other.kiosk).status_code == 403
    assert hotel.api.post(path, device=hotel.kiosk, json={"condition": "inspected"}).status_code == 200
    assert rooms(hotel.api, hotel.hotel_id, config)["1201"]["condition"] == "inspected"


def test_checkin_stats(hotel):
    now = datetime.datetime.now(datetime.timezone.utc)
    for seq, seconds_ago in enumerate((12, 20, 45)):
        number = valid_id_number(500 + seq)
        hotel.booking(id_numbers=(number,))
        r = hotel.check_in({"medium": "id_card", "value": number,
                            "started_at": (now - datetime.timedelta(seconds=seconds_ago)).isoformat()})
        assert r.status_code == 201, r.text
    path = "/v1/hotels/%s/checkin-stats" % hotel.hotel_id
    assert hotel.api.get(path).status_code == 401
    assert hotel.api.get(path, device=hotel.desk).status_code == 401
    stats = hotel.api.get(path, token=hotel.config["ADMIN_TOKEN"]).json()
    assert stats["count"] == 3
    assert 20_000 <= stats["p50_ms"] < 25_000
    assert 40_000 <= stats["p95_ms"] < 50_000
    assert stats["share_under_30s"] == round(2 / 3, 4)
    empty = hotel.api.get("/v1/hotels/nohotel/checkin-stats", token=hotel.config["ADMIN_TOKEN"])
    assert empty.json() == {"count": 0, "p50_ms": None, "p95_ms": None, "share_under_30s": None}


def test_openapi_lists_checkin_routes(hotel):
    paths = hotel.api.get("/openapi.json").json()["paths"]
    for path in ("/v1/checkins", "/v1/stays/{stay_id}/checkout", "/v1/locks/{room}/unlock",
                 "/v1/hotels/{hotel_id}/rooms", "/v1/hotels/{hotel_id}/checkin-stats"):
        assert path in paths
    assert "409" in paths["/v1/checkins"]["post"]["responses"]
