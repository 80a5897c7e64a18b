"""Transactional outbox: events are rows written in the same transaction as
the business change, then published by a relay.

The relay wakes as soon as a worker that added events finishes, and also
polls, so rows left by a crash between commit and publish go out after a
restart. Rows are claimed with FOR UPDATE SKIP LOCKED so several replicas
share the work without publishing a row twice in the normal case; a crash
after publishing but before marking can publish twice, which consumers
absorb (shared.events.first_delivery).

A batch goes out on one long-lived channel in AMQP transaction mode: every
message of the batch, then one tx.commit that returns once the broker has
taken them all (as a confirm per message did, at one round trip per batch
instead of per event). Rows are marked published only after the commit.

Events travel in frames: each run of consecutive rows of one event type in a
batch is one AMQP message (routing key = the event type, so queue bindings
are those of single events), body `{"frame": 1, "events": [...],
"request_ids": [...]}` (shared.events.frame_events reads it). The payloads
are read as JSON text and joined into the body as they are: the relay never
parses or re-serialises an event, and the broker routes one message per run
instead of one per event.
"""
import logging
import time
from json.encoder import encode_basestring

import amqp
import eventlet
from eventlet.event import Event
from kombu import Connection
from nameko.extensions import DependencyProvider
from nameko.standalone.events import get_event_exchange
from sqlalchemy import (BigInteger, Column, DateTime, Identity, Index, String, Table,
                        func, select, text)
from sqlalchemy.dialects.postgresql import JSONB

from shared import events, metrics
from shared.config import setting
from shared.database import engine_for

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
BATCH = 200
FRAME_EVENTS = 200   # events per AMQP message at most
COALESCE_SECONDS = 0.005
PUBLISH_TIMEOUT_SECONDS = 10.0
HOUSEKEEPING_SECONDS = 10.0
RETENTION_HOURS = 24


