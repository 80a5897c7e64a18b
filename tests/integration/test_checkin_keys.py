"""Digital keys and check-out on the real servers: the lock decides from
Redis; check-out (or a cancelled booking) revokes; keys expire at check-out
time; a lock never opens for another room's or another hotel's key."""
import datetime
import time

from nameko.standalone.events import event_dispatcher

from shared import events
from tests.factories import valid_id_number

from services.checkin import models
from services.checkin.keys import KeyRing, key_hash
from test_checkin_support import (Hotel, checkin_api, db_rows, hotel, queued_events,  # noqa: F401
                                  send_event, set_condition, wait_for, wait_for_event)

CHECKED_OUT_QUEUE = events.queue_name("checkin", events.CHECKIN_CHECKED_OUT, "booking", "on_checked_out")
COMPLETED_QUEUE = events.queue_name("checkin", events.CHECKIN_COMPLETED, "booking", "on_checkin_completed")


def unlock(hotel, room, key, device=None):
    r = hotel.api.post("/v1/locks/%s/unlock" % room, device=device or hotel.lock, json={"key": key})
    assert r.status_code == 200, r.text
    return r.json()["decision"], r.json()["reason"]


def checked_in(hotel, seq=0, **booking):
    number = valid_id_number(200 + seq)
    record = hotel.booking(id_numbers=(number,), **booking)
    r = hotel.check_in({"medium": "id_card", "value": number})
    assert r.status_code == 201, r.text
    return record, r.json()


def test_key_opens_its_room_only(hotel):
    set_condition(hotel.api, hotel.config, hotel.hotel_id, "1202", "inspected")
    _, in_1202 = checked_in(hotel, 1)
    set_condition(hotel.api, hotel.config, hotel.hotel_id, "1201", "inspected")
    _, in_1201 = checked_in(hotel, 2)
    assert (in_1202["room"], in_1201["room"]) == ("1202", "1201")
    assert unlock(hotel, "1202", in_1202["key"]) == ("open", "ok")
    assert unlock(hotel, "1201", in_1202["key"]) == ("deny", "wrong_room")
    assert unlock(hotel, "1201", in_1201["key"]) == ("open", "ok")
    assert unlock(hotel, "1201", "rk_made_up") == ("deny", "unknown_key")


def test_lock_of_another_hotel_and_non_lock_devices(hotel, config, checkin_api):
    _, stay = checked_in(hotel)
    other = Hotel(config, checkin_api)
    assert unlock(hotel, stay["room"], stay["key"], device=other.lock) == ("deny", "unknown_key")
    r = hotel.api.post("/v1/locks/%s/unlock" % stay["room"], device=hotel.desk, json={"key": stay["key"]})
    assert r.status_code == 403
    r = hotel.api.post("/v1/locks/%s/unlock" % stay["room"], device=hotel.lock, json={"key": 5})
    assert r.status_code == 400 and r.json()["fields"] == {"key": ["Not a valid string."]}


def test_key_expires_at_checkout_time(hotel, redis_client):
    _, stay = checked_in(hotel)
    ring = KeyRing(redis_client, hotel.config["REDIS_PREFIX"])
    record = ring.get(key_hash(stay["key"]))
    assert abs(record["valid_until"] - _epoch(stay["valid_until"])) < 1
    # the clock passes check-out time (12:00 of the departure day)
    ring.put(key_hash(stay["key"]), record["stay_id"], record["hotel_id"], record["room"],
             time.time() - 1)
    assert unlock(hotel, stay["room"], stay["key"]) == ("deny", "expired")


def _epoch(iso):
    return datetime.datetime.fromisoformat(iso).timestamp()


