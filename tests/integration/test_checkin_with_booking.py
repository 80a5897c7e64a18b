"""Check-in with the real booking service beside it: hotels from the admin
API reach checkin as rooms, a desk created by booking checks a guest in by
ID card even when Redis has forgotten the credential, booking marks the
stay in house and departed, a cancelled booking is refused, and a hotel whose
hotel.created checkin never saw gets its rooms from get_hotel_rooms."""
import datetime
import uuid

from shared import events
from shared.clock import city_today
from tests.factories import valid_id_number

from services.booking.service import BookingService
from services.checkin.service import CheckinService
from test_checkin_support import queued_events, rooms, wait_for

HOTEL = {"name": "东北大厦", "district": "和平区", "room_types": [
    {"room_type": "标准间", "price": 300, "rooms": ["1201", "1202"]}]}
HOTEL_CREATED_QUEUE = events.queue_name("booking", events.HOTEL_CREATED, "checkin", "on_hotel_created")


def setup_city(api, config):
    admin = config["ADMIN_TOKEN"]
    r = api.post("/v1/admin/hotels", token=admin, json=HOTEL)
    assert r.status_code == 201, r.text
    hotel_id = r.json()["hotel_id"]
    desk = api.post("/v1/admin/devices", token=admin, json={"kind": "desk", "hotel_id": hotel_id})
    lock = api.post("/v1/admin/devices", token=admin, json={"kind": "lock", "hotel_id": hotel_id})
    assert desk.status_code == 201 and lock.status_code == 201, desk.text + lock.text
    tourist = api.post("/v1/tourists", json={"phone": "13800138000", "name": "王小明"}).json()["token"]
    return hotel_id, desk.json()["key"], lock.json()["key"], tourist


def book(api, tourist, hotel_id, id_number):
    today = city_today()
    r = api.post("/v1/bookings", token=tourist, headers={"Idempotency-Key": uuid.uuid4().hex}, json={
        "kind": "hotel_stay", "hotel_id": hotel_id, "room_type": "标准间",
        "check_in": today.isoformat(),
        "check_out": (today + datetime.timedelta(days=1)).isoformat(),
        "guests": [{"name": "王小明", "id_number": id_number}]})
    assert r.status_code == 201, r.text
    return r.json()


def booking_status(api, tourist, booking_id):
    return api.get("/v1/bookings/%s" % booking_id, token=tourist).json()["status"]


def test_desk_check_in_and_out_through_booking(config, start_services, redis_client):
    api = start_services(BookingService, CheckinService)
    hotel_id, desk, lock, tourist = setup_city(api, config)
    wait_for(lambda: len(rooms(api, hotel_id, config)) == 2)
    number = valid_id_number(600)
    booking = book(api, tourist, hotel_id, number)
    # Redis lost the credential records: the desk asks booking (find_credential)
    for key in redis_client.scan_iter(config["REDIS_PREFIX"] + "cred:*"):
        redis_client.delete(key)
    r = api.post("/v1/checkins", device=desk, json={"medium": "id_card", "value": number})
    assert r.status_code == 201, r.text
    stay = r.json()
    assert stay["booking_id"] == booking["booking_id"] and stay["room"] == "1201"
    wait_for(lambda: booking_status(api, tourist, booking["booking_id"]) == "in_house")
    out = api.post("/v1/stays/%s/checkout" % stay["stay_id"], device=desk)
    assert out.status_code == 200, out.text
    wait_for(lambda: booking_status(api, tourist, booking["booking_id"]) == "departed")
    r = api.post("/v1/locks/1201/unlock", device=lock, json={"key": stay["key"]})
    assert r.json() == {"decision": "deny", "reason": "revoked", "explanation": "this key was revoked"}


def test_booking_cancelled_in_the_app_is_refused_at_the_desk(config, start_services):
    api = start_services(BookingService, CheckinService)
    hotel_id, desk, _, tourist = setup_city(api, config)
    wait_for(lambda: len(rooms(api, hotel_id, config)) == 2)
    number = valid_id_number(601)
    booking = book(api, tourist, hotel_id, number)
    r = api.post("/v1/bookings/%s/cancel" % booking["booking_id"], token=tourist)
    assert r.status_code == 200, r.text
    for body in ({"medium": "code", "value": booking["code"]}, {"medium": "id_card", "value": number}):
        r = api.post("/v1/checkins", device=desk, json=body)
        assert r.status_code == 409 and r.json()["error"] == "cancelled", r.text
    assert not any(room["occupied"] for room in rooms(api, hotel_id, config).values())


def test_rooms_imported_from_booking_when_hotel_created_was_missed(config, start_services):
    api = start_services(BookingService)
    hotel_id, desk, _, tourist = setup_city(api, config)
    # checkin never sees this hotel.created: take it off checkin's queue
    wait_for(lambda: queued_events(config, HOTEL_CREATED_QUEUE))
    number = valid_id_number(602)
    booking = book(api, tourist, hotel_id, number)
    start_services(CheckinService)
    assert rooms(api, hotel_id, config) == {}
    r = api.post("/v1/checkins", device=desk, json={"medium": "id_card", "value": number})
    assert r.status_code == 201, r.text
    assert r.json()["booking_id"] == booking["booking_id"]
    assert sorted(rooms(api, hotel_id, config)) == ["1201", "1202"]
