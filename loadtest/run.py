"""`python -m loadtest.run --scenario weekday --duration 60` (make load).

1. Starts a scratch stack (each service in its own `nameko run` process, its
   own database, vhost and Redis prefix) unless --host names a running one.
2. Creates the scenario's hotels, venues, desks and gates through the admin
   API and books a pool of stays and tickets for today through the public API.
3. Runs Locust headless in its own venv (.venv-locust) with the scenario's
   load shape, writing reports/load-<scenario>.html and the CSVs.
4. Judges the run against the scenario's SLAs: p99 of gate scans, check-ins,
   bookings and searches, the error rate, and — counted from the system's own
   data with read-only SQL — zero oversells, zero double admissions and zero
   rooms holding two guests. Prints the verdict, writes
   reports/load-<scenario>-verdict.md, and exits 1 when an SLA is missed.
"""
import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
import time
import uuid

import psycopg2

from bench import loadgen
from bench.api import Client, stay_body, ticket_body
from bench.stack import ADMIN_TOKEN, ROOT, Stack
from loadtest.people import People
from loadtest.scenarios import SCENARIOS
from shared.clock import city_today

LOCUST = os.path.join(ROOT, ".venv-locust", "bin", "locust")
LOCUSTFILE = os.path.join(ROOT, "loadtest", "locustfile.py")
DISTRICTS = ("沈河区", "和平区", "皇姑区", "大东区", "铁西区", "浑南区")


