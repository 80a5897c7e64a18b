"""What the entry service's workers are given: the live gate counters in Redis
(one Lua script per scan), venue capacities (cache-aside over booking), and
the durable record in PostgreSQL."""
import functools
import json
import os
import time

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert

from shared import events
from shared.cacheaside import CacheAsideReader
from shared.database import Store
from shared.singleflight import SingleFlight
from shared.redis import RedisDependency

from services.entry import recorder
from services.entry.pipeliner import ScriptPipeliner
from services.entry.models import admissions, processed_events, revocations, scans
from services.entry.models import outbox as outbox_rows

HERE = os.path.dirname(__file__)
NONCE_TTL = 24 * 3600          # a retried scan gets its first answer for a day
STATE_TTL = 3 * 24 * 3600      # counters outlive any one-day ticket
VENUE_TTL = 300                # venue record in Redis (booking owns it)
VENUE_LOCAL_SECONDS = 2.0      # and in this process, to spare a round trip per scan


def _source(name):
    with open(os.path.join(HERE, name)) as f:
        return f.read()


SCAN_LUA, UNDO_LUA = _source("scan.lua"), _source("undo.lua")
_scripts = {}


def _registered(client):
    """Both scripts, registered once per client (EVALSHA, reloaded on NOSCRIPT);
    scans through one pipeliner per client, so concurrent scans share round
    trips (pipeliner.py). Undo is rare and goes alone. The entry holds the
    client, so its id is never reused while the entry exists."""
    if id(client) not in _scripts:
        _scripts[id(client)] = (ScriptPipeliner(client.register_script(SCAN_LUA)),
                                client.register_script(UNDO_LUA))
    return _scripts[id(client)]


class Answer:
    """A scan's answer as the script stores it: decision|reason|person|d_inside|d_admitted."""

    def __init__(self, text, inside_before=0, inside_after=0):
        decision, reason, person, d_inside, d_admitted = text.split("|")
        self.text = text
        self.admit = decision == "admit"
        self.reason = reason
        self.person_no = int(person) or None
        self.delta_inside = int(d_inside)
        self.delta_admitted = int(d_admitted)
        self.inside_before = inside_before
        self.inside_after = inside_after

    @staticmethod
    def encode(admit, reason, person_no=None, delta_inside=0, delta_admitted=0):
        return "%s|%s|%d|%d|%d" % ("admit" if admit else "deny", reason, person_no or 0,
                                   delta_inside, delta_admitted)


