"""A day in the city with all three services in one process on one port, as
`make run` starts them: an operator sets up a hotel, a museum and a park; a
tourist books a stay and tickets; the gate admits by QR and by ID card; the
desk checks the guest in by ID card; the door opens; check-out; booking learns
of every step through events; a cancelled ticket stops at the gate."""
import datetime
import uuid

from shared.clock import city_today
from tests.factories import valid_id_number, wait_for

from services.booking.service import BookingService
from services.checkin.service import CheckinService
from services.entry.service import EntryService


def test_a_day_in_the_city(config, start_services):
    api = start_services(BookingService, CheckinService, EntryService)
    admin = config["ADMIN_TOKEN"]
    today = city_today().isoformat()
    tomorrow = (city_today() + datetime.timedelta(days=1)).isoformat()

    def created(r):
        assert r.status_code == 201, r.text
        return r.json()

    hotel = created(api.post("/v1/admin/hotels", token=admin, json={
        "name": "东北大厦", "district": "和平区",
        "room_types": [{"room_type": "标准间", "price": 320, "rooms": ["1201", "1202"]}]}))["hotel_id"]
    museum = created(api.post("/v1/admin/venues", token=admin, json={
        "name": "沈阳故宫博物院", "kind": "museum", "daily_capacity": 100,
        "instantaneous_capacity": 50, "entry_policy": "single",
        "slots": [{"slot": "day", "start": "00:00", "end": "23:59", "quota": 100}]}))["venue_id"]
    park = created(api.post("/v1/admin/venues", token=admin, json={
        "name": "北陵公园", "kind": "park", "daily_capacity": 100,
        "instantaneous_capacity": 50, "entry_policy": "multi"}))["venue_id"]

    def device(**body):
        return created(api.post("/v1/admin/devices", token=admin, json=body))["key"]

    museum_gate = device(kind="gate", venue_id=museum, direction="in")
    park_in, park_out = device(kind="gate", venue_id=park, direction="in"), \
        device(kind="gate", venue_id=park, direction="out")
    desk, lock = device(kind="desk", hotel_id=hotel), device(kind="lock", hotel_id=hotel)

    tourist = created(api.post("/v1/tourists", json={"phone": "13900000001", "name": "李雷"}))["token"]
    guest_id, friend_id = valid_id_number(801), valid_id_number(802)

    def book(body):
        return created(api.post("/v1/bookings", token=tourist, json=body,
                                headers={"Idempotency-Key": uuid.uuid4().hex}))

    stay = book({"kind": "hotel_stay", "hotel_id": hotel, "room_type": "标准间",
                 "check_in": today, "check_out": tomorrow,
                 "guests": [{"name": "李雷", "id_number": guest_id}]})
    ticket = book({"kind": "venue_ticket", "venue_id": museum, "date": today, "slot": "day",
                   "visitors": [{"name": "李雷", "id_number": guest_id}]})
    park_ticket = book({"kind": "venue_ticket", "venue_id": park, "date": today, "slot": "day",
                        "visitors": [{"name": "韩梅梅", "id_number": friend_id}]})
    other = book({"kind": "venue_ticket", "venue_id": park, "date": today, "slot": "day",
                  "visitors": [{"name": "李雷", "id_number": guest_id}]})

    def scan(gate, medium, value):
        r = api.post("/v1/scans", device=gate, json={"medium": medium, "value": value,
                                                     "nonce": uuid.uuid4().hex})
        assert r.status_code == 200, r.text
        return r.json()

    # museum: QR once, never twice
    qr = api.get("/v1/bookings/%s/qr" % ticket["booking_id"], token=tourist).json()["qr"]
    first = scan(museum_gate, "qr", qr)
    assert (first["decision"], first["reason"]) == ("admit", "ok")
    assert scan(museum_gate, "qr", qr)["reason"] == "already_used"
    wait_for(lambda: api.get("/v1/bookings/%s" % ticket["booking_id"],
                             token=tourist).json()["status"] == "used")

    # park: ID card in, out, in again; the museum's gate knows nothing of it
    assert scan(park_in, "id_card", friend_id)["decision"] == "admit"
    assert scan(park_in, "id_card", friend_id)["reason"] == "not_exited"
    assert scan(park_out, "id_card", friend_id)["decision"] == "admit"
    assert scan(park_in, "id_card", friend_id)["decision"] == "admit"
    assert scan(museum_gate, "code", park_ticket["code"])["reason"] == "wrong_venue"
    occupancy = api.get("/v1/venues/%s/occupancy" % park, token=admin).json()
    assert occupancy["inside"] == 1 and occupancy["admitted_today"] == 1

    # a cancelled ticket stops at the gate at once
    assert api.post("/v1/bookings/%s/cancel" % other["booking_id"], token=tourist).status_code == 200
    assert scan(park_in, "code", other["code"])["reason"] == "cancelled"

    # hotel: rooms arrive from hotel.created; ID card alone checks in
    wait_for(lambda: len(api.get("/v1/hotels/%s/rooms" % hotel, device=desk).json()["rooms"]) == 2)
    checkin = created(api.post("/v1/checkins", device=desk,
                               json={"medium": "id_card", "value": guest_id}))
    assert checkin["booking_id"] == stay["booking_id"] and checkin["guest"]["name_masked"] == "李*"
    unlock = api.post("/v1/locks/%s/unlock" % checkin["room"], device=lock, json={"key": checkin["key"]})
    assert unlock.json()["decision"] == "open"
    wait_for(lambda: api.get("/v1/bookings/%s" % stay["booking_id"],
                             token=tourist).json()["status"] == "in_house")
    assert api.post("/v1/stays/%s/checkout" % checkin["stay_id"], device=desk).status_code == 200
    unlock = api.post("/v1/locks/%s/unlock" % checkin["room"], device=lock, json={"key": checkin["key"]})
    assert unlock.json()["decision"] == "deny"
    wait_for(lambda: api.get("/v1/bookings/%s" % stay["booking_id"],
                             token=tourist).json()["status"] == "departed")

    # nothing the tourist sees carries a full ID number
    listing = api.get("/v1/bookings", token=tourist).text
    assert guest_id not in listing and friend_id not in listing
