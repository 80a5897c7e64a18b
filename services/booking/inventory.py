"""Inventory counters: rooms per type per night, tickets per venue slot and day.

Reserving, inside the booking's transaction, one upsert per counter table
(rows created on first sale; the units added only where they fit; rows
locked in a fixed order, so no deadlocks between bookings). A refusal reads
the counters and asks rules.rooms_free / rules.tickets_free which limit it
was. The CHECK constraints refuse an oversell even if the upsert were wrong.
Any refusal raises, so the transaction rolls back: all nights or nothing.
"""
from sqlalchemy import select, text, update

from shared.errors import ApiError
from services.booking import rules
from services.booking.models import room_nights, slot_days, venue_days


def _raise(decision):
    if not decision:
        raise ApiError(decision.reason, decision.message)


# Reserving `units` on counter rows in one statement each: INSERT the rows
# not sold yet (sold = units, if units fit the capacity), else add units to
# the existing row only if they fit. ON CONFLICT takes the row lock, in the
# VALUES order (nights sorted: no deadlock between bookings), and a row that
# cannot take the units is not returned. Fewer rows back than asked: refused,
# and the caller's transaction rolls back. The CHECK constraints still refuse
# an oversell should this ever be wrong.
_RESERVE_NIGHTS = text("""
INSERT INTO room_nights (hotel_id, room_type, night, capacity, sold)
SELECT :hotel_id, :room_type, n.night, :capacity, :units
FROM unnest(CAST(:nights AS date[])) AS n(night)
WHERE :units <= :capacity
ORDER BY n.night
ON CONFLICT (hotel_id, room_type, night) DO UPDATE SET sold = room_nights.sold + :units
WHERE room_nights.sold + :units <= room_nights.capacity
RETURNING night
""")
_RESERVE_DAY = text("""
INSERT INTO venue_days (venue_id, day, capacity, sold)
SELECT :venue_id, :day, :capacity, :units WHERE :units <= :capacity
ON CONFLICT (venue_id, day) DO UPDATE SET sold = venue_days.sold + :units
WHERE venue_days.sold + :units <= venue_days.capacity
RETURNING sold
""")
_RESERVE_SLOT = text("""
INSERT INTO slot_days (venue_id, day, slot, capacity, sold)
SELECT :venue_id, :day, :slot, :capacity, :units WHERE :units <= :capacity
ON CONFLICT (venue_id, day, slot) DO UPDATE SET sold = slot_days.sold + :units
WHERE slot_days.sold + :units <= slot_days.capacity
RETURNING sold
""")


def reserve_room(session, hotel_id, room_type, total, stay_nights, units=1):
    nights = sorted(stay_nights)
    taken = session.execute(_RESERVE_NIGHTS, {
        "hotel_id": hotel_id, "room_type": room_type, "nights": nights, "capacity": total,
        "units": units}).all()
    if len(taken) != len(nights):  # refused: say which night, from the locked counters
        t = room_nights
        done = {r.night for r in taken}
        counters = {r.night: (r.capacity, r.sold - (units if r.night in done else 0))
                    for r in session.execute(select(t.c.night, t.c.capacity, t.c.sold).where(
                        t.c.hotel_id == hotel_id, t.c.room_type == room_type,
                        t.c.night.in_(nights)))}
        for night in nights:
            counters.setdefault(night, (total, 0))
        _raise(rules.rooms_free(nights, counters, units))
        _raise(rules.refuse("sold_out", "no room of this type is free every night"))


def release_room(session, hotel_id, room_type, stay_nights, units=1):
    t = room_nights
    session.execute(update(t).where(t.c.hotel_id == hotel_id, t.c.room_type == room_type,
                                    t.c.night.in_(stay_nights), t.c.sold >= units)
                    .values(sold=t.c.sold - units))


def reserve_tickets(session, venue, slot, day, units):
    """`venue` and `slot` are rows (daily_capacity, quota). Lock order: the
    day first, then the slot (every booking does the same)."""
    params = {"venue_id": venue.venue_id, "day": day, "units": units}
    day_ok = session.execute(_RESERVE_DAY, dict(params, capacity=venue.daily_capacity)
                             ).first() is not None
    slot_ok = day_ok and session.execute(_RESERVE_SLOT, dict(
        params, slot=slot.slot, capacity=slot.quota)).first() is not None
    if not slot_ok:  # refused: which limit, from the counters
        slots, day_counter = slot_counters(session, venue.venue_id, day)
        day_counter = day_counter or (venue.daily_capacity, 0)
        if day_ok:
            day_counter = (day_counter[0], day_counter[1] - units)
        _raise(rules.tickets_free(slots.get(slot.slot, (slot.quota, 0)), day_counter, units))
        _raise(rules.refuse("sold_out", "sold out"))


