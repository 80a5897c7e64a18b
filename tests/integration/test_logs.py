"""Structured logs: one request id follows a request from HTTP across an RPC
and an event (through the real outbox relay) into another service's log
lines, and no log line of the whole test run holds an ID number.

The pair of services here is a test double of the real shape: `logfront`
serves HTTP, calls `logback` over a deadline RPC and writes an event to its
outbox in the same transaction; `logback` logs from the RPC and from the
event handler.
"""
import io
import json
import logging
import re
import uuid

import pytest
from nameko.events import event_handler
from nameko.rpc import rpc
from sqlalchemy import MetaData

from shared import events
from shared.database import Database
from shared.http import api
from shared.logs import JsonFormatter
from shared.outbox import Outbox, outbox_table
from shared.platform import PlatformEndpoints
from shared.rpc import DeadlineRpc

log = logging.getLogger("tests.logfront")
RAW_ID = "11010519491231002X"
# An 18-character ID number as GB 11643 writes it: 17 digits and a digit or X,
# not part of a longer number (checksum ignored: any such number is a leak).
ID_NUMBER = re.compile(r"(?<![0-9])[1-9][0-9]{16}[0-9Xx](?![0-9])")

front_metadata = MetaData(schema=None)
front_outbox = outbox_table(front_metadata)


class LogFront(PlatformEndpoints):
    name = "logfront"
    db = Database("logfront", front_metadata)
    outbox = Outbox("logfront", front_outbox)
    back = DeadlineRpc("logback")

    @api("POST", "/test/logs/<word>")
    def start(self, request, word):
        log.info("front got %s for %s", word, RAW_ID)
        answer = self.back.call("work", word=word)
        with self.db.session() as session:
            self.outbox.add(session, events.HOTEL_CREATED, {
                "hotel_id": uuid.uuid4().hex, "name": word, "room_types": []})
        return {"answer": answer, "request_id": self.request_id}


class LogBack(PlatformEndpoints):
    name = "logback"

    @rpc
    def work(self, word):
        logging.getLogger("tests.logback").info("back rpc %s", word)
        return word.upper()

    @event_handler("logfront", events.HOTEL_CREATED)
    def on_event(self, payload):
        # the relay sends frames (shared.events.frame_events); each event is
        # logged under the request id the frame carries for it
        frame = events.frame_events(payload)
        for event, request_id in zip(frame, frame.request_ids):
            with events.logged_as(request_id):
                logging.getLogger("tests.logback").info("back event %s", event["name"])

    @rpc
    def fail(self, number):
        raise ValueError("no guest with %s" % number)


class Lines(logging.Handler):
    """Formatted lines, formatted at emit time in the emitting green thread
    (where the request id is), exactly as the services' handler does."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines = []

    def emit(self, record):
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines():
    handler = Lines()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(previous)


def wait_for(predicate, timeout=5.0):
    import time
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_request_id_travels_across_rpc_and_event_into_the_other_services_lines(
        start_services, lines):
    # Each service in its own runner: separate containers, as in production.
    start_services(LogBack)
    api_client = start_services(LogFront)
    request_id = "req-" + uuid.uuid4().hex
    r = api_client.post("/test/logs/hello", headers={"X-Request-Id": request_id})
    assert r.status_code == 200, r.text
    assert r.json() == {"answer": "HELLO", "request_id": request_id}
    assert r.headers["X-Request-Id"] == request_id

    def line(message):
        return next((entry for entry in list(lines) if entry["message"] == message), None)

    assert wait_for(lambda: line("back event hello") is not None)
    front = line("front got hello for 110105********002X")
    assert front and front["request_id"] == request_id        # the HTTP worker
    assert line("back rpc hello")["request_id"] == request_id  # across the RPC
    assert line("back event hello")["request_id"] == request_id  # across outbox and event
    assert front["logger"] == "tests.logfront" and front["level"] == "INFO"

    # another request gets another id; none leaks into the next request
    r2 = api_client.post("/test/logs/again")
    other = r2.headers["X-Request-Id"]
    assert other and other != request_id
    assert wait_for(lambda: line("back event again") is not None)
    assert line("back rpc again")["request_id"] == other
    assert line("back event again")["request_id"] == other


def test_a_raw_id_number_logged_anywhere_is_masked():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.rawnumber")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = True
    try:
        logger.info("guest %s checked in", RAW_ID)                      # as an argument
        logger.warning("lookup failed for " + RAW_ID.lower())          # inside the message
        try:
            raise ValueError({"id_number": [RAW_ID + " is wrong"]})
        except ValueError:
            logger.exception("validation blew up")                     # in a traceback
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert RAW_ID not in text and RAW_ID.lower() not in text
    assert text.count("110105********002") == 3
    assert not ID_NUMBER.search(text)


def test_a_request_id_holding_an_id_number_is_masked(start_services, lines):
    """The request id comes from the caller's header: it is scrubbed as well."""
    start_services(LogBack)
    api_client = start_services(LogFront)
    r = api_client.post("/test/logs/sneaky", headers={"X-Request-Id": RAW_ID})
    assert r.status_code == 200
    assert wait_for(lambda: any(e["message"] == "back event sneaky" for e in list(lines)))
    text = "\n".join(json.dumps(e, ensure_ascii=False) for e in lines)
    assert RAW_ID not in text
    assert any(e.get("request_id") == "110105********002X" for e in lines)


def test_nameko_error_lines_are_scrubbed(start_services, rpc, lines):
    """nameko logs a failing worker with its exception text and traceback:
    a number inside the exception comes out masked."""
    start_services(LogBack)
    with pytest.raises(Exception):
        rpc.logback.fail(number=RAW_ID)
    assert wait_for(lambda: any("error handling worker" in e["message"] for e in list(lines)))
    failed = next(e for e in lines if "error handling worker" in e["message"])
    assert "110105********002X" in failed["message"] and "110105********002X" in failed["exc"]
    assert not any(RAW_ID in json.dumps(e, ensure_ascii=False) for e in lines)


@pytest.mark.run_last
def test_no_id_number_in_any_log_line_of_the_run(captured_log_file):
    """Runs after every other test: the whole run's log, as the services
    format it, holds no 18-character ID number."""
    handler = next(h for h in logging.getLogger().handlers
                   if getattr(h, "baseFilename", None) == str(captured_log_file))
    # prove the capture works: this line, with a raw number, is in the file masked
    logging.getLogger("tests.logscan").warning("scan marker %s", RAW_ID)
    handler.flush()
    text = captured_log_file.read_text(encoding="utf-8")
    assert "scan marker 110105********002X" in text
    leaks = [line for line in text.splitlines() if ID_NUMBER.search(line)]
    assert not leaks, "%d log lines hold an ID number, e.g. %s" % (len(leaks), leaks[0][:300])