def prepare(api, scenario, scale, run_id):
    """Hotels, venues and devices from the admin API; a pool of today's stays
    and tickets booked through the public API. Returns the data file content."""
    people = People(stream=uuid.uuid4().int % 50)
    rooms = scenario.rooms_per_type
    hotels = []
    for h in range(scenario.hotels):
        types = [{"room_type": "standard", "price": 280 + 20 * h,
                  "rooms": ["%d%02d" % (3 + i // 20, i % 20 + 1) for i in range(rooms)]},
                 {"room_type": "family", "price": 520 + 20 * h,
                  "rooms": ["%d%02d" % (9 + i // 20, i % 20 + 1) for i in range(rooms // 2)]}]
        district = DISTRICTS[h % len(DISTRICTS)]
        hotel_id = api.hotel("负载测试酒店 %s-%d" % (run_id, h), district, types)
        hotels.append({"hotel_id": hotel_id, "district": district,
                       "room_types": [t["room_type"] for t in types],
                       "desks": [api.device("desk", hotel_id=hotel_id) for _ in range(2)]})
    venues = []
    for v, (kind, policy, lanes) in enumerate(scenario.venues):
        venue_id = api.venue("负载测试%s %s-%d" % (kind, run_id, v), kind=kind,
                             daily=1_000_000, inside=500_000, policy=policy)
        venues.append({"venue_id": venue_id, "kind": kind, "policy": policy,
                       "gates_in": [api.device("gate", venue_id=venue_id, direction="in")
                                    for _ in range(lanes)],
                       "gates_out": [api.device("gate", venue_id=venue_id, direction="out")
                                     for _ in range(max(1, lanes // 2))]
                       if policy == "multi" else []})
    tokens = [api.tourist(people) for _ in range(10)]
    today = city_today()
    plan = []
    for hotel in hotels:
        for _ in range(int(scenario.pool_stays * scale)):
            plan.append(("stay", hotel, people.person()))
    for venue in venues:
        for _ in range(int(scenario.pool_tickets * scale)):
            plan.append(("ticket", venue, people.person()))
    stays, tickets = [], []

    def make(i):
        kind, target, person = plan[i]
        body = (stay_body(target["hotel_id"], "standard", today, 1, [person]) if kind == "stay"
                else ticket_body(target["venue_id"], today, [person]))
        return loadgen.Request("POST", "/v1/bookings", {
            "Authorization": "Bearer " + tokens[i % len(tokens)],
            "Idempotency-Key": "pool-%s-%d" % (run_id, i)}, body)

    def seen(i, request, status, body):
        if status in (200, 201):
            kind, target, person = plan[i]
            booking_id = json.loads(body)["booking_id"]
            if kind == "stay":
                stays.append({"hotel_id": target["hotel_id"], "booking_id": booking_id,
                              "id_number": person["id_number"]})
            else:
                tickets.append({"venue_id": target["venue_id"], "booking_id": booking_id,
                                "token": tokens[i % len(tokens)],
                                "id_number": person["id_number"]})

    result = loadgen.closed_loop("pool", api.urls["booking"], make, connections=8,
                                 duration=300, count=len(plan), on_response=seen)
    print("prepared %d hotels, %d venues; pool of %d stays and %d tickets booked in %.1f s "
          "(%s)" % (len(hotels), len(venues), len(stays), len(tickets), result.elapsed,
                    dict(result.statuses)), flush=True)
    return {"urls": api.urls, "tz": "Asia/Shanghai", "hotels": hotels, "venues": venues,
            "stays": stays, "tickets": tickets, "stream_base": 100}


def run_locust(scenario, data_path, host, duration, users, prefix):
    env = dict(os.environ, LOAD_DATA=data_path, LOAD_SCENARIO=scenario.name,
               LOAD_DURATION=str(duration), LOAD_USERS=str(users or 0), PYTHONPATH=ROOT)
    cmd = [LOCUST, "-f", LOCUSTFILE, "--headless", "--host", host,
           "--html", prefix + ".html", "--csv", prefix, "--only-summary",
           "--loglevel", "WARNING", "--stop-timeout", "5"]
    print("locust: %s, %d s, peak %d users" % (scenario.name, duration,
                                                users or scenario.users), flush=True)
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=duration + 180)
    with open(prefix + "-locust.log", "w") as f:
        f.write(out.stdout + out.stderr)
    state = {}
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("LOADSTATE "):
            state = json.loads(line[len("LOADSTATE "):])
    return out.returncode, state


def read_stats(path):
    """{name: row} from Locust's _stats.csv (the 'Aggregated' row included)."""
    with open(path, newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def _p99(stats, names):
    """Worst p99 (ms) among the named request kinds that ran, and their count."""
    values, count = [], 0
    for name in names:
        row = stats.get(name)
        if row and int(row["Request Count"]) > 0:
            values.append(float(row["99%"]))
            count += int(row["Request Count"])
    return (max(values) if values else None), count


INTEGRITY = {
    # hotel-stay bookings holding a room type on a night beyond its room count
    "oversells": [
        """SELECT count(*) FROM (
             SELECT b.hotel_id, b.room_type, n.night, count(*) AS held
             FROM booking.bookings b
             CROSS JOIN LATERAL generate_series(b.check_in, b.check_out - 1, interval '1 day') AS n(night)
             WHERE b.kind = 'hotel_stay' AND b.status <> 'cancelled'
             GROUP BY 1, 2, 3) x
           JOIN booking.room_types rt USING (hotel_id, room_type)
           WHERE x.held > rt.total""",
        "SELECT count(*) FROM booking.room_nights WHERE sold > capacity",
        # tickets beyond a venue's daily capacity or a slot's quota
        """SELECT count(*) FROM (
             SELECT venue_id, day, sum(party_size) AS held FROM booking.bookings
             WHERE kind = 'venue_ticket' AND status <> 'cancelled' GROUP BY 1, 2) x
           JOIN booking.venues v USING (venue_id) WHERE x.held > v.daily_capacity""",
        """SELECT count(*) FROM (
             SELECT venue_id, slot, day, sum(party_size) AS held FROM booking.bookings
             WHERE kind = 'venue_ticket' AND status <> 'cancelled' AND slot IS NOT NULL
             GROUP BY 1, 2, 3) x
           JOIN booking.venue_slots s USING (venue_id, slot) WHERE x.held > s.quota""",
    ],
    # single-entry tickets admitted more often than their party size
    "double_admissions": [
        """SELECT count(*) FROM (
             SELECT credential_id, count(*) AS admitted FROM entry.scans
             WHERE decision = 'admit' AND direction = 'in' AND NOT annulled
             GROUP BY 1) a
           JOIN booking.bookings b ON b.credential_id = a.credential_id
           JOIN booking.venues v ON v.venue_id = b.venue_id
           WHERE v.entry_policy = 'single' AND a.admitted > b.party_size""",
    ],
    # two guests in house in one room at once
    "double_rooms": [
        """SELECT count(*) FROM (SELECT hotel_id, room FROM checkin.stays
           WHERE status = 'in_house' GROUP BY 1, 2 HAVING count(*) > 1) x""",
    ],
}
FACTS = {
    "bookings confirmed": "SELECT count(*) FROM booking.bookings WHERE status <> 'cancelled'",
    "bookings cancelled": "SELECT count(*) FROM booking.bookings WHERE status = 'cancelled'",
    "admissions": "SELECT count(*) FROM entry.scans WHERE decision = 'admit' AND direction = 'in' AND NOT annulled",
    "refusals": "SELECT count(*) FROM entry.scans WHERE decision = 'deny'",
    "exits": "SELECT count(*) FROM entry.scans WHERE decision = 'admit' AND direction = 'out'",
    "stays in house": "SELECT count(*) FROM checkin.stays WHERE status = 'in_house'",
    "stays checked out": "SELECT count(*) FROM checkin.stays WHERE status = 'checked_out'",
}


def integrity(database_url):
    """Counts from the system's own data (read-only). A query that cannot run
    (schema missing) yields None: the check is then reported, not passed."""
    counts, facts = {}, {}
    conn = psycopg2.connect(database_url)
    conn.set_session(readonly=True, autocommit=True)
    try:
        with conn.cursor() as cur:
            for name, queries in INTEGRITY.items():
                total = 0
                for sql in queries:
                    try:
                        cur.execute(sql)
                        total += cur.fetchone()[0]
                    except psycopg2.Error as exc:
                        print("!! integrity query failed (%s): %s" % (name, str(exc).strip()),
                              flush=True)
                        total = None
                        break
                counts[name] = total
            for name, sql in FACTS.items():
                try:
                    cur.execute(sql)
                    facts[name] = cur.fetchone()[0]
                except psycopg2.Error:
                    facts[name] = None
    finally:
        conn.close()
    return counts, facts


def read_failures(path, top=5):
    """The most frequent failure messages from Locust's _failures.csv."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: -int(r["Occurrences"]))
    return ["%s × %s: %s" % (r["Occurrences"], r["Name"], r["Error"][:120]) for r in rows[:top]]


def verdict(scenario, sla, stats, counts, facts=None):
    """[(check, passed, figure)]."""
    facts = facts or {}
    context = {"oversells": facts.get("bookings confirmed"),
               "double_admissions": facts.get("admissions"),
               "double_rooms": facts.get("stays in house")}
    checks = []

    def latency(label, names, limit):
        p99, n = _p99(stats, names)
        if n == 0:
            checks.append((label, False, "no requests of this kind ran"))
        else:
            checks.append((label + " < %d ms" % limit, p99 < limit, "p99 %.0f ms over %d" % (p99, n)))

    latency("gate scan p99", ("gate: scan qr", "gate: scan id card", "gate: bad code",
                              "gate: exit"), sla.gate_p99_ms)
    latency("check-in p99", ("desk: check-in",), sla.checkin_p99_ms)
    latency("booking p99", ("book stay", "book ticket"), sla.booking_p99_ms)
    latency("room search p99", ("search rooms",), sla.search_p99_ms)
    total = stats.get("Aggregated", {})
    requests_n = int(total.get("Request Count", 0) or 0)
    failures = int(total.get("Failure Count", 0) or 0)
    rate = failures / requests_n if requests_n else 1.0
    checks.append(("error rate <= %.1f %%" % (100 * sla.error_rate), requests_n > 0
                   and rate <= sla.error_rate, "%.2f %% (%d of %d requests)" % (
                       100 * rate, failures, requests_n)))
    for name, limit in (("oversells", sla.oversells), ("double_admissions", sla.double_admissions),
                        ("double_rooms", sla.double_rooms)):
        value = counts.get(name)
        checks.append(("%s = %d" % (name.replace("_", " "), limit),
                       value is not None and value <= limit,
                       "could not be counted" if value is None else "%d counted%s" % (
                           value, "" if context.get(name) is None
                           else " (among %s %s)" % (context[name], {
                               "oversells": "live bookings", "double_admissions": "admissions",
                               "double_rooms": "stays in house"}[name]))))
    return checks


def _show(path):
    rel = os.path.relpath(path, ROOT)
    return path if rel.startswith("..") else rel


def render(scenario, args, checks, facts, state, stats, paths, elapsed):
    lines = ["# Load test verdict: %s" % scenario.name, "",
             "%s; %d s, peak %d users%s; %s UTC." % (
                 scenario.description, args.duration, args.users or scenario.users,
                 " (smoke SLAs)" if args.smoke else "",
                 datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")), "",
             "| SLA | verdict | measured |", "|---|---|---|"]
    for label, passed, figure in checks:
        lines.append("| %s | %s | %s |" % (label, "PASS" if passed else "FAIL", figure))
    lines += ["", "| request | count | failures | p50 ms | p99 ms | req/s |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, row in stats.items():
        lines.append("| %s | %s | %s | %s | %s | %.1f |" % (
            name, row["Request Count"], row["Failure Count"], row["50%"], row["99%"],
            float(row["Requests/s"] or 0)))
    lines += ["", "From the system's own data: " + ", ".join(
        "%s %s" % (k, v) for k, v in facts.items()) + ".",
        "Left in the locust queues: %s." % json.dumps(
            {k: v for k, v in state.items() if k != "top failures"}),
        "Most frequent failures: %s." % ("; ".join(state.get("top failures") or []) or "none"),
        "Reports: %s. Whole run %.0f s." % (", ".join(_show(p) for p in paths),
                                            elapsed)]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default="weekday")
    p.add_argument("--duration", type=int, default=60, help="seconds of load")
    p.add_argument("--users", type=int, default=0, help="peak users (default: the scenario's)")
    p.add_argument("--host", help="a running stack behind one base URL (default: start one)")
    p.add_argument("--database-url", help="for the integrity counts when --host is given "
                                          "(default: DATABASE_URL or the local default)")
    p.add_argument("--admin-token", default=None)
    p.add_argument("--pool-scale", type=float, default=1.0,
                   help="scale the pre-booked pool of stays and tickets")
    p.add_argument("--smoke", action="store_true", help="generous SLAs (for make test)")
    p.add_argument("--report-dir", default=os.path.join(ROOT, "reports"))
    p.add_argument("--stack-tag", default="load",
                   help="names the scratch database and vhost (duoyou_<tag>)")
    args = p.parse_args(argv)
    scenario = SCENARIOS[args.scenario]
    sla = scenario.sla.generous() if args.smoke else scenario.sla
    os.makedirs(args.report_dir, exist_ok=True)
    prefix = os.path.join(args.report_dir, "load-%s" % scenario.name)
    started = time.time()
    run_id = uuid.uuid4().hex[:6]
    stack = None
    try:
        if args.host:
            base = args.host.rstrip("/")
            urls = {"booking": base, "checkin": base, "entry": base}
            token = args.admin_token or os.environ.get("ADMIN_TOKEN", "duoyou-admin-dev")
            database_url = args.database_url or os.environ.get(
                "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/duoyou")
        else:
            print("starting a scratch stack (booking, checkin, entry, each its own process)",
                  flush=True)
            stack = Stack(args.stack_tag, log_dir=os.path.join(args.report_dir, "logs")).create()
            for name in ("booking", "checkin", "entry"):
                stack.start(name)
            urls = {n: stack.url(n) for n in ("booking", "checkin", "entry")}
            token, database_url = ADMIN_TOKEN, stack.database_url
        data = prepare(Client(urls, token), scenario, args.pool_scale, run_id)
        if stack:
            stack.settle(timeout=60)
        data_path = prefix + "-data.json"
        with open(data_path, "w") as f:
            json.dump(data, f)
        code, state = run_locust(scenario, data_path, urls["booking"], args.duration,
                                 args.users, prefix)
        stats_path = prefix + "_stats.csv"
        if not os.path.exists(stats_path):
            print("locust wrote no statistics (exit %s); see %s-locust.log" % (code, prefix))
            return 2
        if stack:
            stack.settle(timeout=30)  # let events land before counting
        stats = read_stats(stats_path)
        counts, facts = integrity(database_url)
        if stack:
            mem = {n: round((p.memory()[1] or 0) / 1024.0) for n, p in stack.processes.items()}
            facts["peak RSS MB"] = mem
    finally:
        if stack:
            stack.close()
    checks = verdict(scenario, sla, stats, counts, facts)
    state["top failures"] = read_failures(prefix + "_failures.csv")
    paths = [prefix + ".html", stats_path, prefix + "-verdict.md"]
    text = render(scenario, args, checks, facts, state, stats, paths, time.time() - started)
    with open(prefix + "-verdict.md", "w") as f:
        f.write(text)
    print("\n" + text)
    failed = [label for label, passed, _ in checks if not passed]
    print("VERDICT: %s" % ("PASS" if not failed else "FAIL (%s)" % "; ".join(failed)))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
