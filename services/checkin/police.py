"""Guest registration for the police hotel system (旅馆业治安管理办法 art. 6).

A check-in writes one `registrations` row per guest in its own transaction
(the durable outbox). `RegistrationDelivery` sends due rows through a
`PoliceLink` adapter and marks them delivered; a failure keeps the row
pending with exponential backoff, so nothing is lost while the link is down
and everything goes once it returns.
"""
import datetime
import importlib
import json
import logging

import eventlet
from eventlet.event import Event
from nameko.extensions import DependencyProvider
from sqlalchemy import text

from shared.config import setting
from shared.database import engine_for

from services.checkin import models as m
from services.checkin.rules import RETRY_BASE_SECONDS, RETRY_MAX_SECONDS, retry_delay

log = logging.getLogger(__name__)

BATCH = 50


class PoliceLinkDown(Exception):
    """The police system did not take the registration; try again later."""


class PoliceLink:
    """Adapter interface: `send` returns once the police system has the
    registration, or raises. It must accept the same registration twice
    (a crash after sending and before marking resends it)."""

    def __init__(self, engine, config):
        self.engine = engine
        self.config = config

    def send(self, registration):
        raise NotImplementedError

    def send_batch(self, registrations):
        """Send several at once: returns once the police system has them all,
        or raises (then the whole batch is retried; duplicates are fine).
        A link that can take a batch in one exchange overrides this."""
        for registration in registrations:
            self.send(registration)


# one statement per batch: a multi-row INSERT of the batch's JSON array
_RECORD_DELIVERIES = text("""
INSERT INTO police_deliveries (registration_id, payload)
SELECT (r ->> 'registration_id')::bigint, r FROM jsonb_array_elements(CAST(:batch AS jsonb)) AS r
ON CONFLICT DO NOTHING
""")


class LocalPoliceLink(PoliceLink):
    """Stands in for the police system: records what it received."""

    def send(self, registration):
        self.send_batch([registration])

    def send_batch(self, registrations):
        with self.engine.begin() as conn:
            conn.execute(_RECORD_DELIVERIES, {"batch": json.dumps(registrations)})


def link_class(name):
    """"local" or "package.module:Class"."""
    if not name or name == "local":
        return LocalPoliceLink
    module, _, cls = name.partition(":")
    return getattr(importlib.import_module(module), cls)


def as_message(row):
    """What is sent: the registration, times as ISO 8601."""
    message = {"registration_id": row["id"]}
    for key in ("stay_id", "hotel_id", "room", "guest_no", "name_masked", "id_hash",
                "id_masked", "id_checked", "foreign_guest", "checked_in_at", "departure_due"):
        value = row[key]
        message[key] = value.isoformat() if isinstance(value, datetime.datetime) else value
    return message


class Notifier:
    def __init__(self):
        self.queued = False

    def registered(self):
        self.queued = True


class RegistrationDelivery(DependencyProvider):
    """The background sender; inject it to wake it after a check-in."""

    def __init__(self, schema="checkin"):
        self.schema = schema
        self._wake = Event()

    def setup(self):
        config = self.container.config
        self.engine = engine_for(setting(config, "DATABASE_URL"), self.schema)
        self.link = link_class(setting(config, "POLICE_LINK"))(self.engine, config)
        self.poll = float(setting(config, "POLICE_POLL_SECONDS") or 1.0)
        self.retry_base = float(setting(config, "POLICE_RETRY_BASE") or RETRY_BASE_SECONDS)
        self._running = False

    def start(self):
        self._running = True
        self._gt = self.container.spawn_managed_thread(self._run)

    def stop(self):
        self._running = False
        self._nudge()
        try:
            self._gt.wait()
        except Exception:
            pass

    def kill(self):
        self._running = False
        self._gt.kill()

    def get_dependency(self, worker_ctx):
        notifier = Notifier()
        worker_ctx._police_notifier = notifier  # not .data: that goes out as AMQP headers
        return notifier

    def worker_teardown(self, worker_ctx):
        notifier = getattr(worker_ctx, "_police_notifier", None)
        if notifier is not None and notifier.queued:
            self._nudge()

    def _nudge(self):
        if not self._wake.ready():
            self._wake.send(True)

    def _run(self):
        while self._running:
            try:
                with eventlet.Timeout(self.poll, False):
                    self._wake.wait()
                if self._wake.ready():
                    self._wake.reset()
                while self._running and self.deliver_due():
                    pass
            except Exception:
                log.exception("registration delivery failed; retrying")
                eventlet.sleep(self.poll)

    def deliver_due(self):
        """Send one batch of due registrations; returns how many went.
        A link with `send_batch` takes the whole batch in one call; marking
        is one statement per batch either way. A failure backs off the rows
        not sent: the link is down, the rest wait too."""
        sent = 0
        with self.engine.begin() as conn:
            rows = conn.execute(_CLAIM_DUE, {"pending": m.PENDING, "batch": BATCH}
                                ).mappings().all()
            if not rows:
                return 0
            messages = [as_message(row) for row in rows]
            failure = None
            try:
                if hasattr(self.link, "send_batch"):
                    self.link.send_batch(messages)
                    sent = len(rows)
                else:  # an adapter with `send` only
                    for message in messages:
                        self.link.send(message)
                        sent += 1
            except Exception as exc:  # any adapter failure: back off and keep the rows
                failure = exc
            if sent:
                conn.execute(_MARK_DELIVERED, {"ids": [row["id"] for row in rows[:sent]],
                                               "delivered": m.DELIVERED})
            if failure is not None:
                failed = rows[sent:]
                attempts = max(row["attempts"] for row in failed) + 1
                delay = retry_delay(attempts, self.retry_base, RETRY_MAX_SECONDS)
                conn.execute(_BACK_OFF, {"ids": [row["id"] for row in failed],
                                         "error": type(failure).__name__, "delay": delay})
                log.warning("police link failed (%s); %d registrations retry in %.1f s",
                            type(failure).__name__, len(failed), delay)
        return sent if failure is None else 0


_CLAIM_DUE = text("""
SELECT * FROM registrations
WHERE status = :pending AND next_attempt_at <= now()
ORDER BY id LIMIT :batch FOR UPDATE SKIP LOCKED
""")
_MARK_DELIVERED = text("""
UPDATE registrations SET status = :delivered, delivered_at = now(), attempts = attempts + 1
WHERE id = ANY(:ids)
""")
_BACK_OFF = text("""
UPDATE registrations
SET attempts = attempts + 1, last_error = :error,
    next_attempt_at = now() + make_interval(secs => :delay)
WHERE id = ANY(:ids)
""")
