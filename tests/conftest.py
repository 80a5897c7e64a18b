"""Test fixtures on the real RabbitMQ, Redis and PostgreSQL.

Each test gets its own RabbitMQ vhost, its own PostgreSQL database and its own
Redis key prefix, so tests cannot see each other's data.
"""
import eventlet
eventlet.monkey_patch()  # noqa: E402 -- must precede every other import (nameko 2.14 no longer does it)

import os
import socket
import uuid

import psycopg2
import pytest
import redis
import requests
from nameko.runners import ServiceRunner
from nameko.standalone.rpc import ClusterRpcProxy

from shared.config import env_config

PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RABBIT_API = os.environ.get("TEST_RABBIT_API", "http://guest:guest@127.0.0.1:15672/api")
AMQP_BASE = os.environ.get("TEST_AMQP_BASE", "pyamqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_admin(sql):
    conn = psycopg2.connect(PG_ADMIN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def database_url():
    name = "duoyou_t_" + uuid.uuid4().hex[:12]
    _pg_admin('CREATE DATABASE "%s"' % name)
    yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    from shared import database
    for key in [k for k in database._engines if name in k[0]]:
        database._engines.pop(key).dispose()
    _pg_admin('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


@pytest.fixture
def amqp_uri():
    vhost = "duoyou_t_" + uuid.uuid4().hex[:12]
    requests.put("%s/vhosts/%s" % (RABBIT_API, vhost), timeout=10).raise_for_status()
    requests.put("%s/permissions/%s/guest" % (RABBIT_API, vhost),
                 json={"configure": ".*", "write": ".*", "read": ".*"}, timeout=10).raise_for_status()
    yield AMQP_BASE + vhost
    requests.delete("%s/vhosts/%s" % (RABBIT_API, vhost), timeout=10)


@pytest.fixture
def redis_prefix():
    prefix = "duoyou_t_%s:" % uuid.uuid4().hex[:12]
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(prefix + "*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def redis_client():
    return redis.Redis.from_url(REDIS_URL, decode_responses=True)


@pytest.fixture
def config(database_url, amqp_uri, redis_prefix):
    return env_config(
        AMQP_URI=amqp_uri, DATABASE_URL=database_url, REDIS_URL=REDIS_URL,
        REDIS_PREFIX=redis_prefix, WEB_SERVER_ADDRESS="127.0.0.1:%d" % free_port(),
        RPC_TIMEOUT="0.8", LOG_LEVEL="WARNING")


class Api:
    """A small HTTP client for the services under test."""

    def __init__(self, base):
        self.base = base
        self.session = requests.Session()

    def request(self, method, path, token=None, device=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = "Bearer " + token
        if device:
            headers["Authorization"] = "Device " + device
        return self.session.request(method, self.base + path, headers=headers, timeout=10, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)


@pytest.fixture
def start_services(config):
    """start_services(ServiceA, ServiceB, ...) -> Api on the shared port."""
    runners = []

    def start(*service_classes, extra_config=None):
        cfg = dict(config, **(extra_config or {}))
        runner = ServiceRunner(cfg)
        for cls in service_classes:
            runner.add_service(cls)
        runner.start()
        runners.append(runner)
        return Api("http://%s" % cfg["WEB_SERVER_ADDRESS"])

    yield start
    for runner in reversed(runners):
        try:
            with eventlet.Timeout(10):
                runner.stop()
        except eventlet.Timeout:
            runner.kill()


@pytest.fixture
def rpc(config):
    """Standalone RPC client with a timeout, for calling services in tests."""
    with ClusterRpcProxy(config, timeout=5) as proxy:
        yield proxy


# -- every log line of the run, as the services format it ---------------------
# A session-wide handler writes each record through shared.logs.JsonFormatter
# (the production format) to one file; tests/integration/test_logs.py scans it
# last for ID numbers. Tests marked `run_last` are moved to the end.

LOG_CAPTURE = {}


@pytest.fixture(scope="session", autouse=True)
def captured_log_file(tmp_path_factory):
    import logging
    from shared.logs import JsonFormatter
    path = tmp_path_factory.mktemp("logs") / "run.jsonl"
    handler = logging.FileHandler(path, encoding="utf-8", delay=False)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)   # what production logs (LOG_LEVEL=INFO); tests may go lower
    LOG_CAPTURE["path"] = path
    LOG_CAPTURE["handler"] = handler
    yield path
    root.removeHandler(handler)
    root.setLevel(previous)
    handler.close()


def pytest_configure(config):
    config.addinivalue_line("markers", "run_last: run after every other collected test")


def pytest_collection_modifyitems(session, config, items):
    last = [item for item in items if item.get_closest_marker("run_last")]
    if last:
        items[:] = [item for item in items if item not in last] + last
