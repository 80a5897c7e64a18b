"""Booking's domain rules, without a broker or a database."""
import datetime

import pytest

from services.booking import rules
from services.booking.seed import demo_key

TODAY = datetime.date(2026, 11, 29)


def d(n):
    return TODAY + datetime.timedelta(days=n)


def test_nights_are_arrival_to_the_day_before_departure():
    assert rules.nights(d(0), d(3)) == [d(0), d(1), d(2)]
    assert rules.nights(d(0), d(1)) == [d(0)]


@pytest.mark.parametrize("check_in,check_out,field", [
    (d(-1), d(1), "check_in"),                 # past
    (d(1), d(1), "check_out"),                 # not after check-in
    (d(2), d(1), "check_out"),
    (d(1), d(1 + rules.MAX_NIGHTS + 1), "check_out"),
    (d(rules.MAX_ADVANCE_DAYS + 1), d(rules.MAX_ADVANCE_DAYS + 2), "check_in"),
])
def test_bad_stays_name_the_field(check_in, check_out, field):
    decision = rules.check_stay(check_in, check_out, TODAY)
    assert not decision and decision.reason == "validation_error" and decision.field == field


def test_a_stay_from_today_is_fine():
    assert rules.check_stay(d(0), d(1), TODAY)
    assert rules.check_day(d(0), TODAY) and not rules.check_day(d(-1), TODAY)


def test_rooms_free_needs_every_night():
    nights = rules.nights(d(0), d(3))
    counters = {n: (2, 1) for n in nights}
    assert rules.rooms_free(nights, counters)
    counters[d(1)] = (2, 2)  # one full night refuses the whole stay
    decision = rules.rooms_free(nights, counters)
    assert not decision and decision.reason == "sold_out" and d(1).isoformat() in decision.message
    assert not rules.rooms_free([d(0)], {d(0): (2, 1)}, units=2)


def test_tickets_need_slot_quota_and_daily_capacity():
    assert rules.tickets_free((5, 3), (10, 3), 2)
    assert rules.tickets_free((5, 3), (10, 3), 3).reason == "sold_out"
    assert rules.tickets_free((5, 0), (10, 9), 2).reason == "sold_out"  # the day is the limit
    assert rules.remaining((5, 3), (10, 9)) == 1
    assert rules.remaining((5, 5), (10, 0)) == 0
    assert rules.remaining((5, 6), (10, 0)) == 0  # never negative


def test_per_id_limit_and_duplicates():
    assert rules.holders_free(2, 2)
    assert rules.holders_free(2, 1).reason == "limit_exceeded"
    decision = rules.distinct_people(["a", "b", "a"], "visitors")
    assert not decision and decision.field == "visitors.2.id_number"
    assert rules.distinct_people(["a", "b"], "guests")


def test_status_machine():
    assert rules.can_cancel("confirmed")
    assert rules.can_cancel("cancelled").reason == "already_cancelled"
    for status in ("used", "in_house", "departed"):
        assert rules.can_cancel(status).reason == "not_cancellable"
    assert rules.after_admission("confirmed") == "used"
    assert rules.after_admission("cancelled") is None
    assert rules.after_annulment("used", 0) == "confirmed"
    assert rules.after_annulment("used", 1) is None       # multi entry: still used
    assert rules.after_checkin("confirmed") == "in_house"
    assert rules.after_checkin("cancelled") is None
    assert rules.after_checkout("in_house") == "departed"
    assert rules.credential_status("used") == "active"
    assert rules.credential_status("cancelled") == "cancelled"
    assert rules.can_show_qr("cancelled").reason == "cancelled"


def test_codes_are_readable_and_distinct():
    codes = {rules.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in list(codes)[:50]:
        assert rules.looks_like_code(code) and not set(code) & set("01ILO")
    assert rules.new_code(lambda n: 0) == "A" * rules.CODE_LENGTH
    assert not rules.looks_like_code("ABCDEFG0")


def test_request_hash_is_keyed_and_order_independent():
    a = {"kind": "venue_ticket", "date": TODAY, "visitors": [{"name": "李四", "id_number": "X"}]}
    b = dict(reversed(list(a.items())))
    assert rules.request_hash("k", a) == rules.request_hash("k", b)
    assert rules.request_hash("k", a) != rules.request_hash("other", a)
    assert rules.request_hash("k", a) != rules.request_hash("k", dict(a, date=d(1)))
    assert rules.same_request(rules.request_hash("k", a), rules.request_hash("k", b))
    assert rules.same_request("0" * 64, "1" * 64).reason == "idempotency_conflict"


def test_demo_device_keys_are_deterministic_and_secret_dependent():
    assert demo_key("admin", "gate-1") == demo_key("admin", "gate-1")
    assert demo_key("admin", "gate-1") != demo_key("admin", "gate-2")
    assert demo_key("admin", "gate-1") != demo_key("other", "gate-1")
    assert demo_key("admin", "gate-1").startswith("dk_")
