"""Booking's domain rules: plain functions returning a Decision, no broker,
no database. The storage code asks these and raises the decision's code.

Status machine (bookings.status):
    confirmed --cancel--------> cancelled      (tourist; releases inventory)
    confirmed --entry.admitted-> used          (venue ticket; entries counted)
    used      --entry.annulled-> confirmed     (when the last admission is undone)
    confirmed --checkin.completed--> in_house  (hotel stay)
    in_house  --checkin.checked_out-> departed
Only `confirmed` can be cancelled; the rest are facts reported by the gate or desk.
"""
import datetime
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

# Booking codes for desks: no 0/O, 1/I/L, so a clerk can read one aloud.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
MAX_NIGHTS = 30
MAX_ADVANCE_DAYS = 365
WHOLE_DAY_SLOT = {"slot": "day", "start": "00:00", "end": "23:59"}


@dataclass(frozen=True)
class Decision:
    ok: bool
    reason: str = "ok"          # an error code from shared.errors when not ok
    message: str = ""
    field: str = None           # for validation errors: which field

    def __bool__(self):
        return self.ok


OK = Decision(True)


def refuse(reason, message, field=None):
    return Decision(False, reason, message, field)


# -- dates ------------------------------------------------------------------

def nights(check_in, check_out):
    """The nights of a stay: check_in up to the day before check_out."""
    return [check_in + datetime.timedelta(days=i) for i in range((check_out - check_in).days)]


def check_stay(check_in, check_out, today):
    if check_in < today:
        return refuse("validation_error", "must not be in the past", "check_in")
    if check_in > today + datetime.timedelta(days=MAX_ADVANCE_DAYS):
        return refuse("validation_error", "at most %d days ahead" % MAX_ADVANCE_DAYS, "check_in")
    if check_out <= check_in:
        return refuse("validation_error", "must be after check_in", "check_out")
    if (check_out - check_in).days > MAX_NIGHTS:
        return refuse("validation_error", "a stay is at most %d nights" % MAX_NIGHTS, "check_out")
    return OK


def check_day(day, today, field="date"):
    if day < today:
        return refuse("validation_error", "must not be in the past", field)
    if day > today + datetime.timedelta(days=MAX_ADVANCE_DAYS):
        return refuse("validation_error", "at most %d days ahead" % MAX_ADVANCE_DAYS, field)
    return OK


# -- party ------------------------------------------------------------------

def party_fits(size, max_guests, field="guests"):
    if size > max_guests:
        return refuse("validation_error", "this room type takes at most %d guests" % max_guests,
                      field)
    return OK


def distinct_people(id_hashes, field):
    """The same ID number twice in one booking is a typo or hoarding."""
    seen = set()
    for i, h in enumerate(id_hashes):
        if h in seen:
            return refuse("validation_error", "the same ID number appears twice",
                          "%s.%d.id_number" % (field, i))
        seen.add(h)
    return OK


# -- inventory --------------------------------------------------------------

def rooms_free(stay_nights, counters, units=1):
    """Can `units` rooms be sold for every night? `counters` maps night ->
    (capacity, sold), read under row locks. All nights or nothing."""
    for night in stay_nights:
        capacity, sold = counters[night]
        if sold + units > capacity:
            return refuse("sold_out", "no room of this type is free on %s" % night.isoformat())
    return OK


def tickets_free(slot_counter, day_counter, units):
    """Both the slot's quota and the venue's daily capacity must hold."""
    capacity, sold = slot_counter
    if sold + units > capacity:
        return refuse("sold_out", "this slot is sold out")
    capacity, sold = day_counter
    if sold + units > capacity:
        return refuse("sold_out", "the venue is sold out for this day")
    return OK


def remaining(slot_counter, day_counter):
    """Tickets still on sale for a slot (never negative)."""
    return max(0, min(slot_counter[0] - slot_counter[1], day_counter[0] - day_counter[1]))


def holders_free(wanted, inserted):
    """Per-ID limit: every visitor's (venue, day, id) row must have been new."""
    if inserted < wanted:
        return refuse("limit_exceeded", "an ID number already holds a ticket for this venue "
                                        "on this day")
    return OK


# -- status machine ---------------------------------------------------------

def can_cancel(status):
    if status == "cancelled":
        return refuse("already_cancelled", "the booking is already cancelled")
    if status != "confirmed":
        return refuse("not_cancellable", "a booking that is %s cannot be cancelled" % status)
    return OK


def after_admission(status):
    """New status when a gate admitted the ticket, or None to leave it."""
    return "used" if status in ("confirmed", "used") else None


def after_annulment(status, entries_left):
    if status == "used" and entries_left <= 0:
        return "confirmed"
    return None


def after_checkin(status):
    return "in_house" if status == "confirmed" else None


def after_checkout(status):
    return "departed" if status in ("confirmed", "in_house") else None


def credential_status(status):
    """Only a cancelled booking revokes its credential; used / in-house ones
    still open doors (the gate and desk keep their own single-use state)."""
    return "cancelled" if status == "cancelled" else "active"


def can_show_qr(status):
    if status == "cancelled":
        return refuse("cancelled", "the booking is cancelled")
    return OK


# -- codes and idempotency --------------------------------------------------

def new_code(randbelow=secrets.randbelow):
    return "".join(CODE_ALPHABET[randbelow(len(CODE_ALPHABET))] for _ in range(CODE_LENGTH))


def looks_like_code(text):
    text = (text or "").upper()
    return len(text) == CODE_LENGTH and all(c in CODE_ALPHABET for c in text)


def request_hash(key, body):
    """Fingerprint of a validated booking body, to tell a retry from a
    different request under the same Idempotency-Key. Keyed (HMAC) because the
    body holds ID numbers: a plain hash of so few possibilities is reversible."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str,
                           ensure_ascii=False)
    return hmac.new(key.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def same_request(stored_hash, new_hash):
    if hmac.compare_digest(stored_hash, new_hash):
        return OK
    return refuse("idempotency_conflict",
                  "this Idempotency-Key was used for a different request")


def token_hash(token):
    return hashlib.sha256(token.encode()).hexdigest()
