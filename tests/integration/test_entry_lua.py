"""The Lua script against real Redis: it decides exactly as rules.decide (the
ticket rules and the live state, from the cached record), refuses to guess
when its record or state is missing, and undo takes back what it did."""
import datetime
import itertools
import json
import uuid
import zoneinfo

import pytest
import redis as redis_lib

from services.entry import rules
from services.entry.dependencies import GateCounters
from services.entry.scanning import moment

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
# far from the machine's date: the script judges by the time it is given
DAY = datetime.date(2031, 3, 15)
VENUE = {"instantaneous_capacity": 3, "daily_capacity": 5, "entry_policy": "single"}
NO_STATE = {"in": 0, "out": 0, "revoked": None, "inside": 0, "admitted": 0, "fresh": False}


@pytest.fixture
def counters(redis_prefix):
    from tests.conftest import REDIS_URL
    return GateCounters(redis_lib.Redis.from_url(REDIS_URL, decode_responses=True), redis_prefix)


def at(hh, mm=0, ss=0, us=0, day=DAY):
    return datetime.datetime(day.year, day.month, day.day, hh, mm, ss, us, tzinfo=TZ)


def new_gate(direction="in"):
    return {"device_id": "g" + uuid.uuid4().hex[:8], "venue_id": "v" + uuid.uuid4().hex,
            "direction": direction}


def ticket(gate, **kw):
    record = {"credential_id": uuid.uuid4().hex, "booking_id": "b1", "target_type": "venue",
              "target_id": gate["venue_id"], "valid_from": DAY.isoformat(),
              "valid_until": DAY.isoformat(), "slot": None, "slot_start": None,
              "slot_end": None, "party_size": 1, "entry_policy": "single", "status": "active",
              "holder_name_masked": "张*"}
    record.update(kw)
    return record


def put(counters, record):
    """The record where booking caches it (None: booking's "no such credential")."""
    key = counters.prefix + "cred:test:" + uuid.uuid4().hex
    counters.redis.set(key, "-" if record is None else json.dumps(record), ex=60)
    return key


def run(counters, gate, key, now, venue=VENUE, seed=None, nonce=None, refusal=None):
    return counters.scan(gate, nonce or uuid.uuid4().hex, key, refusal, moment(now), venue,
                         seed=seed)


def test_the_script_decides_like_the_rules(counters):
    """Records x gates x times x states through scan.lua and rules.decide."""
    other = "v-elsewhere"
    records = itertools.product(
        [("venue", None), ("venue", other), ("hotel", None)],           # whose ticket
        ["active", "cancelled"],
        [DAY, DAY + datetime.timedelta(days=1), DAY - datetime.timedelta(days=1)],
        [(None, None), ("09:00", "12:00"), ("00:10", "23:59")])        # slot
    times = [at(8, 29, 59, 999999), at(8, 30), at(10), at(12, 0, 0), at(12, 0, 0, 1),
             at(23, 59, 30)]
    # policy, party, and the state (in, out, revoked, inside, admitted) cycle through the matrix
    lives = itertools.cycle(itertools.product(
        [("single", 1), ("multi", 1), ("single", 2), (None, 2)],
        [(0, 0, None, 0, 0), (1, 0, None, 2, 4), (2, 1, None, 3, 4), (0, 0, "blocked", 0, 0),
         (1, 1, None, 1, 5), (0, 0, None, 2, 5), (1, 0, None, 1, 1)]))
    seen = set()
    for (kind, target), status, day, (start, end) in records:
        for direction, now in itertools.product(["in", "out"], times):
            (policy, party), (n_in, n_out, revoked, inside, admitted) = next(lives)
            gate = new_gate(direction)
            record = ticket(gate, target_type=kind, target_id=target or gate["venue_id"],
                            status=status, valid_from=day.isoformat(),
                            valid_until=day.isoformat(), slot="s" if start else None,
                            slot_start=start, slot_end=end, party_size=party,
                            entry_policy=policy)
            seed = {"in": n_in, "out": n_out, "revoked": revoked, "inside": inside,
                    "admitted": admitted, "fresh": False}
            expected = rules.decide(
                # the record's policy, else the venue's (as the script takes it)
                dict(record, entry_policy=policy or VENUE["entry_policy"]), gate,
                dict(seed, instantaneous_capacity=VENUE["instantaneous_capacity"],
                     daily_capacity=VENUE["daily_capacity"]), now)
            got, answer, raw = run(counters, gate, put(counters, record), now, seed=seed)
            assert got == "new"
            assert (answer.admit, answer.reason) == (expected.admit, expected.reason), \
                (record, direction, now, seed)
            assert json.loads(raw) == record        # the record as cached, for the answer
            seen.add(expected.reason)
    assert seen == {"ok", "wrong_venue", "cancelled", "not_yet_valid", "expired", "blocked",
                    "already_used", "not_exited", "capacity_full"}


