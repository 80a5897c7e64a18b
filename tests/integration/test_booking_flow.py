"""The tourist's way through booking over HTTP, with the credential record in
Redis, QR codes, idempotency, ownership and the read-only RPCs."""
import datetime
import json
import time
import uuid

import eventlet
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import idnumber, qr
from shared.credentials import CredentialCache
from shared.devices import key_hash
from tests.factories import valid_id_number
from tests.integration.test_booking_support import city, day, snapshot, sql  # noqa: F401


def cred_keys(config, redis_client, record):
    return CredentialCache(redis_client, config["REDIS_PREFIX"]).keys_of(record)


def redis_record(config, redis_client, credential_id):
    raw = redis_client.get(config["REDIS_PREFIX"] + "cred:" + credential_id)
    return json.loads(raw) if raw else None


def test_full_tourist_flow(city, config, redis_client, database_url):
    token = city.tourist()
    search = city.api.get("/v1/hotels/search", params={
        "check_in": day(1).isoformat(), "check_out": day(3).isoformat(), "guests": 2})
    assert search.status_code == 200
    offer = search.json()["results"][0]
    assert offer["hotel_id"] == city.hotel_id and offer["district"] == "沈河区"
    assert offer["room_types"][0] == {"room_type": "标准间", "available": 3, "price": 300.0,
                                      "max_guests": 2}

    r = city.book(token, city.stay(guests=((1, "张三"), (2, "欧阳娜娜"))))
    assert r.status_code == 201, r.text
    booking = r.json()
    assert booking["status"] == "confirmed" and booking["kind"] == "hotel_stay"
    assert len(booking["code"]) == 8 and booking["price_total"] == 600.0
    assert booking["guests"] == [
        {"name_masked": "张*", "id_masked": idnumber.mask(valid_id_number(1))},
        {"name_masked": "欧阳**", "id_masked": idnumber.mask(valid_id_number(2))}]
    assert valid_id_number(1) not in r.text and "欧阳娜娜" not in r.text

    # the real name is kept for police registration, the ID number only hashed and masked
    rows = sql(database_url, "SELECT name, id_hash, id_masked FROM booking_people "
                             "WHERE booking_id = %s ORDER BY position", (booking["booking_id"],))
    assert rows[1][0] == "欧阳娜娜"
    assert rows[0][1] == idnumber.id_hash(config["ID_HASH_KEY"], valid_id_number(1))
    dumped = json.dumps(sql(database_url, "SELECT * FROM bookings"), default=str)
    assert valid_id_number(1) not in dumped

    # availability fell by one on both nights, not on the third
    after = city.api.get("/v1/hotels/search", params={
        "check_in": day(1).isoformat(), "check_out": day(3).isoformat(), "guests": 1}).json()
    assert after["results"][0]["room_types"][0]["available"] == 2
    third = city.api.get("/v1/hotels/search", params={
        "check_in": day(3).isoformat(), "check_out": day(4).isoformat(), "guests": 1}).json()
    assert third["results"][0]["room_types"][0]["available"] == 3

    # the credential record is in Redis under all its keys, with a TTL
    record = redis_record(config, redis_client, booking["credential_id"])
    assert record["status"] == "active" and record["code"] == booking["code"]
    assert record["target_type"] == "hotel" and record["valid_from"] == day(1).isoformat()
    assert record["valid_until"] == day(3).isoformat() and record["party_size"] == 2
    assert record["holder_name_masked"] == "张*"
    for key in cred_keys(config, redis_client, record):
        assert json.loads(redis_client.get(key)) == record
        assert 0 < redis_client.ttl(key) <= (4 + 2) * 86400

    listed = city.api.get("/v1/bookings", token=token).json()["bookings"]
    assert [b["booking_id"] for b in listed] == [booking["booking_id"]]
    got = city.api.get("/v1/bookings/" + booking["booking_id"], token=token)
    assert got.status_code == 200 and got.json() == booking

    # a ticket too
    t = city.book(token, city.ticket(slot="pm"))
    assert t.status_code == 201 and t.json()["slot_start"] == "12:00"
    avail = city.api.get("/v1/venues/%s/availability" % city.venue_id,
                         params={"date": day(1).isoformat()}).json()
    assert avail["slots"] == [
        {"slot": "am", "start": "09:00", "end": "12:00", "remaining": 5},
        {"slot": "pm", "start": "12:00", "end": "16:30", "remaining": 4}]

    cancel = city.api.post("/v1/bookings/%s/cancel" % booking["booking_id"], token=token)
    assert cancel.status_code == 200
    assert cancel.json() == {"booking_id": booking["booking_id"], "status": "cancelled"}
    # revoked at once, under every key
    for key in cred_keys(config, redis_client, record):
        assert json.loads(redis_client.get(key))["status"] == "cancelled"
    again = city.api.get("/v1/hotels/search", params={
        "check_in": day(1).isoformat(), "check_out": day(3).isoformat(), "guests": 1}).json()
    assert again["results"][0]["room_types"][0]["available"] == 3
    assert city.api.get("/v1/bookings/" + booking["booking_id"],
                        token=token).json()["status"] == "cancelled"
    second = city.api.post("/v1/bookings/%s/cancel" % booking["booking_id"], token=token)
    assert second.status_code == 409 and second.json()["error"] == "already_cancelled"
    qr_ = city.api.get("/v1/bookings/%s/qr" % booking["booking_id"], token=token)
    assert qr_.status_code == 409 and qr_.json()["error"] == "cancelled"