class GateCounters:
    """Per-credential entry state, per-venue occupancy and nonce answers."""

    def __init__(self, client, prefix):
        self.redis = client
        self.prefix = prefix
        self._scan, self._undo = _registered(client)

    def keys(self, gate_id, nonce, credential_id, venue_id, day):
        """The keys undo.lua takes: nonce answer, credential state, venue-day."""
        p = self.prefix + "entry:"
        return [p + "nonce:%s:%s" % (gate_id, nonce), p + "cred:%s" % (credential_id or "-"),
                p + "occ:%s:%s" % (venue_id, day)]

    def scan(self, gate, nonce, record_key, refusal, moment, venue, seed=None):
        """One EVALSHA (shared with concurrent scans): the record at
        `record_key` judged and applied.

        `refusal`: a reason already decided without the record (then
        `record_key` is unused); `moment`: (city date, seconds into that
        day) to judge validity by; `venue`: the venue record or None.
        Returns (kind, Answer or None, record text or None), kind one of
        "norecord" (nothing cached at `record_key`), "miss" (state to seed),
        "replay", "new"."""
        venue_id = gate["venue_id"] or ""
        p = self.prefix + "entry:"
        venue = venue or {}
        args = [refusal or "ok", gate.get("direction") or "in",
                venue.get("entry_policy") or "",
                int(venue.get("instantaneous_capacity") or 0),
                int(venue.get("daily_capacity") or 0), NONCE_TTL, STATE_TTL, venue_id,
                p + "cred:", "1" if venue else "0", moment[0], moment[1]]
        if seed:
            args += ["1", seed["in"], seed["out"], seed["revoked"] or "", seed["inside"],
                     seed["admitted"], "1" if seed["fresh"] else "0"]
        else:
            args.append("0")
        nonce_key, _, venue_day_key = self.keys(gate["device_id"], nonce, None, venue_id,
                                                moment[0])
        result = self._scan(keys=[nonce_key, "" if refusal else record_key, venue_day_key],
                            args=args)
        kind = result[0]
        if kind == "new":
            return kind, Answer(result[1], int(result[2]), int(result[3])), \
                result[4] if len(result) > 4 else None
        if kind == "replay":
            return kind, Answer(result[1]), result[2] if len(result) > 2 else None
        if kind == "miss":
            return kind, None, result[1]
        return kind, None, None

    def undo(self, keys, direction, answer, new_answer="", floor=None):
        """Take back `answer`'s effect; returns (inside_before, inside_after)."""
        before, after = self._undo(keys=keys, args=[
            direction, answer.delta_inside, answer.delta_admitted, new_answer,
            "" if floor is None else floor])
        return int(before), int(after)

    def revoke(self, credential_id, reason):
        key = self.prefix + "entry:cred:%s" % credential_id
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, "rev", reason)
        pipe.expire(key, STATE_TTL)
        pipe.execute()

    def occupancy(self, venue_id, day):
        """(inside, admitted) or None when Redis has no state for the venue today."""
        inside, admitted = self.redis.hmget(self.prefix + "entry:occ:%s:%s" % (venue_id, day),
                                            "inside", "admitted")
        return None if inside is None else (int(inside), int(admitted or 0))

    def ping(self):
        self.redis.ping()


class EntryRedis(RedisDependency):
    def wrap(self, client, prefix):
        return GateCounters(client, prefix)


class VenueDirectory:
    """`venue:<id>` {venue_id, instantaneous_capacity, daily_capacity, entry_policy}:
    Redis first, booking's `get_venue(venue_id)` RPC on a miss."""

    _local = {}
    # at opening every lane misses the venue together: one fetch (and at most
    # one RPC) per venue, the others wait for it
    _fetches = SingleFlight(wait_seconds=1.0)

    def __init__(self, cache, booking):
        self.cache = cache
        self.booking = booking

    def get(self, venue_id):
        key = self.cache.key("venue", venue_id)
        hit = self._local.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        led, venue = self._fetches.lead(key, lambda: self._fetch(key, venue_id))
        if not led:  # another request of this process just fetched it
            hit = self._local.get(key)
            venue = hit[1] if hit else self._fetch(key, venue_id)
        return venue

    def _fetch(self, key, venue_id):
        venue = self.cache.fetch(key, lambda: self.booking.call("get_venue", venue_id=venue_id),
                                 lambda _: VENUE_TTL)
        if venue is not None:
            self._local[key] = (time.monotonic() + VENUE_LOCAL_SECONDS, venue)
        return venue


class VenueReader(CacheAsideReader):
    def make(self, cache, caller):
        return VenueDirectory(cache, caller)


def _scan_event(scan, reason):
    # (gate, nonce) names a scan uniquely and is known before the insert
    return {"scan_id": "%s:%s" % (scan["gate_id"], scan["nonce"]), "venue_id": scan["venue_id"],
            "gate_id": scan["gate_id"], "booking_id": scan["booking_id"],
            "credential_id": scan["credential_id"], "reason": reason, "party": 1}


def _event_type(scan):
    if scan["decision"] != "admit":
        return events.ENTRY_REFUSED
    return events.ENTRY_ADMITTED if scan["direction"] == "in" else events.ENTRY_EXITED


