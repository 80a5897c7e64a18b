"""Database side of the check-in service: small queries named for the domain.

Every method takes the caller's session, so a check-in's stay, room, key,
registrations and events commit in one transaction.
"""
import json

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from shared.database import Store

from services.checkin import models as m
from services.checkin.rules import floor_of


# The check-in in one statement (data-modifying CTEs). first_ready is the
# assignment rule (rules.room_order) with SKIP LOCKED: a room another desk is
# claiming this instant is passed over, never shared. gate upserts the
# booking's mark: it waits for a concurrent cancellation of the booking and
# yields no row if the booking is cancelled, so no stay is inserted.
CHECK_IN = text("""
WITH first_ready AS (
    SELECT number FROM rooms
    WHERE hotel_id = :hotel_id AND stay_id IS NULL AND condition IN ('inspected', 'clean')
      AND (CAST(:room_type AS varchar) IS NULL OR room_type = :room_type)
    ORDER BY condition = 'inspected' DESC, floor, length(number), number
    LIMIT 1 FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE rooms SET stay_id = :stay_id, updated_at = now()
    WHERE hotel_id = :hotel_id AND stay_id IS NULL AND number = (SELECT number FROM first_ready)
    RETURNING number
), gate AS (
    INSERT INTO booking_marks (booking_id, cancelled) VALUES (:booking_id, false)
    ON CONFLICT (booking_id) DO UPDATE SET updated_at = now()
    WHERE booking_marks.cancelled = false
    RETURNING booking_id
), new_stay AS (
    INSERT INTO stays (stay_id, booking_id, credential_id, hotel_id, room, room_type, status,
                       payment_mode, guest_name_masked, medium, face_used, device_id,
                       started_at, checked_in_at, duration_ms, valid_until)
    SELECT :stay_id, :booking_id, :credential_id, :hotel_id, claimed.number, :room_type,
           :status, :payment_mode, :guest_name_masked, :medium, :face_used, :device_id,
           :started_at, clock_timestamp(),
           greatest(0, extract(epoch FROM clock_timestamp() - :started_at) * 1000),
           :valid_until
    FROM claimed WHERE EXISTS (SELECT 1 FROM gate)
    RETURNING stay_id, room, checked_in_at
), new_key AS (
    INSERT INTO room_keys (key_hash, stay_id, hotel_id, room, valid_until)
    SELECT :key_hash, stay_id, :hotel_id, room, :key_valid_until FROM new_stay
    RETURNING key_hash
), new_registrations AS (
    INSERT INTO registrations (stay_id, hotel_id, room, guest_no, name_masked, id_hash,
                               id_masked, id_checked, foreign_guest, checked_in_at,
                               departure_due, status)
    SELECT new_stay.stay_id, :hotel_id, new_stay.room, g.guest_no, g.name_masked, g.id_hash,
           g.id_masked, g.id_checked, g.foreign_guest, new_stay.checked_in_at, :valid_until,
           :pending
    FROM new_stay, unnest(CAST(:reg_guest_no AS integer[]), CAST(:reg_name_masked AS text[]),
                          CAST(:reg_id_hash AS text[]), CAST(:reg_id_masked AS text[]),
                          CAST(:reg_id_checked AS boolean[]),
                          CAST(:reg_foreign_guest AS boolean[]))
         AS g(guest_no, name_masked, id_hash, id_masked, id_checked, foreign_guest)
    RETURNING id
), new_event AS (
    INSERT INTO outbox (event_type, payload, request_id)
    SELECT :event_type, jsonb_set(CAST(:event_payload AS jsonb), '{room}', to_jsonb(new_stay.room)),
           :event_request_id
    FROM new_stay
    RETURNING id
)
SELECT (SELECT number FROM claimed) AS room, (SELECT count(*) FROM new_stay) AS stays,
       (SELECT count(*) FROM new_key) AS keys, (SELECT count(*) FROM new_registrations) AS regs,
       (SELECT count(*) FROM new_event) AS events
""")


