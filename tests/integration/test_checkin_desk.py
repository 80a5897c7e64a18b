"""POST /v1/checkins on the real servers: every error code, the ID card
alone, QR and booking code, face with consent, and bad input."""
import datetime

from shared.clock import city_today
from tests.factories import VALID_IDS, put_device, qr_for, valid_id_number

from test_checkin_support import checkin_api, hotel, Hotel, set_condition  # noqa: F401


def test_id_card_alone_checks_in(hotel):
    booking = hotel.booking()
    r = hotel.check_in({"medium": "id_card", "value": VALID_IDS[0]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["booking_id"] == booking["booking_id"]
    assert body["room"] == "301"       # all clean: lowest floor, then lowest number
    assert body["key"].startswith("rk_")
    assert body["guest"] == {"name_masked": "张*"}
    assert body["valid_until"].startswith(booking["valid_until"] + "T12:00:00")
    assert VALID_IDS[0] not in r.text
    rooms = hotel.rooms()
    assert rooms["301"]["occupied"] and rooms["301"]["stay_id"] == body["stay_id"]


def test_qr_and_booking_code_check_in(hotel):
    by_qr = hotel.booking(id_numbers=(valid_id_number(1),))
    r = hotel.check_in({"medium": "qr", "value": qr_for(hotel.config, by_qr)}, device=hotel.kiosk)
    assert r.status_code == 201, r.text
    assert r.json()["booking_id"] == by_qr["booking_id"]
    by_code = hotel.booking(id_numbers=(valid_id_number(2),))
    r = hotel.check_in({"medium": "code", "value": by_code["code"].lower()})
    assert r.status_code == 201, r.text
    assert r.json()["booking_id"] == by_code["booking_id"]


def remember_missing(hotel, redis_client, id_number=None, code=None):
    """Booking's answer "no such credential", as its negative cache holds it
    (booking itself is not started in these tests)."""
    from shared.config import setting
    from shared.idnumber import id_hash
    prefix = hotel.config["REDIS_PREFIX"]
    if code:
        redis_client.set("%scred:code:%s" % (prefix, code), "-", ex=60)
    if id_number:
        hashed = id_hash(setting(hotel.config, "ID_HASH_KEY"), id_number)
        redis_client.set("%scred:id:hotel:%s:%s:%s" % (
            prefix, hotel.hotel_id, city_today(hotel.config).isoformat(), hashed), "-", ex=60)


def test_not_found(hotel, redis_client):
    hotel.booking()
    remember_missing(hotel, redis_client, id_number=valid_id_number(77), code="NOSUCH12")
    for body in ({"medium": "id_card", "value": valid_id_number(77)},
                 {"medium": "code", "value": "NOSUCH12"},
                 {"medium": "qr", "value": "DY1.AAAAtampered"}):
        r = hotel.check_in(body)
        assert r.status_code == 404 and r.json()["error"] == "not_found", (body, r.text)


def test_desk_of_hotel_a_refused_on_hotel_b_booking(hotel, config, checkin_api, redis_client):
    other = Hotel(config, checkin_api)
    booking_b = other.booking()
    for body in ({"medium": "code", "value": booking_b["code"]},
                 {"medium": "qr", "value": qr_for(config, booking_b)}):
        r = hotel.check_in(body)
        assert r.status_code == 409 and r.json()["error"] == "wrong_hotel", r.text
    # by ID card the lookup is scoped to the desk's hotel: nothing of B's is even found
    remember_missing(hotel, redis_client, id_number=VALID_IDS[0])
    r = hotel.check_in({"medium": "id_card", "value": VALID_IDS[0]})
    assert r.status_code == 404
    assert not any(room["occupied"] for room in other.rooms().values())
    assert other.check_in({"medium": "code", "value": booking_b["code"]}).status_code == 201


def test_not_today_early_and_after_the_stay(hotel):
    today = city_today(hotel.config)
    tomorrow = hotel.booking(day=today + datetime.timedelta(days=1), id_numbers=(valid_id_number(3),))
    r = hotel.check_in({"medium": "id_card", "value": valid_id_number(3)})
    assert r.status_code == 409 and r.json()["error"] == "not_today", r.text
    assert tomorrow["valid_from"] in r.json()["message"]
    hotel.booking(day=today - datetime.timedelta(days=3), nights=1, id_numbers=(valid_id_number(4),))
    r = hotel.check_in({"medium": "id_card", "value": valid_id_number(4)})
    assert r.status_code == 409 and r.json()["error"] == "not_today", r.text


def test_late_arrival_keeps_the_nights_left(hotel):
    today = city_today(hotel.config)
    booking = hotel.booking(day=today - datetime.timedelta(days=2), nights=4,
                            id_numbers=(valid_id_number(5),))
    r = hotel.check_in({"medium": "id_card", "value": valid_id_number(5)})
    assert r.status_code == 201, r.text
    assert r.json()["booking_id"] == booking["booking_id"]


def test_cancelled(hotel):
    booking = hotel.booking(status="cancelled")
    r = hotel.check_in({"medium": "code", "value": booking["code"]})
    assert r.status_code == 409 and r.json()["error"] == "cancelled"


def test_already_checked_in(hotel):
    booking = hotel.booking()
    assert hotel.check_in({"medium": "id_card", "value": VALID_IDS[0]}).status_code == 201
    r = hotel.check_in({"medium": "code", "value": booking["code"]}, device=hotel.desk2)
    assert r.status_code == 409 and r.json()["error"] == "already_checked_in"
    assert sum(room["occupied"] for room in hotel.rooms().values()) == 1
    # with no room left the answer is still already_checked_in, not no_room_ready
    for number, room in hotel.rooms().items():
        if not room["occupied"]:
            set_condition(hotel.api, hotel.config, hotel.hotel_id, number, "dirty")
    r = hotel.check_in({"medium": "id_card", "value": VALID_IDS[0]})
    assert r.status_code == 409 and r.json()["error"] == "already_checked_in"


def test_face_is_optional_needs_consent_and_a_low_score_refuses(hotel):
    hotel.booking()
    before = hotel.rooms()
    r = hotel.check_in({"medium": "id_card", "value": VALID_IDS[0],
                        "face": {"consent": False, "score": 0.99}})
    assert r.status_code == 400 and r.json()["error"] == "validation_error"
    assert "face.consent" in r.json()["fields"]
    r = hotel.check_in({"medium": "id_card", "value": VALID_IDS[0],
                        "face": {"consent": True, "score": 0.42}})
    assert r.status_code == 409 and r.json()["error"] == "identity_mismatch"
    assert hotel.rooms() == before
    r = hotel.check_in({"medium": "id_card", "value": VALID_IDS[0],
                        "face": {"consent": True, "score": 0.93}})
    assert r.status_code == 201, r.text


def test_id_card_read_with_a_code_must_be_a_guest(hotel):
    booking = hotel.booking()
    r = hotel.check_in({"medium": "code", "value": booking["code"],
                        "id_number": valid_id_number(9)})
    assert r.status_code == 409 and r.json()["error"] == "identity_mismatch"
    r = hotel.check_in({"medium": "code", "value": booking["code"], "id_number": VALID_IDS[0]})
    assert r.status_code == 201


def test_no_room_ready(hotel):
    hotel.booking()
    for room in ("1201", "1202", "305", "301", "1105"):
        assert set_condition(hotel.api, hotel.config, hotel.hotel_id, room, "dirty").status_code == 200
    r = hotel.check_in({"medium": "id_card", "value": VALID_IDS[0]})
    assert r.status_code == 409 and r.json()["error"] == "no_room_ready"
    set_condition(hotel.api, hotel.config, hotel.hotel_id, "1105", "clean")
    r = hotel.check_in({"medium": "id_card", "value": VALID_IDS[0]})
    assert r.status_code == 201 and r.json()["room"] == "1105"


def test_assignment_prefers_inspected_then_lowest_floor(hotel):
    set_condition(hotel.api, hotel.config, hotel.hotel_id, "1202", "inspected")
    set_condition(hotel.api, hotel.config, hotel.hotel_id, "301", "dirty")
    got = []
    for seq in range(3):
        hotel.booking(id_numbers=(valid_id_number(20 + seq),))
        r = hotel.check_in({"medium": "id_card", "value": valid_id_number(20 + seq)})
        got.append(r.json()["room"])
    assert got == ["1202", "305", "1105"]
    twin = hotel.booking(room_type="twin", id_numbers=(valid_id_number(30),))
    r = hotel.check_in({"medium": "code", "value": twin["code"]})
    assert r.json()["room"] == "401"


def test_bad_input_is_refused_and_changes_nothing(hotel):
    hotel.booking()
    before = hotel.rooms()
    soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).isoformat()
    bad = [
        ({"medium": "id_card", "value": "110105194912310021"}, "value"),   # check character
        ({"medium": "fingerprint", "value": "x"}, "medium"),
        ({"value": VALID_IDS[0]}, "medium"),
        ({"medium": "id_card", "value": VALID_IDS[0], "room": "1201"}, "room"),
        ({"medium": "id_card", "value": VALID_IDS[0], "started_at": soon}, "started_at"),
        ({"medium": "id_card", "value": VALID_IDS[0], "started_at": "yesterday"}, "started_at"),
        ({"medium": "id_card", "value": VALID_IDS[0], "payment_mode": "cash"}, "payment_mode"),
        ({"medium": "id_card", "value": VALID_IDS[0], "face": {"consent": True, "score": 7}},
         "face.score"),
    ]
    for body, field in bad:
        r = hotel.check_in(body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"] == "validation_error" and field in r.json()["fields"], r.text
        assert "110105194912310021" not in r.text
    r = hotel.api.post("/v1/checkins", device=hotel.desk, data="{nope",
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "bad_json"
    r = hotel.api.post("/v1/checkins", json={"medium": "id_card", "value": VALID_IDS[0]})
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    r = hotel.check_in({"medium": "id_card", "value": VALID_IDS[0]}, device=hotel.lock)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert hotel.rooms() == before
    assert hotel.check_in({"medium": "id_card", "value": VALID_IDS[0]}).status_code == 201


def test_device_without_a_hotel_is_forbidden(hotel, config):
    gate = put_device(config, "desk", hotel_id=None, venue_id="v1")
    r = hotel.check_in({"medium": "id_card", "value": VALID_IDS[0]}, device=gate)
    assert r.status_code == 403


def test_booking_unreachable_on_a_cache_miss_is_503_and_changes_nothing(hotel):
    before = hotel.rooms()
    r = hotel.check_in({"medium": "code", "value": "UNCACHED1"})
    assert r.status_code == 503 and r.json()["error"] == "unavailable"
    assert hotel.rooms() == before
    assert hotel.api.get("/health/ready").json() == {"status": "ready"}
