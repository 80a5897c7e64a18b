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
