"""Bad input of every kind: a 4xx with the contract's envelope and a stable
code, field messages for validation, never an ID number echoed, and nothing
stored changes (every booking table counted before and after)."""
import json
import uuid

from tests.factories import valid_id_number
from tests.integration.test_booking_support import city, day, snapshot  # noqa: F401

BAD_ID = valid_id_number(1)[:-1] + ("0" if valid_id_number(1)[-1] != "0" else "1")


def cases(city, token):
    stay, ticket = city.stay(), city.ticket()

    def key():  # fresh each time: the test client adds Authorization to the dict it gets
        return {"Idempotency-Key": uuid.uuid4().hex}

    def book(body):
        return lambda: city.api.post("/v1/bookings", json=body, token=token, headers=key())

    def raw(data):
        return lambda: city.api.post("/v1/bookings", data=data, token=token, headers=dict(
            key(), **{"Content-Type": "application/json"}))

    def admin(path, body, token_=city.admin):
        return lambda: city.api.post(path, json=body, token=token_)

    def search(**params):
        base = {"check_in": day(1).isoformat(), "check_out": day(2).isoformat(), "guests": 1}
        base.update(params)
        return lambda: city.api.get("/v1/hotels/search",
                                    params={k: v for k, v in base.items() if v is not None})

    hotel = {"name": "新酒店", "district": "和平区",
             "room_types": [{"room_type": "标准间", "price": 200, "rooms": ["101"]}]}
    venue = {"name": "新公园", "kind": "park", "daily_capacity": 10, "instantaneous_capacity": 5,
             "entry_policy": "multi"}
    return [
        # name, request, status, code, field that must be named
        ("malformed json", raw("{nope"), 400, "bad_json", None),
        ("empty body", raw(""), 400, "bad_json", None),
        ("not an object", raw("[1, 2]"), 400, "validation_error", None),
        ("unknown kind", book(dict(stay, kind="spa")), 400, "validation_error", "kind"),
        ("wrong type date", book(dict(stay, check_in=20261201)), 400, "validation_error",
         "check_in"),
        ("bad date text", book(dict(stay, check_in="2026-13-01")), 400, "validation_error",
         "check_in"),
        ("guests not a list", book(dict(stay, guests="张三")), 400, "validation_error", "guests"),
        ("no guests", book(dict(stay, guests=[])), 400, "validation_error", "guests"),
        ("missing hotel", book({k: v for k, v in stay.items() if k != "hotel_id"}), 400,
         "validation_error", "hotel_id"),
        ("caller sets status", book(dict(stay, status="cancelled")), 400, "validation_error",
         "status"),
        ("caller sets price", book(dict(stay, price_total=1)), 400, "validation_error",
         "price_total"),
        ("invalid id number", book(dict(stay, guests=[{"name": "张三", "id_number": BAD_ID}])),
         400, "validation_error", "guests.0.id_number"),
        ("short id number", book(dict(ticket, visitors=[{"name": "李四", "id_number": "12345"}])),
         400, "validation_error", "visitors.0.id_number"),
        ("blank name", book(dict(stay, guests=[{"name": "  ", "id_number": valid_id_number(1)}])),
         400, "validation_error", "guests.0.name"),
        ("unknown person field", book(dict(stay, guests=[
            {"name": "张三", "id_number": valid_id_number(1), "phone": "1"}])),
         400, "validation_error", "guests.0.phone"),
        ("same id twice", book(dict(ticket, visitors=[
            {"name": "甲", "id_number": valid_id_number(3)},
            {"name": "乙", "id_number": valid_id_number(3)}])),
         400, "validation_error", "visitors.1.id_number"),
        ("past check-in", book(city.stay(check_in=day(-1))), 400, "validation_error", "check_in"),
        ("check-out not after check-in", book(city.stay(nights=0)), 400, "validation_error",
         "check_out"),
        ("past ticket date", book(city.ticket(date=day(-2))), 400, "validation_error", "date"),
        ("too many guests", book(city.stay(guests=((1, "甲"), (2, "乙"), (3, "丙")))), 400,
         "validation_error", "guests"),
        ("unknown hotel", book(city.stay(hotel_id=uuid.uuid4().hex)), 404, "not_found", None),
        ("unknown room type", book(city.stay(room_type="总统套房")), 404, "not_found", None),
        ("unknown venue", book(city.ticket(venue_id=uuid.uuid4().hex)), 404, "not_found", None),
        ("unknown slot", book(city.ticket(slot="night")), 404, "not_found", None),
        ("timed venue without slot", book(city.ticket(slot=None)), 400, "validation_error",
         "slot"),
        ("oversized body", book(dict(stay, hotel_id="x" * 70000)), 413, "too_large", None),
        ("no idempotency key", lambda: city.api.post("/v1/bookings", json=stay, token=token),
         400, "validation_error", "Idempotency-Key"),
        ("no token", lambda: city.api.post("/v1/bookings", json=stay, headers=key()), 401,
         "unauthenticated", None),
        ("wrong token", lambda: city.api.post("/v1/bookings", json=stay, token="tt_nope",
                                              headers=key()), 401, "unauthenticated", None),
        ("admin token is no tourist", lambda: city.api.post(
            "/v1/bookings", json=stay, token=city.admin, headers=key()), 401, "unauthenticated",
         None),
        ("tourist bad phone", lambda: city.api.post("/v1/tourists", json={
            "phone": "call me", "name": "张三"}), 400, "validation_error", "phone"),
        ("tourist extra field", lambda: city.api.post("/v1/tourists", json={
            "phone": "13800138000", "name": "张三", "vip": True}), 400, "validation_error", "vip"),
        ("search missing guests", search(guests=None), 400, "validation_error", "guests"),
        ("search past", search(check_in=day(-1).isoformat()), 400, "validation_error",
         "check_in"),
        ("search reversed", search(check_out=day(0).isoformat()), 400, "validation_error",
         "check_out"),
        ("search bad number", search(guests="two"), 400, "validation_error", "guests"),
        ("search unknown param", search(sort="price"), 400, "validation_error", "sort"),
        ("availability unknown venue", lambda: city.api.get(
            "/v1/venues/%s/availability" % uuid.uuid4().hex, params={"date": day(1).isoformat()}),
         404, "not_found", None),
        ("availability bad date", lambda: city.api.get(
            "/v1/venues/%s/availability" % city.venue_id, params={"date": "tomorrow"}),
         400, "validation_error", "date"),
        ("unknown booking", lambda: city.api.get("/v1/bookings/" + uuid.uuid4().hex,
                                                 token=token), 404, "not_found", None),
        ("cancel unknown booking", lambda: city.api.post(
            "/v1/bookings/%s/cancel" % uuid.uuid4().hex, token=token), 404, "not_found", None),
        ("admin without token", admin("/v1/admin/hotels", hotel, None), 401, "unauthenticated",
         None),
        ("admin with tourist token", admin("/v1/admin/hotels", hotel, token), 401,
         "unauthenticated", None),
        ("hotel without rooms", admin("/v1/admin/hotels", dict(hotel, room_types=[
            {"room_type": "标准间", "price": 200, "rooms": []}])), 400, "validation_error",
         "room_types.0.rooms"),
        ("hotel negative price", admin("/v1/admin/hotels", dict(hotel, room_types=[
            {"room_type": "标准间", "price": -1, "rooms": ["1"]}])), 400, "validation_error",
         "room_types.0.price"),
        ("hotel duplicate room", admin("/v1/admin/hotels", dict(hotel, room_types=[
            {"room_type": "a", "price": 1, "rooms": ["1"]},
            {"room_type": "b", "price": 1, "rooms": ["1"]}])), 400, "validation_error",
         "room_types"),
        ("venue bad kind", admin("/v1/admin/venues", dict(venue, kind="zoo")), 400,
         "validation_error", "kind"),
        ("venue capacity as text", admin("/v1/admin/venues", dict(venue, daily_capacity="10")),
         400, "validation_error", "daily_capacity"),
        ("venue slot ends first", admin("/v1/admin/venues", dict(venue, slots=[
            {"slot": "am", "start": "12:00", "end": "09:00", "quota": 1}])), 400,
         "validation_error", "slots.0.end"),
        ("device for unknown venue", admin("/v1/admin/devices", {
            "kind": "gate", "venue_id": uuid.uuid4().hex}), 404, "not_found", None),
        ("gate for a hotel", admin("/v1/admin/devices", {
            "kind": "gate", "hotel_id": city.hotel_id}), 400, "validation_error", "venue_id"),
        ("desk without hotel", admin("/v1/admin/devices", {"kind": "desk"}), 400,
         "validation_error", "hotel_id"),
        ("revoke unknown device", admin("/v1/admin/devices/%s/revoke" % uuid.uuid4().hex, None),
         404, "not_found", None),
    ]


