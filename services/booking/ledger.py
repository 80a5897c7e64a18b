"""Bookings: create, cancel, read, and the credential record built from them.

Every function takes a session (one transaction, shared.database.Store) and
raises ApiError on a refusal so the whole transaction rolls back.
"""
import secrets
import uuid
from types import SimpleNamespace

from sqlalchemy import case, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from shared import events, idnumber
from shared.clock import city_zone
from shared.credentials import CredentialRecordSchema
from shared.errors import ApiError, not_found
from services.booking import inventory, rules
from services.booking.models import (booking_people, bookings, hotels, outbox, room_types,
                                     ticket_holders, tourists, venue_slots, venues)


def _raise(decision):
    if not decision:
        fields = {decision.field: [decision.message]} if decision.field else None
        raise ApiError(decision.reason, decision.message, fields)


# -- tourists ---------------------------------------------------------------

def register_tourist(session, phone, name):
    tourist_id, token = uuid.uuid4().hex, "tt_" + secrets.token_urlsafe(32)
    session.execute(insert(tourists).values(tourist_id=tourist_id, phone=phone, name=name.strip(),
                                            token_hash=rules.token_hash(token)))
    return tourist_id, token


def tourist_by_token(session, token):
    return session.execute(select(tourists.c.tourist_id)
                           .where(tourists.c.token_hash == rules.token_hash(token))).scalar()


# -- creating ---------------------------------------------------------------

def by_key(session, tourist_id, key):
    return session.execute(select(bookings).where(
        bookings.c.tourist_id == tourist_id, bookings.c.idempotency_key == key)).first()


def people_rows(people, id_key):
    return [{"position": i, "name": p["name"].strip(), "name_masked": idnumber.mask_name(p["name"]),
             "id_hash": idnumber.id_hash(id_key, p["id_number"]),
             "id_masked": idnumber.mask(p["id_number"])} for i, p in enumerate(people)]


def _insert_booking(session, tourist_id, key, values):
    """Insert the booking row, claiming the Idempotency-Key. Returns the new
    row's created_at, or None when the key is already taken (by a committed
    concurrent request: the unique index made us wait for it). ON CONFLICT
    without a target also absorbs a booking-code collision, told apart by
    the key lookup, and retried with a new code (no savepoint per booking)."""
    for _ in range(5):
        values["code"] = rules.new_code()  # the caller's row shows the code that stuck
        created = session.execute(
            pg_insert(bookings).values(**values).on_conflict_do_nothing()
            .returning(bookings.c.created_at)).scalar()
        if created is not None or by_key(session, tourist_id, key) is not None:
            return created
    raise ApiError("unavailable", "could not allocate a booking code; retry")


def create(session, tourist_id, key, req_hash, data, today, id_key, emit):
    """Book a hotel stay or venue ticket. Returns (status, booking_id, view,
    record): 201 for a new booking, 200 when this key already made it (then
    view and record are None: the caller reads the existing booking).
    `emit(event_type, payload)` returns the outbox row to insert.

    Round trips: the key, the room type or venue (and slots), the booking
    row, the inventory upsert(s), the per-ID rows (one-per-ID venues), the
    people, the outbox row. The view and the credential record are built
    from what this transaction wrote, not read back."""
    existing = by_key(session, tourist_id, key)
    if existing is not None:  # a retry: same body -> same booking
        _raise(rules.same_request(existing.request_hash, req_hash))
        return 200, existing.booking_id, None, None
    people_field = "guests" if data["kind"] == "hotel_stay" else "visitors"
    people = people_rows(data[people_field], id_key)
    _raise(rules.distinct_people([p["id_hash"] for p in people], people_field))
    booking_id = uuid.uuid4().hex
    values = {"booking_id": booking_id, "tourist_id": tourist_id, "kind": data["kind"],
              "status": "confirmed", "idempotency_key": key, "request_hash": req_hash,
              "credential_id": str(uuid.uuid4()), "party_size": len(people)}
    shown = {}  # the joined columns view() and record_of() need
    if data["kind"] == "hotel_stay":
        rt = session.execute(select(room_types).where(
            room_types.c.hotel_id == data["hotel_id"],
            room_types.c.room_type == data["room_type"])).first()
        if rt is None:
            raise not_found("hotel or room type")
        _raise(rules.check_stay(data["check_in"], data["check_out"], today))
        _raise(rules.party_fits(len(people), rt.max_guests))
        stay = rules.nights(data["check_in"], data["check_out"])
        values.update(hotel_id=rt.hotel_id, room_type=rt.room_type, check_in=data["check_in"],
                      check_out=data["check_out"], price_total=rt.price * len(stay))
        shown.update(hotel_name=rt.hotel_name)
    else:
        venue = session.execute(select(venues).where(venues.c.venue_id == data["venue_id"])).first()
        if venue is None:
            raise not_found("venue")
        _raise(rules.check_day(data["date"], today))
        slot = _slot(session, venue.venue_id, data.get("slot"))
        values.update(venue_id=venue.venue_id, day=data["date"], slot=slot.slot)
        shown.update(venue_name=venue.name, entry_policy=venue.entry_policy,
                     slot_start=slot.start, slot_end=slot.end)

    created = _insert_booking(session, tourist_id, key, values)
    if created is None:  # a concurrent request with this key committed first
        existing = by_key(session, tourist_id, key)
        _raise(rules.same_request(existing.request_hash, req_hash))
        return 200, existing.booking_id, None, None

    if data["kind"] == "hotel_stay":
        inventory.reserve_room(session, rt.hotel_id, rt.room_type, rt.total, stay)
    else:
        if venue.one_per_id:
            # sorted: two parties sharing IDs lock them in the same order (no deadlock)
            claimed = session.execute(pg_insert(ticket_holders).values([
                {"venue_id": venue.venue_id, "day": data["date"], "id_hash": h,
                 "booking_id": booking_id} for h in sorted(p["id_hash"] for p in people)])
                .on_conflict_do_nothing().returning(ticket_holders.c.id_hash)).all()
            _raise(rules.holders_free(len(people), len(claimed)))
        inventory.reserve_tickets(session, venue, slot, data["date"], len(people))
    session.execute(insert(booking_people), [dict(p, booking_id=booking_id) for p in people])
    row = _written_row(values, shown, created)
    people_shown = [SimpleNamespace(**p) for p in people]
    record = record_of(row, people_shown)
    session.execute(insert(outbox), emit(events.BOOKING_CONFIRMED, _event_payload(record)))
    return 201, booking_id, view(row, people_shown), record


