"""Hotels, venues and devices: written by the admin API and by the seed CLI
through these same functions (bulk inserts, so a 1,000-hotel city loads in
seconds). `emit(session, event_type, payload)` is the outbox writer.
"""
import uuid

from sqlalchemy import insert, select, update

from shared import events
from services.booking import rules
from services.booking.models import devices, hotels, room_types, rooms, venue_slots, venues


def new_id():
    return uuid.uuid4().hex


def add_hotels(session, emit, specs):
    """Insert hotels (each spec as HotelSpec loads it, plus an optional
    hotel_id) with their room types and rooms; hotel.created for each.
    Returns the hotel ids in order."""
    hotel_rows, type_rows, room_rows, ids = [], [], [], []
    for spec in specs:
        hotel_id = spec.get("hotel_id") or new_id()
        ids.append(hotel_id)
        hotel_rows.append({"hotel_id": hotel_id, "name": spec["name"].strip(),
                           "district": spec["district"].strip(),
                           "room_type_count": len(spec["room_types"])})
        for rt in spec["room_types"]:
            type_rows.append({"hotel_id": hotel_id, "room_type": rt["room_type"].strip(),
                              "price": rt["price"], "max_guests": rt.get("max_guests", 2),
                              "total": len(rt["rooms"]), "hotel_name": spec["name"].strip(),
                              "district": spec["district"].strip()})
            room_rows += [{"hotel_id": hotel_id, "room": r, "room_type": rt["room_type"].strip()}
                          for r in rt["rooms"]]
    if not hotel_rows:
        return ids
    session.execute(insert(hotels), hotel_rows)
    session.execute(insert(room_types), type_rows)
    session.execute(insert(rooms), room_rows)
    for spec, hotel_id in zip(specs, ids):
        emit(session, events.HOTEL_CREATED, {
            "hotel_id": hotel_id, "name": spec["name"].strip(),
            "room_types": [{"room_type": rt["room_type"].strip(), "rooms": list(rt["rooms"])}
                           for rt in spec["room_types"]]})
    return ids


def add_venues(session, specs):
    """Insert venues; one without slots gets the whole-day slot with the
    daily capacity as its quota. Returns the venue ids in order."""
    venue_rows, slot_rows, ids = [], [], []
    for spec in specs:
        venue_id = spec.get("venue_id") or new_id()
        ids.append(venue_id)
        venue_rows.append({
            "venue_id": venue_id, "name": spec["name"].strip(), "kind": spec["kind"],
            "daily_capacity": spec["daily_capacity"],
            "instantaneous_capacity": spec["instantaneous_capacity"],
            "entry_policy": spec["entry_policy"], "one_per_id": spec.get("one_per_id", True)})
        slots = spec.get("slots") or [dict(rules.WHOLE_DAY_SLOT, quota=spec["daily_capacity"])]
        slot_rows += [{"venue_id": venue_id, "slot": s["slot"], "start": s["start"],
                       "end": s["end"], "quota": s["quota"]} for s in slots]
    if venue_rows:
        session.execute(insert(venues), venue_rows)
        session.execute(insert(venue_slots), slot_rows)
    return ids


def target_exists(session, spec):
    if spec.get("venue_id"):
        return session.execute(select(venues.c.venue_id)
                               .where(venues.c.venue_id == spec["venue_id"])).first() is not None
    return session.execute(select(hotels.c.hotel_id)
                           .where(hotels.c.hotel_id == spec["hotel_id"])).first() is not None


def add_device(session, spec, key_hash, device_id=None):
    """A device row; the caller made the key and passes only its hash."""
    device_id = device_id or new_id()
    session.execute(insert(devices).values(
        device_id=device_id, kind=spec["kind"], name=spec.get("name"),
        hotel_id=spec.get("hotel_id"), venue_id=spec.get("venue_id"),
        direction=spec.get("direction") or "in", key_hash=key_hash))
    return device_id


def device_record(row):
    """The shape readers cache (shared.devices)."""
    return {"device_id": row.device_id, "kind": row.kind, "hotel_id": row.hotel_id,
            "venue_id": row.venue_id, "direction": row.direction, "active": row.active}


def device_by_hash(session, key_hash):
    row = session.execute(select(devices).where(devices.c.key_hash == key_hash)).first()
    return device_record(row) if row else None


def revoke_device(session, device_id):
    """Mark inactive; returns the key hash (to drop from Redis) or None."""
    row = session.execute(update(devices).where(devices.c.device_id == device_id)
                          .values(active=False).returning(devices.c.key_hash)).first()
    return row.key_hash if row else None


def existing(session, table, column, wanted):
    """Which of `wanted` ids already exist (seed idempotency)."""
    if not wanted:
        return set()
    return set(session.execute(select(column).where(column.in_(list(wanted)))).scalars())


def hotel(session, hotel_id):
    row = session.execute(select(hotels).where(hotels.c.hotel_id == hotel_id)).first()
    if row is None:
        return None
    types = session.execute(select(room_types).where(room_types.c.hotel_id == hotel_id)
                            .order_by(room_types.c.price, room_types.c.room_type)).all()
    numbers = session.execute(select(rooms.c.room_type, rooms.c.room)
                              .where(rooms.c.hotel_id == hotel_id).order_by(rooms.c.room)).all()
    by_type = {}
    for r in numbers:
        by_type.setdefault(r.room_type, []).append(r.room)
    return {"hotel_id": row.hotel_id, "name": row.name, "district": row.district,
            "room_types": [{"room_type": t.room_type, "price": float(t.price),
                            "max_guests": t.max_guests, "rooms": by_type.get(t.room_type, [])}
                           for t in types]}


def venue(session, venue_id):
    row = session.execute(select(venues).where(venues.c.venue_id == venue_id)).first()
    if row is None:
        return None
    slots = session.execute(select(venue_slots).where(venue_slots.c.venue_id == venue_id)
                            .order_by(venue_slots.c.start, venue_slots.c.slot)).all()
    return {"venue_id": row.venue_id, "name": row.name, "kind": row.kind,
            "daily_capacity": row.daily_capacity,
            "instantaneous_capacity": row.instantaneous_capacity,
            "entry_policy": row.entry_policy, "one_per_id": row.one_per_id,
            "slots": [{"slot": s.slot, "start": s.start, "end": s.end, "quota": s.quota}
                      for s in slots]}
