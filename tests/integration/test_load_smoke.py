"""Smoke of `make load`: a short, small Locust run through loadtest.run against
a scratch stack on the real servers, with generous SLAs (it proves the verdict
machinery, not the speed of the machine running the tests)."""
import os
import subprocess
import sys

import pytest

from loadtest import run as load
from loadtest.scenarios import SCENARIOS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_weekday_smoke_passes_and_writes_reports(tmp_path):
    assert os.path.exists(load.LOCUST), "Locust venv missing: run `make locust-venv`"
    out = subprocess.run(
        [sys.executable, "-m", "loadtest.run", "--scenario", "weekday", "--duration", "20",
         "--users", "6", "--pool-scale", "0.3", "--smoke", "--stack-tag", "loadsmoke",
         "--report-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    tail = (out.stdout + out.stderr)[-3000:]
    assert out.returncode == 0, tail
    assert "VERDICT: PASS" in out.stdout, tail
    for name in ("load-weekday.html", "load-weekday_stats.csv", "load-weekday-verdict.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    stats = load.read_stats(str(tmp_path / "load-weekday_stats.csv"))
    assert int(stats["Aggregated"]["Request Count"]) > 0
    # every kind of user ran (kinds that do not depend on a random task choice)
    for kind in ("tourist: register", "desk: check-in", "gate: scan id card"):
        assert kind in stats, "no %r requests ran" % kind


NAMES = {"gate_scan_qr": "gate: scan qr", "desk_check_in": "desk: check-in",
         "book_stay": "book stay", "search_rooms": "search rooms"}


def _stats(**p99):
    """Rows shaped like Locust's _stats.csv."""
    rows = {"Aggregated": {"Request Count": "200", "Failure Count": "0", "99%": "10"}}
    for key, value in p99.items():
        rows[NAMES[key]] = {"Request Count": "50", "Failure Count": "0", "99%": str(value)}
    return rows


CLEAN = {"oversells": 0, "double_admissions": 0, "double_rooms": 0}


def _failed(checks):
    return [label for label, passed, _ in checks if not passed]


def test_verdict_passes_within_slas():
    stats = _stats(gate_scan_qr=20, desk_check_in=40, book_stay=100, search_rooms=30)
    assert _failed(load.verdict(SCENARIOS["weekday"], SCENARIOS["weekday"].sla, stats,
                                CLEAN)) == []


@pytest.mark.parametrize("change, expected", [
    ({"stats": {"gate_scan_qr": 900}}, "gate scan p99"),
    ({"stats": {"desk_check_in": 5000}}, "check-in p99"),
    ({"counts": {"oversells": 1}}, "oversells"),
    ({"counts": {"double_admissions": 2}}, "double admissions"),
    ({"counts": {"double_rooms": None}}, "double rooms"),   # could not be counted: not a pass
    ({"failures": 50}, "error rate"),
])
def test_verdict_fails_on_a_missed_sla(change, expected):
    p99 = dict(gate_scan_qr=20, desk_check_in=40, book_stay=100, search_rooms=30)
    p99.update(change.get("stats", {}))
    stats = _stats(**p99)
    if "failures" in change:
        stats["Aggregated"]["Failure Count"] = str(change["failures"])
    counts = dict(CLEAN, **change.get("counts", {}))
    failed = _failed(load.verdict(SCENARIOS["weekday"], SCENARIOS["weekday"].sla, stats, counts))
    assert len(failed) == 1 and failed[0].startswith(expected), failed
