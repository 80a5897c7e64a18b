"""Request and response bodies of the check-in API (marshmallow 4)."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared import idnumber

from services.checkin.rules import CONDITIONS


class FaceSchema(Schema):
    consent = fields.Boolean(required=True)
    score = fields.Float(required=True, validate=validate.Range(min=0, max=1))

    @validates_schema
    def needs_consent(self, data, **kwargs):
        # face data is used only with the guest's consent: anything else is a bad request
        if data.get("consent") is not True:
            raise ValidationError("face comparison is used only with consent: true", "consent")


class CheckinRequest(Schema):
    medium = fields.String(required=True, validate=validate.OneOf(["id_card", "qr", "code"]))
    value = fields.String(required=True, validate=validate.Length(min=1, max=512))
    face = fields.Nested(FaceSchema, allow_none=True, load_default=None)
    # an ID card read alongside a QR or booking code (checked against the guests)
    id_number = fields.String(validate=validate.Length(min=1, max=32), load_default=None)
    started_at = fields.AwareDateTime(load_default=None)
    payment_mode = fields.String(load_default="deposit",
                                 validate=validate.OneOf(["deposit", "credit"]))

    @validates_schema
    def id_numbers_valid(self, data, **kwargs):
        # messages never echo the number
        if data.get("medium") == "id_card" and id_kind(data.get("value")) is None:
            raise ValidationError("not a valid resident ID or passport number", "value")
        if data.get("id_number") is not None and id_kind(data["id_number"]) is None:
            raise ValidationError("not a valid resident ID or passport number", "id_number")


def id_kind(number):
    """"resident", "passport" or None for a number read from a card."""
    number = idnumber.normalise(number)
    if idnumber.problem(number) is None:
        return "resident"
    if idnumber.PASSPORT.match(number) and not number.isdigit():
        return "passport"
    return None


class GuestSchema(Schema):
    name_masked = fields.String()


class CheckinResponse(Schema):
    stay_id = fields.String()
    booking_id = fields.String()
    room = fields.String()
    key = fields.String()
    valid_until = fields.String()
    guest = fields.Nested(GuestSchema)
    payment_mode = fields.String()


class CheckoutRequest(Schema):
    payment_mode = fields.String(validate=validate.OneOf(["deposit", "credit"]), load_default=None)


class CheckoutResponse(Schema):
    stay_id = fields.String()
    status = fields.String()
    room = fields.String()
    payment_mode = fields.String()
    settlement = fields.String()
    checked_out_at = fields.String()


class UnlockRequest(Schema):
    key = fields.String(required=True, validate=validate.Length(min=1, max=200))


class UnlockResponse(Schema):
    decision = fields.String(validate=validate.OneOf(["open", "deny"]))
    reason = fields.String(validate=validate.OneOf(
        ["ok", "unknown_key", "revoked", "wrong_room", "expired"]))
    explanation = fields.String()


class ConditionRequest(Schema):
    condition = fields.String(required=True, validate=validate.OneOf(CONDITIONS))


class RoomSchema(Schema):
    room = fields.String()
    room_type = fields.String()
    floor = fields.Integer()
    condition = fields.String()
    occupied = fields.Boolean()
    stay_id = fields.String(allow_none=True)


class RoomList(Schema):
    hotel_id = fields.String()
    rooms = fields.List(fields.Nested(RoomSchema))


class StatsResponse(Schema):
    count = fields.Integer()
    p50_ms = fields.Float(allow_none=True)
    p95_ms = fields.Float(allow_none=True)
    share_under_30s = fields.Float(allow_none=True)


class HotelRooms(Schema):
    """hotel.created payload's room_types and booking's get_hotel_rooms answer."""
    room_type = fields.String(required=True, validate=validate.Length(min=1, max=64))
    rooms = fields.List(fields.String(validate=validate.Length(min=1, max=16)), required=True)
