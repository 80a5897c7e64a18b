"""Booking's tables (PostgreSQL schema "booking").

Inventory rows (room_nights, slot_days, venue_days) are created on demand the
first time a night or day is sold; a missing row means "nothing sold yet".
Their CHECK constraints are the last line against oversell: even a buggy
UPDATE cannot push `sold` past `capacity`.
"""
from sqlalchemy import (Boolean, CheckConstraint, Column, Date, DateTime, ForeignKey,
                        ForeignKeyConstraint, Index, Integer, MetaData, Numeric, String,
                        Table, UniqueConstraint, func, text)

from shared.events import processed_events_table
from shared.outbox import outbox_table

SCHEMA = "booking"
metadata = MetaData()

STATUSES = ("confirmed", "cancelled", "in_house", "departed", "used")

tourists = Table(
    "tourists", metadata,
    Column("tourist_id", String(32), primary_key=True),
    Column("phone", String(20), nullable=False),
    Column("name", String(50), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 of the token
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

hotels = Table(
    "hotels", metadata,
    Column("hotel_id", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("district", String(50), nullable=False),
    Column("room_type_count", Integer, nullable=False),  # bounds the search's walk
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Index("hotels_district", "district"),
    Index("hotels_room_type_count", "room_type_count"),
)

room_types = Table(
    "room_types", metadata,
    Column("hotel_id", String(32), ForeignKey("hotels.hotel_id"), primary_key=True),
    Column("room_type", String(50), primary_key=True),
    Column("price", Numeric(10, 2), nullable=False),
    Column("max_guests", Integer, nullable=False, server_default="2"),
    Column("total", Integer, nullable=False),  # number of rooms of this type
    # copies of the hotel's name and district (hotels never change them): the
    # search walks this one index in price order and stops after one page
    Column("hotel_name", String(100), nullable=False),
    Column("district", String(50), nullable=False),
    CheckConstraint("price >= 0 AND max_guests >= 1 AND total >= 0", name="room_types_sane"),
    Index("room_types_by_price", "price", "hotel_name", "hotel_id",
          postgresql_include=["max_guests", "total", "district", "room_type"]),
)

rooms = Table(
    "rooms", metadata,
    Column("hotel_id", String(32), primary_key=True),
    Column("room", String(20), primary_key=True),
    Column("room_type", String(50), nullable=False),
    ForeignKeyConstraint(["hotel_id", "room_type"], ["room_types.hotel_id", "room_types.room_type"]),
)

room_nights = Table(
    "room_nights", metadata,
    Column("hotel_id", String(32), primary_key=True),
    Column("room_type", String(50), primary_key=True),
    Column("night", Date, primary_key=True),
    Column("capacity", Integer, nullable=False),
    Column("sold", Integer, nullable=False, server_default="0"),
    CheckConstraint("sold >= 0 AND sold <= capacity", name="room_nights_no_oversell"),
    # search excludes room types with a full night: index only the full ones,
    # for probing one room type and for collecting a stay's full nights
    Index("room_nights_full", "hotel_id", "room_type", "night",
          postgresql_where=text("sold >= capacity")),
    Index("room_nights_full_by_night", "night", postgresql_where=text("sold >= capacity")),
)

venues = Table(
    "venues", metadata,
    Column("venue_id", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("daily_capacity", Integer, nullable=False),
    Column("instantaneous_capacity", Integer, nullable=False),
    Column("entry_policy", String(10), nullable=False),
    Column("one_per_id", Boolean, nullable=False, server_default="true"),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    CheckConstraint("daily_capacity >= 0 AND instantaneous_capacity >= 0", name="venues_sane"),
)

venue_slots = Table(
    "venue_slots", metadata,
    Column("venue_id", String(32), ForeignKey("venues.venue_id"), primary_key=True),
    Column("slot", String(20), primary_key=True),
    Column("start", String(5), nullable=False),   # HH:MM local, repeats daily
    Column("end", String(5), nullable=False),
    Column("quota", Integer, nullable=False),
    CheckConstraint("quota >= 0", name="venue_slots_sane"),
)

venue_days = Table(  # the daily cap across all slots
    "venue_days", metadata,
    Column("venue_id", String(32), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("capacity", Integer, nullable=False),
    Column("sold", Integer, nullable=False, server_default="0"),
    CheckConstraint("sold >= 0 AND sold <= capacity", name="venue_days_no_oversell"),
)

slot_days = Table(
    "slot_days", metadata,
    Column("venue_id", String(32), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("slot", String(20), primary_key=True),
    Column("capacity", Integer, nullable=False),
    Column("sold", Integer, nullable=False, server_default="0"),
    CheckConstraint("sold >= 0 AND sold <= capacity", name="slot_days_no_oversell"),
)

# One ticket per ID number per venue per day: the primary key is the limit.
ticket_holders = Table(
    "ticket_holders", metadata,
    Column("venue_id", String(32), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("id_hash", String(64), primary_key=True),
    Column("booking_id", String(32), nullable=False, index=True),
)

bookings = Table(
    "bookings", metadata,
    Column("booking_id", String(32), primary_key=True),
    Column("tourist_id", String(32), ForeignKey("tourists.tourist_id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("idempotency_key", String(100), nullable=False),
    Column("request_hash", String(64), nullable=False),   # HMAC of the validated body
    Column("credential_id", String(36), nullable=False, unique=True),
    Column("code", String(12), nullable=False, unique=True),
    Column("hotel_id", String(32)),
    Column("room_type", String(50)),
    Column("check_in", Date),
    Column("check_out", Date),
    Column("venue_id", String(32)),
    Column("day", Date),
    Column("slot", String(20)),
    Column("party_size", Integer, nullable=False),
    Column("price_total", Numeric(12, 2)),
    Column("entries", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    UniqueConstraint("tourist_id", "idempotency_key", name="bookings_idempotency"),
    CheckConstraint("status IN ('confirmed', 'cancelled', 'in_house', 'departed', 'used')",
                    name="bookings_status"),
    CheckConstraint("kind IN ('hotel_stay', 'venue_ticket')", name="bookings_kind"),
    Index("bookings_by_tourist", "tourist_id", "created_at"),
    Index("bookings_by_hotel_day", "hotel_id", "check_in"),
    Index("bookings_by_venue_day", "venue_id", "day"),
)

# Guests and visitors: the real name stays here (police registration needs it)
# but is never returned; the ID number exists only as keyed hash and mask.
booking_people = Table(
    "booking_people", metadata,
    Column("booking_id", String(32), ForeignKey("bookings.booking_id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", String(50), nullable=False),
    Column("name_masked", String(50), nullable=False),
    Column("id_hash", String(64), nullable=False),
    Column("id_masked", String(20), nullable=False),
    Index("booking_people_by_id", "id_hash"),
)

devices = Table(
    "devices", metadata,
    Column("device_id", String(32), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("name", String(100)),
    Column("hotel_id", String(32)),
    Column("venue_id", String(32)),
    Column("direction", String(3)),
    Column("key_hash", String(64), nullable=False, unique=True),   # sha256 of the key
    Column("active", Boolean, nullable=False, server_default="true"),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
