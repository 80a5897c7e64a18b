"""Tables of the checkin schema: rooms, stays, keys, police registrations."""
from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Float, Identity, Index,
                        Integer, MetaData, String, Table, Text, func, text)
from sqlalchemy.dialects.postgresql import JSONB

from shared.events import processed_events_table
from shared.outbox import outbox_table

metadata = MetaData()

rooms = Table(
    "rooms", metadata,
    Column("hotel_id", String(64), primary_key=True),
    Column("number", String(16), primary_key=True),
    Column("room_type", String(64), nullable=False),
    Column("floor", Integer, nullable=False),
    Column("condition", String(16), nullable=False),
    Column("stay_id", String(32)),      # the stay in the room; NULL = vacant
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    # the assignment query: ready vacant rooms of a type, in rule order
    Index("rooms_ready", "hotel_id", "room_type", "floor", "number",
          postgresql_where=text("stay_id IS NULL AND condition IN ('inspected', 'clean')")),
)

IN_HOUSE, CHECKED_OUT, CANCELLED = "in_house", "checked_out", "cancelled"

stays = Table(
    "stays", metadata,
    Column("stay_id", String(32), primary_key=True),
    Column("booking_id", String(64), nullable=False),
    Column("credential_id", String(64), nullable=False),
    Column("hotel_id", String(64), nullable=False),
    Column("room", String(16), nullable=False),
    Column("room_type", String(64)),
    Column("status", String(16), nullable=False),
    Column("payment_mode", String(16), nullable=False),   # deposit | credit (信用住)
    Column("guest_name_masked", String(64), nullable=False),
    Column("medium", String(16), nullable=False),
    Column("face_used", Boolean, nullable=False),
    Column("device_id", String(64)),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("checked_in_at", DateTime(timezone=True), nullable=False),
    Column("duration_ms", Float),
    Column("valid_until", DateTime(timezone=True), nullable=False),
    Column("checked_out_at", DateTime(timezone=True)),
    # one stay per booking, whatever desks race: the second insert fails
    Index("stays_one_per_booking", "booking_id", unique=True),
    Index("stays_hotel_checked_in", "hotel_id", "checked_in_at"),
)

room_keys = Table(
    "room_keys", metadata,
    Column("key_hash", String(64), primary_key=True),  # sha256 of the key; the key is never stored
    Column("stay_id", String(32), nullable=False, index=True),
    Column("hotel_id", String(64), nullable=False),
    Column("room", String(16), nullable=False),
    Column("valid_until", DateTime(timezone=True), nullable=False),
    Column("issued_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

# one row per booking that reached this service: a check-in upserts it
# (cancelled stays false), booking.cancelled sets cancelled. The upsert on the
# same row orders a check-in and a cancellation of one booking: whichever
# commits second sees the other (no stay slips past a cancellation).
booking_marks = Table(
    "booking_marks", metadata,
    Column("booking_id", String(64), primary_key=True),
    Column("cancelled", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

PENDING, DELIVERED = "pending", "delivered"

# the durable outbox of police registrations, one row per guest
registrations = Table(
    "registrations", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("stay_id", String(32), nullable=False, index=True),
    Column("hotel_id", String(64), nullable=False),
    Column("room", String(16), nullable=False),
    Column("guest_no", Integer, nullable=False),
    Column("name_masked", String(64), nullable=False),
    Column("id_hash", String(64), nullable=False),
    Column("id_masked", String(32)),          # only for the card read at the desk
    Column("id_checked", Boolean, nullable=False),
    Column("foreign_guest", Boolean, nullable=False),
    Column("checked_in_at", DateTime(timezone=True), nullable=False),
    Column("departure_due", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False, server_default=PENDING),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("last_error", Text),
    Column("delivered_at", DateTime(timezone=True)),
    Index("registrations_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
)

# what LocalPoliceLink "sent": stands in for the police hotel system
police_deliveries = Table(
    "police_deliveries", metadata,
    Column("registration_id", BigInteger, primary_key=True),
    Column("payload", JSONB, nullable=False),
    Column("received_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
