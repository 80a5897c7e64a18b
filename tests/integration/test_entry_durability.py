"""Redis is the fast check, PostgreSQL the record: losing Redis never lets a
used ticket in again; annulment undoes an admission in both."""
import pytest
import redis as redis_lib

from services.entry.service import EntryService
from tests.factories import put_credential
from tests.integration.entry_helpers import (flush_prefix, gate, occupancy, put_venue, scan, sql,
                                             ticket)

TWO = ("11010519491231002X", "440524188001010014")


@pytest.fixture
def entry(start_services):
    return start_services(EntryService)


@pytest.fixture
def redis_conn(config):
    return redis_lib.Redis.from_url(config["REDIS_URL"], decode_responses=True)


def _restore_booking_records(config, records, devices):
    """After a Redis loss booking's records come back through its RPCs; here
    they are simply written again. Entry's own state is not restored."""
    for record in records:
        put_credential(config, record)
    client = redis_lib.Redis.from_url(config["REDIS_URL"], decode_responses=True)
    for key, value in devices.items():
        client.set(key, value)


def _booking_keys(redis_conn, prefix):
    keep = {}
    for key in redis_conn.scan_iter(prefix + "device:*"):
        keep[key] = redis_conn.get(key)
    for key in redis_conn.scan_iter(prefix + "venue:*"):
        keep[key] = redis_conn.get(key)
    return keep


def test_redis_flushed_mid_test_still_refuses_used_tickets(entry, config, redis_conn):
    venue = put_venue(config, policy="multi")
    way_in, way_out = gate(config, venue), gate(config, venue, direction="out")
    single = ticket(config, venue)
    multi = ticket(config, venue, entry_policy="multi")
    party = ticket(config, venue, id_numbers=TWO)
    left = ticket(config, venue, entry_policy="multi")
    for record in (single, multi, party, left):
        assert scan(entry, way_in, "code", record["code"]).json()["reason"] == "ok"
    assert scan(entry, way_out, "code", left["code"]).json()["reason"] == "ok"
    assert occupancy(entry, venue)["inside"] == 3

    saved = _booking_keys(redis_conn, config["REDIS_PREFIX"])
    flush_prefix(redis_conn, config["REDIS_PREFIX"])
    assert not list(redis_conn.scan_iter(config["REDIS_PREFIX"] + "*"))
    _restore_booking_records(config, (single, multi, party, left), saved)

    occ = occupancy(entry, venue)  # rebuilt from the record
    assert (occ["inside"], occ["admitted_today"]) == (3, 4)
    assert scan(entry, way_in, "code", single["code"]).json()["reason"] == "already_used"
    assert scan(entry, way_in, "code", multi["code"]).json()["reason"] == "not_exited"
    body = scan(entry, way_in, "code", party["code"]).json()
    assert (body["reason"], body["person_no"]) == ("ok", 2)
    assert scan(entry, way_in, "code", party["code"]).json()["reason"] == "already_used"
    assert scan(entry, way_in, "code", left["code"]).json()["reason"] == "ok"
    occ = occupancy(entry, venue)
    assert (occ["inside"], occ["admitted_today"]) == (5, 5)


def test_nonce_replay_after_redis_loss_gives_the_first_answer(entry, config, redis_conn):
    venue = put_venue(config)
    key = gate(config, venue)
    record = ticket(config, venue)
    first = scan(entry, key, "code", record["code"], nonce="again").json()
    assert first["reason"] == "ok"
    for k in redis_conn.scan_iter(config["REDIS_PREFIX"] + "entry:*"):
        redis_conn.delete(k)
    assert scan(entry, key, "code", record["code"], nonce="again").json() == first
    assert occupancy(entry, venue)["inside"] == 1
    assert sql(config, "SELECT count(*) FROM scans") == [(1,)]


def test_an_admission_lost_before_its_commit_is_recorded_on_the_retry(entry, config):
    venue = put_venue(config)
    key = gate(config, venue)
    record = ticket(config, venue)
    first = scan(entry, key, "code", record["code"], nonce="lost").json()
    assert first["reason"] == "ok"
    # as if the process died after the script and before the commit
    sql(config, "DELETE FROM admissions")
    sql(config, "DELETE FROM outbox")
    sql(config, "DELETE FROM scans")
    assert scan(entry, key, "code", record["code"], nonce="lost").json() == first
    assert sql(config, "SELECT nonce, decision, person_no FROM scans") == [("lost", "admit", 1)]
    assert sql(config, "SELECT count(*) FROM admissions") == [(1,)]
    assert [t for (t,) in sql(config, "SELECT event_type FROM outbox")] == ["entry.admitted"]
    assert occupancy(entry, venue)["inside"] == 1          # counted once
    assert scan(entry, key, "code", record["code"], nonce="lost").json() == first
    assert sql(config, "SELECT count(*) FROM scans") == [(1,)]