def test_unknown_unconfigured_venue_and_refusals_decided_in_python(counters):
    gate = new_gate()
    assert run(counters, gate, put(counters, None), at(10))[1].reason == "unknown"
    record = ticket(gate)
    # an unconfigured venue refuses entries after the ticket rules, and lets people out
    assert run(counters, gate, put(counters, record), at(10), venue=None,
               seed=NO_STATE)[1].reason == "blocked"
    assert run(counters, gate, put(counters, ticket(gate, status="cancelled")), at(10),
               venue=None)[1].reason == "cancelled"
    assert run(counters, dict(gate, direction="out"), put(counters, record), at(10),
               venue=None, seed=NO_STATE)[1].admit
    # a refusal decided before any lookup needs no record key
    kind, answer, raw = run(counters, gate, None, at(10), refusal="tampered", nonce="t")
    assert (kind, answer.reason, raw) == ("new", "tampered", None)
    assert run(counters, gate, None, at(10), refusal="tampered", nonce="t")[0] == "replay"


def test_missing_record_or_state_is_a_distinct_answer_not_a_guess(counters):
    gate = new_gate()
    nonce_key = counters.keys(gate["device_id"], "n1", None, gate["venue_id"], DAY)[0]
    key = counters.prefix + "cred:code:NOTCACHED"
    assert run(counters, gate, key, at(10), nonce="n1") == ("norecord", None, None)
    assert not counters.redis.exists(nonce_key)
    record = ticket(gate)
    key = put(counters, record)
    kind, answer, raw = run(counters, gate, key, at(10), nonce="n1")
    assert (kind, answer, json.loads(raw)) == ("miss", None, record)
    assert not counters.redis.exists(nonce_key)                # nothing was stored
    kind, answer, raw = run(counters, gate, key, at(10), nonce="n1", seed=NO_STATE)
    assert (kind, answer.reason, answer.person_no) == ("new", "ok", 1)
    # a retried nonce is the first answer, with the record for the response
    kind, answer, raw = run(counters, gate, key, at(10), nonce="n1")
    assert (kind, answer.reason, json.loads(raw)) == ("replay", "ok", record)
    # the state hash is named after the record's credential id
    state = counters.keys(gate["device_id"], "n1", record["credential_id"], gate["venue_id"],
                          DAY)[1]
    assert counters.redis.hget(state, "in") == "1"


def test_policy_and_party_as_the_script_reads_them(counters):
    combos = itertools.product(["single", "multi"], [1, 2], [0, 1, 2], [0, 1], [None, "blocked"],
                               [(0, 0), (3, 0), (2, 5)], ["in", "out"])
    checked = 0
    for policy, party, entries, exits, revoked, (inside, admitted), direction in combos:
        if exits > entries:
            continue
        gate = new_gate(direction)
        record = ticket(gate, party_size=party, entry_policy=policy)
        seed = {"in": entries, "out": exits, "revoked": revoked, "inside": inside,
                "admitted": admitted, "fresh": False}
        expected = rules.check_state(record, gate, dict(
            seed, instantaneous_capacity=3, daily_capacity=5))
        kind, answer, _ = run(counters, gate, put(counters, record), at(10), seed=seed)
        assert kind == "new"
        assert (answer.admit, answer.reason) == (expected.admit, expected.reason), seed
        checked += 1
    assert checked > 100


def test_a_new_credential_needs_no_lookup_on_a_fresh_venue_day(counters):
    gate = new_gate()
    seed = dict(NO_STATE, fresh=True)
    assert run(counters, gate, put(counters, ticket(gate)), at(10), seed=seed)[1].admit
    # another credential, same venue-day: decided without a rebuild
    kind, answer, _ = run(counters, gate, put(counters, ticket(gate)), at(10))
    assert (kind, answer.reason, answer.inside_after) == ("new", "ok", 2)
    # a revocation that reached Redis first is kept
    revoked = ticket(gate)
    counters.revoke(revoked["credential_id"], "cancelled")
    assert run(counters, gate, put(counters, revoked), at(10))[1].reason == "cancelled"
    # rebuilt after a loss (the database had scans): every credential is looked up
    stale = new_gate()
    run(counters, stale, put(counters, ticket(stale)), at(10), seed=NO_STATE)
    assert run(counters, stale, put(counters, ticket(stale)), at(10))[0] == "miss"


def test_undo_takes_back_an_admission(counters):
    gate = new_gate()
    record = ticket(gate)
    seed = dict(NO_STATE, inside=4, admitted=7)
    roomy = dict(VENUE, instantaneous_capacity=10, daily_capacity=10)
    _, answer, _ = run(counters, gate, put(counters, record), at(10), venue=roomy, seed=seed,
                       nonce="u1")
    assert (answer.admit, answer.person_no, answer.inside_before, answer.inside_after) == \
        (True, 1, 4, 5)
    keys = counters.keys(gate["device_id"], "u1", record["credential_id"], gate["venue_id"],
                         DAY)
    assert counters.undo(keys, "in", answer) == (5, 4)
    assert counters.redis.hget(keys[1], "in") == "0"
    assert counters.redis.hmget(keys[2], "inside", "admitted") == ["4", "7"]
    assert not counters.redis.exists(keys[0])
    # a refusal's undo changes nothing
    counters.revoke(record["credential_id"], "blocked")
    _, refused, _ = run(counters, gate, put(counters, record), at(10), venue=roomy, nonce="u2")
    assert refused.reason == "blocked"
    counters.undo([keys[0] + "-2"] + keys[1:], "in", refused)
    assert counters.redis.hget(keys[1], "in") == "0"
    assert counters.redis.hmget(keys[2], "inside", "admitted") == ["4", "7"]
