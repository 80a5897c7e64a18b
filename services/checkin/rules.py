"""Check-in rules as plain functions: no broker, no database, no Redis.

Each returns a `Decision` (ok, code, reason). The service applies them in the
order of `DECISION_ORDER`; docs/checkin.md explains each rule.
"""
import datetime
import re
from dataclasses import dataclass

# -- decisions ---------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    ok: bool
    code: str          # "ok" or the contract's error code / lock reason
    reason: str        # human explanation, never containing an ID number

    def __bool__(self):
        return self.ok


def allow(reason="ok"):
    return Decision(True, "ok", reason)


def deny(code, reason):
    return Decision(False, code, reason)


DECISION_ORDER = ("not_found", "wrong_hotel", "cancelled", "not_today",
                  "identity_mismatch", "already_checked_in", "no_room_ready")

# -- arrival day -------------------------------------------------------------

# The hotel's day turns over at the night audit, 06:00: a guest arriving at
# 02:00 belongs to the previous evening's night.
NIGHT_AUDIT = datetime.time(6, 0)
# How many days after the arrival day a late guest is still looked up by ID
# card (the credential is keyed by its arrival day).
LATE_LOOKUP_DAYS = 6
CHECKOUT_TIME = datetime.time(12, 0)


def hotel_day(now):
    """The hotel night that `now` (city-zone aware datetime) belongs to."""
    day = now.date()
    return day - datetime.timedelta(days=1) if now.time() < NIGHT_AUDIT else day


def lookup_days(today):
    """Arrival days to try for an ID card, most likely first: today, earlier
    days (late arrival), then tomorrow (to say not_today rather than
    not_found to a guest a day early)."""
    late = [today - datetime.timedelta(days=n) for n in range(1, LATE_LOOKUP_DAYS + 1)]
    return [today] + late + [today + datetime.timedelta(days=1)]


def arrival_day(record, now):
    """May a guest with `record` check in at `now` (city time)?

    The stay's nights are valid_from .. valid_until - 1. Allowed from 00:00
    of the arrival day (an early arrival gets a ready room at once, no
    waiting for 14:00) until the night audit (06:00) after the last night
    (a late guest keeps the nights left). Otherwise not_today."""
    first = datetime.date.fromisoformat(record["valid_from"])
    departure = datetime.date.fromisoformat(record["valid_until"])
    if now.date() < first:
        return deny("not_today", "the stay starts on %s" % first.isoformat())
    if hotel_day(now) >= departure:
        return deny("not_today", "the stay ended on %s" % departure.isoformat())
    return allow()


def checkout_deadline(record, zone):
    """Key validity: departure day at 12:00 city time."""
    departure = datetime.date.fromisoformat(record["valid_until"])
    return datetime.datetime.combine(departure, CHECKOUT_TIME, tzinfo=zone)


# -- credential --------------------------------------------------------------

def credential_found(record):
    if record is None or record.get("kind") != "hotel_stay":
        return deny("not_found", "no hotel booking for this credential")
    return allow()


def right_hotel(record, hotel_id):
    if record["target_id"] != hotel_id:
        return deny("wrong_hotel", "the booking is for another hotel")
    return allow()


def not_cancelled(record, cancelled_locally=False):
    if record.get("status") == "cancelled" or cancelled_locally:
        return deny("cancelled", "the booking was cancelled")
    return allow()


# -- identity ----------------------------------------------------------------

# Minimum similarity reported by the device's on-device face matcher (0..1).
# Below it the desk must check the ID card by eye; the check-in is refused,
# never passed silently.
FACE_THRESHOLD = 0.80


def identity(record, id_hash=None, face=None):
    """The person matches the booking.

    `id_hash`: keyed hash of an ID card read at the desk (from the id_card
    medium, or the optional `id_number` sent with a QR or code) -- it must be
    one of the booking's guests. `face`: {consent, score}, only ever sent
    with consent (the schema refuses it otherwise); a low score refuses."""
    if id_hash is not None and id_hash not in record.get("id_hashes", ()):
        return deny("identity_mismatch", "the ID card is not one of this booking's guests")
    if face is not None:
        if not face.get("consent"):
            return deny("identity_mismatch", "face comparison needs the guest's consent")
        if face["score"] < FACE_THRESHOLD:
            return deny("identity_mismatch",
                        "face score below %.2f: check the ID card by eye" % FACE_THRESHOLD)
    return allow()


def not_checked_in(existing_status):
    """`existing_status`: status of a stay already made for this booking, or None."""
    if existing_status is None:
        return allow()
    if existing_status == "cancelled":
        return deny("cancelled", "the booking was cancelled")
    return deny("already_checked_in", "this booking has already checked in")