# The scan, its admission row (single-entry tickets) and its events in one
# statement: one round trip on the hot path. An event is written only if the
# scan row is new and, for an admission, the admission row too.
RECORD_SQL = """
WITH s AS (
  INSERT INTO scans (gate_id, nonce, venue_id, day, direction, medium, credential_id,
                     booking_id, decision, reason, person_no, delta_inside, delta_admitted,
                     annulled, scanned_at)
  VALUES (:gate_id, :nonce, :venue_id, :day, :direction, :medium, :credential_id,
          :booking_id, :decision, :reason, :person_no, :delta_inside, :delta_admitted,
          false, :scanned_at)
  ON CONFLICT ON CONSTRAINT scans_gate_nonce DO NOTHING RETURNING id),
a AS (
  INSERT INTO admissions (credential_id, person_no, day, scan_id)
  SELECT :credential_id, :person_no, :day, id FROM s WHERE :admission
  ON CONFLICT DO NOTHING RETURNING person_no),
o AS (
  INSERT INTO outbox (event_type, payload, request_id)
  SELECT t, CAST(p AS jsonb), r FROM (VALUES %s) AS v(t, p, r)
  WHERE EXISTS (SELECT 1 FROM s) AND (NOT :admission OR EXISTS (SELECT 1 FROM a))
  RETURNING id)
SELECT (SELECT id FROM s), (SELECT count(*) FROM a)
"""
# planned once per connection (recorder.Prepared), one variant per event count
RECORD_ONE = {n: recorder.Prepared(
    "entry_scan_one_%d" % n, RECORD_SQL % ", ".join("(:t%d, :p%d, :r%d)" % (i, i, i)
                                                     for i in range(n)),
    [(c, recorder.SCAN_TYPES[c]) for c in recorder.SCAN_COLUMNS] + [("admission", "boolean")]
    + [("%s%d" % (k, i), "text") for i in range(n) for k in "tpr"]) for n in (1, 2)}


