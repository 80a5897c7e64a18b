"""The entry service: gate scans, annulment, live occupancy, and reactions to
cancelled bookings. Entrypoints are thin; the scan itself is in scanning.py."""
import hmac
import logging
import re

from marshmallow import EXCLUDE, ValidationError
from nameko.dependency_providers import Config

from shared import events, platform  # module import: `nameko run` must see one service here
from shared.config import setting
from shared.credentials import CredentialReader, CredentialRecordSchema
from shared.devices import DeviceAuth
from shared.database import Database
from shared.errors import ApiError
from shared.events import handler
from shared.http import api, authorization, body
from shared.outbox import Outbox

from services.entry import models
from services.entry.dependencies import EntryRedis, EntryStore, VenueReader
from services.entry.scanning import Scanner
from services.entry.schemas import (AnnulResultSchema, BlockResultSchema, OccupancySchema,
                                    ScanResultSchema, ScanSchema)

log = logging.getLogger(__name__)
TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class EntryService(platform.PlatformEndpoints):
    name = "entry"

    config = Config()
    # gate records held 2 s in-process: a revoked gate key stops working
    # within 2 s here (docs/entry.md, cost of a scan)
    devices = DeviceAuth(local_seconds=2.0)
    credentials = CredentialReader()
    venues = VenueReader()
    counters = EntryRedis()
    store = Database("entry", models.metadata, EntryStore)
    # 25 ms coalescing: one relay cycle (and one frame for booking) carries
    # the scans of 25 ms; at 500 scans/s it halved booking's and RabbitMQ's
    # CPU per scan against 5 ms (docs/entry.md)
    outbox = Outbox("entry", models.outbox, coalesce_seconds=0.025)

    def scanner(self):
        return Scanner(self.config, self.credentials, self.venues, self.counters, self.store,
                       self.outbox)

    def require_admin(self, request):
        token = authorization(request, "Bearer")
        if not hmac.compare_digest(token.encode(), setting(self.config, "ADMIN_TOKEN").encode()):
            raise ApiError("unauthenticated", "not an operator token")

    @api("POST", "/v1/scans", summary="A gate scan: admit or deny, with a reason",
         auth="device", body=ScanSchema, responses={200: ScanResultSchema},
         errors=("forbidden", "unavailable"), tag="entry")
    def scan(self, request):
        gate = self.devices.authenticate(request, kinds=("gate",))
        return self.scanner().scan(gate, body(request))

    @api("POST", "/v1/scans/<nonce>/annul",
         summary="Undo an admission the turnstile did not complete (same gate, 15 minutes)",
         auth="device", responses={200: AnnulResultSchema},
         errors=("forbidden", "not_found", "annul_refused", "unavailable"), tag="entry")
    def annul(self, request, nonce):
        gate = self.devices.authenticate(request, kinds=("gate",))
        if not TOKEN.match(nonce):
            raise ApiError("not_found", "no scan with this nonce from this gate")
        return self.scanner().annul(gate, nonce)

    @api("GET", "/v1/venues/<venue_id>/occupancy", summary="Live occupancy of a venue",
         auth="admin", responses={200: OccupancySchema}, errors=("not_found", "unavailable"),
         tag="entry")
    def occupancy(self, request, venue_id):
        self.require_admin(request)
        if not TOKEN.match(venue_id):
            raise ApiError("not_found", "venue not found")
        return self.scanner().occupancy(venue_id)

    @api("POST", "/v1/credentials/<credential_id>/block",
         summary="Block a ticket at every gate (operator)", auth="admin",
         responses={200: BlockResultSchema}, errors=("not_found", "unavailable"), tag="entry")
    def block(self, request, credential_id):
        self.require_admin(request)
        if not TOKEN.match(credential_id):
            raise ApiError("not_found", "credential not found")
        record = self.credentials.get(credential_id)
        if record is None or record.get("target_type") != "venue":
            raise ApiError("not_found", "credential not found")
        self.store.revoke(record, "blocked")
        self.counters.revoke(credential_id, "blocked")
        return {"credential_id": credential_id, "blocked": True}

    @handler("booking", events.BOOKING_CANCELLED)
    def on_booking_cancelled(self, payload):
        event = events.load(events.BOOKING_CANCELLED, payload)
        if event["target_type"] != "venue":
            return
        record = event["credential"]
        credential_id = record.get("credential_id")
        if not credential_id:
            log.warning("booking.cancelled %s without a credential id", event["booking_id"])
            return
        self.store.revoke(dict(record, booking_id=event["booking_id"],
                               target_id=record.get("target_id") or event["target_id"]),
                          "cancelled", event_id=event["event_id"])
        # Redis writes repeat on every delivery (they are idempotent), so a
        # failure after the commit above is repaired by the redelivery.
        self.counters.revoke(credential_id, "cancelled")
        self._refresh(dict(record, status="cancelled"))

    @handler("booking", events.BOOKING_CONFIRMED)
    def on_booking_confirmed(self, payload):
        event = events.load(events.BOOKING_CONFIRMED, payload)
        if event["target_type"] == "venue":
            self._refresh(event["credential"])

    def _refresh(self, record):
        try:
            record = CredentialRecordSchema(unknown=EXCLUDE).load(record)
        except ValidationError:
            log.warning("ignoring a malformed credential record in an event")
            return
        self.credentials.refresh(record)
