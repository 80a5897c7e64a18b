"""One gate scan from request to answer.

Cache hit: one EVALSHA that reads the credential record, judges it and applies
the live state (the gate's device and venue records are held in-process for
two seconds), then a share of one group commit. Redis decides and reserves
atomically; PostgreSQL confirms durably, and where the two
disagree (Redis lost state, a retried nonce) the database wins and the Redis
side is taken back.
"""
import datetime
import functools
import json
import logging
import re

from shared import idnumber, metrics, qr
from shared.cacheaside import MISSING
from shared.clock import city_now, city_zone
from shared.config import setting
from shared.errors import ApiError
from shared.singleflight import SingleFlight

from services.entry import rules
from services.entry.dependencies import Answer

log = logging.getLogger(__name__)

CODE = re.compile(r"^[A-Za-z0-9]{4,32}$")
# reasons after which the record is not this gate's business to describe
ANONYMOUS = ("unknown", "tampered", "expired_code", "wrong_venue")
MAX_BACKDATE = datetime.timedelta(hours=24)
MAX_AHEAD = datetime.timedelta(seconds=60)
REBUILDS = SingleFlight(wait_seconds=2.0)   # venue-day state rebuilds in this process
# refusals rules.check_ticket may explain in detail (scan.lua decides them)
TICKET_REASONS = ("wrong_venue", "cancelled", "not_yet_valid", "expired")
UNCONFIGURED = "this gate's venue is not configured"


class RememberingKey:
    """The QR public key, remembering signatures it has already verified: a
    party shows one code once per person, so each code is checked once (the
    same bytes verify the same way; the time step is still judged per scan)."""

    SIZE = 4096

    def __init__(self, key):
        self.key = key
        self.verified = set()

    def verify(self, signature, body):
        seen = signature + body
        if seen in self.verified:
            return
        self.key.verify(signature, body)   # InvalidSignature: nothing remembered
        if len(self.verified) >= self.SIZE:
            self.verified.clear()
        self.verified.add(seen)


@functools.lru_cache(maxsize=4)
def verifying_key(public_hex, signing_hex):
    if not public_hex:
        public_hex = qr.public_key_hex(qr.signing_key(signing_hex))
    return RememberingKey(qr.verifying_key(public_hex))


def moment(now):
    """What scan.lua judges validity by: (city date "YYYY-MM-DD", seconds into
    that day with microseconds). The script never reads a clock of its own."""
    return (now.date().isoformat(), "%d.%06d" % (
        now.hour * 3600 + now.minute * 60 + now.second, now.microsecond))


def scan_time(config, scanned_at):
    """The time rules judge by: the gate's own reading time when it buffered the
    scan (never in the future, at most a day old), else now."""
    now = city_now(config)
    if scanned_at is None:
        return now
    if scanned_at > now + MAX_AHEAD or scanned_at < now - MAX_BACKDATE:
        raise ApiError("validation_error", "the request is invalid", fields={
            "scanned_at": ["must be within the last 24 hours and not in the future"]})
    return scanned_at.astimezone(city_zone(config))