def release_tickets(session, venue_id, slot, day, units):
    for t, extra in ((venue_days, ()), (slot_days, (slot_days.c.slot == slot,))):
        session.execute(update(t).where(t.c.venue_id == venue_id, t.c.day == day, *extra,
                                        t.c.sold >= units).values(sold=t.c.sold - units))


def slot_counters(session, venue_id, day):
    """{slot: (capacity, sold)} and (capacity, sold) of the day, where sold."""
    slots = {r.slot: (r.capacity, r.sold) for r in session.execute(
        select(slot_days).where(slot_days.c.venue_id == venue_id, slot_days.c.day == day))}
    row = session.execute(select(venue_days.c.capacity, venue_days.c.sold).where(
        venue_days.c.venue_id == venue_id, venue_days.c.day == day)).first()
    return slots, (tuple(row) if row else None)


# City-wide search, one statement. A room type is open when it takes the party
# and none of the stay's nights is full (probe of the partial index
# room_nights_full, which holds only sold-out nights). Hotels are ordered by
# their cheapest open room type, then name, then id: that is the order in which
# hotels first appear when open room types are walked by (price, hotel name,
# hotel id), which room_types_by_price serves directly. A hotel has at most
# max(room_type_count) room types, so the first (offset + limit + 1) * that open
# room types contain every hotel of the page: the walk stops there instead of
# ranking the whole city. Free-room counts are computed for the page only.
SEARCH_SQL = """
WITH stream AS (
    SELECT rt.hotel_id, rt.price, rt.hotel_name
    FROM room_types rt
    WHERE rt.max_guests >= :guests AND rt.total > 0 {filters}
      AND NOT EXISTS (
          SELECT 1 FROM room_nights f
          WHERE f.hotel_id = rt.hotel_id AND f.room_type = rt.room_type
            AND f.night >= :check_in AND f.night < :check_out AND f.sold >= f.capacity)
    ORDER BY rt.price, rt.hotel_name, rt.hotel_id
    LIMIT :pages * (SELECT coalesce(max(room_type_count), 1) FROM hotels)
), page AS (
    SELECT hotel_id, MIN(price) AS from_price, MIN(hotel_name) AS name
    FROM stream GROUP BY hotel_id
    ORDER BY from_price, name, hotel_id
    LIMIT :limit OFFSET :offset
)
SELECT * FROM (
    SELECT p.hotel_id, p.name, rt.district, p.from_price, rt.room_type, rt.price,
           rt.max_guests,
           LEAST(rt.total, COALESCE((
               SELECT MIN(n.capacity - n.sold) FROM room_nights n
               WHERE n.hotel_id = rt.hotel_id AND n.room_type = rt.room_type
                 AND n.night >= :check_in AND n.night < :check_out), rt.total)) AS available
    FROM page p JOIN room_types rt ON rt.hotel_id = p.hotel_id
    WHERE rt.max_guests >= :guests {filters}
) offers
WHERE available > 0
ORDER BY from_price, name, hotel_id, price, room_type
"""
_SEARCH_VARIANTS = {
    (price, district): text(SEARCH_SQL.format(filters=" ".join(
        (["AND rt.price <= :max_price"] if price else [])
        + (["AND rt.district = :district"] if district else []))))
    for price in (False, True) for district in (False, True)}


def search(session, check_in, check_out, guests, district=None, max_price=None, limit=20,
           offset=0):
    """{results: [...], next_offset} for the hotels free every night."""
    statement = _SEARCH_VARIANTS[(max_price is not None, district is not None)]
    params = {"check_in": check_in, "check_out": check_out, "guests": guests,
              "limit": limit + 1, "offset": offset, "pages": offset + limit + 1}
    if max_price is not None:
        params["max_price"] = max_price
    if district is not None:
        params["district"] = district
    rows = session.execute(statement, params).all()
    results, by_id = [], {}
    for r in rows:
        entry = by_id.get(r.hotel_id)
        if entry is None:
            entry = by_id[r.hotel_id] = {"hotel_id": r.hotel_id, "name": r.name,
                                         "district": r.district, "room_types": []}
            results.append(entry)
        entry["room_types"].append({"room_type": r.room_type, "available": r.available,
                                    "price": float(r.price), "max_guests": r.max_guests})
    more = len(results) > limit
    return {"results": results[:limit], "next_offset": offset + limit if more else None}