def evaluate(record, hotel_id, now, id_hash=None, face=None, cancelled_locally=False):
    """Every rule that needs only the credential, in the documented order."""
    for decision in (
            lambda: credential_found(record),
            lambda: right_hotel(record, hotel_id),
            lambda: not_cancelled(record, cancelled_locally),
            lambda: arrival_day(record, now),
            lambda: identity(record, id_hash, face)):
        result = decision()
        if not result:
            return result
    return allow()


# -- rooms -------------------------------------------------------------------

CONDITIONS = ("clean", "dirty", "inspected", "out_of_service", "out_of_order")
READY = ("inspected", "clean")

# Housekeeping moves. An inspected room went through clean; a room back from
# out of order or out of service is dirty until cleaned (or declared clean).
TRANSITIONS = {
    "dirty": {"clean", "out_of_service", "out_of_order"},
    "clean": {"inspected", "dirty", "out_of_service", "out_of_order"},
    "inspected": {"clean", "dirty", "out_of_service", "out_of_order"},
    "out_of_service": {"dirty", "clean", "out_of_order"},
    "out_of_order": {"dirty", "out_of_service"},
}

_DIGITS = re.compile(r"^[0-9]+$")


def floor_of(number):
    """1201 -> 12, 305 -> 3; a number that is not all digits is floor 0."""
    if not _DIGITS.match(number) or len(number) < 3:
        return 0
    return int(number[:-2])


def room_order(room):
    """Sort key of the assignment rule: inspected before clean, then lowest
    floor, then lowest number. `room` has condition and number."""
    number = room["number"]
    return (0 if room["condition"] == "inspected" else 1, floor_of(number),
            len(number), number)


def choose_room(rooms, room_type):
    """The room to assign from candidate rows, or a no_room_ready decision.
    (The database applies the same order under FOR UPDATE SKIP LOCKED.)"""
    ready = [r for r in rooms
             if r["condition"] in READY and not r.get("occupied")
             and (room_type is None or r["room_type"] == room_type)]
    if not ready:
        return deny("no_room_ready", "no clean or inspected vacant room of this type"), None
    return allow(), min(ready, key=room_order)


def condition_change(current, target, occupied):
    if target not in CONDITIONS:
        return deny("validation_error", "unknown condition %s" % target)
    if current == target:
        return allow("unchanged")
    if target not in TRANSITIONS[current]:
        return deny("conflict", "a %s room cannot become %s" % (current, target))
    if occupied and target == "out_of_order":
        return deny("conflict", "an occupied room cannot go out of order")
    return allow()


# -- keys --------------------------------------------------------------------

def unlock(record, room, hotel_id, now_epoch):
    """Door-lock decision from the key's Redis record (or None)."""
    if record is None:
        return deny("unknown_key", "this key is not known")
    if record.get("hotel_id") != hotel_id:
        return deny("unknown_key", "this key is not known")
    if record.get("revoked"):
        return deny("revoked", "this key was revoked")
    if record.get("room") != room:
        return deny("wrong_room", "this key is for another room")
    if now_epoch >= record["valid_until"]:
        return deny("expired", "this key has expired")
    return allow()


# -- police registration delivery ------------------------------------------

RETRY_BASE_SECONDS = 2.0
RETRY_MAX_SECONDS = 300.0


def retry_delay(attempts, base=RETRY_BASE_SECONDS, cap=RETRY_MAX_SECONDS):
    """Exponential backoff after `attempts` failed deliveries (1, 2, ...)."""
    return min(cap, base * (2 ** max(0, attempts - 1)))


def foreign_guest(id_type):
    return id_type != "resident"


# -- stats -------------------------------------------------------------------

BUDGET_MS = 30_000


def stats_summary(count, p50, p95, under):
    """The stats answer from the database's count, percentiles (percentile_cont,
    linear interpolation) and the number of check-ins under the 30 s budget."""
    if not count:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "share_under_30s": None}
    return {"count": count, "p50_ms": round(p50, 1), "p95_ms": round(p95, 1),
            "share_under_30s": round(under / count, 4)}


def duration_ms(started, finished, max_age_seconds=3600, tolerance_seconds=5):
    """Check-in duration; a `started` far in the past or in the future is a
    bad clock or bad input (None)."""
    seconds = (finished - started).total_seconds()
    if seconds < -tolerance_seconds or seconds > max_age_seconds:
        return None
    return max(0.0, seconds * 1000.0)
