"""Gate decisions as plain functions: (record, gate, state, now) -> Decision.

`check_ticket` is everything decidable from the credential record and the
clock; `check_state` is what depends on the live counters. At runtime both
run inside one Redis Lua script (services/entry/scan.lua: one round trip, and
two gates cannot both pass it); these functions are its readable reference,
kept in step by tests/integration/test_entry_lua.py (the same matrix through
both), and document the order in docs/entry.md. A refusal's detailed
explanation (slot opens at..., the ticket is for <date>) still comes from
`check_ticket`.
"""
import datetime
from collections import namedtuple

Decision = namedtuple("Decision", "admit reason explanation")

OK = "ok"
REASONS = ("ok", "unknown", "tampered", "expired_code", "not_yet_valid", "expired",
           "wrong_venue", "cancelled", "already_used", "not_exited", "capacity_full", "blocked")

# A timed ticket opens this long before its slot starts and closes at slot end.
EARLY_ENTRY = datetime.timedelta(minutes=30)
ANNUL_WINDOW = datetime.timedelta(minutes=15)
LEVELS = (90, 75, 50)  # percent of instantaneous capacity that raise an event

EXPLANATIONS = {
    "ok": "welcome",
    "unknown": "no ticket found for this code, card or face",
    "tampered": "this code was not issued by Duoyou or has been altered",
    "expired_code": "this code is too old or not yet valid; refresh it in the app",
    "not_yet_valid": "this ticket is not valid yet",
    "expired": "this ticket is no longer valid",
    "wrong_venue": "this ticket is for another venue",
    "cancelled": "this booking was cancelled",
    "already_used": "this ticket has already been used",
    "not_exited": "this ticket is already inside; exit first to enter again",
    "capacity_full": "the venue is full right now; please wait",
    "blocked": "this ticket is blocked; please see staff",
}


def admit(explanation=None):
    return Decision(True, OK, explanation or EXPLANATIONS[OK])


def deny(reason, explanation=None):
    return Decision(False, reason, explanation or EXPLANATIONS[reason])


def _local(now, hhmm):
    hour, minute = (int(x) for x in hhmm.split(":"))
    return now.replace(hour=hour, minute=minute, second=0, microsecond=0)


def check_validity(record, now):
    """Date and slot window. `now` is an aware datetime in the city zone."""
    today = now.date()
    first = datetime.date.fromisoformat(record["valid_from"])
    last = datetime.date.fromisoformat(record["valid_until"])
    if today < first:
        return deny("not_yet_valid", "this ticket is for %s" % record["valid_from"])
    if today > last:
        return deny("expired", "this ticket was for %s" % record["valid_until"])
    if record.get("slot_start"):
        opens = _local(now, record["slot_start"]) - EARLY_ENTRY
        if now < opens:
            return deny("not_yet_valid", "slot %s opens at %s (entry from %s)" % (
                record.get("slot") or "", record["slot_start"], opens.strftime("%H:%M")))
    if record.get("slot_end"):
        if now > _local(now, record["slot_end"]):
            return deny("expired", "slot %s ended at %s" % (record.get("slot") or "",
                                                            record["slot_end"]))
    return admit()


def check_ticket(record, gate, now):
    """What the record and the clock alone decide, in this order:
    unknown, wrong_venue, cancelled, then (entry gates only) the validity
    window. Exit gates only need to know the ticket is theirs: nobody is
    kept inside because a slot ended."""
    if record is None:
        return deny("unknown")
    if record.get("target_type") != "venue" or record.get("target_id") != gate.get("venue_id"):
        return deny("wrong_venue")
    if gate.get("direction") == "out":
        return admit("exit recorded")
    if record.get("status") != "active":
        return deny("cancelled")
    return check_validity(record, now)


def check_state(record, gate, state):
    """The live part, as the Lua script applies it. `state`: in, out (this
    credential's entries and exits), revoked (None, "cancelled" or
    "blocked"), inside, admitted (the venue today), instantaneous_capacity,
    daily_capacity (0 = no cap). Each scan is one person."""
    if gate.get("direction") == "out":
        return admit("exit recorded")
    if state.get("revoked"):
        return deny(state["revoked"])
    party = int(record.get("party_size") or 1)
    entries, exits = state.get("in", 0), state.get("out", 0)
    if (record.get("entry_policy") or "single") == "multi":
        if entries - exits >= party:
            return deny("not_exited")
    elif entries >= party:
        return deny("already_used")
    first_visit = entries < party  # counts toward the daily figure
    cap = state.get("instantaneous_capacity") or 0
    if cap > 0 and state.get("inside", 0) + 1 > cap:
        return deny("capacity_full", "the venue is at its limit of %d people inside" % cap)
    daily = state.get("daily_capacity") or 0
    if first_visit and daily > 0 and state.get("admitted", 0) + 1 > daily:
        return deny("capacity_full", "today's limit of %d visitors is reached" % daily)
    return admit()


def decide(record, gate, state, now):
    """The whole decision for one scan."""
    decision = check_ticket(record, gate, now)
    if not decision.admit:
        return decision
    return check_state(record, gate, state)


def level(inside, capacity):
    """The highest band of LEVELS reached, or 0."""
    if not capacity or capacity <= 0:
        return 0
    for band in LEVELS:
        if inside * 100 >= band * capacity:
            return band
    return 0


def level_change(before, after, capacity):
    """(previous, new) level when a change of `inside` crosses a band, else None."""
    old, new = level(before, capacity), level(after, capacity)
    return (old, new) if old != new else None


def can_annul(scan, gate_id, now):
    """A turnstile that did not turn: the same gate, an admission, within the window."""
    if scan["gate_id"] != gate_id:
        return deny("unknown", "this scan was not made by this gate")
    if scan["direction"] != "in" or scan["decision"] != "admit":
        return deny("unknown", "only an admission can be annulled")
    if now - scan["created_at"] > ANNUL_WINDOW:
        return deny("expired", "an admission can only be annulled within 15 minutes")
    return admit("admission annulled")
