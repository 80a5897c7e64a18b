"""Entry's own tables (PostgreSQL schema "entry"): the durable record of every
scan, and the rule that a single-entry ticket admits each person once even
when Redis has forgotten everything."""
from sqlalchemy import (BigInteger, Boolean, Column, Date, DateTime, Index, Integer, MetaData,
                        SmallInteger, String, Table, UniqueConstraint, func)

from shared.events import processed_events_table
from shared.outbox import outbox_table

metadata = MetaData()

# Every admission, exit and refusal. (gate_id, nonce) makes a retried scan
# one row; the deltas let occupancy be rebuilt by summing.
scans = Table(
    "scans", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("gate_id", String(64), nullable=False),
    Column("nonce", String(64), nullable=False),
    Column("venue_id", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("direction", String(3), nullable=False),
    Column("medium", String(10), nullable=False),
    Column("credential_id", String(64)),
    Column("booking_id", String(64)),
    Column("decision", String(5), nullable=False),
    Column("reason", String(20), nullable=False),
    Column("person_no", Integer),
    Column("delta_inside", SmallInteger, nullable=False, default=0),
    Column("delta_admitted", SmallInteger, nullable=False, default=0),
    Column("annulled", Boolean, nullable=False, default=False),
    Column("scanned_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("gate_id", "nonce", name="scans_gate_nonce"),
    Index("scans_credential", "credential_id"),
    Index("scans_venue_day", "venue_id", "day"),
)

# One row per person admitted on a single-entry ticket: the primary key is
# what makes a second admission impossible whatever Redis says.
admissions = Table(
    "admissions", metadata,
    Column("credential_id", String(64), primary_key=True),
    Column("person_no", Integer, primary_key=True),
    Column("day", Date, nullable=False),
    Column("scan_id", BigInteger, nullable=False),
)

# Credentials entry refuses whatever the cached record says: cancelled
# bookings (from booking.cancelled) and operator blocks.
revocations = Table(
    "revocations", metadata,
    Column("credential_id", String(64), primary_key=True),
    Column("reason", String(20), nullable=False),
    Column("booking_id", String(64)),
    Column("venue_id", String(64)),   # the credential's venue and day: a venue-day
    Column("day", Date),              # with revocations is not "fresh" (scan.lua)
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("revocations_venue_day", "venue_id", "day"),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