def test_bad_input_matrix(city, database_url):
    token = city.tourist()
    existing = city.book(token, city.stay(check_in=day(10), nights=1))
    assert existing.status_code == 201
    failures = []
    for name, send, status, code, field in cases(city, token):
        before = snapshot(database_url)
        r = send()
        problems = []
        if r.status_code != status:
            problems.append("status %s" % r.status_code)
        try:
            body = r.json()
        except ValueError:
            body = {}
        if body.get("error") != code:
            problems.append("error %r" % body.get("error"))
        if not isinstance(body.get("message"), str):
            problems.append("no message")
        if field and field not in (body.get("fields") or {}):
            problems.append("fields %r" % body.get("fields"))
        if BAD_ID in r.text or valid_id_number(1) in r.text:
            problems.append("echoed an ID number")
        if snapshot(database_url) != before:
            problems.append("stored something")
        if problems:
            failures.append("%s: %s (%s)" % (name, ", ".join(problems), r.text[:200]))
    assert not failures, "\n".join(failures)


def test_openapi_lists_the_error_codes(city):
    doc = city.api.get("/openapi.json").json()
    post = doc["paths"]["/v1/bookings"]["post"]["responses"]
    assert {"400", "401", "404", "409", "413"} <= set(post)
    assert "sold_out" in post["409"]["description"]
    assert json.dumps(doc).count("id_number") >= 1
