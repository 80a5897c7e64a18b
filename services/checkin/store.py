"""Database side of the check-in service: small queries named for the domain.

Every method takes the caller's session, so a check-in's stay, room, key,
registrations and events commit in one transaction.
"""
from sqlalchemy import and_, case, exists, func, literal, select, union_all, update
from sqlalchemy.dialects.postgresql import insert

from shared.database import Store

from services.checkin import models as m
from services.checkin.rules import READY, floor_of


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

    def _first_ready(self, hotel_id, room_type):
        """The assignment rule as a subquery, skipping rooms another desk
        has locked this instant."""
        r = m.rooms.c
        conditions = [r.hotel_id == hotel_id, r.stay_id.is_(None), r.condition.in_(READY)]
        if room_type is not None:
            conditions.append(r.room_type == room_type)
        return (select(r.number).where(and_(*conditions))
                .order_by(case((r.condition == "inspected", 0), else_=1), r.floor,
                          func.length(r.number), r.number)
                .limit(1).with_for_update(skip_locked=True).scalar_subquery())

    def check_in(self, session, stay, key, registrations):
        """Claim a room, insert the stay (unless the booking is known
        cancelled), its key and its registrations: one statement, so a
        check-in costs one round trip here, whatever the guests.

        `stay`: the stays row without `room`; `key`: room_keys row without
        `room`; `registrations`: rows without `room`. Returns (room or None,
        stay inserted?). A second stay for the booking raises IntegrityError
        (stays_one_per_booking)."""
        r, s, k, g = m.rooms.c, m.stays.c, m.room_keys.c, m.registrations.c
        claimed = (update(m.rooms)
                   .where(r.hotel_id == stay["hotel_id"], r.stay_id.is_(None),
                          r.number == self._first_ready(stay["hotel_id"], stay["room_type"]))
                   .values(stay_id=stay["stay_id"], updated_at=func.now())
                   .returning(r.number).cte("claimed"))

        def row_from(source, values, table_cols):
            return select(*[literal(v, type_=table_cols[c].type) for c, v in values.items()],
                          source.c.number.label("room") if source is claimed
                          else source.c.room).select_from(source)

        b = m.booking_marks
        upsert = insert(b).values(booking_id=stay["booking_id"], cancelled=False)
        # waits for a concurrent cancellation of this booking; no row if cancelled
        gate = (upsert.on_conflict_do_update(
            index_elements=[b.c.booking_id], set_={"updated_at": func.now()},
            where=b.c.cancelled.is_(False)).returning(b.c.booking_id).cte("gate"))
        new_stay = (insert(m.stays).from_select(
            list(stay) + ["room"],
            row_from(claimed, stay, s).where(exists(select(gate.c.booking_id))))
            .returning(s.stay_id, s.room).cte("new_stay"))
        new_key = (insert(m.room_keys).from_select(list(key) + ["room"],
                                                   row_from(new_stay, key, k))
                   .returning(k.key_hash).cte("new_key"))
        ctes = [new_key]
        if registrations:
            columns = list(registrations[0])
            rows = [row_from(new_stay, row, g) for row in registrations]
            source = rows[0] if len(rows) == 1 else union_all(*rows)
            ctes.append(insert(m.registrations).from_select(columns + ["room"], source)
                        .returning(g.id).cte("new_registrations"))
        counted = [select(func.count()).select_from(c).scalar_subquery() for c in ctes]
        result = session.execute(
            select(claimed.c.number,
                   select(func.count()).select_from(new_stay).scalar_subquery(), *counted)
        ).first()
        if result is None:
            return None, False
        return result[0], result[1] == 1

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