def test_ticket_cancel_releases_slot_and_per_id_limit(city, database_url):
    token = city.tourist()
    body = city.ticket(visitors=((7, "李四"), (8, "王五")))
    first = city.book(token, body)
    assert first.status_code == 201
    # the same ID again that day (even another slot, another tourist): limit_exceeded
    other = city.tourist("赵六")
    r = city.book(other, city.ticket(slot="pm", visitors=((8, "王五"),)))
    assert r.status_code == 409 and r.json()["error"] == "limit_exceeded"
    assert city.book(other, city.ticket(date=day(2), visitors=((8, "王五"),))).status_code == 201
    assert city.api.post("/v1/bookings/%s/cancel" % first.json()["booking_id"],
                         token=token).status_code == 200
    assert sql(database_url, "SELECT sold FROM slot_days WHERE day = %s AND slot = 'am'",
               (day(1),)) == [(0,)]
    assert city.book(other, city.ticket(slot="pm", visitors=((8, "王五"),))).status_code == 201


def test_venue_without_slots_sells_one_whole_day_slot(city):
    venue_id = city.venue(slots=None, daily=2, policy="multi", kind="park")
    avail = city.api.get("/v1/venues/%s/availability" % venue_id,
                         params={"date": day(1).isoformat()}).json()
    assert avail["slots"] == [{"slot": "day", "start": "00:00", "end": "23:59", "remaining": 2}]
    token = city.tourist()
    r = city.book(token, city.ticket(slot=None, venue_id=venue_id,
                                     visitors=((1, "甲"), (2, "乙"))))
    assert r.status_code == 201 and r.json()["slot"] == "day"
    r = city.book(token, city.ticket(slot="day", venue_id=venue_id, visitors=((3, "丙"),)))
    assert r.status_code == 409 and r.json()["error"] == "sold_out"


def test_guests_filter_and_max_guests(city):
    params = {"check_in": day(1).isoformat(), "check_out": day(2).isoformat(), "guests": 3}
    res = city.api.get("/v1/hotels/search", params=params).json()["results"]
    assert [rt["room_type"] for rt in res[0]["room_types"]] == ["家庭房"]
    token = city.tourist()
    r = city.book(token, city.stay(guests=((1, "甲"), (2, "乙"), (3, "丙"))))
    assert r.status_code == 400 and r.json()["error"] == "validation_error"
    assert "guests" in r.json()["fields"]
    r = city.book(token, city.stay(room_type="家庭房", guests=((1, "甲"), (2, "乙"), (3, "丙"))))
    assert r.status_code == 201
    res = city.api.get("/v1/hotels/search", params=params).json()["results"]
    assert res == []  # the only family room is gone for that night


