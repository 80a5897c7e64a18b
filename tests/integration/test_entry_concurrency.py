"""Many gates at once: one admission per single-entry ticket, caps that hold,
anti-passback, and retried nonces, all through the HTTP port."""
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from services.entry.service import EntryService
from tests.integration.entry_helpers import (gate, occupancy, put_venue, scan, sql, ticket)


@pytest.fixture
def entry(start_services):
    return start_services(EntryService, extra_config={"max_workers": 50})


def _post(base, key, body):
    # one session per call: independent connections, as separate gates would have
    r = requests.post(base + "/v1/scans", json=body, timeout=10,
                      headers={"Authorization": "Device " + key})
    return r.status_code, r.json()


def _burst(entry, calls):
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda c: _post(entry.base, *c), calls))


def test_fifty_scans_of_one_ticket_across_five_gates_admit_exactly_one(entry, config):
    venue = put_venue(config)
    gates = [gate(config, venue) for _ in range(5)]
    record = ticket(config, venue)
    calls = [(gates[i % 5], {"medium": "code", "value": record["code"],
                             "nonce": uuid.uuid4().hex}) for i in range(50)]
    results = _burst(entry, calls)
    assert all(status == 200 for status, _ in results)
    reasons = sorted(body["reason"] for _, body in results)
    assert reasons.count("ok") == 1 and reasons.count("already_used") == 49
    assert sql(config, "SELECT count(*) FROM admissions") == [(1,)]
    assert sql(config, "SELECT count(*) FROM scans WHERE decision = 'admit'") == [(1,)]
    occ = occupancy(entry, venue)
    assert (occ["inside"], occ["admitted_today"]) == (1, 1)


def test_party_of_two_under_concurrent_scans_admits_two(entry, config):
    venue = put_venue(config)
    gates = [gate(config, venue) for _ in range(5)]
    record = ticket(config, venue, id_numbers=("11010519491231002X", "440524188001010014"))
    calls = [(gates[i % 5], {"medium": "code", "value": record["code"],
                             "nonce": uuid.uuid4().hex}) for i in range(20)]
    reasons = [body["reason"] for _, body in _burst(entry, calls)]
    assert reasons.count("ok") == 2
    assert sorted(r[0] for r in sql(config, "SELECT person_no FROM admissions")) == [1, 2]


def test_capacity_cap_holds_under_concurrent_scans(entry, config):
    venue = put_venue(config, instantaneous=5, daily=1000)
    gates = [gate(config, venue) for _ in range(5)]
    tickets = [ticket(config, venue) for _ in range(30)]
    calls = [(gates[i % 5], {"medium": "code", "value": t["code"], "nonce": uuid.uuid4().hex})
             for i, t in enumerate(tickets)]
    reasons = [body["reason"] for _, body in _burst(entry, calls)]
    assert reasons.count("ok") == 5 and reasons.count("capacity_full") == 25
    occ = occupancy(entry, venue)
    assert occ["inside"] == 5 and occ["level"] == 90
    assert sql(config, "SELECT sum(delta_inside) FROM scans") == [(5,)]


def test_daily_cap_holds_under_concurrent_scans(entry, config):
    venue = put_venue(config, instantaneous=100, daily=3)
    gates = [gate(config, venue) for _ in range(3)]
    tickets = [ticket(config, venue) for _ in range(12)]
    calls = [(gates[i % 3], {"medium": "code", "value": t["code"], "nonce": uuid.uuid4().hex})
             for i, t in enumerate(tickets)]
    reasons = [body["reason"] for _, body in _burst(entry, calls)]
    assert reasons.count("ok") == 3
    assert occupancy(entry, venue)["admitted_today"] == 3


def test_multi_entry_cycles_entry_exit_entry(entry, config):
    venue = put_venue(config, policy="multi")
    way_in, way_out = gate(config, venue), gate(config, venue, direction="out")
    record = ticket(config, venue, entry_policy="multi")
    steps = [(way_in, "ok"), (way_in, "not_exited"), (way_out, "ok"), (way_in, "ok"),
             (way_in, "not_exited"), (way_out, "ok"), (way_in, "ok")]
    for key, reason in steps:
        assert scan(entry, key, "code", record["code"]).json()["reason"] == reason
    occ = occupancy(entry, venue)
    # re-entries are not new visitors
    assert (occ["inside"], occ["admitted_today"]) == (1, 1)


def test_concurrent_reentries_of_a_multi_entry_ticket_admit_one(entry, config):
    venue = put_venue(config, policy="multi")
    gates = [gate(config, venue) for _ in range(5)]
    record = ticket(config, venue, entry_policy="multi")
    calls = [(gates[i % 5], {"medium": "code", "value": record["code"],
                             "nonce": uuid.uuid4().hex}) for i in range(25)]
    reasons = [body["reason"] for _, body in _burst(entry, calls)]
    assert reasons.count("ok") == 1 and reasons.count("not_exited") == 24


def test_nonce_replay_returns_the_first_answer(entry, config):
    venue = put_venue(config)
    key, other = gate(config, venue), gate(config, venue)
    record = ticket(config, venue)
    first = scan(entry, key, "code", record["code"], nonce="turn-1")
    assert first.json()["reason"] == "ok"
    assert scan(entry, key, "code", record["code"], nonce="turn-1").json() == first.json()
    # the same nonce from another gate is another scan
    assert scan(entry, other, "code", record["code"], nonce="turn-1").json()["reason"] == \
        "already_used"
    # a refusal replays as that refusal, even once the reason would differ
    refused = scan(entry, key, "code", "NOPE!!", nonce="turn-2").json()
    assert scan(entry, key, "code", record["code"], nonce="turn-2").json() == refused
    assert sql(config, "SELECT count(*) FROM scans") == [(3,)]


def test_the_same_nonce_retried_concurrently_admits_once(entry, config):
    venue = put_venue(config)
    key = gate(config, venue)
    record = ticket(config, venue, id_numbers=("11010519491231002X", "440524188001010014"))
    body = {"medium": "code", "value": record["code"], "nonce": "retry-me"}
    results = _burst(entry, [(key, body)] * 10)
    assert {b["reason"] for _, b in results} == {"ok"}
    assert {b["person_no"] for _, b in results} == {1}
    assert sql(config, "SELECT count(*) FROM admissions") == [(1,)]
    assert occupancy(entry, venue)["inside"] == 1


def test_opening_burst_rebuilds_the_venue_day_once(entry, config, monkeypatch):
    """Every lane's first scan of the day arrives at once: one of them builds
    the venue-day state from the database, the others reuse it (and all are
    admitted, counted once each)."""
    from services.entry.dependencies import EntryStore
    rebuilds = []
    original = EntryStore.state

    def counted(self, *args):
        rebuilds.append(args)
        return original(self, *args)

    monkeypatch.setattr(EntryStore, "state", counted)
    venue = put_venue(config)
    gates = [gate(config, venue) for _ in range(10)]
    tickets = [ticket(config, venue) for _ in range(30)]
    calls = [(gates[i % 10], {"medium": "code", "value": t["code"],
                              "nonce": uuid.uuid4().hex}) for i, t in enumerate(tickets)]
    results = _burst(entry, calls)
    assert [body["reason"] for _, body in results] == ["ok"] * 30
    assert len(rebuilds) == 1
    occ = occupancy(entry, venue)
    assert (occ["inside"], occ["admitted_today"]) == (30, 30)
