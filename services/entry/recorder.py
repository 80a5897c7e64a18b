"""Group commit for gate scans.

Every scan is written before its answer, but concurrent scans share one
transaction: a writer green thread takes whatever is waiting (up to BATCH),
writes it with one statement (prepared once per connection) and one commit,
then wakes each waiting request with its own outcome. A lone scan still takes
the one-statement path. A failed batch fails every scan in it (each request then takes its Redis
side back and answers 503).
"""
import collections
import datetime
import json
import logging
import re

import eventlet
from eventlet.event import Event
from sqlalchemy import func, select, tuple_, update

from services.entry.models import admissions, outbox, scans

log = logging.getLogger(__name__)

BATCH = 200
WAIT_SECONDS = 5.0


class Prepared:
    """A statement planned once per database connection: SQL PREPARE on a
    connection's first use, EXECUTE afterwards (psycopg2 has no
    protocol-level prepare). Which statements a connection has is kept in the
    SQLAlchemy connection's `info`, which belongs to the DBAPI connection and
    is cleared by the pool when it replaces one (reconnect after a failure,
    recycle), so a new connection prepares again. A prepared statement
    outlives a rolled-back transaction, so the mark stays true then too.

    `sql` names its parameters `:name`; `params` lists (name, PostgreSQL
    type) in the order of the prepared statement's $1..$n."""

    def __init__(self, name, sql, params):
        order = [n for n, _ in params]
        body = re.sub(r"(?<!:):([a-z_][a-z0-9_]*)",
                      lambda m: "$%d" % (order.index(m.group(1)) + 1), sql)
        self.name = name
        self.prepare_sql = "PREPARE %s (%s) AS %s" % (name, ", ".join(t for _, t in params),
                                                      body)
        self.execute_sql = "EXECUTE %s (%s)" % (name, ", ".join("%%(%s)s" % n for n in order))

    def execute(self, conn, params):
        prepared = conn.info.get("entry_prepared")
        if prepared is None:
            prepared = conn.info["entry_prepared"] = set()
        if self.name not in prepared:
            conn.exec_driver_sql(self.prepare_sql)
            prepared.add(self.name)
        return conn.exec_driver_sql(self.execute_sql, params)


class Pending:
    """One scan waiting for its commit. `rows`: its outbox rows; `refused`:
    the outbox row to write instead if the admission conflicts, or a callable
    building it (the row is rarely needed, and building one costs)."""

    def __init__(self, scan, rows, refused):
        self.scan = scan
        self.rows = rows
        self.refused = refused
        self.done = Event()

    def refused_row(self):
        return self.refused() if callable(self.refused) else self.refused


class GroupWriter:
    def __init__(self, engine, single):
        self.engine = engine
        self.single = single          # callable(Pending) -> outcome, the one-statement path
        self.queue = collections.deque()
        self.wake = Event()
        self.thread = None

    def submit(self, pending):
        self.queue.append(pending)
        if self.thread is None or self.thread.dead:
            self.thread = eventlet.spawn(self._run)
        if not self.wake.ready():
            self.wake.send(True)
        with eventlet.Timeout(WAIT_SECONDS, TimeoutError("scan record timed out")):
            outcome = pending.done.wait()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _run(self):
        while True:
            if not self.queue:
                self.wake.wait()
                self.wake.reset()
                continue
            batch = [self.queue.popleft() for _ in range(min(BATCH, len(self.queue)))]
            try:
                if len(batch) == 1:
                    outcomes = [self.single(batch[0])]
                else:
                    outcomes = self.write(batch)
            except Exception as exc:  # noqa: BLE001 -- every waiter gets the failure
                log.warning("scan batch of %d failed: %s", len(batch), type(exc).__name__)
                outcomes = [exc] * len(batch)
            for pending, outcome in zip(batch, outcomes):
                pending.done.send(outcome)

    def write(self, batch):
        """Outcomes as EntryStore.record: ("recorded", id) | ("replay", row) | ("used", n).

        One statement writes the scans, their admission rows and their events
        (BATCH_SQL); only the rare outcomes (an admission the database already
        had, a nonce recorded before) take further statements, in the same
        transaction."""
        # two requests with one nonce in this batch: the first one counts,
        # the others replay it
        first = {}
        for p in batch:
            first.setdefault((p.scan["gate_id"], p.scan["nonce"]), p)
        unique = list(first.values())
        params = {c: [p.scan[c] for p in unique] for c in SCAN_COLUMNS}
        for c in UNQUOTED_COLUMNS:
            params[c] = _array(params[c])
        events = [(i, row) for i, p in enumerate(unique) for row in p.rows]
        params.update(ev_i=_array(i for i, _ in events),
                      ev_type=[row["event_type"] for _, row in events],
                      ev_payload=[json.dumps(row["payload"], separators=(",", ":"))
                                  for _, row in events],
                      ev_request=[row["request_id"] for _, row in events])
        with self.engine.begin() as conn:
            inserted, used = {}, set()
            for i, scan_id, admitted in BATCH_STATEMENT.execute(conn, params):
                if scan_id is None:   # recorded before: a replay
                    continue
                p = unique[i]
                inserted[(p.scan["gate_id"], p.scan["nonce"])] = scan_id
                if p.scan["person_no"] and not admitted:
                    used.add(id(p))   # the database already had this person's admission
            counts = {}
            if used:
                taken = [p for p in unique if id(p) in used]
                conn.execute(update(scans).where(scans.c.id.in_(
                    [inserted[(p.scan["gate_id"], p.scan["nonce"])] for p in taken])).values(
                    decision="deny", reason="already_used", person_no=None, delta_inside=0,
                    delta_admitted=0))
                conn.execute(outbox.insert(), [p.refused_row() for p in taken])
                counts = dict(conn.execute(
                    select(admissions.c.credential_id, func.count())
                    .where(admissions.c.credential_id.in_(
                        {p.scan["credential_id"] for p in taken}))
                    .group_by(admissions.c.credential_id)).all())
            replays = {(p.scan["gate_id"], p.scan["nonce"]) for p in batch
                       if (p.scan["gate_id"], p.scan["nonce"]) not in inserted
                       or first[(p.scan["gate_id"], p.scan["nonce"])] is not p}
            earlier = {}
            if replays:
                earlier = {(r["gate_id"], r["nonce"]): dict(r) for r in conn.execute(
                    select(scans).where(tuple_(scans.c.gate_id, scans.c.nonce).in_(
                        list(replays)))).mappings()}
        outcomes = []
        for p in batch:
            key = (p.scan["gate_id"], p.scan["nonce"])
            if key not in inserted or first[key] is not p:
                outcomes.append(("replay", earlier[key]))
            elif id(p) in used:
                outcomes.append(("used", counts.get(p.scan["credential_id"], 0)))
            else:
                outcomes.append(("recorded", inserted[key]))
        return outcomes