def test_search_filters_sorts_and_paginates(city):
    cheap = city.hotel("阿经济酒店", "铁西区", [{"room_type": "标准间", "price": 150, "rooms": ["101"]}])
    twin = city.hotel("乙经济酒店", "铁西区", [{"room_type": "标准间", "price": 150, "rooms": ["101"]}])
    params = {"check_in": day(5).isoformat(), "check_out": day(8).isoformat(), "guests": 1}
    ids = [h["hotel_id"] for h in city.api.get("/v1/hotels/search", params=params).json()["results"]]
    assert ids[2] == city.hotel_id and set(ids[:2]) == {cheap, twin}
    page1 = city.api.get("/v1/hotels/search", params=dict(params, limit=2)).json()
    assert len(page1["results"]) == 2 and page1["next_offset"] == 2
    page2 = city.api.get("/v1/hotels/search", params=dict(params, limit=2, offset=2)).json()
    assert [h["hotel_id"] for h in page2["results"]] == [city.hotel_id]
    assert page2["next_offset"] is None
    tiexi = city.api.get("/v1/hotels/search", params=dict(params, district="铁西区")).json()
    assert {h["hotel_id"] for h in tiexi["results"]} == {cheap, twin}
    capped = city.api.get("/v1/hotels/search", params=dict(params, max_price="299")).json()
    assert {h["hotel_id"] for h in capped["results"]} == {cheap, twin}
    # sell the cheap hotel's only room for the middle night: it drops out of the 3-night search
    token = city.tourist()
    assert city.book(token, city.stay(check_in=day(6), nights=1, hotel_id=cheap)).status_code == 201
    ids = [h["hotel_id"] for h in city.api.get("/v1/hotels/search", params=params).json()["results"]]
    assert cheap not in ids and twin in ids


def test_idempotency(city, database_url):
    token = city.tourist()
    body = city.stay()
    first = city.book(token, body, key="key-00000001")
    again = city.book(token, body, key="key-00000001")
    assert first.status_code == 201 and again.status_code in (200, 201)
    assert again.json()["booking_id"] == first.json()["booking_id"]
    before = snapshot(database_url)
    other = city.book(token, dict(body, room_type="家庭房"), key="key-00000001")
    assert other.status_code == 409 and other.json()["error"] == "idempotency_conflict"
    assert snapshot(database_url) == before
    # another tourist may use the same key string for their own booking
    assert city.book(city.tourist(), body, key="key-00000001").status_code == 201


def test_concurrent_requests_with_one_key_make_one_booking(city, database_url):
    token = city.tourist()
    body = city.ticket(visitors=((3, "李四"),))
    pool = eventlet.GreenPool(20)
    results = list(pool.imap(lambda _: requests.post(
        city.api.base + "/v1/bookings", json=body, timeout=10,
        headers={"Authorization": "Bearer " + token, "Idempotency-Key": "same-key-123"}),
        range(20)))
    assert {r.status_code for r in results} <= {200, 201}
    assert len({r.json()["booking_id"] for r in results}) == 1
    assert sql(database_url, "SELECT count(*) FROM bookings") == [(1,)]
    assert sql(database_url, "SELECT sum(sold) FROM slot_days") == [(1,)]


def test_someone_elses_booking_is_not_found(city, database_url, redis_client, config):
    owner, stranger = city.tourist(), city.tourist("王五")
    booking = city.book(owner, city.stay()).json()
    path = "/v1/bookings/" + booking["booking_id"]
    for method, suffix in (("GET", ""), ("POST", "/cancel"), ("GET", "/qr")):
        r = city.api.request(method, path + suffix, token=stranger)
        assert r.status_code == 404 and r.json()["error"] == "not_found", suffix
    assert city.api.get("/v1/bookings", token=stranger).json() == {"bookings": []}
    assert city.api.get(path, token=owner).json()["status"] == "confirmed"
    assert redis_record(config, redis_client, booking["credential_id"])["status"] == "active"


