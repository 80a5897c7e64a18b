"""Prometheus metrics shared by every HTTP-serving process (`GET /metrics`)."""
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

BUCKETS = (.001, .0025, .005, .0075, .01, .015, .025, .05, .075, .1, .25, .5, 1, 2.5)

HTTP_REQUESTS = Counter("duoyou_http_requests_total", "HTTP requests", ["route", "status"])
HTTP_LATENCY = Histogram("duoyou_http_request_seconds", "HTTP latency", ["route"], buckets=BUCKETS)
DECISIONS = Counter("duoyou_decisions_total", "gate, desk and lock decisions",
                    ["service", "decision", "reason"])
CACHE = Counter("duoyou_credential_cache_total", "credential cache lookups", ["result"])
OUTBOX_BACKLOG = Gauge("duoyou_outbox_backlog", "events committed but not yet published",
                       ["service"])
OCCUPANCY = Gauge("duoyou_venue_inside", "visitors inside a venue", ["venue_id"])
# Deadline RPCs (shared.rpc): the cache-miss fallback on the gate and desk paths.
# outcome: ok | error (the callee raised an ApiError) | timeout | unavailable
RPC_CALLS = Counter("duoyou_rpc_calls_total", "deadline RPCs by callee, method and outcome",
                    ["service", "method", "outcome"])
RPC_LATENCY = Histogram("duoyou_rpc_seconds", "deadline RPC round trip", ["service", "method"],
                        buckets=BUCKETS)


def observe_http(route, status, seconds):
    HTTP_REQUESTS.labels(route, str(status)).inc()
    HTTP_LATENCY.labels(route).observe(seconds)


def observe_rpc(service, method, outcome, seconds):
    RPC_CALLS.labels(service, method, outcome).inc()
    RPC_LATENCY.labels(service, method).observe(seconds)


def exposition():
    return generate_latest(), CONTENT_TYPE_LATEST
