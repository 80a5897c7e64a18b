"""Helpers for the booking tests (no tests here): a started booking service,
a small city created through the admin API, tourists, request bodies, and
direct looks at booking's tables to prove what was (not) stored."""
import datetime
import uuid

import psycopg2
import pytest

from shared.clock import city_today
from tests.factories import wait_for, valid_id_number

from services.booking.service import BookingService

TABLES = ("tourists", "hotels", "room_types", "rooms", "room_nights", "venues", "venue_slots",
          "venue_days", "slot_days", "ticket_holders", "bookings", "booking_people", "devices",
          "outbox")




def day(offset=1):
    return city_today() + datetime.timedelta(days=offset)


class City:
    """Booking started on the test's servers, plus a hotel and a venue."""

    def __init__(self, api, config, rooms=3, slot_quota=5, daily=8):
        self.api, self.config = api, config
        self.admin = config["ADMIN_TOKEN"]
        self.hotel_id = self.hotel("测试大酒店", "沈河区", [
            {"room_type": "标准间", "price": 300, "rooms": ["%d" % (1201 + i) for i in range(rooms)]},
            {"room_type": "家庭房", "price": 500, "max_guests": 4, "rooms": ["1501"]}])
        self.venue_id = self.venue(slots=[
            {"slot": "am", "start": "09:00", "end": "12:00", "quota": slot_quota},
            {"slot": "pm", "start": "12:00", "end": "16:30", "quota": slot_quota}], daily=daily)

    def hotel(self, name, district, room_types):
        r = self.api.post("/v1/admin/hotels", token=self.admin,
                          json={"name": name, "district": district, "room_types": room_types})
        assert r.status_code == 201, r.text
        return r.json()["hotel_id"]

    def venue(self, slots=None, daily=8, policy="single", kind="museum"):
        spec = {"name": "测试博物馆", "kind": kind, "daily_capacity": daily,
                "instantaneous_capacity": daily, "entry_policy": policy}
        if slots:
            spec["slots"] = slots
        r = self.api.post("/v1/admin/venues", token=self.admin, json=spec)
        assert r.status_code == 201, r.text
        return r.json()["venue_id"]

    def tourist(self, name="张三"):
        r = self.api.post("/v1/tourists", json={"phone": "13800138000", "name": name})
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def book(self, token, body, key=None):
        return self.api.post("/v1/bookings", token=token, json=body,
                             headers={"Idempotency-Key": key or uuid.uuid4().hex})

    def stay(self, check_in=None, nights=2, guests=((1, "张三"),), room_type="标准间",
             hotel_id=None):
        check_in = check_in or day(1)
        return {"kind": "hotel_stay", "hotel_id": hotel_id or self.hotel_id, "room_type": room_type,
                "check_in": check_in.isoformat(),
                "check_out": (check_in + datetime.timedelta(days=nights)).isoformat(),
                "guests": [{"name": n, "id_number": valid_id_number(seq)} for seq, n in guests]}

    def ticket(self, date=None, slot="am", visitors=((1, "李四"),), venue_id=None):
        body = {"kind": "venue_ticket", "venue_id": venue_id or self.venue_id,
                "date": (date or day(1)).isoformat(),
                "visitors": [{"name": n, "id_number": valid_id_number(seq)} for seq, n in visitors]}
        if slot:
            body["slot"] = slot
        return body


@pytest.fixture
def city(start_services, config):
    api = start_services(BookingService)
    return City(api, config)


def sql(database_url, statement, params=None):
    conn = psycopg2.connect(database_url, options="-csearch_path=booking")
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.commit()
        conn.close()


def snapshot(database_url):
    """Row counts of every booking table and the inventory totals."""
    out = {t: sql(database_url, "SELECT count(*) FROM %s" % t)[0][0] for t in TABLES}
    for t in ("room_nights", "venue_days", "slot_days"):
        out[t + ".sold"] = sql(database_url, "SELECT coalesce(sum(sold), 0) FROM %s" % t)[0][0]
    return out
