"""Concurrent gate scans share Redis round trips.

Every scan is one EVALSHA of scan.lua. Per call, redis-py's packing, the
send, the parked read and the pool plumbing cost about a fifth of the entry
process's CPU under load, while Redis itself answers in microseconds. So at
most one scan round trip per process is in flight: an idle process's lone scan
is sent at once by its own green thread; calls arriving meanwhile queue, and
one sender green thread sends whatever is waiting as one pipeline
(transaction=False: each EVALSHA is atomic on the server by itself, and scans
of one batch need no order among them), then wakes each caller with its own
reply or error. The same pattern as the group commit (recorder.py).

Errors: a reply error (a script error) reaches only the call it belongs to;
NOSCRIPT (Redis restarted or its scripts were flushed) loads the script once
and sends those calls again; a connection failure or socket timeout fails
every call of the batch, as the single call would. A queued call waits at
most `wait_seconds`, then raises redis.TimeoutError (503 at the HTTP layer)
and is dropped if it was not sent yet.
"""
import collections
import logging

import eventlet
import redis
from eventlet.event import Event

log = logging.getLogger(__name__)

BATCH = 256          # calls per pipeline at most
WAIT_SECONDS = 5.0   # a queued call's deadline


class QueuedTooLong(redis.TimeoutError):
    """A queued call's deadline passed (a stuck Redis behind the batch in flight)."""

    def __init__(self, *args):
        super().__init__(*(args or ("scan round trip queued past its deadline",)))


class _Call:
    __slots__ = ("keys", "args", "done", "dropped")

    def __init__(self, keys, args):
        self.keys = keys
        self.args = args
        self.done = Event()
        self.dropped = False


class ScriptPipeliner:
    """Calls of one script (a redis-py Script) on one client, batched."""

    def __init__(self, script, batch=BATCH, wait_seconds=WAIT_SECONDS):
        self.script = script
        self.client = script.registered_client
        self.batch = batch
        self.wait_seconds = wait_seconds
        self.queue = collections.deque()
        self.busy = False        # a round trip of this script is in flight
        self.wake = Event()
        self.sender = None

    def __call__(self, keys, args):
        if not self.busy:
            self.busy = True
            try:
                # Script.__call__: EVALSHA, and on NOSCRIPT load and again
                return self.script(keys=keys, args=args)
            finally:
                if self.queue:    # calls queued behind this one: the sender takes over
                    self._wake_sender()
                else:
                    self.busy = False
        # a round trip is in flight: whoever owns it wakes the sender when done
        call = _Call(keys, args)
        self.queue.append(call)
        try:
            with eventlet.Timeout(self.wait_seconds, QueuedTooLong):
                reply = call.done.wait()
        except BaseException:
            call.dropped = True   # not sent yet: never send it; in flight: its reply is lost
            raise
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def _wake_sender(self):
        self.busy = True
        if self.sender is None or self.sender.dead:
            self.sender = eventlet.spawn(self._run)
        if not self.wake.ready():
            self.wake.send(True)

    def _run(self):
        try:
            while True:
                batch = []
                while self.queue and len(batch) < self.batch:
                    call = self.queue.popleft()
                    if not call.dropped:
                        batch.append(call)
                if not batch:
                    self.busy = False
                    self.wake.wait()
                    self.wake.reset()
                    continue
                for call, reply in zip(batch, self.send(batch)):
                    call.done.send(reply)
        finally:
            self.busy = False     # killed: the next call sends directly or respawns

    def send(self, batch):
        """One reply (or exception) per call, in order."""
        try:
            replies = self._pipeline(batch)
            # NOSCRIPT: this server lost the script; load it and send those again
            again = [i for i, r in enumerate(replies)
                     if isinstance(r, redis.exceptions.NoScriptError)]
            if again:
                self.script.sha = self.client.script_load(self.script.script)
                for i, reply in zip(again, self._pipeline([batch[i] for i in again])):
                    replies[i] = reply
            return replies
        except Exception as exc:  # noqa: BLE001 -- the whole batch failed: each caller gets it
            log.warning("scan pipeline of %d failed: %s", len(batch), type(exc).__name__)
            return [exc] * len(batch)

    def _pipeline(self, batch):
        pipe = self.client.pipeline(transaction=False)
        sha = self.script.sha
        for call in batch:
            # straight EVALSHA: Script.__call__ on a pipeline would add a
            # SCRIPT EXISTS round trip to every execute
            pipe.evalsha(sha, len(call.keys), *call.keys, *call.args)
        return pipe.execute(raise_on_error=False)