def test_checkout_revokes_key_dirties_room_and_tells_booking(hotel):
    booking, stay = checked_in(hotel)
    r = hotel.api.post("/v1/stays/%s/checkout" % stay["stay_id"], device=hotel.kiosk,
                       json={"payment_mode": "credit"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "checked_out" and body["room"] == stay["room"]
    assert body["payment_mode"] == "credit" and body["settlement"] == "charged_after_departure"
    assert unlock(hotel, stay["room"], stay["key"]) == ("deny", "revoked")
    room = hotel.rooms()[stay["room"]]
    assert room["condition"] == "dirty" and not room["occupied"]
    done = wait_for_event(hotel.config, CHECKED_OUT_QUEUE, lambda b: b["stay_id"] == stay["stay_id"])
    assert done[0]["booking_id"] == booking["booking_id"] and done[0]["room"] == stay["room"]
    # a retried check-out answers the same and changes nothing
    again = hotel.api.post("/v1/stays/%s/checkout" % stay["stay_id"], device=hotel.desk)
    assert again.status_code == 200 and again.json() == body
    # the booking cannot check in again
    r = hotel.check_in({"medium": "code", "value": booking["code"]})
    assert r.status_code == 409 and r.json()["error"] == "already_checked_in"


def test_credit_stay_chosen_at_check_in(hotel):
    number = valid_id_number(250)
    hotel.booking(id_numbers=(number,))
    r = hotel.check_in({"medium": "id_card", "value": number, "payment_mode": "credit"})
    assert r.status_code == 201 and r.json()["payment_mode"] == "credit"
    out = hotel.api.post("/v1/stays/%s/checkout" % r.json()["stay_id"], device=hotel.desk)
    assert out.json()["payment_mode"] == "credit"


def test_checkout_only_by_a_desk_of_that_hotel(hotel, config, checkin_api):
    _, stay = checked_in(hotel)
    other = Hotel(config, checkin_api)
    path = "/v1/stays/%s/checkout" % stay["stay_id"]
    assert hotel.api.post(path, device=other.desk).status_code == 404
    assert hotel.api.post(path, device=hotel.lock).status_code == 403
    assert hotel.api.post("/v1/stays/nosuch/checkout", device=hotel.desk).status_code == 404
    r = hotel.api.post(path, device=hotel.desk, json={"payment_mode": "barter"})
    assert r.status_code == 400
    assert unlock(hotel, stay["room"], stay["key"]) == ("open", "ok")
    assert hotel.rooms()[stay["room"]]["occupied"]


def test_checkin_completed_event_for_booking(hotel):
    booking, stay = checked_in(hotel)
    got = wait_for_event(hotel.config, COMPLETED_QUEUE, lambda b: b["stay_id"] == stay["stay_id"])
    assert got[0]["booking_id"] == booking["booking_id"] and got[0]["hotel_id"] == hotel.hotel_id
    # the check-in statement writes the room it claimed into the event
    assert got[0]["room"] == stay["room"] and got[0]["event_id"]


def test_booking_cancelled_revokes_the_key_idempotently(hotel):
    booking, stay = checked_in(hotel)
    payload = {"booking_id": booking["booking_id"], "kind": "hotel_stay", "target_type": "hotel",
               "target_id": hotel.hotel_id, "credential": dict(booking, status="cancelled")}
    body = send_event(hotel.config, events.BOOKING_CANCELLED, payload)
    wait_for(lambda: unlock(hotel, stay["room"], stay["key"]) == ("deny", "revoked"))
    room = hotel.rooms()[stay["room"]]
    assert room["condition"] == "dirty" and not room["occupied"]
    event_dispatcher(hotel.config)("booking", events.BOOKING_CANCELLED, body)  # redelivered
    r = hotel.api.post("/v1/stays/%s/checkout" % stay["stay_id"], device=hotel.desk)
    assert r.status_code == 409 and r.json()["error"] == "not_in_house"


def test_cancelled_before_the_cache_knows(hotel):
    """booking.cancelled arrived; the cached credential still says active."""
    number = valid_id_number(260)
    booking = hotel.booking(id_numbers=(number,))
    send_event(hotel.config, events.BOOKING_CANCELLED, {
        "booking_id": booking["booking_id"], "kind": "hotel_stay", "target_type": "hotel",
        "target_id": hotel.hotel_id, "credential": booking})
    wait_for(lambda: [b for b in db_rows(hotel.config, models.booking_marks) if b["cancelled"]])
    r = hotel.check_in({"medium": "id_card", "value": number})
    assert r.json()["error"] == "cancelled"
    assert not any(room["occupied"] for room in hotel.rooms().values())


def test_key_lost_by_redis_is_restored_from_the_database(hotel, redis_client):
    _, stay = checked_in(hotel)
    _, gone = checked_in(hotel, 1)
    assert hotel.api.post("/v1/stays/%s/checkout" % gone["stay_id"], device=hotel.desk).status_code == 200
    ring = KeyRing(redis_client, hotel.config["REDIS_PREFIX"])
    for s in (stay, gone):
        ring.forget(key_hash(s["key"]))          # a Redis failover lost them
    assert unlock(hotel, stay["room"], stay["key"]) == ("open", "ok")
    assert unlock(hotel, gone["room"], gone["key"]) == ("deny", "revoked")
    assert ring.get(key_hash(stay["key"]))["room"] == stay["room"]
    assert unlock(hotel, stay["room"], "rk_never_issued") == ("deny", "unknown_key")
