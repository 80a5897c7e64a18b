"""services/checkin/rules.py: every decision without a broker or database."""
import datetime
import zoneinfo

import pytest

from services.checkin import rules

SH = zoneinfo.ZoneInfo("Asia/Shanghai")


def at(day, hour=12, minute=0):
    return datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=SH)


D = datetime.date(2026, 11, 29)


def record(**kw):
    base = {"kind": "hotel_stay", "target_id": "h1", "booking_id": "b1", "status": "active",
            "valid_from": D.isoformat(), "valid_until": (D + datetime.timedelta(days=2)).isoformat(),
            "id_hashes": ["hash-a", "hash-b"], "room_type": "king"}
    base.update(kw)
    return base


def test_decision_is_falsy_when_refused():
    assert rules.allow() and not rules.deny("not_found", "x")
    assert rules.deny("cancelled", "because").reason == "because"


@pytest.mark.parametrize("rec, code", [
    (None, "not_found"),
    (record(kind="venue_ticket"), "not_found"),
    (record(target_id="h2"), "wrong_hotel"),
    (record(status="cancelled"), "cancelled"),
    (record(valid_from=(D + datetime.timedelta(days=1)).isoformat()), "not_today"),
])
def test_evaluate_refusals(rec, code):
    decision = rules.evaluate(rec, "h1", at(D))
    assert not decision and decision.code == code


def test_evaluate_order_wrong_hotel_before_cancelled_before_day():
    rec = record(target_id="h2", status="cancelled", valid_from="2020-01-01", valid_until="2020-01-02")
    assert rules.evaluate(rec, "h1", at(D)).code == "wrong_hotel"
    rec["target_id"] = "h1"
    assert rules.evaluate(rec, "h1", at(D)).code == "cancelled"
    assert rules.evaluate(record(), "h1", at(D), cancelled_locally=True).code == "cancelled"


def test_arrival_day_window():
    rec = record()                                      # nights of D and D+1, leaves D+2
    assert rules.arrival_day(rec, at(D, 0, 5))          # early arrival: from 00:00 of arrival day
    assert rules.arrival_day(rec, at(D + datetime.timedelta(days=1), 22))   # late arrival
    assert rules.arrival_day(rec, at(D + datetime.timedelta(days=2), 5, 59))  # before night audit
    assert rules.arrival_day(rec, at(D + datetime.timedelta(days=2), 6)).code == "not_today"
    assert rules.arrival_day(rec, at(D - datetime.timedelta(days=1), 23, 59)).code == "not_today"


def test_hotel_day_turns_at_the_night_audit():
    assert rules.hotel_day(at(D, 5, 59)) == D - datetime.timedelta(days=1)
    assert rules.hotel_day(at(D, 6, 0)) == D


def test_lookup_days_today_then_late_then_tomorrow():
    days = rules.lookup_days(D)
    assert days[0] == D and days[1] == D - datetime.timedelta(days=1)
    assert days[-1] == D + datetime.timedelta(days=1)
    assert len(days) == rules.LATE_LOOKUP_DAYS + 2


def test_identity():
    rec = record()
    assert rules.identity(rec)                                     # ID card lookup alone
    assert rules.identity(rec, id_hash="hash-b")
    assert rules.identity(rec, id_hash="hash-z").code == "identity_mismatch"
    assert rules.identity(rec, face={"consent": True, "score": 0.8})
    assert rules.identity(rec, face={"consent": True, "score": 0.79}).code == "identity_mismatch"
    assert rules.identity(rec, face={"consent": False, "score": 0.99}).code == "identity_mismatch"


def test_not_checked_in():
    assert rules.not_checked_in(None)
    assert rules.not_checked_in("in_house").code == "already_checked_in"
    assert rules.not_checked_in("checked_out").code == "already_checked_in"
    assert rules.not_checked_in("cancelled").code == "cancelled"


def test_checkout_deadline_is_noon_of_departure_day():
    deadline = rules.checkout_deadline(record(), SH)
    assert deadline == datetime.datetime(2026, 12, 1, 12, 0, tzinfo=SH)


def test_floor_and_room_order():
    assert rules.floor_of("1201") == 12 and rules.floor_of("305") == 3
    assert rules.floor_of("A1") == 0 and rules.floor_of("12") == 0
    rooms = [{"number": n, "condition": c, "room_type": "king"} for n, c in
             [("1201", "clean"), ("305", "clean"), ("1202", "inspected"), ("301", "dirty"),
              ("1105", "inspected"), ("310", "clean")]]
    ok, room = rules.choose_room(rooms, "king")
    assert ok and room["number"] == "1105"          # inspected first, then lowest floor
    rooms = [r for r in rooms if r["condition"] != "inspected"]
    assert rules.choose_room(rooms, "king")[1]["number"] == "305"
    occupied = [dict(r, occupied=True) for r in rooms]
    assert rules.choose_room(occupied, "king")[0].code == "no_room_ready"
    assert rules.choose_room(rooms, "twin")[0].code == "no_room_ready"
    assert rules.choose_room(rooms, None)[1]["number"] == "305"


def test_condition_transitions():
    assert rules.condition_change("dirty", "clean", False)
    assert rules.condition_change("clean", "inspected", False)
    assert rules.condition_change("dirty", "inspected", False).code == "conflict"
    assert rules.condition_change("out_of_order", "clean", False).code == "conflict"
    assert rules.condition_change("clean", "out_of_order", True).code == "conflict"
    assert rules.condition_change("clean", "clean", False).reason == "unchanged"
    assert rules.condition_change("clean", "shiny", False).code == "validation_error"
    for source, targets in rules.TRANSITIONS.items():
        assert source not in targets and targets <= set(rules.CONDITIONS)


def test_unlock():
    key = {"stay_id": "s", "hotel_id": "h1", "room": "1201", "valid_until": 1000.0}
    assert rules.unlock(key, "1201", "h1", 999.0)
    assert rules.unlock(None, "1201", "h1", 0).code == "unknown_key"
    assert rules.unlock(key, "1201", "h2", 0).code == "unknown_key"
    assert rules.unlock(key, "1202", "h1", 0).code == "wrong_room"
    assert rules.unlock(key, "1201", "h1", 1000.0).code == "expired"
    assert rules.unlock(dict(key, revoked=True), "1201", "h1", 0).code == "revoked"


def test_retry_backoff_grows_and_is_capped():
    delays = [rules.retry_delay(n, base=2, cap=60) for n in range(1, 8)]
    assert delays == [2, 4, 8, 16, 32, 60, 60]


def test_stats_summary_and_duration():
    assert rules.stats_summary(0, None, None, 0)["count"] == 0
    assert rules.stats_summary(4, 1234.56, 40000.0, 3) == {
        "count": 4, "p50_ms": 1234.6, "p95_ms": 40000.0, "share_under_30s": 0.75}
    t = at(D)
    assert rules.duration_ms(t - datetime.timedelta(seconds=12), t) == 12000
    assert rules.duration_ms(t + datetime.timedelta(seconds=2), t) == 0       # small clock skew
    assert rules.duration_ms(t + datetime.timedelta(seconds=60), t) is None
    assert rules.duration_ms(t - datetime.timedelta(hours=2), t) is None
