"""Desks racing each other on the real servers: two guests at two desks at
the same instant never get the same room; the same booking from two desks
gives one stay and one already_checked_in."""
import eventlet
from eventlet.event import Event

from tests.factories import valid_id_number

from test_checkin_support import checkin_api, hotel  # noqa: F401


def at_once(calls):
    """Run the calls in green threads released together; their results."""
    go = Event()

    def run(call):
        go.wait()
        return call()

    threads = [eventlet.spawn(run, call) for call in calls]
    eventlet.sleep(0.01)
    go.send(True)
    return [t.wait() for t in threads]


def test_guests_at_two_desks_at_once_never_share_a_room(hotel):
    numbers = [valid_id_number(100 + n) for n in range(6)]   # 6 guests, 5 king rooms
    for number in numbers:
        hotel.booking(id_numbers=(number,))
    desks = [hotel.desk, hotel.desk2, hotel.kiosk]
    responses = at_once([
        (lambda n=n, i=i: hotel.check_in({"medium": "id_card", "value": n}, device=desks[i % 3]))
        for i, n in enumerate(numbers)])
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 5 + [409], [r.text for r in responses]
    refused = [r for r in responses if r.status_code == 409]
    assert refused[0].json()["error"] == "no_room_ready"
    rooms = [r.json()["room"] for r in responses if r.status_code == 201]
    assert len(set(rooms)) == 5
    occupied = {n: room["stay_id"] for n, room in hotel.rooms().items() if room["occupied"]}
    assert set(occupied) == set(rooms)
    assert set(occupied.values()) == {r.json()["stay_id"] for r in responses if r.status_code == 201}


def test_same_booking_from_two_desks_at_once_gives_one_stay(hotel):
    booking = hotel.booking()
    responses = at_once([
        lambda: hotel.check_in({"medium": "code", "value": booking["code"]}, device=hotel.desk),
        lambda: hotel.check_in({"medium": "code", "value": booking["code"]}, device=hotel.desk2),
        lambda: hotel.check_in({"medium": "code", "value": booking["code"]}, device=hotel.kiosk),
    ])
    assert sorted(r.status_code for r in responses) == [201, 409, 409], [r.text for r in responses]
    assert {r.json()["error"] for r in responses if r.status_code == 409} == {"already_checked_in"}
    occupied = [room for room in hotel.rooms().values() if room["occupied"]]
    assert len(occupied) == 1
    assert occupied[0]["stay_id"] == [r for r in responses if r.status_code == 201][0].json()["stay_id"]


def test_cancellation_racing_check_ins_never_leaves_a_live_key(hotel):
    """booking.cancelled handled while the desks check the same bookings in:
    every booking ends refused or with its key revoked and its room free."""
    from nameko.standalone.events import event_dispatcher
    from shared import events
    from services.checkin import models
    from test_checkin_support import db_rows, wait_for

    bookings = [hotel.booking(id_numbers=(valid_id_number(150 + n),)) for n in range(5)]
    dispatch = event_dispatcher(hotel.config)

    def cancel(record):
        return lambda: dispatch("booking", events.BOOKING_CANCELLED, events.envelope(
            events.BOOKING_CANCELLED, {
                "booking_id": record["booking_id"], "kind": "hotel_stay", "target_type": "hotel",
                "target_id": hotel.hotel_id, "credential": record}))
    calls = []
    for n, record in enumerate(bookings):
        calls.append(lambda r=record, n=n: hotel.check_in(
            {"medium": "code", "value": r["code"]}, device=(hotel.desk, hotel.desk2)[n % 2]))
        calls.append(cancel(record))
    results = at_once(calls)
    wait_for(lambda: sum(b["cancelled"] for b in db_rows(hotel.config, models.booking_marks)) == 5)
    checked_in = [r.json() for r in results[::2] if r.status_code == 201]
    assert all(r.json()["error"] == "cancelled" for r in results[::2] if r.status_code != 201)
    for stay in checked_in:
        r = hotel.api.post("/v1/locks/%s/unlock" % stay["room"], device=hotel.lock,
                           json={"key": stay["key"]})
        assert r.json()["reason"] == "revoked", stay
    assert not any(room["occupied"] for room in hotel.rooms().values())