def test_qr_verifies_and_resists_tampering(city, config):
    token = city.tourist()
    booking = city.book(token, city.ticket()).json()
    r = city.api.get("/v1/bookings/%s/qr" % booking["booking_id"], token=token)
    assert r.status_code == 200
    code = r.json()["qr"]
    expires_at = datetime.datetime.fromisoformat(r.json()["expires_at"])
    assert expires_at.utcoffset() == datetime.timedelta(hours=8)
    assert 0 < expires_at.timestamp() - time.time() <= 61
    public = qr.signing_key(config["QR_SIGNING_KEY"]).public_key()
    assert qr.verify(public, code) == ("ok", booking["credential_id"])

    raw = bytearray(qr.base64.urlsafe_b64decode(code[4:] + "=" * (-len(code[4:]) % 4)))
    raw[5] ^= 0x01  # flip a byte of the credential id
    flipped = "DY1." + qr.base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    assert qr.verify(public, flipped) == ("tampered", None)
    assert qr.verify(public, code[:-6]) == ("tampered", None)
    forged, _ = qr.issue(Ed25519PrivateKey.generate(), booking["credential_id"])
    assert qr.verify(public, forged) == ("tampered", None)
    assert qr.verify(public, code, now=expires_at.timestamp() + 60)[0] == "expired_code"


def test_rpcs_return_the_record_shape(city, rpc, config, redis_client, database_url):
    token = city.tourist()
    booking = city.book(token, city.ticket(visitors=((5, "李四"),))).json()
    record = rpc.booking.get_credential(credential_id=booking["credential_id"])
    assert record == redis_record(config, redis_client, booking["credential_id"])
    assert record["entry_policy"] == "single" and record["slot"] == "am"
    assert rpc.booking.find_credential(code=booking["code"].lower()) == record
    h = idnumber.id_hash(config["ID_HASH_KEY"], valid_id_number(5))
    assert rpc.booking.find_credential(target_type="venue", target_id=city.venue_id,
                                       day=day(1).isoformat(), id_hash=h) == record
    assert rpc.booking.find_credential(target_type="venue", target_id=city.venue_id,
                                       day=day(2).isoformat(), id_hash=h) is None
    assert rpc.booking.get_credential(credential_id=str(uuid.uuid4())) is None
    assert rpc.booking.find_credential() is None

    stay = city.book(token, city.stay(check_in=day(1), nights=3, guests=((6, "张三"),))).json()
    h6 = idnumber.id_hash(config["ID_HASH_KEY"], valid_id_number(6))
    found = rpc.booking.find_credential(target_type="hotel", target_id=city.hotel_id,
                                        day=day(2).isoformat(), id_hash=h6)
    assert found["booking_id"] == stay["booking_id"] and found["room_type"] == "标准间"

    venue = rpc.booking.get_venue(venue_id=city.venue_id)
    assert {k: venue[k] for k in ("venue_id", "daily_capacity", "instantaneous_capacity",
                                  "entry_policy")} == {
        "venue_id": city.venue_id, "daily_capacity": 8, "instantaneous_capacity": 8,
        "entry_policy": "single"}
    assert [s["slot"] for s in venue["slots"]] == ["am", "pm"]
    assert rpc.booking.get_venue(venue_id="nope") is None

    rooms = rpc.booking.get_hotel_rooms(hotel_id=city.hotel_id)
    assert rooms["room_types"][0] == {"room_type": "标准间", "rooms": ["1201", "1202", "1203"]}
    assert rpc.booking.get_hotel_rooms(hotel_id="nope") is None

    device = city.api.post("/v1/admin/devices", token=city.admin,
                           json={"kind": "gate", "venue_id": city.venue_id, "direction": "out"})
    assert device.status_code == 201
    key = device.json()["key"]
    stored = sql(database_url, "SELECT key_hash FROM devices WHERE device_id = %s",
                 (device.json()["device_id"],))
    assert stored == [(key_hash(key),)]  # only the hash is kept
    found = rpc.booking.get_device(key_hash=key_hash(key))
    assert found == {"device_id": device.json()["device_id"], "kind": "gate", "hotel_id": None,
                     "venue_id": city.venue_id, "direction": "out", "active": True}
    cached = json.loads(redis_client.get(config["REDIS_PREFIX"] + "device:" + key_hash(key)))
    assert cached == found
    revoked = city.api.post("/v1/admin/devices/%s/revoke" % found["device_id"], token=city.admin)
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    assert redis_client.get(config["REDIS_PREFIX"] + "device:" + key_hash(key)) is None
    assert rpc.booking.get_device(key_hash=key_hash(key))["active"] is False
    assert rpc.booking.get_device(key_hash="0" * 64) is None