def test_database_refuses_what_stale_redis_state_allows(entry, config, redis_conn):
    venue = put_venue(config)
    key = gate(config, venue)
    record = ticket(config, venue)
    assert scan(entry, key, "code", record["code"]).json()["reason"] == "ok"
    # Redis came back from an older snapshot: the admission is missing there
    state = config["REDIS_PREFIX"] + "entry:cred:" + record["credential_id"]
    redis_conn.hset(state, mapping={"in": 0, "out": 0, "seeded": 1})
    body = scan(entry, key, "code", record["code"]).json()
    assert (body["decision"], body["reason"]) == ("deny", "already_used")
    assert redis_conn.hget(state, "in") == "1"   # resynchronised from the database
    assert occupancy(entry, venue)["inside"] == 1
    assert sql(config, "SELECT count(*) FROM admissions") == [(1,)]
    assert sql(config, "SELECT decision, reason FROM scans ORDER BY id") == \
        [("admit", "ok"), ("deny", "already_used")]


# -- annul --------------------------------------------------------------------

def _annul(entry, key, nonce):
    return entry.post("/v1/scans/%s/annul" % nonce, device=key)


def test_annul_undoes_the_admission_everywhere(entry, config):
    venue = put_venue(config, instantaneous=2)
    key = gate(config, venue)
    record = ticket(config, venue)
    assert scan(entry, key, "code", record["code"], nonce="t1").json()["reason"] == "ok"
    assert occupancy(entry, venue)["level"] == 50
    r = _annul(entry, key, "t1")
    assert r.status_code == 200
    assert r.json() == {"nonce": "t1", "annulled": True, "booking_id": record["booking_id"]}
    assert _annul(entry, key, "t1").status_code == 200          # idempotent
    occ = occupancy(entry, venue)
    assert (occ["inside"], occ["admitted_today"], occ["level"]) == (0, 0, 0)
    assert sql(config, "SELECT count(*) FROM admissions") == [(0,)]
    assert sql(config, "SELECT annulled FROM scans") == [(True,)]
    types = [t for (t,) in sql(config, "SELECT event_type FROM outbox ORDER BY id")]
    assert types == ["entry.admitted", "venue.occupancy_level", "entry.annulled",
                     "venue.occupancy_level"]
    # the visitor walks through on the next scan
    assert scan(entry, key, "code", record["code"], nonce="t2").json()["reason"] == "ok"
    assert scan(entry, key, "code", record["code"], nonce="t3").json()["reason"] == \
        "already_used"


def test_annul_one_of_a_party_frees_one_place(entry, config, redis_conn):
    venue = put_venue(config)
    key = gate(config, venue)
    record = ticket(config, venue, id_numbers=TWO)
    assert scan(entry, key, "code", record["code"], nonce="p1").json()["person_no"] == 1
    assert scan(entry, key, "code", record["code"], nonce="p2").json()["person_no"] == 2
    assert _annul(entry, key, "p1").status_code == 200
    assert scan(entry, key, "code", record["code"], nonce="p3").json()["reason"] == "ok"
    assert scan(entry, key, "code", record["code"], nonce="p4").json()["reason"] == \
        "already_used"
    # and the record agrees after Redis loses everything entry keeps
    for k in redis_conn.scan_iter(config["REDIS_PREFIX"] + "entry:*"):
        redis_conn.delete(k)
    assert scan(entry, key, "code", record["code"], nonce="p5").json()["reason"] == \
        "already_used"
    assert occupancy(entry, venue)["inside"] == 2


def test_annul_is_refused_from_another_gate_late_or_for_a_refusal(entry, config):
    venue = put_venue(config)
    key, other = gate(config, venue), gate(config, venue)
    record = ticket(config, venue)
    assert scan(entry, key, "code", record["code"], nonce="a1").json()["reason"] == "ok"
    r = _annul(entry, other, "a1")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert scan(entry, key, "code", record["code"], nonce="a2").json()["reason"] == \
        "already_used"
    r = _annul(entry, key, "a2")                                   # a refusal
    assert r.status_code == 409 and r.json()["error"] == "annul_refused"
    sql(config, "UPDATE scans SET created_at = now() - interval '16 minutes' "
                "WHERE nonce = 'a1'")
    r = _annul(entry, key, "a1")
    assert r.status_code == 409 and r.json()["error"] == "annul_refused"
    assert _annul(entry, key, "never-scanned").status_code == 404
    assert entry.post("/v1/scans/a1/annul").status_code == 401
    assert occupancy(entry, venue)["inside"] == 1
    assert sql(config, "SELECT count(*) FROM admissions") == [(1,)]
    assert sql(config, "SELECT count(*) FROM scans WHERE annulled") == [(0,)]