class EntryStore(Store):
    """The durable record; each method is one transaction."""

    def record(self, outbox, scan, level_event=None):
        """Write the scan, its admission row and its events, committed before
        this returns (group commit with concurrent scans: recorder.py).

        ("recorded", scan_id) | ("replay", earlier scan row: same gate and
        nonce already recorded) | ("used", admissions already in the
        database: the single-entry rule refused what Redis allowed).
        """
        # a scan's event is built here from the scan row alone; its shape is
        # pinned by tests/unit/test_entry_events_shape.py, so no per-scan
        # schema validation (consumers still load it against the schema)
        rows = [outbox.row(_event_type(scan), _scan_event(scan, scan["reason"]), validate=False)]
        if level_event:
            rows.append(outbox.row(events.VENUE_OCCUPANCY_LEVEL, level_event))
        # the refusal's row is built only if the admission conflicts (rare)
        refused = functools.partial(outbox.row, events.ENTRY_REFUSED,
                                    _scan_event(scan, "already_used"))
        pending = recorder.Pending(scan, rows, refused)
        return recorder.writer_for(self.engine, self._record_one).submit(pending)

    def _record_one(self, pending):
        """A lone scan: one statement (scan, admission, events) and the commit."""
        scan, rows = pending.scan, pending.rows
        params = dict(scan, admission=bool(scan["person_no"]))
        for i, row in enumerate(rows):
            params.update({"t%d" % i: row["event_type"], "r%d" % i: row["request_id"],
                           "p%d" % i: json.dumps(row["payload"], separators=(",", ":"))})
        with self.engine.begin() as conn:
            scan_id, admitted = RECORD_ONE[len(rows)].execute(conn, params).one()
            if scan_id is None:
                earlier = conn.execute(select(scans).where(and_(
                    scans.c.gate_id == scan["gate_id"], scans.c.nonce == scan["nonce"]))
                ).mappings().first()
                return "replay", dict(earlier)
            if scan["person_no"] and not admitted:
                count = conn.execute(select(func.count()).select_from(admissions).where(
                    admissions.c.credential_id == scan["credential_id"])).scalar()
                conn.execute(update(scans).where(scans.c.id == scan_id).values(
                    decision="deny", reason="already_used", person_no=None,
                    delta_inside=0, delta_admitted=0))
                conn.execute(outbox_rows.insert(), [pending.refused_row()])
                return "used", count
            return "recorded", scan_id

    def level_event(self, outbox, payload):
        with self.session() as s:
            outbox.add(s, events.VENUE_OCCUPANCY_LEVEL, payload)

    def state(self, credential_id, venue_id, day):
        """Rebuild the Redis state from the record (first scan of the day at
        this venue, or Redis lost it). `fresh`: nothing is recorded for this
        venue-day yet, so credentials without state need no lookup today."""
        live = and_(scans.c.decision == "admit", scans.c.annulled.is_(False))
        with self.session() as s:
            entries, exits = s.execute(select(
                func.count().filter(scans.c.direction == "in"),
                func.count().filter(and_(scans.c.direction == "out", scans.c.delta_inside < 0)))
                .where(and_(scans.c.credential_id == credential_id, live))).one()
            # never below the admission rows: they are the single-entry truth
            entries = max(entries, s.execute(select(func.count()).select_from(admissions).where(
                admissions.c.credential_id == credential_id)).scalar())
            revoked = s.execute(select(revocations.c.reason).where(
                revocations.c.credential_id == credential_id)).scalar()
            fresh = not s.execute(select(
                select(scans.c.id).where(and_(scans.c.venue_id == venue_id,
                                              scans.c.day == day)).exists()
                | select(revocations.c.credential_id).where(and_(
                    revocations.c.venue_id == venue_id, revocations.c.day == day)).exists()
            )).scalar()
        inside, admitted = self.occupancy(venue_id, day)
        return {"in": entries, "out": exits, "revoked": revoked, "inside": inside,
                "admitted": admitted, "fresh": fresh}

    def occupancy(self, venue_id, day):
        with self.session() as s:
            inside, admitted = s.execute(select(
                func.coalesce(func.sum(scans.c.delta_inside), 0),
                func.coalesce(func.sum(scans.c.delta_admitted), 0)).where(and_(
                    scans.c.venue_id == venue_id, scans.c.day == day,
                    scans.c.annulled.is_(False)))).one()
        return max(int(inside), 0), int(admitted)

    def find_scan(self, gate_id, nonce):
        with self.session() as s:
            row = s.execute(select(scans).where(and_(
                scans.c.gate_id == gate_id, scans.c.nonce == nonce))).mappings().first()
        return dict(row) if row else None

    def annul(self, outbox, scan_id):
        """Mark the admission annulled and free its admission row; False if
        another request annulled it first."""
        with self.session() as s:
            row = s.execute(update(scans).where(and_(
                scans.c.id == scan_id, scans.c.annulled.is_(False))).values(annulled=True)
                .returning(*scans.c)).mappings().first()
            if row is None:
                return False
            if row["person_no"]:
                # free the highest person number, so the next admission
                # (Redis counts one fewer) takes exactly that number again
                top = s.execute(select(func.max(admissions.c.person_no)).where(
                    admissions.c.credential_id == row["credential_id"])).scalar()
                s.execute(admissions.delete().where(and_(
                    admissions.c.credential_id == row["credential_id"],
                    admissions.c.person_no == top)))
            outbox.add(s, events.ENTRY_ANNULLED, _scan_event(row, "ok"))
            return True

    def revoke(self, record, reason, event_id=None):
        """Record a revocation of `record` (a credential record); with
        `event_id`, at most once per event."""
        with self.session() as s:
            if event_id and not events.first_delivery(s, processed_events, event_id,
                                                      "entry.on_booking_" + reason):
                return False
            s.execute(insert(revocations).values(
                credential_id=record["credential_id"], reason=reason,
                booking_id=record.get("booking_id"), venue_id=record.get("target_id"),
                day=record.get("valid_from")).on_conflict_do_nothing())
            return True