def test_a_late_confirm_never_overwrites_a_cancellation(city, config, redis_client):
    """The confirm write is conditional: a record already cancelled stays so."""
    from services.booking.dependencies import Records
    token = city.tourist()
    booking = city.book(token, city.ticket()).json()
    active = redis_record(config, redis_client, booking["credential_id"])
    city.api.post("/v1/bookings/%s/cancel" % booking["booking_id"], token=token)
    Records(redis_client, config["REDIS_PREFIX"], "Asia/Shanghai").confirm(active)
    for key in cred_keys(config, redis_client, active):
        assert json.loads(redis_client.get(key))["status"] == "cancelled"


def test_openapi_covers_every_booking_route(city):
    from shared import openapi
    from openapi_spec_validator import validate
    doc = city.api.get("/openapi.json").json()
    validate(doc)  # a valid OpenAPI 3 document
    assert doc["openapi"].startswith("3.")
    booking_routes = [r for r in openapi.ROUTES if r.tag in ("booking", "admin")]
    assert len(booking_routes) >= 13
    for route in booking_routes:
        op = doc["paths"][openapi.openapi_path(route.path)][route.method.lower()]
        assert op["responses"], route.path
    post = doc["paths"]["/v1/bookings"]["post"]
    assert "409" in post["responses"] and post["security"] == [{"tourist": []}]
    assert doc["components"]["schemas"]["Person"]["required"] == ["name", "id_number"]


def test_with_redis_down_bookings_stand_and_cancel_refuses_safely(start_services, config,
                                                                   database_url, rpc):
    """Confirm commits even if the cache write fails (readers refill over RPC);
    cancel revokes in Redis before committing, so with Redis down it changes
    nothing and answers 503."""
    from tests.integration.test_booking_support import City
    from services.booking.service import BookingService
    api = start_services(BookingService, extra_config={"REDIS_URL": "redis://127.0.0.1:1/0"})
    city = City(api, config)
    token = city.tourist()
    r = city.book(token, city.stay())
    assert r.status_code == 201, r.text
    booking = r.json()
    assert rpc.booking.get_credential(credential_id=booking["credential_id"])["status"] == "active"
    before = snapshot(database_url)
    r = city.api.post("/v1/bookings/%s/cancel" % booking["booking_id"], token=token)
    assert r.status_code == 503 and r.json()["error"] == "unavailable"
    assert snapshot(database_url) == before
    assert city.api.get("/v1/bookings/" + booking["booking_id"],
                        token=token).json()["status"] == "confirmed"


def test_new_booking_answer_and_record_match_what_is_stored(city, rpc, config, redis_client):
    """A new booking's answer and credential record are built from what its
    transaction wrote, not read back: they must equal the stored booking
    (GET) and the record booking serves over RPC, for both kinds."""
    token = city.tourist()
    for body in (city.stay(guests=((1, "张三"), (2, "李四"))),
                 city.ticket(slot="pm", visitors=((3, "王五"), (4, "赵六")))):
        r = city.book(token, body)
        assert r.status_code == 201, r.text
        booking = r.json()
        assert city.api.get("/v1/bookings/" + booking["booking_id"], token=token).json() == booking
        cached = redis_record(config, redis_client, booking["credential_id"])
        assert cached == rpc.booking.get_credential(credential_id=booking["credential_id"])
