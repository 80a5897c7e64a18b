"""Test data through the public API only (contract: api-contract.md): the
operator creates hotels, venues and devices, tourists book. No ids are
hard-coded: every id comes back from the API that made it."""
import datetime
import uuid

import requests


class ApiFailed(RuntimeError):
    pass


class Client:
    def __init__(self, urls, admin_token):
        """`urls`: {"booking": base, "checkin": base, "entry": base} (one
        base for all when the stack sits behind one port)."""
        self.urls = urls
        self.admin = admin_token
        self.http = requests.Session()

    def call(self, service, method, path, token=None, device=None, expect=(200, 201), **kw):
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = "Bearer " + token
        if device:
            headers["Authorization"] = "Device " + device
        r = self.http.request(method, self.urls[service] + path, headers=headers, timeout=30, **kw)
        if expect and r.status_code not in expect:
            raise ApiFailed("%s %s -> %d %s" % (method, path, r.status_code, r.text[:300]))
        return r

    # -- operator ----------------------------------------------------------
    def hotel(self, name, district, room_types):
        return self.call("booking", "POST", "/v1/admin/hotels", token=self.admin, json={
            "name": name, "district": district, "room_types": room_types}).json()["hotel_id"]

    def venue(self, name, kind="museum", daily=10_000_000, inside=10_000_000, policy="single",
              slots=None):
        body = {"name": name, "kind": kind, "daily_capacity": daily,
                "instantaneous_capacity": inside, "entry_policy": policy}
        if slots:
            body["slots"] = slots
        return self.call("booking", "POST", "/v1/admin/venues", token=self.admin,
                         json=body).json()["venue_id"]

    def device(self, kind, hotel_id=None, venue_id=None, direction=None):
        body = {"kind": kind}
        if hotel_id:
            body["hotel_id"] = hotel_id
        if venue_id:
            body["venue_id"] = venue_id
        if direction:
            body["direction"] = direction
        return self.call("booking", "POST", "/v1/admin/devices", token=self.admin,
                         json=body).json()["key"]

    # -- tourists ----------------------------------------------------------
    def tourist(self, people):
        data = self.call("booking", "POST", "/v1/tourists", json={
            "phone": people.phone(), "name": people.name()}).json()
        return data["token"]

    def book(self, token, body, key=None):
        return self.call("booking", "POST", "/v1/bookings", token=token, json=body,
                         headers={"Idempotency-Key": key or uuid.uuid4().hex}).json()

    def qr(self, token, booking_id):
        return self.call("booking", "GET", "/v1/bookings/%s/qr" % booking_id,
                         token=token).json()["qr"]


def stay_body(hotel_id, room_type, check_in, nights, guests):
    return {"kind": "hotel_stay", "hotel_id": hotel_id, "room_type": room_type,
            "check_in": check_in.isoformat(),
            "check_out": (check_in + datetime.timedelta(days=nights)).isoformat(),
            "guests": guests}


def ticket_body(venue_id, day, visitors, slot=None):
    body = {"kind": "venue_ticket", "venue_id": venue_id, "date": day.isoformat(),
            "visitors": visitors}
    if slot:
        body["slot"] = slot
    return body
