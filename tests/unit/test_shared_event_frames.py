"""Frames of events as the outbox relay builds them from rows and the shared
handler reads them back, without a broker."""
import json

import pytest
from marshmallow import ValidationError

from shared import events, outbox

ADMITTED, LEVEL = events.ENTRY_ADMITTED, events.VENUE_OCCUPANCY_LEVEL


def row(i, event_type, request_id=None, payload=None):
    """(id, event_type, payload as PostgreSQL prints JSONB, request_id)."""
    text = json.dumps(payload if payload is not None else {"event_id": "e%d" % i, "n": i})
    return (i, event_type, text, request_id)


def decoded(messages):
    return [(t, json.loads(body), header) for t, body, header in messages]


def test_runs_of_one_event_type_become_frames_in_row_order(monkeypatch):
    monkeypatch.setattr(outbox, "FRAME_EVENTS", 3)
    types = [ADMITTED] * 4 + [LEVEL] + [ADMITTED] + [LEVEL] * 2
    messages = decoded(outbox.frames([row(i, t) for i, t in enumerate(types)]))
    assert [(t, [e["event_id"] for e in body["events"]]) for t, body, _ in messages] == [
        (ADMITTED, ["e0", "e1", "e2"]), (ADMITTED, ["e3"]), (LEVEL, ["e4"]),
        (ADMITTED, ["e5"]), (LEVEL, ["e6", "e7"])]
    assert all(body["frame"] == 1 for _, body, _ in messages)


def test_payload_text_goes_into_the_body_as_it_is():
    payload = {"event_id": "e1", "holder": "张*", "nested": {"a": [1, 2.5, None, True]}}
    (_, body, _), = outbox.frames([row(1, ADMITTED, payload=payload)])
    assert isinstance(body, bytes)
    assert json.loads(body.decode("utf-8"))["events"] == [payload]


def test_request_ids_travel_per_event_and_as_header_only_when_shared():
    odd = 'r"\\\u00e9\n'  # from a caller's header: must stay valid JSON
    rows = [row(1, ADMITTED, "r1"), row(2, ADMITTED, None), row(3, ADMITTED, odd),
            row(4, LEVEL, "r4"), row(5, LEVEL, "r4"), row(6, ADMITTED, None)]
    messages = decoded(outbox.frames(rows))
    assert [body["request_ids"] for _, body, _ in messages] == [
        ["r1", None, odd], ["r4", "r4"], [None]]
    assert [header for _, _, header in messages] == [None, "r4", None]


def test_no_rows_no_frames():
    assert outbox.frames([]) == []


def test_a_frame_reads_back_as_its_events_and_request_ids():
    frame = events.frame_events({"frame": 1, "events": [{"a": 1}, {"a": 2}],
                                 "request_ids": ["r1", None]})
    assert list(frame) == [{"a": 1}, {"a": 2}] and frame.request_ids == ["r1", None]


@pytest.mark.parametrize("body", [
    {"event_id": "e1", "booking_id": "b1"},         # an older publisher's single event
    "not even an object",
    {"frame": 2, "events": [{"a": 1}]},             # an unknown frame version
    {"frame": 1, "events": "not a list"},
])
def test_anything_else_is_one_event_for_the_handler_to_judge(body):
    frame = events.frame_events(body)
    assert list(frame) == [body] and frame.request_ids == [None]


def test_missing_or_mismatched_request_ids_are_none():
    frame = events.frame_events({"frame": 1, "events": [{"a": 1}, {"a": 2}],
                                 "request_ids": ["r1"]})
    assert frame.request_ids == [None, None]


def test_envelope_can_skip_validation_for_a_pinned_producer():
    with pytest.raises(ValueError):
        events.envelope(ADMITTED, {"scan_id": "s1"})
    body = events.envelope(ADMITTED, {"scan_id": "s1"}, validate=False)
    assert body["scan_id"] == "s1" and body["version"] == 1 and len(body["event_id"]) == 32


def test_an_event_id_too_long_for_processed_events_is_malformed():
    body = events.envelope(events.CHECKIN_COMPLETED, {
        "stay_id": "s", "booking_id": "b", "hotel_id": "h", "room": "1201"})
    assert events.load(events.CHECKIN_COMPLETED, body)["event_id"] == body["event_id"]
    with pytest.raises(ValidationError):
        events.load(events.CHECKIN_COMPLETED, dict(body, event_id="x" * 65))