def _written_row(values, shown, created_at):
    """The booking as _booking_query() would read it back."""
    columns = dict.fromkeys(("hotel_id", "room_type", "check_in", "check_out", "price_total",
                             "venue_id", "day", "slot", "hotel_name", "venue_name",
                             "entry_policy", "slot_start", "slot_end"))
    return SimpleNamespace(**{**columns, **values, **shown, "created_at": created_at,
                              "entries": 0})


def _slot(session, venue_id, name):
    slots = session.execute(select(venue_slots).where(venue_slots.c.venue_id == venue_id)
                            .order_by(venue_slots.c.start)).all()
    if name is None and len(slots) == 1:
        return slots[0]  # a venue with one (whole-day) slot needs no slot name
    for s in slots:
        if s.slot == name:
            return s
    if name is None:
        raise ApiError("validation_error", "the request is invalid",
                       {"slot": ["this venue sells timed slots: choose one of %s"
                                 % ", ".join(s.slot for s in slots)]})
    raise not_found("slot")


def _event_payload(record):
    return {"booking_id": record["booking_id"], "kind": record["kind"],
            "target_type": record["target_type"], "target_id": record["target_id"],
            "credential": record}


# -- cancelling -------------------------------------------------------------

def cancel(session, tourist_id, booking_id, emit):
    """Cancel the caller's booking: status, inventory, per-ID rows, event.
    Returns the cancelled credential record."""
    row = session.execute(select(bookings).where(
        bookings.c.booking_id == booking_id, bookings.c.tourist_id == tourist_id)
        .with_for_update()).first()
    if row is None:
        raise not_found("booking")
    _raise(rules.can_cancel(row.status))
    session.execute(update(bookings).where(bookings.c.booking_id == booking_id)
                    .values(status="cancelled", updated_at=_now()))
    if row.kind == "hotel_stay":
        inventory.release_room(session, row.hotel_id, row.room_type,
                               rules.nights(row.check_in, row.check_out))
    else:
        inventory.release_tickets(session, row.venue_id, row.slot, row.day, row.party_size)
        session.execute(ticket_holders.delete().where(ticket_holders.c.booking_id == booking_id))
    record = credential_record(session, booking_id)
    emit(session, events.BOOKING_CANCELLED, _event_payload(record))
    return record


def _now():
    from sqlalchemy import func
    return func.now()


# -- reading ----------------------------------------------------------------

def _booking_query():
    return (select(bookings, hotels.c.name.label("hotel_name"), venues.c.name.label("venue_name"),
                   venues.c.entry_policy, venue_slots.c.start.label("slot_start"),
                   venue_slots.c["end"].label("slot_end"))
            .select_from(bookings.outerjoin(hotels, hotels.c.hotel_id == bookings.c.hotel_id)
                         .outerjoin(venues, venues.c.venue_id == bookings.c.venue_id)
                         .outerjoin(venue_slots, (venue_slots.c.venue_id == bookings.c.venue_id)
                                    & (venue_slots.c.slot == bookings.c.slot))))


