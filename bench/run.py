"""`python -m bench.run` (make bench): every benchmark from this (second)
process against services each started in its own `nameko run` process, each
read beside the floor measured in the same run. Prints one table and the
targets as PASS/FAIL, and writes both to reports/bench.md.

Load: wrk for closed-loop maximum throughput, bench.loadgen (Python, asyncio)
for fixed-rate open-loop latency and for count-bounded runs whose answers we
need (bookings, check-ins). The Python client's own ceiling is measured
against the floor too, so a reader can tell client limits from server limits.
Loopback only; every run is bounded in time and in count.
"""
import argparse
import collections
import contextlib
import datetime
import json
import os
import platform
import re
import sys
import time
import uuid

import requests

from bench import cpu, loadgen, profile, wrk
from bench.api import Client, stay_body, ticket_body
from bench.stack import ADMIN_TOKEN, ROOT, Stack, service_available
from loadtest.people import People
from shared.clock import city_today

REPORT = os.path.join(ROOT, "reports", "bench.md")
MB = 1024.0


class Bench:
    def __init__(self, args):
        self.args = args
        self.stack = Stack("bench")
        self.rows = []       # one per benchmark line of the table
        self.targets = []    # (name, passed, figure)
        self.notes = []
        self.profiles = []   # (benchmark, summary lines)
        self.floor = None    # wrk max rate of the floor
        self.run_id = uuid.uuid4().hex[:6]
        self.today = city_today()

    # -- output helpers ----------------------------------------------------
    def mark(self):
        """Start CPU accounting for the next measured run."""
        self._cpu_before = cpu.snapshot()

    def row(self, count, name, mode, rate, p50, p99, ratio=None, process=None, detail=""):
        used = ""
        if getattr(self, "_cpu_before", None) is not None:
            named = {p.pid: n for n, p in self.stack.processes.items()}
            named[os.getpid()] = "client"
            used = cpu.per_request(cpu.spent(self._cpu_before, cpu.snapshot(), named), count)
            self._cpu_before = None
        rss = None
        if process and process in self.stack.processes:
            rss = self.stack.processes[process].memory()[0]
        entry = {"name": name, "mode": mode, "rate": rate, "p50": p50, "p99": p99,
                 "ratio": ratio, "rss": rss, "detail": detail, "cpu": used}
        self.rows.append(entry)
        print("  %-28s %-16s %8.1f req/s  p50 %7s ms  p99 %7s ms  %s" % (
            name, mode, rate, _fmt(p50), _fmt(p99), detail), flush=True)
        return entry

    def target(self, name, passed, figure):
        self.targets.append((name, passed, figure))
        print("  %s  %s: %s" % ("PASS" if passed else "FAIL", name, figure), flush=True)

    def profiled(self, which, process, seconds):
        """py-spy on `process` during this run if --profile names `which`."""
        if which not in (self.args.profile or "").split(","):
            return contextlib.nullcontext()
        return self._profiled(which, process, seconds)

    @contextlib.contextmanager
    def _profiled(self, which, process, seconds):
        with profile.sampled(self.stack.processes[process].pid, which, seconds) as path:
            yield
        lines = profile.summarise(path) or ["py-spy not available or recorded nothing"]
        self.profiles.append((which, lines))
        print("\n".join("  " + l for l in lines), flush=True)

    def ratio(self, rate):
        return rate / self.floor if self.floor else None

    # -- the run -----------------------------------------------------------
    def run(self):
        self.stack.create()
        started = time.time()
        self.load_before = _loadavg()
        try:
            self.bench_floor()
            missing = [n for n in ("booking", "checkin", "entry") if not service_available(n)]
            if "booking" in missing:
                self.notes.append("booking service not in this checkout: only the floor ran")
            else:
                self.start_services(missing)
                self.prepare()
                # Each phase starts once the previous one's events are consumed,
                # so no benchmark pays for the one before it.
                self.bench_bookings()
                self.stack.settle()
                if "search" in self.args.phases:
                    self.bench_search()
                if "checkin" not in missing and "checkin" in self.args.phases:
                    self.stack.settle()
                    self.bench_checkins()
                if "entry" not in missing and "gate" in self.args.phases:
                    self.stack.settle()
                    self.bench_gate()
            for name in missing:
                self.notes.append("%s service not in this checkout: its benchmark did not run"
                                  % name)
            self.memory_targets()
        finally:
            self.stack.close()
        self.elapsed = time.time() - started
        return self.write_report()

    def bench_floor(self):
        print("floor: bare nameko @http + one Redis GET", flush=True)
        floor = self.stack.start("floor", module="bench.floor_service")
        d = self.args.duration
        self.mark()
        w = wrk.run(floor.base, [wrk.line("GET", "/floor")], connections=16, duration=d)
        self.floor = w["rate"]
        self.row(w["requests"], "floor (1 Redis GET)", w["mode"], w["rate"], w["p50_ms"], w["p99_ms"], 1.0,
                 "floor")
        req = loadgen.Request("GET", "/floor")
        self.mark()
        py = loadgen.closed_loop("floor", floor.base, lambda i: req, connections=16, duration=d)
        self.row(py.completed, "floor, Python client", "py " + py.mode, py.rate, _ms(py.percentile(50)),
                 _ms(py.percentile(99)), self.ratio(py.rate), "floor",
                 "client ceiling check")
        self.client_ceiling = py.rate
        for rate in (100, 500):
            self.mark()
            op = loadgen.open_loop("floor", floor.base, lambda i: req, rate=rate, duration=d)
            self.row(op.completed, "floor", "py " + op.mode, op.rate, _ms(op.percentile(50)),
                     _ms(op.percentile(99)), None, "floor")
        floor.stop()
        self.floor_rss = floor.peak_kb

    def start_services(self, missing):
        print("starting services (each in its own process)", flush=True)
        for name in ("booking", "checkin", "entry"):
            if name not in missing:
                proc = self.stack.start(name)
                print("  %s pid %d on %s" % (name, proc.pid, proc.base), flush=True)
        urls = {n: self.stack.url(n) if n in self.stack.processes else None
                for n in ("booking", "checkin", "entry")}
        self.api = Client(urls, ADMIN_TOKEN)

    def prepare(self):
        a = self.args
        print("seeding the synthetic city (%d hotels, %d venues)" % (a.hotels, a.venues),
              flush=True)
        t = time.time()
        out = self.stack.run_cli("-m", "services.booking.seed", "synthetic",
                                 "--hotels", str(a.hotels), "--venues", str(a.venues))
        if out.returncode != 0:
            raise RuntimeError("seed failed: %s" % (out.stderr[-2000:] or out.stdout[-2000:]))
        seeded = time.time() - t
        settled = self.stack.settle()
        self.notes.append("synthetic city seeded in %.1f s (%d hotels, %d venues); its "
                          "hotel.created events consumed %.1f s later%s"
                          % (seeded, a.hotels, a.venues, time.time() - t - seeded,
                             "" if settled else " (NOT settled: backlog remained)"))
        print("creating the benchmark's own hotels, venue, devices, tourists", flush=True)
        people = People(stream=1)
        self.people = people
        rooms = a.rooms_per_hotel
        self.hotels = []
        for h in range(a.bench_hotels):
            numbers = ["%d%03d" % (2 + i // 100, i % 100 + 1) for i in range(rooms)]
            hotel_id = self.api.hotel("Bench Hotel %s-%d" % (self.run_id, h), "Bench District",
                                      [{"room_type": "standard", "price": 300, "rooms": numbers}])
            desks = [self.api.device("desk", hotel_id=hotel_id) for _ in range(2)]
            self.hotels.append({"hotel_id": hotel_id, "desks": desks})
        self.venue_id = self.api.venue("Bench Museum %s" % self.run_id)
        self.gates = [self.api.device("gate", venue_id=self.venue_id, direction="in")
                      for _ in range(a.gates)]
        self.tokens = [self.api.tourist(people) for _ in range(a.tourists)]
        # Let hotel.created reach checkin (it creates the physical rooms).
        self.stack.settle()

    # -- bookings ------------------------------------------------------------
    def bench_bookings(self):
        a = self.args
        n_stays = a.checkin_rate * a.duration + a.checkin_max + a.checkin_solo
        if "checkin" not in a.phases:
            n_stays = 0
        # Group tickets (a family, a tour group): each admits `party` people,
        # one scan each, so the gate runs need fewer bookings.
        n_tickets = -(-(a.gate_rate * a.duration + a.gate_max_scans) // a.party)
        if "gate" not in a.phases:
            n_tickets = 0
        plan = []  # (kind, hotel index or None, people)
        person = _distinct_people()
        for i in range(max(n_stays, n_tickets)):
            if i < n_stays:
                plan.append(("stay", i % len(self.hotels), [next(person)]))
            if i < n_tickets:
                plan.append(("ticket", None, [next(person) for _ in range(a.party)]))
        self.stays, self.tickets = [], []
        tokens = self.tokens

        def make(i):
            kind, hotel, people = plan[i]
            token = tokens[i % len(tokens)]
            if kind == "stay":
                body = stay_body(self.hotels[hotel]["hotel_id"], "standard", self.today, 1,
                                 people)
            else:
                body = ticket_body(self.venue_id, self.today, people)
            return loadgen.Request("POST", "/v1/bookings", {
                "Authorization": "Bearer " + token,
                "Idempotency-Key": "bench-%s-%d" % (self.run_id, i)}, body)

        def seen(i, request, status, body):
            if status not in (200, 201):
                return
            kind, hotel, people = plan[i]
            booking = json.loads(body)
            item = {"booking_id": booking["booking_id"], "token": tokens[i % len(tokens)],
                    "id_number": people[0]["id_number"], "hotel": hotel,
                    "id_numbers": [p["id_number"] for p in people]}
            (self.stays if kind == "stay" else self.tickets).append(item)

        print("bookings: %d stays + %d tickets of %d visitors, POST /v1/bookings"
              % (n_stays, n_tickets, a.party), flush=True)
        with self.profiled("booking", "booking", 15):
            self.mark()
            r = loadgen.closed_loop("bookings", self.stack.url("booking"), make,
                                    connections=a.connections, duration=a.booking_time_limit,
                                    count=len(plan), on_response=seen)
        self.row(r.completed, "bookings (POST)", "py " + r.mode, r.rate, _ms(r.percentile(50)),
                 _ms(r.percentile(99)), self.ratio(r.rate), "booking", _statuses(r))
        if len(self.stays) < n_stays or len(self.tickets) < n_tickets:
            self.notes.append("bookings: %d of %d stays and %d of %d tickets confirmed (%s)"
                              % (len(self.stays), n_stays, len(self.tickets), n_tickets,
                                 _statuses(r)))

    # -- room search ---------------------------------------------------------
    def bench_search(self):
        a = self.args
        base = self.stack.url("booking")
        probe = requests.get(base + "/v1/hotels/search", params={
            "check_in": (self.today + datetime.timedelta(days=10)).isoformat(),
            "check_out": (self.today + datetime.timedelta(days=13)).isoformat(),
            "guests": 2, "limit": 100}, timeout=30)
        districts = sorted({h["district"] for h in probe.json().get("results", [])}) \
            if probe.status_code == 200 else []
        paths = []
        for i in range(500):
            start = self.today + datetime.timedelta(days=1 + i % 26)  # the seed fills 30 days
            q = "check_in=%s&check_out=%s&guests=%d" % (
                start.isoformat(), (start + datetime.timedelta(days=3)).isoformat(), 1 + i % 2)
            if districts and i % 3 == 1:
                q += "&district=" + requests.utils.quote(districts[i % len(districts)])
            if i % 4 == 2:
                q += "&max_price=%d" % (300 + i % 5 * 100)
            paths.append("/v1/hotels/search?" + q)
        print("room search: 3-night stays over %d hotels (%d distinct queries, %d districts)"
              % (a.hotels, len(paths), len(districts)), flush=True)
        with self.profiled("search", "booking", a.duration - 1):
            self.mark()
            w = wrk.run(base, [wrk.line("GET", p) for p in paths], connections=a.connections,
                        duration=a.duration)
        self.row(w["requests"], "room search (3 nights)", w["mode"], w["rate"], w["p50_ms"], w["p99_ms"],
                 self.ratio(w["rate"]), "booking", _wrk_errors(w))
        self.mark()
        op = loadgen.open_loop("search", base,
                               lambda i: loadgen.Request("GET", paths[i % len(paths)]),
                               rate=a.search_rate, duration=a.duration)
        self.row(op.completed, "room search (3 nights)", "py " + op.mode, op.rate, _ms(op.percentile(50)),
                 _ms(op.percentile(99)), None, "booking", _statuses(op))
        p99 = _ms(op.percentile(99))
        self.target("room search p99 < 50 ms (1,000-hotel city, 3 nights, %d/s)" % a.search_rate,
                    p99 is not None and p99 < 50 and _ok(op), "p99 %s ms, %s" % (
                        _fmt(p99), _statuses(op)))

    # -- check-ins -----------------------------------------------------------
    def bench_checkins(self):
        a = self.args
        base = self.stack.url("checkin")
        stays = list(self.stays)
        if not stays:
            self.notes.append("check-ins: no confirmed stays to check in")
            return

        def make_for(items):
            def make(i):
                if i >= len(items):
                    return None
                s = items[i]
                desks = self.hotels[s["hotel"]]["desks"]
                return loadgen.Request("POST", "/v1/checkins", {
                    "Authorization": "Device " + desks[i % len(desks)]},
                    {"medium": "id_card", "value": s["id_number"]})
            return make

        # One check-in at a time (10/s, far below capacity): the server side of
        # a single check-in, which the 30-second budget is about.
        solo, stays = stays[:a.checkin_solo], stays[a.checkin_solo:]
        n_open = min(len(stays), a.checkin_rate * a.duration)
        print("check-ins: %d at 10/s, %d at %d/s, then up to %d closed-loop" % (
            len(solo), n_open, a.checkin_rate, len(stays) - n_open), flush=True)
        self.mark()
        lone = loadgen.open_loop("checkins", base, make_for(solo), rate=10,
                                 duration=len(solo) / 10.0 + 1, count=len(solo))
        self.row(lone.completed, "check-ins (ID card)", "py " + lone.mode, lone.rate, _ms(lone.percentile(50)),
                 _ms(lone.percentile(99)), None, "checkin", _statuses(lone))
        solo_p99 = _ms(lone.percentile(99))
        self.target("check-in server side < 1 % of 30 s (p99 < 300 ms, one at a time)",
                    solo_p99 is not None and solo_p99 < 300 and _ok(lone, 201),
                    "p99 %s ms = %.2f %% of 30 s" % (_fmt(solo_p99), (solo_p99 or 0) / 300.0))
        self.mark()
        op = loadgen.open_loop("checkins", base, make_for(stays[:n_open]), rate=a.checkin_rate,
                               duration=a.duration, count=n_open)
        self.row(op.completed, "check-ins (ID card)", "py " + op.mode, op.rate, _ms(op.percentile(50)),
                 _ms(op.percentile(99)), None, "checkin", _statuses(op))
        p99 = _ms(op.percentile(99))
        self.target("check-in p99 < 50 ms at %d/s" % a.checkin_rate,
                    p99 is not None and p99 < 50 and _ok(op, 201),
                    "p99 %s ms, %s" % (_fmt(p99), _statuses(op)))
        rest = stays[n_open:]
        if rest:
            with self.profiled("checkin", "checkin", max(3, min(a.duration, len(rest) // 150))):
                self.mark()
                cl = loadgen.closed_loop("checkins", base, make_for(rest),
                                         connections=a.connections, duration=a.duration * 3,
                                         count=len(rest))
            self.row(cl.completed, "check-ins (ID card)", "py " + cl.mode, cl.rate, _ms(cl.percentile(50)),
                     _ms(cl.percentile(99)), self.ratio(cl.rate), "checkin", _statuses(cl))

    # -- gate scans ----------------------------------------------------------
    def scan_bodies(self, tickets):
        """One scan per visitor: half the groups show the ticket's QR (fetched
        fresh from booking, as the phone does) once per person, the other half
        each show their ID card."""
        bodies = []
        for i, t in enumerate(tickets):
            if i % 2 == 0:
                code = self.api.qr(t["token"], t["booking_id"])
                bodies += [{"medium": "qr", "value": code} for _ in t["id_numbers"]]
            else:
                bodies += [{"medium": "id_card", "value": n} for n in t["id_numbers"]]
        return bodies

    def bench_gate(self):
        a = self.args
        base = self.stack.url("entry")
        if not self.tickets:
            self.notes.append("gate: no confirmed tickets to scan")
            return
        n_max = min(-(-a.gate_max_scans // a.party), len(self.tickets))
        max_set, rate_set = self.tickets[:n_max], self.tickets[n_max:]
        print("gate scans: max throughput over %d tickets (QR + ID card), then %d/s over %d "
              "fresh tickets (%d visitors each)" % (n_max, a.gate_rate, len(rate_set), a.party),
              flush=True)
        bodies = self.scan_bodies(max_set)
        lines = [wrk.line("POST", "/v1/scans", "Device " + self.gates[i % len(self.gates)],
                          dict(b, nonce="@NONCE@")) for i, b in enumerate(bodies)]
        before = decisions(base)
        with self.profiled("gate", "entry", a.duration - 1):
            self.mark()
            w = wrk.run(base, lines, connections=a.connections, duration=a.duration,
                        run_id=self.run_id)
        mix = _diff(decisions(base), before)
        self.row(w["requests"], "gate scans (QR + ID card)", w["mode"], w["rate"], w["p50_ms"], w["p99_ms"],
                 self.ratio(w["rate"]), "entry", _wrk_errors(w) + " " + _mix(mix))
        self.target("gate >= 1,000 scans/s from one entry process", w["rate"] >= 1000
                    and not w["non_2xx_3xx"], "%.0f scans/s, %s" % (w["rate"], _wrk_errors(w)))
        self.target("gate >= half the floor's throughput", self.ratio(w["rate"]) >= 0.5,
                    "%.2f x floor (%.0f vs %.0f req/s)" % (self.ratio(w["rate"]), w["rate"],
                                                           self.floor))
        if not rate_set:
            return
        bodies = self.scan_bodies(rate_set)
        reasons = collections.Counter()

        def make(i):
            if i >= len(bodies):
                return None
            return loadgen.Request("POST", "/v1/scans", {
                "Authorization": "Device " + self.gates[i % len(self.gates)]},
                dict(bodies[i], nonce="o-%s-%d" % (self.run_id, i)))

        def seen(i, request, status, body):
            if status == 200:
                reasons[json.loads(body).get("reason")] += 1

        self.mark()
        op = loadgen.open_loop("gate", base, make, rate=a.gate_rate, duration=a.duration,
                               count=len(bodies), on_response=seen)
        self.row(op.completed, "gate scans (QR + ID card)", "py " + op.mode, op.rate, _ms(op.percentile(50)),
                 _ms(op.percentile(99)), None, "entry",
                 _statuses(op) + " " + _mix(dict(reasons)))
        p99 = _ms(op.percentile(99))
        self.target("gate p99 < 25 ms at %d scans/s" % a.gate_rate,
                    p99 is not None and p99 < 25 and _ok(op),
                    "p99 %s ms, %s" % (_fmt(p99), _statuses(op)))

    # -- memory --------------------------------------------------------------
    def memory_targets(self):
        self.peaks = {}
        for name, proc in self.stack.processes.items():
            proc.memory()
            if proc.peak_kb:
                self.peaks[name] = proc.peak_kb
        if getattr(self, "floor_rss", None):
            self.peaks["floor"] = self.floor_rss
        services = {k: v for k, v in self.peaks.items() if k != "floor"}
        if services:
            worst = max(services, key=services.get)
            self.target("no service process above 150 MB RSS", services[worst] / MB < 150,
                        "peak %s %.0f MB" % (worst, services[worst] / MB))

    # -- report --------------------------------------------------------------
    def write_report(self):
        lines = ["# make bench — %s UTC" % datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"),
                 "", "Machine: %s" % machine(),
                 "", "Load average (1 min) before the run %s, after %s: other work on the "
                 "machine competes for the same 2 cores; compare rows to the floor of the same "
                 "run, not across runs." % (self.load_before, _loadavg()), ""]
        lines += ["| benchmark | load | rate (req/s) | p50 (ms) | p99 (ms) | x floor | "
                  "service RSS (MB) | answers |", "|---|---|---:|---:|---:|---:|---:|---|"]
        for r in self.rows:
            lines.append("| %s | %s | %.0f | %s | %s | %s | %s | %s |" % (
                r["name"], r["mode"], r["rate"], _fmt(r["p50"]), _fmt(r["p99"]),
                "%.2f" % r["ratio"] if r["ratio"] is not None else "",
                "%.0f" % (r["rss"] / MB) if r["rss"] else "", r["detail"]))
        lines += ["", "Where the CPU went: CPU milliseconds per completed request, by process "
                  "(utime+stime from /proc; 'client' is wrk or this Python client, 'other' is "
                  "everything else running on the machine):", "",
                  "| benchmark | load | CPU ms per request |", "|---|---|---|"]
        for r in self.rows:
            if r.get("cpu"):
                lines.append("| %s | %s | %s |" % (r["name"], r["mode"], r["cpu"]))
        lines += ["", "Peak RSS (VmHWM) per process:", "",
                  "| process | peak RSS (MB) |", "|---|---:|"]
        for name, kb in sorted(self.peaks.items()):
            lines.append("| %s | %.0f |" % (name, kb / MB))
        lines += ["", "Targets:", ""]
        for name, passed, figure in self.targets:
            lines.append("- **%s** %s — %s" % ("PASS" if passed else "FAIL", name, figure))
        if self.notes:
            lines += ["", "Notes:", ""] + ["- " + n for n in self.notes]
        for which, summary in self.profiles:
            lines += ["", "Profile of %s (py-spy, reports/profile-%s.txt):" % (which, which), "",
                      "```"] + summary + ["```"]
        lines += ["", "Python client ceiling: %.0f req/s closed-loop on the floor vs wrk %.0f "
                  "req/s (%.0f %%)." % (self.client_ceiling, self.floor,
                                        100.0 * self.client_ceiling / self.floor),
                  "Whole run: %.0f s." % self.elapsed]
        text = "\n".join(lines) + "\n"
        os.makedirs(os.path.dirname(REPORT), exist_ok=True)
        with open(REPORT, "w") as f:
            f.write(text)
        print("\n" + text)
        print("written to %s" % os.path.relpath(REPORT, ROOT))
        return 0 if all(p for _, p, _ in self.targets) else 1


# -- helpers -----------------------------------------------------------------

def _distinct_people():
    """Visitors and guests, all with different ID numbers: one People stream
    holds 10,000 distinct numbers, the gate run needs more (a repeated number
    is refused at booking, limit_exceeded)."""
    stream = 100
    while True:
        source = People(stream=stream)
        for _ in range(10_000):
            yield source.person()
        stream += 1


def decisions(base):
    """duoyou_decisions_total counters from a service's /metrics."""
    counts = {}
    try:
        text = requests.get(base + "/metrics", timeout=10).text
    except requests.RequestException:
        return counts
    for line in text.splitlines():
        if line.startswith("duoyou_decisions_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            key = "%s/%s" % (labels.get("decision"), labels.get("reason"))
            counts[key] = counts.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return counts


def _diff(after, before):
    return {k: int(v - before.get(k, 0)) for k, v in after.items() if v - before.get(k, 0)}


def _mix(counts):
    return ", ".join("%s %d" % (k, v) for k, v in sorted(counts.items(), key=lambda x: -x[1]))


def _statuses(result):
    parts = ["%d×%d" % (n, s) for s, n in sorted(result.statuses.items())]
    parts += ["%d×%s" % (n, e) for e, n in result.errors.items()]
    if result.late:
        parts.append("%d late starts" % result.late)
    return " ".join(parts)


def _wrk_errors(w):
    return "%d requests, %d non-2xx, %d socket errors" % (w["requests"], w["non_2xx_3xx"],
                                                          w["socket_errors"])


def _ok(result, status=200):
    return not result.errors and result.statuses.get(status, 0) == result.completed > 0


def _ms(seconds):
    return None if seconds is None else seconds * 1000


def _fmt(ms):
    return "-" if ms is None else ("%.1f" % ms if ms < 100 else "%.0f" % ms)


def _loadavg():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return "?"


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return "%d cores (%s), %.0f GiB, %s, Python %s, wrk %s" % (
        os.cpu_count(), cpu, mem, platform.platform(), platform.python_version(),
        "yes" if wrk.available() else "missing")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=8, help="seconds per timed run")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--hotels", type=int, default=1000, help="synthetic city size")
    p.add_argument("--venues", type=int, default=100)
    p.add_argument("--bench-hotels", type=int, default=4)
    p.add_argument("--rooms-per-hotel", type=int, default=500)
    p.add_argument("--gates", type=int, default=8)
    p.add_argument("--tourists", type=int, default=40)
    p.add_argument("--gate-rate", type=int, default=500)
    p.add_argument("--gate-max-scans", type=int, default=None,
                   help="distinct visitors in the closed-loop gate list (default: enough "
                        "for 1,500 scans/s over the run, so every scan is a first entry)")
    p.add_argument("--party", type=int, default=5, help="visitors per ticket")
    p.add_argument("--checkin-rate", type=int, default=100)
    p.add_argument("--checkin-max", type=int, default=600)
    p.add_argument("--checkin-solo", type=int, default=50, help="check-ins at 10/s")
    p.add_argument("--search-rate", type=int, default=50)
    p.add_argument("--booking-time-limit", type=int, default=240)
    p.add_argument("--profile", default="",
                   help="comma-separated: booking,search,checkin,gate: sample that service "
                        "with py-spy during its closed-loop run (PY_SPY=path if not on PATH)")
    p.add_argument("--phases", default="search,checkin,gate", type=lambda v: v.split(","),
                   help="which benchmarks run after the bookings (comma-separated)")
    p.add_argument("--quick", action="store_true", help="small counts, for trying the harness")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.hotels, args.venues = 3, 50, 5
        args.rooms_per_hotel, args.checkin_max = 200, 100
    if args.gate_max_scans is None:
        # a list that wraps turns the rest of the run into already_used
        # refusals, which are cheaper than admissions and would flatter it
        args.gate_max_scans = 1500 * args.duration
    if not wrk.available():
        sys.exit("wrk is missing: apt-get install wrk (make bench does)")
    return Bench(args).run()


if __name__ == "__main__":
    sys.exit(main())
