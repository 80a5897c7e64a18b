"""The check-in, check-out and housekeeping workflows.

Each function takes the service worker (`svc`: its injected dependencies and
config) so service.py stays a list of thin entrypoints. Rules come from
rules.py; everything a request changes commits in one transaction.
"""
import functools
import hmac
import logging
import time
import uuid

from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError

from shared import events, idnumber, metrics, qr
from shared.clock import city_zone
from shared.config import setting
from shared.errors import ApiError
from shared.http import authorization

from services.checkin import models as m
from services.checkin import rules
from services.checkin.keys import key_hash, new_key
from services.checkin.schemas import HotelRooms, id_kind

log = logging.getLogger(__name__)

SETTLEMENT = {"credit": "charged_after_departure", "deposit": "settled_at_desk"}


ROOM_PLACEHOLDER = "?"  # checkin.completed's room until the check-in statement claims one


class _NoRoom(Exception):
    """Leaves the check-in transaction (rolled back) when no room is ready."""


def refuse(decision):
    metrics.DECISIONS.labels("checkin", "refused", decision.code).inc()
    raise ApiError(decision.code, decision.reason)


# -- who may call -------------------------------------------------------------

def device_hotel(device):
    if not device.get("hotel_id"):
        raise ApiError("forbidden", "this device belongs to no hotel")
    return device["hotel_id"]


def desk_or_operator(svc, request, hotel_id):
    """Housekeeping callers: the admin token, or a desk/kiosk of this hotel."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        operator(svc, request)
        return
    device = svc.devices.authenticate(request, kinds=("desk", "kiosk"))
    if device_hotel(device) != hotel_id:
        raise ApiError("forbidden", "this device belongs to another hotel")


def operator(svc, request):
    token = authorization(request, "Bearer")
    if not hmac.compare_digest(token.encode(), setting(svc.config, "ADMIN_TOKEN").encode()):
        raise ApiError("unauthenticated", "unknown admin token")


# -- finding the booking ---------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _verifying_key(public_hex):
    return qr.verifying_key(public_hex)


def qr_public_key(config):
    public = setting(config, "QR_PUBLIC_KEY")
    if not public:
        public = qr.public_key_hex(qr.signing_key(setting(config, "QR_SIGNING_KEY")))
    return _verifying_key(public)


def card_hash(config, number):
    """(keyed hash, id type) of a number read from an ID card or passport."""
    kind = id_kind(number)
    return idnumber.id_hash(setting(config, "ID_HASH_KEY"), number, kind), kind


def find_credential(svc, hotel_id, data, today):
    medium, value = data["medium"], data["value"]
    if medium == "id_card":
        hashed, _ = card_hash(svc.config, value)
        return svc.credentials.by_id_card(hotel_id, rules.lookup_days(today), hashed)
    if medium == "qr":
        status, credential_id = qr.verify(qr_public_key(svc.config), value)
        if status == "expired_code":
            raise ApiError("not_found", "the QR code has expired: refresh it in the app")
        if status != "ok":
            raise ApiError("not_found", "the QR code is not recognised")
        return svc.credentials.get(credential_id)
    return svc.credentials.by_code(value.strip())


def read_card(svc, data):
    """(hash, masked number, id type) of the ID card read at the desk, if any."""
    number = data["value"] if data["medium"] == "id_card" else data.get("id_number")
    if number is None:
        return None, None, None
    hashed, kind = card_hash(svc.config, number)
    return hashed, idnumber.mask(number), kind


# -- check-in ----------------------------------------------------------------------

def check_in(svc, device, data, received):
    """The one call: find, verify, assign a room, issue a key, register."""
    hotel_id = device_hotel(device)
    zone = city_zone(svc.config)
    now = received.astimezone(zone)
    started = data["started_at"] or received
    if rules.duration_ms(started, received) is None:
        raise ApiError("validation_error", "the request is invalid", fields={
            "started_at": ["must be within the last hour and not in the future"]})
    record = find_credential(svc, hotel_id, data, now.date())
    id_hash, id_masked, id_type = read_card(svc, data)
    decision = rules.evaluate(record, hotel_id, now, id_hash=id_hash, face=data["face"])
    if not decision:
        refuse(decision)

    try:
        result = _assign_and_issue(svc, device, data, record, started, id_hash, id_masked,
                                   id_type, zone)
    except _NoRoom:
        _refuse_if_settled(svc, record)  # already checked in or cancelled beats no room
        if not _import_rooms_if_none(svc, hotel_id):
            refuse(rules.deny("no_room_ready", "no clean or inspected vacant room of this type"))
        try:
            result = _assign_and_issue(svc, device, data, record, started, id_hash, id_masked,
                                       id_type, zone)
        except _NoRoom:
            refuse(rules.deny("no_room_ready", "no clean or inspected vacant room of this type"))
    metrics.DECISIONS.labels("checkin", "checked_in", "ok").inc()
    return result


def _assign_and_issue(svc, device, data, record, started, id_hash, id_masked, id_type, zone):
    hotel_id, booking_id = record["target_id"], record["booking_id"]
    stay_id = uuid.uuid4().hex
    valid_until = rules.checkout_deadline(record, zone)
    key = new_key()
    try:
        with svc.hotels.session() as session:
            hashed = key_hash(key)
            room, added = svc.hotels.check_in(
                session,
                stay={"stay_id": stay_id, "booking_id": booking_id,
                      "credential_id": record["credential_id"], "hotel_id": hotel_id,
                      "room_type": record.get("room_type"), "status": m.IN_HOUSE,
                      "payment_mode": data["payment_mode"],
                      "guest_name_masked": record["holder_name_masked"],
                      "medium": data["medium"], "face_used": data["face"] is not None,
                      "device_id": device.get("device_id"), "started_at": started,
                      "valid_until": valid_until},
                key={"key_hash": hashed, "valid_until": valid_until},
                registrations=registrations_for(record, id_hash, id_masked, id_type),
                # the statement writes the room it claims into the payload
                event=svc.outbox.row(events.CHECKIN_COMPLETED, {
                    "stay_id": stay_id, "booking_id": booking_id, "hotel_id": hotel_id,
                    "room": ROOM_PLACEHOLDER}))
            if room is None:
                raise _NoRoom()
            if not added:
                refuse(rules.not_cancelled(record, cancelled_locally=True))
            # Redis last, inside the transaction: if Redis fails, nothing commits
            svc.keys.put(hashed, stay_id, hotel_id, room, valid_until.timestamp())
    except IntegrityError:
        # a stay for this booking exists (or another desk's just committed):
        # the unique booking_id refused ours; say why from that stay
        with svc.hotels.session() as session:
            status = svc.hotels.stay_status_of_booking(session, booking_id)
        refuse(rules.not_checked_in(status or m.IN_HOUSE))
    svc.police.registered()
    return {"stay_id": stay_id, "booking_id": booking_id, "room": room, "key": key,
            "valid_until": valid_until.isoformat(),
            "guest": {"name_masked": record["holder_name_masked"]},
            "payment_mode": data["payment_mode"]}


def _refuse_if_settled(svc, record):
    """The booking's own state, read only on the rare no-room path."""
    with svc.hotels.session() as session:
        status = svc.hotels.stay_status_of_booking(session, record["booking_id"])
        cancelled = svc.hotels.is_cancelled(session, record["booking_id"])
    for decision in (rules.not_cancelled(record, cancelled), rules.not_checked_in(status)):
        if not decision:
            refuse(decision)


