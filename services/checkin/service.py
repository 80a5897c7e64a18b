"""The check-in service: hotel desks, kiosks and door locks.

Thin entrypoints only; the workflows are in desk.py, the rules in rules.py.
"""
import datetime

from nameko.dependency_providers import Config

from shared import events, platform
from shared.devices import DeviceAuth
from shared.http import api, body
from shared.outbox import Outbox
from shared.rpc import DeadlineRpc

from services.checkin import desk, models, schemas
from services.checkin.dependencies import Credentials, Keys, hotel_database
from services.checkin.police import RegistrationDelivery

CHECKIN_ERRORS = ("forbidden", "not_found", "wrong_hotel", "not_today", "cancelled",
                  "already_checked_in", "identity_mismatch", "no_room_ready", "unavailable")


# `platform.` keeps PlatformEndpoints out of this module's names: `nameko run`
# treats every class here that has entrypoints as a service.
class CheckinService(platform.PlatformEndpoints):
    name = "checkin"

    config = Config()
    hotels = hotel_database()
    keys = Keys()
    credentials = Credentials()
    devices = DeviceAuth()
    booking = DeadlineRpc("booking")
    outbox = Outbox("checkin", models.outbox)
    police = RegistrationDelivery()

    @api("POST", "/v1/checkins", summary="Check a guest in: room, key and registration",
         auth="device", body=schemas.CheckinRequest, responses={201: schemas.CheckinResponse},
         errors=CHECKIN_ERRORS, tag="checkin")
    def check_in(self, request):
        received = datetime.datetime.now(datetime.timezone.utc)
        device = self.devices.authenticate(request, kinds=("desk", "kiosk"))
        return 201, desk.check_in(self, device, body(request), received)

    @api("POST", "/v1/stays/<stay_id>/checkout", summary="Zero-second check-out",
         auth="device", body=schemas.CheckoutRequest, responses={200: schemas.CheckoutResponse},
         errors=("forbidden", "not_found", "not_in_house"), tag="checkin")
    def check_out(self, request, stay_id):
        device = self.devices.authenticate(request, kinds=("desk", "kiosk"))
        data = body(request) if request.get_data(cache=True) else {"payment_mode": None}
        return desk.check_out(self, device, stay_id, data)

    @api("POST", "/v1/locks/<room>/unlock", summary="Door lock: open for this key?",
         auth="device", body=schemas.UnlockRequest, responses={200: schemas.UnlockResponse},
         errors=("forbidden",), tag="checkin")
    def unlock(self, request, room):
        device = self.devices.authenticate(request, kinds=("lock",))
        return desk.unlock(self, device, room, body(request)["key"])

    @api("GET", "/v1/hotels/<hotel_id>/rooms", summary="Rooms, condition and occupancy",
         auth="device", responses={200: schemas.RoomList}, errors=("forbidden",), tag="rooms")
    def list_rooms(self, request, hotel_id):
        desk.desk_or_operator(self, request, hotel_id)
        return desk.list_rooms(self, hotel_id)

    @api("POST", "/v1/hotels/<hotel_id>/rooms/<room>/condition",
         summary="Housekeeping: move a room to another condition", auth="device",
         body=schemas.ConditionRequest, responses={200: schemas.RoomSchema},
         errors=("forbidden", "not_found", "conflict"), tag="rooms")
    def change_condition(self, request, hotel_id, room):
        desk.desk_or_operator(self, request, hotel_id)
        return desk.change_condition(self, hotel_id, room, body(request)["condition"])

    @api("GET", "/v1/hotels/<hotel_id>/checkin-stats", summary="Check-in durations",
         auth="admin", responses={200: schemas.StatsResponse}, tag="checkin")
    def checkin_stats(self, request, hotel_id):
        desk.operator(self, request)
        return desk.checkin_stats(self, hotel_id)

    @events.handler("booking", events.HOTEL_CREATED)
    def on_hotel_created(self, payload):
        desk.hotel_created(self, desk.load_event(events.HOTEL_CREATED, payload))

    @events.handler("booking", events.BOOKING_CANCELLED)
    def on_booking_cancelled(self, payload):
        desk.booking_cancelled(self, desk.load_event(events.BOOKING_CANCELLED, payload))
