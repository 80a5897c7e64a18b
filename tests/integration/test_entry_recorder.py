"""Group commit on real PostgreSQL: one batch holds new scans, retried nonces
and admissions the database already has, and each gets its own outcome."""
import datetime
import uuid

import eventlet
import pytest

from shared.database import create_schema, engine_for
from services.entry import models, recorder
from services.entry.dependencies import EntryStore
from tests.integration.entry_helpers import sql

DAY = datetime.date(2026, 11, 29)


@pytest.fixture
def engine(database_url):
    from psycogreen.eventlet import patch_psycopg
    patch_psycopg()
    engine = engine_for(database_url, "entry")
    create_schema(engine, "entry", models.metadata)
    return engine


def pending(nonce, credential, person_no=1, decision="admit", gate="g1"):
    scan = {"gate_id": gate, "nonce": nonce, "venue_id": "v", "day": DAY, "direction": "in",
            "medium": "code", "credential_id": credential, "booking_id": credential and "b-" + credential,
            "decision": decision, "reason": "ok" if decision == "admit" else "unknown",
            "person_no": person_no if decision == "admit" else None,
            "delta_inside": 1 if decision == "admit" else 0,
            "delta_admitted": 1 if decision == "admit" else 0,
            "scanned_at": datetime.datetime.now(datetime.timezone.utc)}
    row = {"event_type": "entry.admitted" if decision == "admit" else "entry.refused",
           "payload": {"nonce": nonce}, "request_id": None}
    refused = {"event_type": "entry.refused", "payload": {"nonce": nonce, "used": True},
               "request_id": None}
    return recorder.Pending(scan, [row], refused if person_no else None)


def test_one_batch_many_outcomes(engine, database_url):
    config = {"DATABASE_URL": database_url}
    store = EntryStore(engine)
    writer = recorder.GroupWriter(engine, store._record_one)
    assert writer.write([pending("old", "c0")]) [0][0] == "recorded"
    batch = [pending("n1", "c1"),                         # new admission
             pending("n2", "c2"), pending("n3", "c2"),    # two gates, one person: one wins
             pending("old", "c9"),                        # retried nonce from before
             pending("n4", "c4"), pending("n4", "c4"),    # one nonce twice in the batch
             pending("n5", "c0"),                         # admitted earlier (Redis forgot)
             pending("n6", None, decision="deny")]        # a refusal
    outcomes = writer.write(batch)
    kinds = [o[0] for o in outcomes]
    assert kinds == ["recorded", "recorded", "used", "replay", "recorded", "replay", "used",
                     "recorded"]
    assert outcomes[3][1]["credential_id"] == "c0"       # the first answer, from the record
    # dates, times and numbers arrive as written (sent as array literals)
    assert sql(config, "SELECT day, scanned_at, person_no, delta_inside, delta_admitted "
                       "FROM scans WHERE nonce IN ('n1', 'n6') ORDER BY nonce") == [
        (DAY, batch[0].scan["scanned_at"], 1, 1, 1),
        (DAY, batch[7].scan["scanned_at"], None, 0, 0)]
    assert outcomes[5][1]["nonce"] == "n4"
    assert outcomes[2][1] == 1 and outcomes[6][1] == 1   # admissions the database holds
    assert sql(config, "SELECT count(*) FROM admissions") == [(4,)]
    assert sql(config, "SELECT nonce, decision, reason FROM scans WHERE decision = 'deny' "
                       "ORDER BY nonce") == [("n3", "deny", "already_used"),
                                            ("n5", "deny", "already_used"),
                                            ("n6", "deny", "unknown")]
    # exactly one event per recorded scan, of the outcome's kind (events of
    # different scans in one batch carry no order: refusals found by the
    # admission conflict are written after the batch's statement)
    events = [(t, p["nonce"]) for t, p in sql(config, "SELECT event_type, payload FROM outbox "
                                                      "ORDER BY id")]
    assert sorted(events) == [("entry.admitted", "n1"), ("entry.admitted", "n2"),
                              ("entry.admitted", "n4"), ("entry.admitted", "old"),
                              ("entry.refused", "n3"), ("entry.refused", "n5"),
                              ("entry.refused", "n6")]


def test_concurrent_submissions_share_commits(engine, database_url):
    store = EntryStore(engine)
    writer = recorder.GroupWriter(engine, store._record_one)
    batches = []
    original = writer.write

    def spy(batch):
        batches.append(len(batch))
        return original(batch)
    writer.write = spy
    pool = eventlet.GreenPool(40)
    results = list(pool.imap(lambda i: writer.submit(pending("c%d" % i, uuid.uuid4().hex)),
                             range(40)))
    assert [r[0] for r in results] == ["recorded"] * 40
    assert batches and sum(batches) + (40 - sum(batches)) == 40
    assert max(batches) > 1          # at least one commit carried several scans
    assert sql({"DATABASE_URL": database_url}, "SELECT count(*) FROM scans") == [(40,)]


def test_statements_are_prepared_once_per_connection_and_again_after_a_reconnect(
        engine, database_url):
    config = {"DATABASE_URL": database_url}
    store = EntryStore(engine)
    writer = recorder.GroupWriter(engine, store._record_one)

    def prepared():
        with engine.connect() as conn:   # the pool's one connection, as the writer's
            return {name for (name,) in conn.exec_driver_sql(
                "SELECT name FROM pg_prepared_statements")}
    assert [o[0] for o in writer.write([pending("a1", "c1"), pending("a2", "c2")])] == \
        ["recorded", "recorded"]
    assert [o[0] for o in writer.write([pending("a3", "c3"), pending("a1", "c1")])] == \
        ["recorded", "replay"]                       # EXECUTE on the prepared statement
    assert store._record_one(pending("a4", "c4"))[0] == "recorded"
    assert prepared() == {"entry_scan_batch", "entry_scan_one_1"}
    # the server drops the connection: one failure, then a new connection prepares again
    sql(config, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    with pytest.raises(Exception):
        writer.write([pending("b1", "c5"), pending("b2", "c6")])
    assert [o[0] for o in writer.write([pending("b1", "c5"), pending("b2", "c6")])] == \
        ["recorded", "recorded"]
    assert store._record_one(pending("b3", "c7"))[0] == "recorded"
    assert prepared() == {"entry_scan_batch", "entry_scan_one_1"}
    assert sql(config, "SELECT count(*) FROM scans") == [(7,)]
