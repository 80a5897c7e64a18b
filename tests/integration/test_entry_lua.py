"""The Lua script against real Redis: it decides exactly as rules.check_state,
refuses to guess when its state is missing, and undo takes back what it did."""
import itertools
import uuid

import pytest
import redis as redis_lib

from services.entry import rules
from services.entry.dependencies import GateCounters

GATE = {"device_id": "g", "venue_id": "v", "direction": "in"}


@pytest.fixture
def counters(redis_prefix):
    from tests.conftest import REDIS_URL
    return GateCounters(redis_lib.Redis.from_url(REDIS_URL, decode_responses=True), redis_prefix)


def _keys(counters, cred="c"):
    return counters.keys("g", uuid.uuid4().hex, cred + uuid.uuid4().hex, "v" + uuid.uuid4().hex,
                         "2026-11-29")


def test_the_script_decides_like_the_rules(counters):
    combos = itertools.product(["single", "multi"], [1, 2], [0, 1, 2], [0, 1], [None, "blocked"],
                               [(0, 0), (3, 0), (2, 5)], ["in", "out"])
    checked = 0
    for policy, party, entries, exits, revoked, (inside, admitted), direction in combos:
        if exits > entries:
            continue
        caps = (3, 5)
        record = {"party_size": party, "entry_policy": policy}
        seed = {"in": entries, "out": exits, "revoked": revoked, "inside": inside,
                "admitted": admitted, "fresh": False}
        expected = rules.check_state(record, dict(GATE, direction=direction), dict(
            seed, instantaneous_capacity=caps[0], daily_capacity=caps[1]))
        kind, answer = counters.scan(_keys(counters), "ok", direction, policy, party, caps,
                                     seed=seed)
        assert kind == "new"
        assert (answer.admit, answer.reason) == (expected.admit, expected.reason), seed
        checked += 1
    assert checked > 100


def test_missing_state_is_a_miss_not_a_guess(counters):
    keys = _keys(counters)
    assert counters.scan(keys, "ok", "in", "single", 1, (10, 10)) == ("miss", None)
    assert not counters.redis.exists(keys[0])       # no answer was stored
    # a static refusal needs no state
    kind, answer = counters.scan(keys, "tampered", "in", "single", 1, (10, 10))
    assert (kind, answer.reason) == ("new", "tampered")
    assert counters.scan(keys, "ok", "in", "single", 1, (10, 10))[1].reason == "tampered"


def test_a_new_credential_needs_no_lookup_on_a_fresh_venue_day(counters):
    keys = _keys(counters)
    other = [keys[0] + "-2", keys[1] + "-other", keys[2]]
    seed = {"in": 0, "out": 0, "revoked": None, "inside": 0, "admitted": 0, "fresh": True}
    assert counters.scan(keys, "ok", "in", "single", 1, (10, 10), seed=seed)[1].admit
    # another credential, same venue-day: decided without a rebuild
    kind, answer = counters.scan(other, "ok", "in", "single", 1, (10, 10))
    assert (kind, answer.reason, answer.inside_after) == ("new", "ok", 2)
    # a revocation that reached Redis first is kept
    revoked = [keys[0] + "-3", keys[1] + "-revoked", keys[2]]
    counters.revoke(revoked[1].rsplit(":", 1)[1], "cancelled")
    assert counters.scan(revoked, "ok", "in", "single", 1, (10, 10))[1].reason == "cancelled"
    # rebuilt after a loss (the database had scans): every credential is looked up
    stale = _keys(counters)
    seed = dict(seed, fresh=False)
    counters.scan(stale, "ok", "in", "single", 1, (10, 10), seed=seed)
    assert counters.scan([stale[0] + "-2", stale[1] + "-new", stale[2]], "ok", "in", "single",
                         1, (10, 10)) == ("miss", None)


def test_undo_takes_back_an_admission(counters):
    keys = _keys(counters)
    seed = {"in": 0, "out": 0, "revoked": None, "inside": 4, "admitted": 7, "fresh": False}
    kind, answer = counters.scan(keys, "ok", "in", "single", 1, (10, 10), seed=seed)
    assert (answer.admit, answer.person_no, answer.inside_before, answer.inside_after) == \
        (True, 1, 4, 5)
    assert counters.undo(keys, "in", answer) == (5, 4)
    assert counters.redis.hget(keys[1], "in") == "0"
    assert counters.redis.hmget(keys[2], "inside", "admitted") == ["4", "7"]
    assert not counters.redis.exists(keys[0])
    # a refusal's undo changes nothing
    counters.revoke(keys[1].rsplit(":", 1)[1], "blocked")
    refusal_keys = [keys[0] + "-2"] + keys[1:]
    _, refused = counters.scan(refusal_keys, "ok", "in", "single", 1, (10, 10))
    assert refused.reason == "blocked"
    counters.undo(refusal_keys, "in", refused)
    assert counters.redis.hget(keys[1], "in") == "0"
    assert counters.redis.hmget(keys[2], "inside", "admitted") == ["4", "7"]
