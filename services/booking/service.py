"""The booking service: catalogue, search, bookings, credentials.

Entrypoints stay thin: authenticate, validate, call the store, write Redis.
"""
import datetime
import logging

from marshmallow import ValidationError
from nameko.rpc import rpc

from shared import events, platform, qr
from shared.clock import city_zone
from shared.devices import key_hash, new_key
from shared.errors import ApiError, not_found
from shared.http import api, authorization, body, query, read_json
from shared.outbox import Outbox
from services.booking import rules, schemas as sc
from services.booking.dependencies import (BookingDatabase, BookingStore, Keys,
                                           RecordsDependency, is_admin, today)
from services.booking.models import SCHEMA, metadata, outbox

log = logging.getLogger(__name__)

TOURIST, ADMIN = "tourist", "admin"
BOOKING_ERRORS = ("not_found",)


# `platform.` keeps PlatformEndpoints out of this module's names: `nameko run`
# treats every class here that has entrypoints as a service.
class BookingService(platform.PlatformEndpoints):
    name = "booking"

    store = BookingDatabase(SCHEMA, metadata, BookingStore)
    records = RecordsDependency()
    outbox = Outbox(SCHEMA, outbox)
    keys = Keys()

    # -- auth --
    def _tourist(self, request):
        return self.store.tourist(authorization(request, "Bearer"))

    def _admin(self, request):
        if not is_admin(self.keys, authorization(request, "Bearer")):
            raise ApiError("unauthenticated", "not an operator token")

    # -- tourists --
    @api("POST", "/v1/tourists", summary="Register a tourist; the token is shown once",
         body=sc.TouristRequest, responses={201: sc.TouristCreated}, tag="booking")
    def create_tourist(self, request):
        data = body(request)
        tourist_id, token = self.store.register_tourist(data["phone"], data["name"])
        return 201, {"tourist_id": tourist_id, "token": token}

    # -- search --
    @api("GET", "/v1/hotels/search", summary="Hotels with a room type free every night",
         query=sc.HotelSearchQuery, responses={200: sc.HotelSearchResult}, tag="booking")
    def search_hotels(self, request):
        q = query(request)
        decision = rules.check_stay(q["check_in"], q["check_out"], today(self.keys))
        if not decision:
            raise ApiError(decision.reason, decision.message, {decision.field: [decision.message]})
        return self.store.search(**q)

    @api("GET", "/v1/venues/<venue_id>/availability", summary="Tickets left per slot",
         query=sc.AvailabilityQuery, responses={200: sc.VenueAvailability},
         errors=("not_found",), tag="booking")
    def venue_availability(self, request, venue_id):
        day = query(request)["date"]
        return {"venue_id": venue_id, "date": day.isoformat(),
                "slots": self.store.availability(venue_id, day)}

    # -- bookings --
    @api("POST", "/v1/bookings", summary="Book a hotel stay or a venue ticket (Idempotency-Key)",
         auth=TOURIST, body=sc.BookingRequest, responses={201: sc.BookingOut, 200: sc.BookingOut},
         errors=("not_found", "sold_out", "idempotency_conflict", "limit_exceeded"),
         tag="booking")
    def create_booking(self, request):
        tourist_id = self._tourist(request)
        key = sc.idempotency_key(request)
        data = sc.load_booking_request(read_json(request))
        req_hash = rules.request_hash(self.keys.id_hash_key, data)
        status, booking, record = self.store.book(
            tourist_id, key, req_hash, data, today(self.keys), self.keys.id_hash_key,
            self.outbox)
        if record is not None:
            try:
                self.records.confirm(record)
            except Exception:  # committed: readers refill from get_credential on a miss
                log.warning("credential %s not cached after confirm", record["credential_id"])
        return status, booking

    @api("GET", "/v1/bookings", summary="The caller's bookings, newest first", auth=TOURIST,
         query=sc.ListQuery, responses={200: sc.BookingList}, tag="booking")
    def list_bookings(self, request):
        tourist_id = self._tourist(request)
        q = query(request)
        return {"bookings": self.store.bookings(tourist_id, q["limit"], q["offset"])}

    @api("GET", "/v1/bookings/<booking_id>", summary="One of the caller's bookings",
         auth=TOURIST, responses={200: sc.BookingOut}, errors=BOOKING_ERRORS, tag="booking")
    def get_booking(self, request, booking_id):
        return self.store.booking(self._tourist(request), booking_id)

    @api("POST", "/v1/bookings/<booking_id>/cancel", summary="Cancel; the credential stops at once",
         auth=TOURIST, responses={200: sc.Cancelled},
         errors=("not_found", "already_cancelled", "not_cancellable", "unavailable"),
         tag="booking")
    def cancel_booking(self, request, booking_id):
        tourist_id = self._tourist(request)
        row = self.store.booking_row(tourist_id, booking_id)
        decision = rules.can_cancel(row.status)
        if not decision:
            raise ApiError(decision.reason, decision.message)
        current = self.store.credential_of(tourist_id, booking_id)
        # Failure order: revoke in Redis BEFORE the database commits. If Redis
        # is down we answer 503 and nothing changed; if the commit then fails
        # we put back whatever the database says. So no committed cancellation
        # can leave an "active" record behind.
        try:
            self.records.revoke(current)
        except Exception:
            raise ApiError("unavailable", "could not revoke the credential; retry")
        try:
            record = self.store.cancel(tourist_id, booking_id, self.outbox)
        except Exception:
            self._restore(current["credential_id"])
            raise
        self.records.revoke(record)  # idempotent; the event tells entry and checkin too
        return {"booking_id": booking_id, "status": "cancelled"}

    def _restore(self, credential_id):
        try:
            truth = self.store.credential(credential_id)
            if truth is not None:
                self.records.put(truth)
        except Exception:  # a stale "cancelled" errs on the safe side; the TTL ends it
            log.warning("credential %s could not be restored after a failed cancel",
                        credential_id)

    @api("GET", "/v1/bookings/<booking_id>/qr", summary="A short-lived signed entry code",
         auth=TOURIST, responses={200: sc.QrOut}, errors=("not_found", "cancelled"),
         tag="booking")
    def booking_qr(self, request, booking_id):
        row = self.store.booking_row(self._tourist(request), booking_id)
        decision = rules.can_show_qr(row.status)
        if not decision:
            raise ApiError(decision.reason, decision.message)
        code, expires = qr.issue(self.keys.qr_key, row.credential_id)
        expires_at = datetime.datetime.fromtimestamp(expires, city_zone(self.keys.config))
        return {"qr": code, "expires_at": expires_at.isoformat()}

    # -- admin --
    @api("POST", "/v1/admin/hotels", summary="Add a hotel with room types and rooms",
         auth=ADMIN, body=sc.HotelSpec, responses={201: sc.Created}, tag="admin")
    def create_hotel(self, request):
        self._admin(request)
        return 201, {"hotel_id": self.store.add_hotel(body(request), self.outbox)}

    @api("GET", "/v1/admin/hotels/<hotel_id>", summary="A hotel with its room types and rooms",
         auth=ADMIN, responses={200: sc.HotelOut}, errors=("not_found",), tag="admin")
    def admin_hotel(self, request, hotel_id):
        self._admin(request)
        return self.store.hotel(hotel_id) or _missing("hotel")

    @api("POST", "/v1/admin/venues", summary="Add a park, museum or library",
         auth=ADMIN, body=sc.VenueSpec, responses={201: sc.VenueCreated}, tag="admin")
    def create_venue(self, request):
        self._admin(request)
        return 201, {"venue_id": self.store.add_venue(body(request))}

    @api("GET", "/v1/admin/venues/<venue_id>", summary="A venue with its slots",
         auth=ADMIN, responses={200: sc.VenueOut}, errors=("not_found",), tag="admin")
    def admin_venue(self, request, venue_id):
        self._admin(request)
        return self.store.venue(venue_id) or _missing("venue")

    @api("POST", "/v1/admin/devices", summary="Register a device; its key is shown once",
         auth=ADMIN, body=sc.DeviceSpec, responses={201: sc.DeviceCreated},
         errors=("not_found",), tag="admin")
    def create_device(self, request):
        self._admin(request)
        key = new_key()
        hashed = key_hash(key)
        device = self.store.add_device(body(request), hashed)
        try:
            self.records.put_device(hashed, device)
        except Exception:  # readers fall back to get_device
            log.warning("device %s not cached", device["device_id"])
        return 201, {"device_id": device["device_id"], "key": key}

    @api("POST", "/v1/admin/devices/<device_id>/revoke", summary="Revoke a device key",
         auth=ADMIN, responses={200: sc.DeviceOut}, errors=("not_found",), tag="admin")
    def revoke_device(self, request, device_id):
        self._admin(request)
        hashed = self.store.revoke_device(device_id)
        if hashed is None:
            raise not_found("device")
        self.records.forget_device(hashed)
        return self.store.device(hashed)

    # -- RPC for the readers in shared/ (read-only) --
    @rpc
    def get_credential(self, credential_id):
        return self.store.credential(credential_id)

    @rpc
    def find_credential(self, code=None, target_type=None, target_id=None, day=None,
                        id_hash=None):
        if day is not None:
            day = datetime.date.fromisoformat(str(day))
        return self.store.find_credential(code=code, target_type=target_type,
                                          target_id=target_id, day=day, id_hash=id_hash)

    @rpc
    def get_device(self, key_hash):
        return self.store.device(key_hash)

    @rpc
    def get_hotel_rooms(self, hotel_id):
        return self.store.hotel_rooms(hotel_id)

    @rpc
    def get_venue(self, venue_id):
        """{venue_id, name, kind, daily_capacity, instantaneous_capacity,
        entry_policy, one_per_id, slots} or None (entry's venue reader)."""
        return self.store.venue(venue_id)

    # -- facts from gates and desks: a frame of events in one statement per
    # fact kind, each event once (first delivery recorded in that statement,
    # ledger.apply_facts) --
    def _apply(self, event_type, frame, method, fact):
        """A malformed event is dropped with a log line, and the rest of its
        frame applied: requeueing it would loop forever."""
        bookings_by_event = {}
        for payload, request_id in zip(frame, frame.request_ids):
            try:
                data = events.load(event_type, payload)
            except (ValidationError, TypeError):
                with events.logged_as(request_id):
                    log.warning("dropped a malformed %s event", event_type)
                continue
            if data.get("booking_id"):
                bookings_by_event.setdefault(data["event_id"], data["booking_id"])
        self.store.apply_facts(fact, "booking." + method, bookings_by_event)

    @events.handler("entry", events.ENTRY_ADMITTED, batch=True)
    def on_entry_admitted(self, frame):
        self._apply(events.ENTRY_ADMITTED, frame, "on_entry_admitted", "admitted")

    @events.handler("entry", events.ENTRY_ANNULLED, batch=True)
    def on_entry_annulled(self, frame):
        self._apply(events.ENTRY_ANNULLED, frame, "on_entry_annulled", "annulled")

    @events.handler("checkin", events.CHECKIN_COMPLETED, batch=True)
    def on_checkin_completed(self, frame):
        self._apply(events.CHECKIN_COMPLETED, frame, "on_checkin_completed", "checked_in")

    @events.handler("checkin", events.CHECKIN_CHECKED_OUT, batch=True)
    def on_checked_out(self, frame):
        self._apply(events.CHECKIN_CHECKED_OUT, frame, "on_checked_out", "checked_out")


def _missing(what):
    raise not_found(what)