def _array(values):
    """Dates, timestamps or integers as one PostgreSQL array literal: psycopg2
    then quotes one string instead of adapting every element (a third of a
    batch's client time). Such values never need escaping."""
    return "{%s}" % ",".join("NULL" if v is None else v.isoformat()
                             if isinstance(v, datetime.date) else "%d" % v for v in values)


UNQUOTED_COLUMNS = ("day", "person_no", "delta_inside", "delta_admitted", "scanned_at")
SCAN_COLUMNS = ("gate_id", "nonce", "venue_id", "day", "direction", "medium", "credential_id",
                "booking_id", "decision", "reason", "person_no", "delta_inside",
                "delta_admitted", "scanned_at")

# A batch of scans (distinct gate+nonce) as arrays: the scan rows, the
# admission rows of single-entry admissions, and the events of every scan
# that is new and, for an admission, whose admission row is new too. Rows are
# inserted in batch order, so of two scans claiming one person the first
# wins. One row back per scan: (index, scan id or NULL, admission row written).
BATCH_SQL = """
WITH b AS (
  SELECT * FROM unnest(
    CAST(:gate_id AS text[]), CAST(:nonce AS text[]), CAST(:venue_id AS text[]),
    CAST(:day AS date[]), CAST(:direction AS text[]), CAST(:medium AS text[]),
    CAST(:credential_id AS text[]), CAST(:booking_id AS text[]), CAST(:decision AS text[]),
    CAST(:reason AS text[]), CAST(:person_no AS int[]), CAST(:delta_inside AS int[]),
    CAST(:delta_admitted AS int[]), CAST(:scanned_at AS timestamptz[]))
  WITH ORDINALITY AS b(gate_id, nonce, venue_id, day, direction, medium, credential_id,
                       booking_id, decision, reason, person_no, delta_inside, delta_admitted,
                       scanned_at, n)),
s AS (
  INSERT INTO scans (gate_id, nonce, venue_id, day, direction, medium, credential_id,
                     booking_id, decision, reason, person_no, delta_inside, delta_admitted,
                     annulled, scanned_at)
  SELECT gate_id, nonce, venue_id, day, direction, medium, credential_id, booking_id,
         decision, reason, person_no, delta_inside, delta_admitted, false, scanned_at
  FROM b ORDER BY n
  ON CONFLICT ON CONSTRAINT scans_gate_nonce DO NOTHING
  RETURNING id, gate_id, nonce),
a AS (
  INSERT INTO admissions (credential_id, person_no, day, scan_id)
  SELECT b.credential_id, b.person_no, b.day, s.id FROM b JOIN s USING (gate_id, nonce)
  WHERE b.person_no IS NOT NULL ORDER BY b.n
  ON CONFLICT DO NOTHING RETURNING scan_id),
e AS (
  SELECT * FROM unnest(CAST(:ev_i AS int[]), CAST(:ev_type AS text[]),
                       CAST(:ev_payload AS text[]), CAST(:ev_request AS text[]))
  AS e(i, event_type, payload, request_id)),
o AS (
  INSERT INTO outbox (event_type, payload, request_id)
  SELECT e.event_type, CAST(e.payload AS jsonb), e.request_id
  FROM e JOIN b ON b.n = e.i + 1 JOIN s USING (gate_id, nonce)
  WHERE b.person_no IS NULL OR s.id IN (SELECT scan_id FROM a)
  ORDER BY e.i
  RETURNING id)
SELECT CAST(b.n - 1 AS int), s.id, s.id IN (SELECT scan_id FROM a)
FROM b LEFT JOIN s USING (gate_id, nonce) ORDER BY b.n
"""
SCAN_TYPES = {"gate_id": "text", "nonce": "text", "venue_id": "text", "day": "date",
              "direction": "text", "medium": "text", "credential_id": "text",
              "booking_id": "text", "decision": "text", "reason": "text", "person_no": "int",
              "delta_inside": "int", "delta_admitted": "int", "scanned_at": "timestamptz"}
BATCH_STATEMENT = Prepared(
    "entry_scan_batch", BATCH_SQL, [(c, SCAN_TYPES[c] + "[]") for c in SCAN_COLUMNS]
    + [("ev_i", "int[]"), ("ev_type", "text[]"), ("ev_payload", "text[]"),
       ("ev_request", "text[]")])


_writers = {}  # keyed by the engine itself (never by id(): a disposed engine's id is reused)


def writer_for(engine, single):
    writer = _writers.get(engine)
    if writer is None:
        writer = _writers[engine] = GroupWriter(engine, single)
    return writer