def _people(session, booking_ids):
    out = {}
    for p in session.execute(select(booking_people).where(
            booking_people.c.booking_id.in_(booking_ids)).order_by(booking_people.c.position)):
        out.setdefault(p.booking_id, []).append(p)
    return out


def view(row, people):
    """What the tourist sees: masked names and ID numbers only."""
    shown = [{"name_masked": p.name_masked, "id_masked": p.id_masked} for p in people]
    out = {"booking_id": row.booking_id, "kind": row.kind, "status": row.status,
           "code": row.code, "credential_id": row.credential_id,
           "created_at": row.created_at.astimezone(city_zone()).isoformat(),
           "party_size": row.party_size}
    if row.kind == "hotel_stay":
        out.update(hotel_id=row.hotel_id, hotel_name=row.hotel_name, room_type=row.room_type,
                   check_in=row.check_in.isoformat(), check_out=row.check_out.isoformat(),
                   price_total=float(row.price_total), guests=shown)
    else:
        out.update(venue_id=row.venue_id, venue_name=row.venue_name, date=row.day.isoformat(),
                   slot=row.slot, slot_start=row.slot_start, slot_end=row.slot_end,
                   visitors=shown)
    return out


def get(session, tourist_id, booking_id):
    """The caller's booking; someone else's is simply not found."""
    row = session.execute(_booking_query().where(
        bookings.c.booking_id == booking_id, bookings.c.tourist_id == tourist_id)).first()
    if row is None:
        raise not_found("booking")
    return row, view(row, _people(session, [booking_id]).get(booking_id, []))


def list_for(session, tourist_id, limit, offset):
    rows = session.execute(_booking_query().where(bookings.c.tourist_id == tourist_id)
                           .order_by(bookings.c.created_at.desc(), bookings.c.booking_id)
                           .limit(limit).offset(offset)).all()
    people = _people(session, [r.booking_id for r in rows])
    return [view(r, people.get(r.booking_id, [])) for r in rows]


# -- credential records -----------------------------------------------------

_RECORD_SCHEMA = CredentialRecordSchema()  # built once (see schemas.KIND_SCHEMAS)


def record_of(row, people):
    hotel = row.kind == "hotel_stay"
    record = {
        "version": 1, "credential_id": row.credential_id, "booking_id": row.booking_id,
        "kind": row.kind, "target_type": "hotel" if hotel else "venue",
        "target_id": row.hotel_id if hotel else row.venue_id, "code": row.code,
        "valid_from": (row.check_in if hotel else row.day).isoformat(),
        "valid_until": (row.check_out if hotel else row.day).isoformat(),
        "slot": None if hotel else row.slot,
        "slot_start": None if hotel else row.slot_start,
        "slot_end": None if hotel else row.slot_end,
        "party_size": row.party_size,
        "entry_policy": None if hotel else row.entry_policy,
        "room_type": row.room_type if hotel else None,
        "holder_name_masked": people[0].name_masked if people else "",
        "id_hashes": [p.id_hash for p in people],
        "status": rules.credential_status(row.status),
    }
    return _RECORD_SCHEMA.load(record)


def credential_record(session, booking_id):
    row = session.execute(_booking_query().where(bookings.c.booking_id == booking_id)).first()
    if row is None:
        return None
    return record_of(row, _people(session, [booking_id]).get(booking_id, []))


def find_credential(session, code=None, target_type=None, target_id=None, day=None,
                    id_hash=None):
    """By booking code, or by (hotel|venue, day, guest ID hash). An active
    booking wins over a cancelled one for the same person and day."""
    q = _booking_query()
    if code:
        q = q.where(bookings.c.code == code.upper())
    elif target_type and target_id and day and id_hash:
        q = q.where(bookings.c.booking_id.in_(
            select(booking_people.c.booking_id).where(booking_people.c.id_hash == id_hash)))
        if target_type == "hotel":
            q = q.where(bookings.c.hotel_id == target_id, bookings.c.check_in <= day,
                        bookings.c.check_out > day)
        else:
            q = q.where(bookings.c.venue_id == target_id, bookings.c.day == day)
        q = q.order_by(case((bookings.c.status == "cancelled", 1), else_=0),
                       bookings.c.created_at.desc())
    else:
        return None
    row = session.execute(q.limit(1)).first()
    if row is None:
        return None
    return record_of(row, _people(session, [row.booking_id]).get(row.booking_id, []))


