"""Locust users that act like Duoyou's real callers over the public HTTP API.

Run through `python -m loadtest.run` (it prepares the data, starts the stack
if needed and judges the result); this file runs in the Locust venv and only
speaks HTTP. Test data comes from the file named by LOAD_DATA, written by the
runner from the admin API: hotels with desk keys, venues with gate keys, and a
pool of tickets and stays already booked for today. Tourists add to that pool
as they book, so desks and gates serve what tourists bought.

Business refusals (sold_out, already_used, a bad code denied, no room ready)
are correct answers, not failures: they are counted under their own names.
A failure is a 5xx, a timeout, or an answer the contract does not allow.
"""
import collections
import datetime
import json
import os
import random
import sys
import uuid
import zoneinfo

from locust import HttpUser, LoadTestShape, between, events, task

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from loadtest.people import People  # noqa: E402
from loadtest.scenarios import SCENARIOS  # noqa: E402

SCENARIO = SCENARIOS[os.environ.get("LOAD_SCENARIO", "weekday")]
DURATION = float(os.environ.get("LOAD_DURATION", "60"))
USERS = int(os.environ.get("LOAD_USERS", "0")) or SCENARIO.users
with open(os.environ["LOAD_DATA"]) as f:
    DATA = json.load(f)

URLS = DATA["urls"]
TODAY = datetime.datetime.now(zoneinfo.ZoneInfo(DATA.get("tz", "Asia/Shanghai"))).date()
HOTELS = DATA["hotels"]
VENUES = DATA["venues"]
# Work waiting for a desk or a gate, shared by all users of this process.
ARRIVALS = {h["hotel_id"]: collections.deque(s for s in DATA["stays"] if s["hotel_id"] == h["hotel_id"])
            for h in HOTELS}
IN_HOUSE = {h["hotel_id"]: collections.deque() for h in HOTELS}
VISITORS = {v["venue_id"]: collections.deque(t for t in DATA["tickets"] if t["venue_id"] == v["venue_id"])
            for v in VENUES}
INSIDE = {v["venue_id"]: collections.deque() for v in VENUES}
_streams = iter(range(DATA.get("stream_base", 100), 10 ** 6))


def _outcome(response, ok_statuses, expected_errors=()):
    """Mark a response success when the contract allows it; return the JSON."""
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    if response.status_code in ok_statuses:
        response.success()
    elif response.status_code < 500 and payload.get("error") in expected_errors:
        response.success()
    else:
        response.failure("%s %s" % (response.status_code, payload.get("error", response.text[:80])))
    return payload


