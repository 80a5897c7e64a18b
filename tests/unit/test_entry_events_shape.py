"""The gate's scan events skip per-scan schema validation on the hot path
(services/entry/dependencies.EntryStore.record): this pins their shape
against the published schema for every kind of scan the gate records."""
import datetime

import pytest

from shared import events
from services.entry.dependencies import _event_type, _scan_event

NOW = datetime.datetime(2026, 11, 29, 9, 0, tzinfo=datetime.timezone.utc)


def scan(**changes):
    row = {"gate_id": "dev_gate1", "nonce": "n-1", "venue_id": "ven_1", "day": NOW.date(),
           "direction": "in", "medium": "qr", "credential_id": "cred_1", "booking_id": "bk_1",
           "decision": "admit", "reason": "ok", "person_no": 1, "delta_inside": 1,
           "delta_admitted": 1, "scanned_at": NOW}
    row.update(changes)
    return row


@pytest.mark.parametrize("row, expected", [
    (scan(), events.ENTRY_ADMITTED),
    (scan(direction="out", person_no=None, delta_inside=-1, delta_admitted=0),
     events.ENTRY_EXITED),
    (scan(decision="deny", reason="already_used", person_no=None, delta_inside=0,
          delta_admitted=0), events.ENTRY_REFUSED),
    # an unknown code: no credential, no booking
    (scan(decision="deny", reason="unknown", credential_id=None, booking_id=None,
          person_no=None, delta_inside=0, delta_admitted=0), events.ENTRY_REFUSED),
])
def test_scan_events_match_the_published_schema(row, expected):
    event_type = _event_type(row)
    assert event_type == expected
    body = events.envelope(event_type, _scan_event(row, row["reason"]), validate=False)
    assert events.PAYLOADS[event_type]().validate(body) == {}
    loaded = events.load(event_type, body)
    assert loaded["scan_id"] == "dev_gate1:n-1"
    assert loaded["reason"] == row["reason"]
