"""Inventory counters: rooms per type per night, tickets per venue slot and day.

Reserving, inside the booking's transaction:
  1. INSERT the counter rows ON CONFLICT DO NOTHING (created on first sale);
  2. SELECT them FOR UPDATE in a fixed order (no deadlocks between bookings);
  3. ask rules.rooms_free / rules.tickets_free;
  4. UPDATE sold = sold + n WHERE sold + n <= capacity, and check every row
     changed. The CHECK constraints refuse an oversell even if 2-4 were wrong.
Any refusal raises, so the transaction rolls back: all nights or nothing.
"""
from sqlalchemy import and_, select, text, update
from sqlalchemy.dialects.postgresql import insert

from shared.errors import ApiError
from services.booking import rules
from services.booking.models import room_nights, slot_days, venue_days


def _raise(decision):
    if not decision:
        raise ApiError(decision.reason, decision.message)


def reserve_room(session, hotel_id, room_type, total, stay_nights, units=1):
    t = room_nights
    session.execute(insert(t).values([
        {"hotel_id": hotel_id, "room_type": room_type, "night": n, "capacity": total, "sold": 0}
        for n in stay_nights]).on_conflict_do_nothing())
    where = and_(t.c.hotel_id == hotel_id, t.c.room_type == room_type,
                 t.c.night.in_(stay_nights))
    rows = session.execute(select(t.c.night, t.c.capacity, t.c.sold).where(where)
                           .order_by(t.c.night).with_for_update()).all()
    _raise(rules.rooms_free(stay_nights, {r.night: (r.capacity, r.sold) for r in rows}, units))
    changed = session.execute(update(t).where(where, t.c.sold + units <= t.c.capacity)
                              .values(sold=t.c.sold + units)).rowcount
    if changed != len(stay_nights):
        _raise(rules.refuse("sold_out", "no room of this type is free every night"))


def release_room(session, hotel_id, room_type, stay_nights, units=1):
    t = room_nights
    session.execute(update(t).where(t.c.hotel_id == hotel_id, t.c.room_type == room_type,
                                    t.c.night.in_(stay_nights), t.c.sold >= units)
                    .values(sold=t.c.sold - units))


def reserve_tickets(session, venue, slot, day, units):
    """`venue` and `slot` are rows (daily_capacity, quota)."""
    session.execute(insert(venue_days).values(
        venue_id=venue.venue_id, day=day, capacity=venue.daily_capacity, sold=0)
        .on_conflict_do_nothing())
    session.execute(insert(slot_days).values(
        venue_id=venue.venue_id, day=day, slot=slot.slot, capacity=slot.quota, sold=0)
        .on_conflict_do_nothing())
    # lock order: the day first, then the slot (every booking does the same)
    day_row = session.execute(select(venue_days.c.capacity, venue_days.c.sold).where(
        venue_days.c.venue_id == venue.venue_id, venue_days.c.day == day).with_for_update()).one()
    slot_row = session.execute(select(slot_days.c.capacity, slot_days.c.sold).where(
        slot_days.c.venue_id == venue.venue_id, slot_days.c.day == day,
        slot_days.c.slot == slot.slot).with_for_update()).one()
    _raise(rules.tickets_free(tuple(slot_row), tuple(day_row), units))
    for t, extra in ((venue_days, ()), (slot_days, (slot_days.c.slot == slot.slot,))):
        changed = session.execute(update(t).where(
            t.c.venue_id == venue.venue_id, t.c.day == day, *extra,
            t.c.sold + units <= t.c.capacity).values(sold=t.c.sold + units)).rowcount
        if changed != 1:
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