class HotelStore(Store):

    # -- rooms ---------------------------------------------------------------

    def add_rooms(self, session, hotel_id, room_types, condition="clean"):
        """Create rooms that do not exist yet; returns how many were new."""
        rows = [{"hotel_id": hotel_id, "number": number, "room_type": rt["room_type"],
                 "floor": floor_of(number), "condition": condition}
                for rt in room_types for number in rt["rooms"]]
        if not rows:
            return 0
        result = session.execute(insert(m.rooms).values(rows).on_conflict_do_nothing()
                                 .returning(m.rooms.c.number))
        return len(result.all())

    def has_rooms(self, session, hotel_id):
        return session.execute(select(m.rooms.c.number).where(m.rooms.c.hotel_id == hotel_id)
                               .limit(1)).first() is not None

    def rooms_of(self, session, hotel_id):
        r = m.rooms.c
        return session.execute(select(m.rooms).where(r.hotel_id == hotel_id)
                               .order_by(r.floor, func.length(r.number), r.number)).mappings().all()

    def room_for_update(self, session, hotel_id, number):
        r = m.rooms.c
        return session.execute(select(m.rooms).where(r.hotel_id == hotel_id, r.number == number)
                               .with_for_update()).mappings().first()

    def set_condition(self, session, hotel_id, number, condition, vacate=False):
        values = {"condition": condition, "updated_at": func.now()}
        if vacate:
            values["stay_id"] = None
        session.execute(update(m.rooms).where(m.rooms.c.hotel_id == hotel_id,
                                              m.rooms.c.number == number).values(**values))

    def check_in(self, session, stay, key, registrations, event):
        """Claim a room by the rule, insert the stay (unless the booking is
        cancelled), its key, its registrations and its checkin.completed
        outbox row: one statement, so a check-in costs one round trip here,
        whatever the guests.

        `stay`: the stays row without room and times; `key`: {key_hash,
        valid_until}; `registrations`: rows from desk.registrations_for;
        `event`: the outbox row (OutboxWriter.row) whose payload's room is
        filled in by the statement with the room it claimed.
        Returns (room or None, stay inserted?). A second stay for the
        booking raises IntegrityError (stays_one_per_booking)."""
        columns = ("guest_no", "name_masked", "id_hash", "id_masked", "id_checked",
                   "foreign_guest")
        params = dict(stay, key_hash=key["key_hash"], key_valid_until=key["valid_until"],
                      pending=m.PENDING, event_type=event["event_type"],
                      event_payload=json.dumps(event["payload"], separators=(",", ":")),
                      event_request_id=event["request_id"],
                      **{"reg_" + c: [row[c] for row in registrations] for c in columns})
        row = session.execute(CHECK_IN, params).one()
        return row.room, row.stays == 1

    # -- stays ---------------------------------------------------------------

    def stay_status_of_booking(self, session, booking_id):
        return session.execute(select(m.stays.c.status)
                               .where(m.stays.c.booking_id == booking_id)).scalar()

    def is_cancelled(self, session, booking_id):
        return bool(session.execute(select(m.booking_marks.c.cancelled)
                                    .where(m.booking_marks.c.booking_id == booking_id)).scalar())

    def stay_for_update(self, session, stay_id):
        return session.execute(select(m.stays).where(m.stays.c.stay_id == stay_id)
                               .with_for_update()).mappings().first()

    def stays_of_booking_for_update(self, session, booking_id):
        return session.execute(select(m.stays).where(m.stays.c.booking_id == booking_id)
                               .with_for_update()).mappings().all()

    def close_stay(self, session, stay_id, status, payment_mode=None):
        values = {"status": status, "checked_out_at": func.now()}
        if payment_mode:
            values["payment_mode"] = payment_mode
        return session.execute(update(m.stays).where(m.stays.c.stay_id == stay_id)
                               .values(**values).returning(m.stays.c.checked_out_at)).scalar()

    def mark_cancelled(self, session, booking_id):
        """Waits for a check-in of this booking in flight, so the stays read
        next include its stay."""
        b = m.booking_marks
        session.execute(insert(b).values(booking_id=booking_id, cancelled=True)
                        .on_conflict_do_update(index_elements=[b.c.booking_id],
                                               set_={"cancelled": True, "updated_at": func.now()}))

    # -- keys ----------------------------------------------------------------

    def key_record(self, session, hashed):
        k = m.room_keys.c
        return session.execute(select(m.room_keys).where(k.key_hash == hashed)).mappings().first()

    def revoke_keys(self, session, stay_id):
        """Revoke the stay's live keys; returns their hashes."""
        k = m.room_keys.c
        return session.execute(update(m.room_keys).where(k.stay_id == stay_id,
                                                         k.revoked_at.is_(None))
                               .values(revoked_at=func.now()).returning(k.key_hash)
                               ).scalars().all()

    # -- stats ---------------------------------------------------------------

    def checkin_stats(self, session, hotel_id, budget_ms):
        s = m.stays.c
        row = session.execute(
            select(func.count(s.duration_ms),
                   func.percentile_cont(0.5).within_group(s.duration_ms),
                   func.percentile_cont(0.95).within_group(s.duration_ms),
                   func.count(s.duration_ms).filter(s.duration_ms < budget_ms))
            .where(s.hotel_id == hotel_id, s.duration_ms.is_not(None))).one()
        return row