# -- facts reported by gates and desks --------------------------------------
#
# One statement per fact kind per frame of events, on a plain connection (no
# ORM session): record the first delivery of every event and move the
# bookings in the same statement, so a redelivered frame changes nothing. The
# events of one booking are counted first (UPDATE ... FROM touches a row once:
# a party ticket admitted twice in one frame must count two entries). Rows
# are locked in booking_id order, so two frames sharing bookings cannot
# deadlock; the lock re-checks the row after a concurrent change, so no
# separate SELECT round trip. The transitions are generated from the rules in
# rules.py (every status through the rule), not written twice.

STATUSES = ("confirmed", "cancelled", "in_house", "departed", "used")


def transition_sql(rule):
    """`CASE status WHEN a THEN rule(a) ... ELSE status END` for a rule(status)."""
    moves = " ".join("WHEN '%s' THEN '%s'" % (s, rule(s)) for s in STATUSES if rule(s))
    return "CASE status %s ELSE status END" % moves if moves else "status"


def settled(rule):
    """`rule`, after checking that applying it again moves nothing: the frame
    statement applies a status rule once for n events of one booking."""
    for s in STATUSES:
        once = rule(s) or s
        if (rule(once) or once) != once:
            raise AssertionError("%s moves %s twice: a frame cannot apply it once"
                                 % (rule, s))
    return rule


def then(first, second):
    """The status after `first` and then `second`."""
    return lambda s: second(first(s) or s) or first(s)


def _fact(kind, assignments, where=""):
    """`assignments` may use `fact.n`: this frame's first-delivered events of
    the booking."""
    return text("""
WITH given AS (
    SELECT * FROM unnest(CAST(:event_ids AS text[]), CAST(:booking_ids AS text[]))
        AS g(event_id, booking_id)
), first AS (
    INSERT INTO processed_events (event_id, consumer)
    SELECT event_id, :consumer FROM given
    ON CONFLICT DO NOTHING RETURNING event_id
), fact AS (
    SELECT b.booking_id, c.n FROM bookings b JOIN (
        SELECT given.booking_id, count(*) AS n FROM given JOIN first USING (event_id)
        GROUP BY given.booking_id) c USING (booking_id)
    WHERE b.kind = '%s' %s
    ORDER BY b.booking_id FOR UPDATE OF b
)
UPDATE bookings SET %s, updated_at = now()
FROM fact WHERE bookings.booking_id = fact.booking_id
RETURNING bookings.booking_id, bookings.status""" % (kind, where, assignments))


def _moving(rule):
    """Only bookings the rule moves are touched (the rest: no write)."""
    return "AND b.status IN (%s)" % ", ".join("'%s'" % s for s in STATUSES if rule(s))


# rules.after_annulment(status, entries_left): entries_left after an annulment.
# With n annulments of a booking that had `entries`, the k-th leaves
# entries - k: none reaches 0 (n < entries), the last does, or all do.
_ANNUL_LEFT = settled(lambda s: rules.after_annulment(s, 1))
_ANNUL_LAST = settled(lambda s: rules.after_annulment(s, 0))

FACTS = {
    "admitted": _fact("venue_ticket", "entries = entries + fact.n, status = %s"
                      % transition_sql(settled(rules.after_admission))),
    "annulled": _fact("venue_ticket", "entries = greatest(0, entries - fact.n), status = CASE "
                      "WHEN entries - fact.n > 0 THEN %s WHEN entries - 1 > 0 THEN %s "
                      "ELSE %s END" % (transition_sql(_ANNUL_LEFT),
                                       transition_sql(then(_ANNUL_LEFT, _ANNUL_LAST)),
                                       transition_sql(_ANNUL_LAST))),
    "checked_in": _fact("hotel_stay", "status = %s"
                        % transition_sql(settled(rules.after_checkin)),
                        _moving(rules.after_checkin)),
    "checked_out": _fact("hotel_stay", "status = %s"
                         % transition_sql(settled(rules.after_checkout)),
                         _moving(rules.after_checkout)),
}


def apply_facts(conn, fact, consumer, bookings_by_event):
    """Apply one kind of gate or desk fact for many events at once, each once
    per event id. `bookings_by_event`: {event_id: booking_id}. Returns
    {booking_id: new status} of the bookings it moved (not repeats, other
    kinds of booking, or bookings the fact leaves alone)."""
    if not bookings_by_event:
        return {}
    return dict(conn.execute(FACTS[fact], {
        "event_ids": list(bookings_by_event), "booking_ids": list(bookings_by_event.values()),
        "consumer": consumer}).all())


def apply_fact(conn, fact, event_id, consumer, booking_id):
    """One event's fact; returns the booking's new status, or None."""
    return apply_facts(conn, fact, consumer, {event_id: booking_id}).get(booking_id)