def registrations_for(record, id_hash, id_masked, id_type):
    """One police registration per guest of the booking. Booking keeps real
    names; we have the holder's masked name and every guest's ID hash. The
    card read at the desk adds its masked number and foreign-guest flag.
    (Stay, room and times are added by the check-in statement.)"""
    rows = []
    for number, hashed in enumerate(record["id_hashes"]):
        read_here = hashed == id_hash
        rows.append({
            "guest_no": number + 1,
            "name_masked": record["holder_name_masked"] if number == 0 else "",
            "id_hash": hashed, "id_masked": id_masked if read_here else None,
            "id_checked": read_here,
            "foreign_guest": rules.foreign_guest(id_type) if read_here else False})
    return rows


def _import_rooms_if_none(svc, hotel_id):
    """A hotel we have no rooms for (hotel.created not seen yet): ask
    booking's catalogue. True if rooms were added."""
    with svc.hotels.session() as session:
        if svc.hotels.has_rooms(session, hotel_id):
            return False
    answer = svc.booking.call("get_hotel_rooms", hotel_id=hotel_id)
    if not answer:
        return False
    try:
        room_types = HotelRooms(many=True).load(answer.get("room_types") or [])
    except ValidationError:
        log.warning("booking returned an unusable room list for hotel %s", hotel_id)
        return False
    with svc.hotels.session() as session:
        return svc.hotels.add_rooms(session, hotel_id, room_types) > 0


# -- check-out ---------------------------------------------------------------------

def check_out(svc, device, stay_id, data):
    """Zero-second check-out: key revoked, room dirty, stay closed, event.
    A repeat of a finished check-out answers the same (safe retry)."""
    hotel_id = device_hotel(device)
    with svc.hotels.session() as session:
        store = svc.hotels
        stay = store.stay_for_update(session, stay_id)
        if stay is None or stay["hotel_id"] != hotel_id:
            raise ApiError("not_found", "stay not found")
        if stay["status"] == m.CHECKED_OUT:
            return _checkout_body(stay, stay["payment_mode"], stay["checked_out_at"])
        if stay["status"] != m.IN_HOUSE:
            raise ApiError("not_in_house", "the stay is %s" % stay["status"])
        payment_mode = data.get("payment_mode") or stay["payment_mode"]
        hashes = store.revoke_keys(session, stay_id)
        closed_at = store.close_stay(session, stay_id, m.CHECKED_OUT, payment_mode)
        _release_room(svc, session, stay)
        svc.outbox.add(session, events.CHECKIN_CHECKED_OUT, {
            "stay_id": stay_id, "booking_id": stay["booking_id"], "hotel_id": hotel_id,
            "room": stay["room"]})
        svc.keys.revoke(hashes)  # before commit: a key may die early, never late
    return _checkout_body(stay, payment_mode, closed_at)