class TouristUser(HttpUser):
    """Searches rooms, books a stay and a ticket with real-looking people,
    fetches the QR, sometimes cancels."""
    weight = SCENARIO.weights["tourist"]
    wait_time = between(1, 3)

    def on_start(self):
        self.people = People(stream=next(_streams))
        self.bookings = []
        with self.client.post(URLS["booking"] + "/v1/tourists", name="tourist: register",
                              json={"phone": self.people.phone(), "name": self.people.name()},
                              catch_response=True) as r:
            self.token = _outcome(r, (201,)).get("token")

    def auth(self, **headers):
        headers["Authorization"] = "Bearer %s" % self.token
        return headers

    @task(5)
    def search(self):
        start = TODAY + datetime.timedelta(days=random.randint(0, 10))
        params = {"check_in": start.isoformat(),
                  "check_out": (start + datetime.timedelta(days=random.randint(1, 3))).isoformat(),
                  "guests": random.choice((1, 2))}
        if random.random() < 0.3:
            params["district"] = random.choice(HOTELS)["district"]
        with self.client.get(URLS["booking"] + "/v1/hotels/search", params=params,
                             name="search rooms", catch_response=True) as r:
            _outcome(r, (200,))

    def book(self, body, name):
        if not self.token:
            return None
        headers = self.auth(**{"Idempotency-Key": uuid.uuid4().hex})
        with self.client.post(URLS["booking"] + "/v1/bookings", json=body, headers=headers,
                              name=name, catch_response=True) as r:
            payload = _outcome(r, (200, 201), ("sold_out", "limit_exceeded"))
        return payload if r.status_code in (200, 201) else None

    @task(2)
    def book_stay(self):
        hotel = random.choice(HOTELS)
        guest = self.people.person()
        # Most stays start today so the desks have guests to check in.
        start = TODAY if random.random() < 0.8 else TODAY + datetime.timedelta(days=random.randint(1, 7))
        booking = self.book({"kind": "hotel_stay", "hotel_id": hotel["hotel_id"],
                             "room_type": random.choice(hotel["room_types"]),
                             "check_in": start.isoformat(),
                             "check_out": (start + datetime.timedelta(days=1)).isoformat(),
                             "guests": [guest]}, "book stay")
        if booking:
            self.bookings.append(booking["booking_id"])
            if start == TODAY:
                ARRIVALS[hotel["hotel_id"]].append({"hotel_id": hotel["hotel_id"],
                                                    "booking_id": booking["booking_id"],
                                                    "id_number": guest["id_number"]})

    @task(3)
    def book_ticket(self):
        venue = random.choice(VENUES)
        visitor = self.people.person()
        booking = self.book({"kind": "venue_ticket", "venue_id": venue["venue_id"],
                             "date": TODAY.isoformat(), "visitors": [visitor]}, "book ticket")
        if booking:
            self.bookings.append(booking["booking_id"])
            VISITORS[venue["venue_id"]].append({"venue_id": venue["venue_id"],
                                                "booking_id": booking["booking_id"],
                                                "token": self.token,
                                                "id_number": visitor["id_number"]})

    @task(2)
    def show_qr(self):
        if self.bookings:
            booking_id = random.choice(self.bookings)
            with self.client.get(URLS["booking"] + "/v1/bookings/%s/qr" % booking_id,
                                 headers=self.auth(), name="booking: qr",
                                 catch_response=True) as r:
                _outcome(r, (200,), ("cancelled", "not_cancellable", "conflict", "not_found"))

    @task(1)
    def my_bookings(self):
        if self.token:
            with self.client.get(URLS["booking"] + "/v1/bookings", headers=self.auth(),
                                 name="booking: list mine", catch_response=True) as r:
                _outcome(r, (200,))

    @task(1)
    def cancel(self):
        if self.bookings and random.random() < 0.3:
            booking_id = self.bookings.pop(random.randrange(len(self.bookings)))
            with self.client.post(URLS["booking"] + "/v1/bookings/%s/cancel" % booking_id,
                                  headers=self.auth(), name="booking: cancel",
                                  catch_response=True) as r:
                # used tickets and checked-in stays cannot be cancelled
                _outcome(r, (200,), ("not_cancellable", "already_cancelled", "conflict"))


class DeskUser(HttpUser):
    """A front desk: checks arriving guests in by ID card, checks guests out,
    and sends housekeeping condition changes."""
    weight = SCENARIO.weights["desk"]
    wait_time = between(1, 4)

    def on_start(self):
        self.hotel = random.choice(HOTELS)
        self.key = random.choice(self.hotel["desks"])
        self.hotel_id = self.hotel["hotel_id"]

    def headers(self):
        return {"Authorization": "Device " + self.key}

    @task(4)
    def check_in(self):
        queue = ARRIVALS[self.hotel_id]
        if not queue:
            return
        guest = queue.popleft()
        with self.client.post(URLS["checkin"] + "/v1/checkins", headers=self.headers(),
                              json={"medium": "id_card", "value": guest["id_number"]},
                              name="desk: check-in", catch_response=True) as r:
            # cancelled by the tourist meanwhile, or every ready room taken
            stay = _outcome(r, (201,), ("cancelled", "no_room_ready", "already_checked_in"))
        if r.status_code == 201:
            IN_HOUSE[self.hotel_id].append(stay)

    @task(2)
    def check_out(self):
        queue = IN_HOUSE[self.hotel_id]
        if len(queue) < 3:  # guests stay a little while
            return
        stay = queue.popleft()
        with self.client.post(URLS["checkin"] + "/v1/stays/%s/checkout" % stay["stay_id"],
                              headers=self.headers(), json={}, name="desk: check-out",
                              catch_response=True) as r:
            _outcome(r, (200,))
        if r.status_code == 200:
            self.clean(stay["room"])

    def clean(self, room):
        """Housekeeping cleans the room the guest left."""
        with self.client.post(URLS["checkin"] + "/v1/hotels/%s/rooms/%s/condition" % (
                self.hotel_id, room), headers=self.headers(), json={"condition": "clean"},
                name="desk: room condition", catch_response=True) as r:
            _outcome(r, (200,), ("conflict",))

    @task(1)
    def housekeeping_round(self):
        with self.client.get(URLS["checkin"] + "/v1/hotels/%s/rooms" % self.hotel_id,
                             headers=self.headers(), name="desk: rooms",
                             catch_response=True) as r:
            payload = _outcome(r, (200,))
        rooms = [x for x in payload.get("rooms", []) if x.get("condition") == "clean"
                 and not x.get("occupied") and not x.get("stay_id")]
        if rooms:  # inspect a clean vacant room (clean -> inspected)
            room = random.choice(rooms)["room"]
            with self.client.post(URLS["checkin"] + "/v1/hotels/%s/rooms/%s/condition" % (
                    self.hotel_id, room), headers=self.headers(),
                    json={"condition": "inspected"}, name="desk: room condition",
                    catch_response=True) as r:
                _outcome(r, (200,), ("conflict",))


