"""Marshmallow schemas of booking's HTTP API (they also generate OpenAPI).

Unknown fields are refused (marshmallow's default RAISE), so a caller cannot
slip in `status` or `price`. ID numbers are checked here; their error messages
never echo the number.
"""
import re

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared import idnumber
from shared.clock import city_today
from shared.errors import ApiError
from shared.http import validate as load_with

NAME = validate.Length(min=1, max=50)
TIME = validate.Regexp(r"^([01][0-9]|2[0-3]):[0-5][0-9]$", error="must be HH:MM")
SHORT_NAME = validate.Regexp(r"^[A-Za-z0-9_\-]{1,20}$",
                             error="letters, digits, - or _, at most 20")
ROOM = validate.Regexp(r"^[A-Za-z0-9\-]{1,20}$", error="letters, digits or -, at most 20")
HEX_ID = validate.Regexp(r"^[0-9a-f]{32}$", error="not a valid id")


def _id_number(value):
    problem = idnumber.problem(value, today=city_today())
    if problem:
        raise ValidationError("not a valid ID number: " + problem)


def _text(value):
    if not value.strip():
        raise ValidationError("must not be blank")


# -- tourists ---------------------------------------------------------------

class TouristRequest(Schema):
    phone = fields.String(required=True, validate=validate.Regexp(
        r"^\+?[0-9]{6,15}$", error="must be 6 to 15 digits, optionally with a leading +"))
    name = fields.String(required=True, validate=[NAME, _text])


class TouristCreated(Schema):
    tourist_id = fields.String()
    token = fields.String()


# -- search and availability ------------------------------------------------

class HotelSearchQuery(Schema):
    check_in = fields.Date(required=True)
    check_out = fields.Date(required=True)
    guests = fields.Integer(required=True, strict=False, validate=validate.Range(1, 10))
    district = fields.String(validate=validate.Length(1, 50))
    max_price = fields.Decimal(places=2, validate=validate.Range(0, 1_000_000))
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 100_000))


class RoomTypeOffer(Schema):
    room_type = fields.String()
    available = fields.Integer()
    price = fields.Float()
    max_guests = fields.Integer()


class HotelOffer(Schema):
    hotel_id = fields.String()
    name = fields.String()
    district = fields.String()
    room_types = fields.List(fields.Nested(RoomTypeOffer))


class HotelSearchResult(Schema):
    results = fields.List(fields.Nested(HotelOffer))
    next_offset = fields.Integer(allow_none=True, metadata={
        "description": "pass as `offset` for the next page; null on the last page"})


class AvailabilityQuery(Schema):
    date = fields.Date(required=True)


class SlotAvailability(Schema):
    slot = fields.String()
    start = fields.String()
    end = fields.String()
    remaining = fields.Integer()


class VenueAvailability(Schema):
    venue_id = fields.String()
    date = fields.String()
    slots = fields.List(fields.Nested(SlotAvailability))


# -- bookings ---------------------------------------------------------------

class Person(Schema):
    name = fields.String(required=True, validate=[NAME, _text])
    id_number = fields.String(required=True, validate=_id_number)


class HotelStayRequest(Schema):
    kind = fields.String(required=True, validate=validate.Equal("hotel_stay"))
    hotel_id = fields.String(required=True, validate=validate.Length(1, 64))
    room_type = fields.String(required=True, validate=validate.Length(1, 50))
    check_in = fields.Date(required=True)
    check_out = fields.Date(required=True)
    guests = fields.List(fields.Nested(Person), required=True, validate=validate.Length(1, 10))


class VenueTicketRequest(Schema):
    kind = fields.String(required=True, validate=validate.Equal("venue_ticket"))
    venue_id = fields.String(required=True, validate=validate.Length(1, 64))
    date = fields.Date(required=True)
    slot = fields.String(load_default=None, validate=validate.Length(1, 20))
    visitors = fields.List(fields.Nested(Person), required=True, validate=validate.Length(1, 10))


class BookingRequest(Schema):
    """For OpenAPI: the union of the two kinds (`kind` picks which fields apply)."""
    kind = fields.String(required=True, validate=validate.OneOf(["hotel_stay", "venue_ticket"]))
    hotel_id = fields.String()
    room_type = fields.String()
    check_in = fields.Date()
    check_out = fields.Date()
    guests = fields.List(fields.Nested(Person))
    venue_id = fields.String()
    date = fields.Date()
    slot = fields.String()
    visitors = fields.List(fields.Nested(Person))


# one instance per kind, built once: a Schema's construction (fields, nested
# schemas) cost more than the load; load keeps no state between calls
KIND_SCHEMAS = {"hotel_stay": HotelStayRequest(), "venue_ticket": VenueTicketRequest()}


def load_booking_request(data):
    """Validate a booking body by its kind (400 with field messages)."""
    if not isinstance(data, dict):
        raise ApiError("validation_error", "the body must be a JSON object",
                       fields={"_schema": ["must be a JSON object"]})
    schema = KIND_SCHEMAS.get(data.get("kind"))
    if schema is None:
        raise ApiError("validation_error", "the request is invalid",
                       fields={"kind": ["must be one of: hotel_stay, venue_ticket"]})
    return load_with(schema, data)


IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{8,100}$")


def idempotency_key(request):
    key = request.headers.get("Idempotency-Key", "")
    if not IDEMPOTENCY_KEY.match(key):
        raise ApiError("validation_error", "an Idempotency-Key header is required",
                       fields={"Idempotency-Key": ["8 to 100 printable ASCII characters"]})
    return key


class PersonOut(Schema):
    name_masked = fields.String()
    id_masked = fields.String()