def _checkout_body(stay, payment_mode, closed_at):
    return {"stay_id": stay["stay_id"], "status": m.CHECKED_OUT, "room": stay["room"],
            "payment_mode": payment_mode, "settlement": SETTLEMENT[payment_mode],
            "checked_out_at": closed_at.isoformat()}


def _release_room(svc, session, stay):
    """The guest left: the room is vacant and dirty."""
    room = svc.hotels.room_for_update(session, stay["hotel_id"], stay["room"])
    if room is None or room["stay_id"] != stay["stay_id"]:
        return
    svc.hotels.set_condition(session, stay["hotel_id"], stay["room"], "dirty", vacate=True)
    if room["condition"] != "dirty":
        svc.outbox.add(session, events.ROOM_CONDITION_CHANGED, {
            "hotel_id": stay["hotel_id"], "room": stay["room"], "condition": "dirty",
            "previous": room["condition"]})


def load_event(event_type, body):
    """The event's payload, or None when malformed (requeueing it would loop)."""
    try:
        return events.load(event_type, body)
    except ValidationError as exc:
        log.error("dropping a malformed %s event: %s", event_type, exc.messages)
        return None


def booking_cancelled(svc, payload):
    """booking.cancelled: refuse later check-ins, revoke a live stay's key."""
    if payload is None:
        return
    booking_id = payload["booking_id"]
    with svc.hotels.session() as session:
        store = svc.hotels
        if not events.first_delivery(session, m.processed_events, payload["event_id"],
                                     "checkin.on_booking_cancelled"):
            return
        store.mark_cancelled(session, booking_id)
        hashes = []
        for stay in store.stays_of_booking_for_update(session, booking_id):
            if stay["status"] != m.IN_HOUSE:
                continue
            hashes += store.revoke_keys(session, stay["stay_id"])
            store.close_stay(session, stay["stay_id"], m.CANCELLED)
            _release_room(svc, session, stay)
        svc.keys.revoke(hashes)


# -- rooms ------------------------------------------------------------------------

def hotel_created(svc, payload):
    if payload is None:
        return
    try:
        room_types = HotelRooms(many=True).load(payload["room_types"])
    except ValidationError as exc:
        # a malformed event would loop forever if requeued: log and drop it
        log.error("hotel.created %s has bad room types: %s", payload["hotel_id"], exc.messages)
        return
    with svc.hotels.session() as session:
        if events.first_delivery(session, m.processed_events, payload["event_id"],
                                 "checkin.on_hotel_created"):
            svc.hotels.add_rooms(session, payload["hotel_id"], room_types)


def list_rooms(svc, hotel_id):
    with svc.hotels.session() as session:
        rows = svc.hotels.rooms_of(session, hotel_id)
    return {"hotel_id": hotel_id, "rooms": [
        {"room": r["number"], "room_type": r["room_type"], "floor": r["floor"],
         "condition": r["condition"], "occupied": r["stay_id"] is not None,
         "stay_id": r["stay_id"]} for r in rows]}


def change_condition(svc, hotel_id, number, condition):
    with svc.hotels.session() as session:
        room = svc.hotels.room_for_update(session, hotel_id, number)
        if room is None:
            raise ApiError("not_found", "room not found")
        decision = rules.condition_change(room["condition"], condition,
                                          room["stay_id"] is not None)
        if not decision:
            raise ApiError(decision.code, decision.reason)
        if decision.reason != "unchanged":
            svc.hotels.set_condition(session, hotel_id, number, condition)
            svc.outbox.add(session, events.ROOM_CONDITION_CHANGED, {
                "hotel_id": hotel_id, "room": number, "condition": condition,
                "previous": room["condition"]})
    return {"room": number, "room_type": room["room_type"], "floor": room["floor"],
            "condition": condition, "occupied": room["stay_id"] is not None,
            "stay_id": room["stay_id"]}


# -- locks and stats ------------------------------------------------------------------

def unlock(svc, device, room, key):
    hashed = key_hash(key)
    record = svc.keys.get(hashed)
    if record is None:
        record = _restore_key(svc, hashed)
    decision = rules.unlock(record, room, device_hotel(device), time.time())
    metrics.DECISIONS.labels("checkin", "open" if decision else "deny", decision.code).inc()
    return {"decision": "open" if decision else "deny", "reason": decision.code,
            "explanation": decision.reason}


def _restore_key(svc, hashed):
    """Redis lost the key (failover, eviction): the database has it."""
    with svc.hotels.session() as session:
        row = svc.hotels.key_record(session, hashed)
    if row is None:
        return None
    svc.keys.put(hashed, row["stay_id"], row["hotel_id"], row["room"],
                 row["valid_until"].timestamp(), revoked=row["revoked_at"] is not None)
    return svc.keys.get(hashed)


def checkin_stats(svc, hotel_id):
    with svc.hotels.session() as session:
        count, p50, p95, under = svc.hotels.checkin_stats(session, hotel_id, rules.BUDGET_MS)
    return rules.stats_summary(count, p50, p95, under)
