"""Group commit for gate scans.

Every scan is written before its answer, but concurrent scans share one
transaction: a writer green thread takes whatever is waiting (up to BATCH),
writes it with a few multi-row statements and one commit, then wakes each
waiting request with its own outcome. A lone scan still takes the one-statement
path. A failed batch fails every scan in it (each request then takes its Redis
side back and answers 503).
"""
import collections
import logging

import eventlet
from eventlet.event import Event
from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from services.entry.models import admissions, outbox, scans

log = logging.getLogger(__name__)

BATCH = 200
WAIT_SECONDS = 5.0


class Pending:
    """One scan waiting for its commit. `rows`: its outbox rows; `refused`:
    the outbox row to write instead if the admission conflicts."""

    def __init__(self, scan, rows, refused):
        self.scan = scan
        self.rows = rows
        self.refused = refused
        self.done = Event()


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
        """Outcomes as EntryStore.record: ("recorded", id) | ("replay", row) | ("used", n)."""
        by_key = {(p.scan["gate_id"], p.scan["nonce"]): p for p in batch}
        with self.engine.begin() as conn:
            inserted = {(r.gate_id, r.nonce): r.id for r in conn.execute(
                insert(scans).on_conflict_do_nothing(constraint="scans_gate_nonce")
                .returning(scans.c.id, scans.c.gate_id, scans.c.nonce),
                [dict(p.scan, annulled=False) for p in batch])}
            # two requests with one nonce in this batch: the first one counts,
            # the others replay it
            first = {}
            for p in batch:
                first.setdefault((p.scan["gate_id"], p.scan["nonce"]), p)
            fresh = [p for k, p in first.items() if k in inserted]
            wanted = [p for p in fresh if p.scan["person_no"]]
            got = set()
            if wanted:
                # by scan id: two scans may claim the same (credential, person)
                got = {r.scan_id for r in conn.execute(
                    insert(admissions).on_conflict_do_nothing()
                    .returning(admissions.c.scan_id),
                    [{"credential_id": p.scan["credential_id"], "person_no": p.scan["person_no"],
                      "day": p.scan["day"],
                      "scan_id": inserted[(p.scan["gate_id"], p.scan["nonce"])]}
                     for p in wanted])}
            used = {id(p) for p in wanted
                    if inserted[(p.scan["gate_id"], p.scan["nonce"])] not in got}
            counts = {}
            if used:
                conn.execute(update(scans).where(scans.c.id.in_(
                    [inserted[(p.scan["gate_id"], p.scan["nonce"])]
                     for p in wanted if id(p) in used])).values(
                    decision="deny", reason="already_used", person_no=None, delta_inside=0,
                    delta_admitted=0))
                credentials = {p.scan["credential_id"] for p in wanted if id(p) in used}
                counts = dict(conn.execute(
                    select(admissions.c.credential_id, func.count())
                    .where(admissions.c.credential_id.in_(credentials))
                    .group_by(admissions.c.credential_id)).all())
            rows = []
            for p in fresh:
                rows += [p.refused] if id(p) in used else p.rows
            if rows:
                conn.execute(outbox.insert(), rows)
            replays = [k for k, p in by_key.items() if k not in inserted] + \
                [(p.scan["gate_id"], p.scan["nonce"]) for p in batch
                 if first[(p.scan["gate_id"], p.scan["nonce"])] is not p]
            earlier = {}
            if replays:
                earlier = {(r["gate_id"], r["nonce"]): dict(r) for r in conn.execute(
                    select(scans).where(tuple_(scans.c.gate_id, scans.c.nonce).in_(replays)))
                    .mappings()}
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


_writers = {}  # keyed by the engine itself (never by id(): a disposed engine's id is reused)


def writer_for(engine, single):
    writer = _writers.get(engine)
    if writer is None:
        writer = _writers[engine] = GroupWriter(engine, single)
    return writer
