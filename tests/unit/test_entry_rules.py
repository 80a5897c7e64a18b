"""services.entry.rules: plain decisions, no broker, no Redis."""
import datetime
import zoneinfo

import pytest

from services.entry import rules

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
DAY = datetime.date(2026, 11, 29)
GATE = {"device_id": "g1", "venue_id": "v1", "direction": "in"}
EXIT = dict(GATE, direction="out")


def at(hh, mm=0, day=DAY):
    return datetime.datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ)


def record(**kw):
    base = {"credential_id": "c1", "booking_id": "b1", "target_type": "venue",
            "target_id": "v1", "valid_from": DAY.isoformat(), "valid_until": DAY.isoformat(),
            "slot": None, "slot_start": None, "slot_end": None, "party_size": 1,
            "entry_policy": "single", "status": "active"}
    base.update(kw)
    return base


def state(**kw):
    base = {"in": 0, "out": 0, "revoked": None, "inside": 0, "admitted": 0,
            "instantaneous_capacity": 100, "daily_capacity": 1000}
    base.update(kw)
    return base


def test_every_reason_has_an_explanation():
    assert set(rules.EXPLANATIONS) == set(rules.REASONS)
    assert all(rules.EXPLANATIONS.values())


def test_admit_a_valid_ticket():
    d = rules.decide(record(), GATE, state(), at(10))
    assert d == rules.Decision(True, "ok", "welcome")


@pytest.mark.parametrize("rec, reason", [
    (None, "unknown"),
    (record(target_id="v2"), "wrong_venue"),
    (record(target_type="hotel"), "wrong_venue"),
    (record(status="cancelled"), "cancelled"),
    (record(valid_from="2026-11-30", valid_until="2026-11-30"), "not_yet_valid"),
    (record(valid_from="2026-11-28", valid_until="2026-11-28"), "expired"),
])
def test_ticket_refusals(rec, reason):
    d = rules.check_ticket(rec, GATE, at(10))
    assert (d.admit, d.reason) == (False, reason) and d.explanation


def test_wrong_venue_comes_before_cancelled():
    d = rules.check_ticket(record(target_id="v2", status="cancelled"), GATE, at(10))
    assert d.reason == "wrong_venue"


@pytest.mark.parametrize("now, reason", [
    (at(8, 29), "not_yet_valid"),   # 31 min before the slot
    (at(8, 30), "ok"),              # the 30-minute early window opens
    (at(9, 0), "ok"),
    (at(12, 0), "ok"),              # up to the slot's end
    (at(12, 1), "expired"),
])
def test_slot_window(now, reason):
    rec = record(slot="am", slot_start="09:00", slot_end="12:00")
    assert rules.check_ticket(rec, GATE, now).reason == reason


def test_slot_explanations_name_the_times():
    rec = record(slot="am", slot_start="09:00", slot_end="12:00")
    assert "08:30" in rules.check_ticket(rec, GATE, at(7)).explanation
    assert "12:00" in rules.check_ticket(rec, GATE, at(13)).explanation


def test_exit_gates_only_check_the_ticket_is_theirs():
    late = record(status="cancelled", valid_from="2026-11-28", valid_until="2026-11-28")
    assert rules.check_ticket(late, EXIT, at(10)).admit
    assert rules.check_ticket(record(target_id="v2"), EXIT, at(10)).reason == "wrong_venue"
    assert rules.check_state(record(), EXIT, state(revoked="cancelled")).admit


def test_single_entry_admits_each_person_of_the_party_once():
    rec = record(party_size=3)
    assert rules.check_state(rec, GATE, state(**{"in": 2})).admit
    assert rules.check_state(rec, GATE, state(**{"in": 3})).reason == "already_used"
    # leaving does not give a single-entry ticket back
    assert rules.check_state(rec, GATE, state(**{"in": 3, "out": 3})).reason == "already_used"


def test_multi_entry_anti_passback():
    rec = record(entry_policy="multi")
    assert rules.check_state(rec, GATE, state()).admit
    assert rules.check_state(rec, GATE, state(**{"in": 1})).reason == "not_exited"
    assert rules.check_state(rec, GATE, state(**{"in": 1, "out": 1})).admit
    party = record(entry_policy="multi", party_size=2)
    assert rules.check_state(party, GATE, state(**{"in": 1})).admit
    assert rules.check_state(party, GATE, state(**{"in": 2})).reason == "not_exited"


def test_revocation_wins_over_a_fresh_ticket():
    assert rules.check_state(record(), GATE, state(revoked="cancelled")).reason == "cancelled"
    assert rules.check_state(record(), GATE, state(revoked="blocked")).reason == "blocked"


def test_capacity():
    full_now = state(inside=100, instantaneous_capacity=100)
    d = rules.check_state(record(), GATE, full_now)
    assert d.reason == "capacity_full" and "100" in d.explanation
    full_today = state(admitted=1000, daily_capacity=1000)
    assert rules.check_state(record(), GATE, full_today).reason == "capacity_full"
    # a re-entry on a multi-entry ticket is not a new visitor for the daily cap
    back = record(entry_policy="multi")
    assert rules.check_state(back, GATE, dict(full_today, **{"in": 1, "out": 1})).admit
    # 0 means no cap
    assert rules.check_state(record(), GATE, state(inside=10 ** 6, admitted=10 ** 6,
                                                   instantaneous_capacity=0,
                                                   daily_capacity=0)).admit


def test_decision_order_ticket_before_state():
    d = rules.decide(record(status="cancelled"), GATE, state(**{"in": 1}), at(10))
    assert d.reason == "cancelled"
    d = rules.decide(record(), GATE, state(**{"in": 1}, inside=100,
                                           instantaneous_capacity=100), at(10))
    assert d.reason == "already_used"


@pytest.mark.parametrize("inside, band", [(0, 0), (49, 0), (50, 50), (74, 50), (75, 75),
                                          (89, 75), (90, 90), (100, 90), (120, 90)])
def test_levels(inside, band):
    assert rules.level(inside, 100) == band


def test_level_changes_up_and_down():
    assert rules.level_change(49, 50, 100) == (0, 50)
    assert rules.level_change(50, 49, 100) == (50, 0)
    assert rules.level_change(60, 61, 100) is None
    assert rules.level_change(1, 2, 4) == (0, 50)
    assert rules.level_change(1, 2, 0) is None


def test_annul_window():
    scan = {"gate_id": "g1", "direction": "in", "decision": "admit", "created_at": at(10)}
    assert rules.can_annul(scan, "g1", at(10, 15)).admit
    assert not rules.can_annul(scan, "g1", at(10, 16)).admit
    assert not rules.can_annul(scan, "g2", at(10, 1)).admit
    assert not rules.can_annul(dict(scan, decision="deny"), "g1", at(10, 1)).admit
    assert not rules.can_annul(dict(scan, direction="out"), "g1", at(10, 1)).admit