class Scanner:
    def __init__(self, config, credentials, venues, counters, store, outbox):
        self.config = config
        self.credentials = credentials
        self.venues = venues
        self.counters = counters
        self.store = store
        self.outbox = outbox

    # -- identify ----------------------------------------------------------
    def identify(self, medium, value, venue_id, day, now):
        """(key of the credential record in Redis, a call fetching it on a
        cache miss, refusal reason or None). Nothing typed at a gate is
        echoed back or logged."""
        cache, credentials = self.credentials.cache, self.credentials
        if medium == "qr":
            key = verifying_key(setting(self.config, "QR_PUBLIC_KEY"),
                                setting(self.config, "QR_SIGNING_KEY"))
            verdict, credential_id = qr.verify(key, value, now.timestamp())
            if verdict != "ok":
                return None, None, verdict
            return (cache.record_key(credential_id),
                    functools.partial(credentials.get, credential_id), None)
        if medium in ("id_card", "face"):
            # face: the device matched the face to an ID number on the device,
            # with consent; from here on it is handled exactly like the card.
            if idnumber.problem(value, now.date()):
                return None, None, "unknown"
            hashed = idnumber.id_hash(setting(self.config, "ID_HASH_KEY"), value)
            return (cache.id_key("venue", venue_id, day, hashed),
                    functools.partial(credentials.by_id_hash, "venue", venue_id, day, hashed),
                    None)
        value = value.strip()
        if not CODE.match(value):
            return None, None, "unknown"
        return cache.code_key(value), functools.partial(credentials.by_code, value), None

    # -- decide ------------------------------------------------------------
    def scan(self, gate, data):
        now = scan_time(self.config, data["scanned_at"])
        day = now.date()
        when = moment(now)
        venue_id, direction = gate["venue_id"], gate.get("direction") or "in"
        nonce = data["nonce"]
        record_key, fetch, refusal = self.identify(data["medium"], data["value"], venue_id,
                                                   when[0], now)
        venue = self.venues.get(venue_id) if venue_id else None

        # One round trip on a cache hit: the script reads the record, applies
        # the ticket rules and the live state (scan.lua).
        kind, answer, raw = self.counters.scan(gate, nonce, record_key, refusal, when, venue)
        if kind == "norecord":  # not cached: booking's answer (RPC with a deadline) is
            fetch()             # cached at that key (None as "-"), then judged as a hit
            kind, answer, raw = self.counters.scan(gate, nonce, record_key, refusal, when,
                                                   venue)
            if kind == "norecord":  # gone again at once: Redis is in trouble
                raise ApiError("unavailable", "gate state unavailable; scan again")
        elif not refusal:
            metrics.CACHE.labels("hit").inc()
        record = json.loads(raw) if raw and raw != MISSING else None
        if kind == "miss":  # Redis lost (or never had) this state: rebuild from the record
            def rebuild():
                seed = self.store.state(record["credential_id"], venue_id, day)
                return self.counters.scan(gate, nonce, record_key, refusal, when, venue,
                                          seed=seed)
            # every lane's first scan of the day misses at once: one rebuilds
            # the venue-day from the database, the others then try again,
            # and most need no rebuild of their own (a fresh venue-day)
            led, result = REBUILDS.lead((venue_id, day), rebuild)
            if not led:
                result = self.counters.scan(gate, nonce, record_key, refusal, when, venue)
                if result[0] == "miss":
                    result = rebuild()
            kind, answer, raw = result
            if kind in ("miss", "norecord"):  # the keys vanished again at once
                raise ApiError("unavailable", "gate state unavailable; scan again")
        credential_id = record["credential_id"] if record else None
        recovering = False
        if kind == "replay":
            if not (answer.admit and answer.delta_inside
                    and self.store.find_scan(gate["device_id"], nonce) is None):
                return self.respond(answer, record, gate, venue, now)
            # Redis holds this answer but the database does not: the first
            # attempt died between the script and the commit (or is still in
            # flight). Record it now; the Redis side already counts it.
            recovering = True

        row = {"gate_id": gate["device_id"], "nonce": nonce, "venue_id": venue_id,
               "day": day, "direction": direction, "medium": data["medium"],
               "credential_id": credential_id,
               "booking_id": record["booking_id"] if record else None,
               "decision": "admit" if answer.admit else "deny", "reason": answer.reason,
               "person_no": answer.person_no, "delta_inside": answer.delta_inside,
               "delta_admitted": answer.delta_admitted, "scanned_at": now}
        cap = int((venue or {}).get("instantaneous_capacity") or 0)
        level = None if recovering else self.level_event(
            venue_id, answer.inside_before, answer.inside_after, cap)
        try:
            outcome, detail = self.store.record(self.outbox, row, level)
        except Exception:
            log.exception("could not record a scan; taking the Redis side back")
            if not recovering:  # a recovery leaves the first attempt's reservation alone
                self.counters.undo(self._keys(gate, nonce, credential_id, day), direction,
                                   answer)
            raise ApiError("unavailable", "the entry record is unavailable; scan again")
        if outcome == "replay":  # the database has this nonce: its answer stands
            earlier = Answer(Answer.encode(detail["decision"] == "admit", detail["reason"],
                                           detail["person_no"]))
            if not recovering:   # Redis had forgotten the nonce: take this attempt back
                self.counters.undo(self._keys(gate, nonce, credential_id, day), direction,
                                   answer, new_answer=earlier.text)
            return self.respond(earlier, record, gate, venue, now)
        if outcome == "used":  # Redis had lost the admissions; the database had them
            refused = Answer(Answer.encode(False, "already_used"))
            self.counters.undo(self._keys(gate, nonce, credential_id, day), direction, answer,
                               new_answer=refused.text, floor=detail)
            answer = refused
        metrics.DECISIONS.labels("entry", "admit" if answer.admit else "deny",
                                 answer.reason).inc()
        if answer.delta_inside and not recovering:
            metrics.OCCUPANCY.labels(venue_id).set(answer.inside_after)
        return self.respond(answer, record, gate, venue, now)

    def _keys(self, gate, nonce, credential_id, day):
        return self.counters.keys(gate["device_id"], nonce, credential_id, gate["venue_id"], day)

    def level_event(self, venue_id, before, after, capacity):
        change = rules.level_change(before, after, capacity)
        if change is None:
            return None
        return {"venue_id": venue_id, "previous_level": change[0], "level": change[1],
                "inside": after, "instantaneous_capacity": capacity}

    def respond(self, answer, record, gate, venue, now):
        direction = gate.get("direction") or "in"
        if answer.admit:
            explanation = "exit recorded" if direction == "out" else rules.EXPLANATIONS["ok"]
        else:
            explanation = self.explain(answer.reason, record, gate, venue, now)
        body = {"decision": "admit" if answer.admit else "deny", "reason": answer.reason,
                "explanation": explanation, "direction": direction}
        if record is not None and answer.reason not in ANONYMOUS:
            body.update(booking_id=record["booking_id"], party_size=record["party_size"],
                        visitor={"name_masked": record["holder_name_masked"]})
            if answer.person_no:
                body["person_no"] = answer.person_no
        return body

    @staticmethod
    def explain(reason, record, gate, venue, now):
        """A refusal's explanation: the ticket rules' own words where they
        have them (the slot opens at..., the ticket is for <date>), as
        rules.check_ticket gives them for this record now."""
        if reason in TICKET_REASONS and record is not None:
            static = rules.check_ticket(record, gate, now)
            if not static.admit and static.reason == reason:
                return static.explanation
        if reason == "blocked" and venue is None:
            return UNCONFIGURED
        return rules.EXPLANATIONS[reason]

    # -- annul -------------------------------------------------------------
    def annul(self, gate, nonce):
        scan = self.store.find_scan(gate["device_id"], nonce)
        if scan is None:
            # another gate's nonce looks exactly like an unknown one
            raise ApiError("not_found", "no scan with this nonce from this gate")
        if scan["annulled"]:
            return {"nonce": nonce, "annulled": True, "booking_id": scan["booking_id"]}
        verdict = rules.can_annul(scan, gate["device_id"], city_now(self.config))
        if not verdict.admit:
            raise ApiError("annul_refused", verdict.explanation)
        if self.store.annul(self.outbox, scan["id"]):
            answer = Answer(Answer.encode(True, "ok", scan["person_no"], scan["delta_inside"],
                                          scan["delta_admitted"]))
            keys = self.counters.keys(gate["device_id"], nonce, scan["credential_id"],
                                      scan["venue_id"], scan["day"])
            before, after = self.counters.undo(keys, "in", answer, new_answer="=")
            if before >= 0:
                metrics.OCCUPANCY.labels(scan["venue_id"]).set(after)
                venue = self.venues.get(scan["venue_id"]) or {}
                level = self.level_event(scan["venue_id"], before, after,
                                         int(venue.get("instantaneous_capacity") or 0))
                if level:
                    self.store.level_event(self.outbox, level)
        return {"nonce": nonce, "annulled": True, "booking_id": scan["booking_id"]}

    # -- occupancy ---------------------------------------------------------
    def occupancy(self, venue_id):
        venue = self.venues.get(venue_id)
        if venue is None:
            raise ApiError("not_found", "venue not found")
        day = city_now(self.config).date()
        counts = self.counters.occupancy(venue_id, day) or self.store.occupancy(venue_id, day)
        cap = int(venue.get("instantaneous_capacity") or 0)
        return {"venue_id": venue_id, "day": day.isoformat(), "inside": counts[0],
                "admitted_today": counts[1], "instantaneous_capacity": cap,
                "daily_capacity": int(venue.get("daily_capacity") or 0),
                "level": rules.level(counts[0], cap)}