class GateUser(HttpUser):
    """A gate lane: visitors with a QR on their phone or an ID card, now and
    then a bad code, and exits at parks that scan out."""
    weight = SCENARIO.weights["gate"]
    wait_time = between(0.5, 2)

    def on_start(self):
        self.venue = random.choice(VENUES)
        self.venue_id = self.venue["venue_id"]
        self.gate_in = random.choice(self.venue["gates_in"])

    def scan(self, key, medium, value, name):
        body = {"medium": medium, "value": value, "nonce": uuid.uuid4().hex}
        with self.client.post(URLS["entry"] + "/v1/scans", json=body,
                              headers={"Authorization": "Device " + key}, name=name,
                              catch_response=True) as r:
            payload = _outcome(r, (200,))
        return payload.get("decision")

    def next_visitor(self):
        queue = VISITORS[self.venue_id]
        return queue.popleft() if queue else None

    @task(4)
    def visitor_with_qr(self):
        visitor = self.next_visitor()
        if visitor is None:
            return
        with self.client.get(URLS["booking"] + "/v1/bookings/%s/qr" % visitor["booking_id"],
                             headers={"Authorization": "Bearer " + visitor["token"]},
                             name="visitor: fetch qr", catch_response=True) as r:
            code = _outcome(r, (200,), ("cancelled", "conflict", "not_cancellable")).get("qr")
        if code and self.scan(self.gate_in, "qr", code, "gate: scan qr") == "admit":
            INSIDE[self.venue_id].append(visitor)

    @task(3)
    def visitor_with_id_card(self):
        visitor = self.next_visitor()
        if visitor and self.scan(self.gate_in, "id_card", visitor["id_number"],
                                 "gate: scan id card") == "admit":
            INSIDE[self.venue_id].append(visitor)

    @task(1)
    def bad_code(self):
        value = random.choice([
            "DY1." + uuid.uuid4().hex * 2,                      # forged
            uuid.uuid4().hex[:8].upper(),                       # unknown booking code
            "garbage-%d" % random.randint(0, 10 ** 6)])
        medium = "qr" if value.startswith(("DY1.", "garbage")) else "code"
        self.scan(self.gate_in, medium, value, "gate: bad code")

    @task(2)
    def leaving(self):
        if not self.venue.get("gates_out") or not INSIDE[self.venue_id]:
            return
        visitor = INSIDE[self.venue_id].popleft()
        self.scan(random.choice(self.venue["gates_out"]), "id_card", visitor["id_number"],
                  "gate: exit")


class ScenarioShape(LoadTestShape):
    """The scenario's day as (fraction of the run, fraction of USERS) points,
    linearly interpolated; stops at DURATION."""

    def tick(self):
        t = self.get_run_time()
        if t >= DURATION:
            return None
        users = max(1, round(USERS * SCENARIO.level(t / DURATION)))
        return users, max(1.0, USERS * SCENARIO.spawn_rate)


@events.quitting.add_listener
def _summary(environment, **kwargs):
    waiting = sum(len(q) for q in ARRIVALS.values()), sum(len(q) for q in VISITORS.values())
    print("LOADSTATE %s" % json.dumps({"arrivals_left": waiting[0], "visitors_left": waiting[1],
                                       "in_house": sum(len(q) for q in IN_HOUSE.values()),
                                       "inside": sum(len(q) for q in INSIDE.values())}))