class BookingOut(Schema):
    booking_id = fields.String()
    kind = fields.String()
    status = fields.String(validate=validate.OneOf(
        ["confirmed", "cancelled", "in_house", "departed", "used"]))
    code = fields.String()
    credential_id = fields.String()
    created_at = fields.String()
    party_size = fields.Integer()
    hotel_id = fields.String(allow_none=True)
    hotel_name = fields.String(allow_none=True)
    room_type = fields.String(allow_none=True)
    check_in = fields.String(allow_none=True)
    check_out = fields.String(allow_none=True)
    price_total = fields.Float(allow_none=True)
    venue_id = fields.String(allow_none=True)
    venue_name = fields.String(allow_none=True)
    date = fields.String(allow_none=True)
    slot = fields.String(allow_none=True)
    slot_start = fields.String(allow_none=True)
    slot_end = fields.String(allow_none=True)
    guests = fields.List(fields.Nested(PersonOut))
    visitors = fields.List(fields.Nested(PersonOut))


class BookingList(Schema):
    bookings = fields.List(fields.Nested(BookingOut))


class ListQuery(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 100_000))


class Cancelled(Schema):
    booking_id = fields.String()
    status = fields.String()


class QrOut(Schema):
    qr = fields.String()
    expires_at = fields.String(metadata={"description": "ISO 8601 with offset"})


# -- admin ------------------------------------------------------------------

class RoomTypeSpec(Schema):
    room_type = fields.String(required=True, validate=[validate.Length(1, 50), _text])
    price = fields.Decimal(required=True, places=2, validate=validate.Range(0, 1_000_000))
    max_guests = fields.Integer(load_default=2, validate=validate.Range(1, 10))
    rooms = fields.List(fields.String(validate=ROOM), required=True,
                        validate=validate.Length(1, 2000))


class HotelSpec(Schema):
    name = fields.String(required=True, validate=[validate.Length(1, 100), _text])
    district = fields.String(required=True, validate=[validate.Length(1, 50), _text])
    room_types = fields.List(fields.Nested(RoomTypeSpec), required=True,
                             validate=validate.Length(1, 50))

    @validates_schema
    def unique_names(self, data, **kwargs):
        names = [rt["room_type"] for rt in data.get("room_types", ())]
        if len(set(names)) != len(names):
            raise ValidationError("room types must have distinct names", "room_types")
        numbers = [r for rt in data.get("room_types", ()) for r in rt["rooms"]]
        if len(set(numbers)) != len(numbers):
            raise ValidationError("a room number appears twice", "room_types")


class SlotSpec(Schema):
    slot = fields.String(required=True, validate=SHORT_NAME)
    start = fields.String(required=True, validate=TIME)
    end = fields.String(required=True, validate=TIME)
    quota = fields.Integer(required=True, strict=True, validate=validate.Range(0, 1_000_000))

    @validates_schema
    def ordered(self, data, **kwargs):
        if data.get("start") and data.get("end") and data["start"] >= data["end"]:
            raise ValidationError("must be after start", "end")


class VenueSpec(Schema):
    name = fields.String(required=True, validate=[validate.Length(1, 100), _text])
    kind = fields.String(required=True, validate=validate.OneOf(["park", "museum", "library"]))
    daily_capacity = fields.Integer(required=True, strict=True,
                                    validate=validate.Range(0, 10_000_000))
    instantaneous_capacity = fields.Integer(required=True, strict=True,
                                            validate=validate.Range(0, 10_000_000))
    slots = fields.List(fields.Nested(SlotSpec), load_default=None,
                        validate=validate.Length(1, 48))
    entry_policy = fields.String(required=True, validate=validate.OneOf(["single", "multi"]))
    one_per_id = fields.Boolean(load_default=True, metadata={
        "description": "one ticket per ID number per day (default true)"})

    @validates_schema
    def distinct_slots(self, data, **kwargs):
        names = [s["slot"] for s in data.get("slots") or ()]
        if len(set(names)) != len(names):
            raise ValidationError("slots must have distinct names", "slots")


class DeviceSpec(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(["gate", "desk", "kiosk", "lock"]))
    hotel_id = fields.String(validate=validate.Length(1, 64))
    venue_id = fields.String(validate=validate.Length(1, 64))
    direction = fields.String(load_default="in", validate=validate.OneOf(["in", "out"]))
    name = fields.String(validate=validate.Length(1, 100))

    @validates_schema
    def one_target(self, data, **kwargs):
        if data["kind"] == "gate":
            if not data.get("venue_id") or data.get("hotel_id"):
                raise ValidationError("a gate belongs to a venue: give venue_id only", "venue_id")
        elif not data.get("hotel_id") or data.get("venue_id"):
            raise ValidationError("a %s belongs to a hotel: give hotel_id only" % data["kind"],
                                  "hotel_id")


class Created(Schema):
    hotel_id = fields.String()


class VenueCreated(Schema):
    venue_id = fields.String()


class DeviceCreated(Schema):
    device_id = fields.String()
    key = fields.String(metadata={"description": "shown once; only its SHA-256 is stored"})


class DeviceOut(Schema):
    device_id = fields.String()
    kind = fields.String()
    hotel_id = fields.String(allow_none=True)
    venue_id = fields.String(allow_none=True)
    direction = fields.String(allow_none=True)
    active = fields.Boolean()


class HotelOut(Schema):
    hotel_id = fields.String()
    name = fields.String()
    district = fields.String()
    room_types = fields.List(fields.Dict())


class VenueOut(Schema):
    venue_id = fields.String()
    name = fields.String()
    kind = fields.String()
    daily_capacity = fields.Integer()
    instantaneous_capacity = fields.Integer()
    entry_policy = fields.String()
    one_per_id = fields.Boolean()
    slots = fields.List(fields.Nested(SlotSpec))
