"""Request and response bodies of the gate API (marshmallow 4)."""
from marshmallow import Schema, fields, validate

from services.entry.rules import REASONS

MEDIA = ("qr", "id_card", "code", "face")


class ScanSchema(Schema):
    medium = fields.String(required=True, validate=validate.OneOf(MEDIA))
    # The QR text, ID number, booking code, or (face) the ID number the
    # device's on-device matcher resolved, sent only with the visitor's consent.
    value = fields.String(required=True, validate=validate.Length(min=1, max=512))
    nonce = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9_.:-]{1,64}$", error="1 to 64 letters, digits or _.:-"))
    scanned_at = fields.AwareDateTime(load_default=None, metadata={
        "description": "when the gate read the code (buffered scans); at most 24 h old"})


class VisitorSchema(Schema):
    name_masked = fields.String()


class ScanResultSchema(Schema):
    decision = fields.String(validate=validate.OneOf(["admit", "deny"]))
    reason = fields.String(validate=validate.OneOf(REASONS))
    explanation = fields.String()
    direction = fields.String(validate=validate.OneOf(["in", "out"]))
    booking_id = fields.String()
    visitor = fields.Nested(VisitorSchema)
    party_size = fields.Integer()
    person_no = fields.Integer(metadata={"description": "which person of the party this was"})


class AnnulResultSchema(Schema):
    nonce = fields.String()
    annulled = fields.Boolean()
    booking_id = fields.String(allow_none=True)


class OccupancySchema(Schema):
    venue_id = fields.String()
    day = fields.Date()
    inside = fields.Integer()
    admitted_today = fields.Integer()
    instantaneous_capacity = fields.Integer()
    daily_capacity = fields.Integer()
    level = fields.Integer(metadata={"description": "0, 50, 75 or 90: percent band of "
                                                    "instantaneous capacity reached"})


class BlockResultSchema(Schema):
    credential_id = fields.String()
    blocked = fields.Boolean()