def outbox_table(metadata):
    return Table(
        "outbox", metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("event_type", String(64), nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("request_id", String(64)),
        Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
        Column("published_at", DateTime(timezone=True)),
        Index("outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    )


class OutboxWriter:
    def __init__(self, provider, worker_ctx):
        self._provider = provider
        self._request_id = worker_ctx.context_data.get("request_id")
        self.added = 0

    def add(self, session, event_type, payload):
        """Queue an event in `session`'s transaction; returns its payload."""
        body = events.envelope(event_type, payload)
        session.execute(self._provider.table.insert().values(
            event_type=event_type, payload=body, request_id=self._request_id))
        self.added += 1
        return body

    def row(self, event_type, payload, validate=True):
        """The outbox row for an event, for a caller that inserts it inside its
        own statement (same transaction, one round trip): entry's gate scans.
        `validate`: as events.envelope."""
        self.added += 1
        return {"event_type": event_type,
                "payload": events.envelope(event_type, payload, validate=validate),
                "request_id": self._request_id}


class Outbox(DependencyProvider):
    """The outbox of the service whose database schema is `schema`."""

    def __init__(self, schema, table, coalesce_seconds=COALESCE_SECONDS):
        self.schema = schema
        self.table = table
        self.coalesce_seconds = coalesce_seconds
        self._wake = Event()
        # the payload as the JSON text PostgreSQL stores: never parsed here
        self._claim = text("""
SELECT id, event_type, CAST(payload AS text), request_id FROM %s
WHERE published_at IS NULL ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED""" % table.name)
        self._mark_published = text(
            "UPDATE %s SET published_at = now() WHERE id = ANY(:ids)" % table.name)

    def setup(self):
        config = self.container.config
        self.service = self.container.service_name
        self.engine = engine_for(setting(config, "DATABASE_URL"), self.schema)
        self.exchange = get_event_exchange(self.service, config)
        self.amqp_uri = setting(config, "AMQP_URI")
        self._connection = self._channel = None
        self._declare_queues(config)
        self._running = False

    def _declare_queues(self, config):
        with Connection(setting(config, "AMQP_URI")) as conn:
            channel = conn.channel()
            self.exchange.maybe_bind(channel)
            self.exchange.declare()
            for queue in events.subscription_queues(self.service, config):
                queue.maybe_bind(channel)
                queue.declare()

    def start(self):
        self._running = True
        self._gt = self.container.spawn_managed_thread(self._relay)

    def stop(self):
        self._running = False
        self._wake_up()
        try:
            self._gt.wait()
        except Exception:
            pass
        self._disconnect()

    def kill(self):
        self._running = False
        self._gt.kill()
        self._disconnect()

    # -- publishing (only the relay green thread uses the channel) ----------
    def _open_channel(self):
        if self._channel is None:
            connection = Connection(self.amqp_uri, connect_timeout=5)
            try:
                channel = connection.channel()
                channel.tx_select()
                self.exchange(channel).declare()
            except Exception:
                connection.release()
                raise
            self._connection, self._channel = connection, channel
        return self._channel

    def _disconnect(self):
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                with eventlet.Timeout(2.0, TimeoutError("close timed out")):
                    connection.release()
            except Exception:  # noqa: BLE001 -- already broken: drop the socket
                try:
                    connection.collect()
                except Exception:  # noqa: BLE001
                    pass

    def _publish_batch(self, messages):
        """Publish `messages` (outbox.frames) and return once the broker holds
        every one of them."""
        try:
            # a half-dead TCP connection must not hang the relay on tx.commit
            with eventlet.Timeout(PUBLISH_TIMEOUT_SECONDS,
                                  TimeoutError("outbox publish timed out")):
                self._publish_frames(messages)
        except Exception:
            self._disconnect()  # a fresh connection next time; the rows stay unpublished
            raise

    def _publish_frames(self, messages):
        channel = self._open_channel()
        exchange = self.exchange.name
        for event_type, body, request_id in messages:
            # straight to py-amqp: the body is already JSON, and kombu's
            # Producer.publish would cost more than the frame itself
            headers = {"nameko.request_id": request_id} if request_id else None
            channel.basic_publish(
                amqp.Message(body, content_type="application/json", content_encoding="utf-8",
                             delivery_mode=2, application_headers=headers),
                exchange=exchange, routing_key=event_type)
        channel.tx_commit()

    def get_dependency(self, worker_ctx):
        writer = OutboxWriter(self, worker_ctx)
        # kept on the context object, not in worker_ctx.data: nameko sends
        # that dict as AMQP headers with every RPC/event the worker makes
        writers = getattr(worker_ctx, "_outbox_writers", None)
        if writers is None:
            writers = worker_ctx._outbox_writers = []
        writers.append(writer)
        return writer

    def worker_teardown(self, worker_ctx):
        if any(w.added for w in getattr(worker_ctx, "_outbox_writers", ())):
            self._wake_up()

    def _wake_up(self):
        if not self._wake.ready():
            self._wake.send(True)

    def _relay(self):
        last_housekeeping = 0.0
        while self._running:
            try:
                with eventlet.Timeout(POLL_SECONDS, False):
                    self._wake.wait()
                if self._wake.ready():
                    # let the other workers of a burst commit too: one relay
                    # cycle then carries many events instead of one
                    eventlet.sleep(self.coalesce_seconds)
                    self._wake.reset()
                while self.publish_pending() == BATCH:
                    pass
                if time.monotonic() - last_housekeeping > HOUSEKEEPING_SECONDS:
                    last_housekeeping = time.monotonic()
                    self.housekeeping()
            except Exception:
                log.exception("outbox relay failed; retrying")
                eventlet.sleep(POLL_SECONDS)

    def publish_pending(self):
        """Publish one batch; returns how many rows went out."""
        with self.engine.begin() as conn:
            rows = conn.execute(self._claim, {"limit": BATCH}).all()
            if rows:
                self._publish_batch(frames(rows))
                conn.execute(self._mark_published, {"ids": [r[0] for r in rows]})
        return len(rows)

    def housekeeping(self):
        """Backlog gauge, and published rows past retention deleted."""
        t = self.table
        with self.engine.begin() as conn:
            backlog = conn.execute(select(func.count()).select_from(t)
                                   .where(t.c.published_at.is_(None))).scalar()
            conn.execute(t.delete().where(
                t.c.published_at < func.now() - text("interval '%d hours'" % RETENTION_HOURS)))
        metrics.OUTBOX_BACKLOG.labels(self.service).set(backlog)


def frames(rows):
    """(event_type, body bytes, request_id or None) per run of consecutive
    rows of one event type, at most FRAME_EVENTS events each, in row order.
    `rows`: (id, event_type, payload JSON text, request_id). The request id
    header is set when every event of the frame carries the same one."""
    out = []
    start, n = 0, len(rows)
    while start < n:
        event_type = rows[start][1]
        end = start + 1
        while end < n and end - start < FRAME_EVENTS and rows[end][1] == event_type:
            end += 1
        run = rows[start:end]
        request_ids = [r[3] for r in run]
        body = '{"frame":1,"events":[%s],"request_ids":[%s]}' % (
            ",".join([r[2] for r in run]),
            ",".join(["null" if rid is None else encode_basestring(rid) for rid in request_ids]))
        first = request_ids[0]
        shared = first if first and request_ids.count(first) == len(request_ids) else None
        out.append((event_type, body.encode(), shared))
        start = end
    return out
