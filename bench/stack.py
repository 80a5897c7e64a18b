"""A scratch Duoyou stack for benchmarks and load tests: each service in its
own `nameko run` process on its own loopback port, against a scratch
database, a fresh RabbitMQ vhost and its own Redis prefix.

Used by `python -m bench.run` and `python -m loadtest.run`. Everything it
creates it removes again in `close()` (processes, vhost, database, keys).
"""
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import psycopg2
import redis
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMEKO = os.path.join(ROOT, ".venv", "bin", "nameko")
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RABBIT_API = os.environ.get("BENCH_RABBIT_API", "http://guest:guest@127.0.0.1:15672/api")
AMQP_BASE = os.environ.get("BENCH_AMQP_BASE", "pyamqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_TOKEN = "duoyou-admin-bench"

# module:Class, because `nameko run <module>` would also try the imported
# PlatformEndpoints base class.
SERVICE_MODULES = {
    "booking": "services.booking.service:BookingService",
    "checkin": "services.checkin.service:CheckinService",
    "entry": "services.entry.service:EntryService",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_available(name):
    """True when the service's module exists in this checkout."""
    path = os.path.join(ROOT, *SERVICE_MODULES[name].split(":")[0].split(".")) + ".py"
    return os.path.exists(path)


def _pg(sql, url=PG_ADMIN):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def memory_kb(pid):
    """(VmRSS, VmHWM) of a process in kB, from /proc; (None, None) if gone."""
    rss = hwm = None
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


class Process:
    """One `nameko run` process serving HTTP on its own port."""

    def __init__(self, name, module, env, port, log_path):
        self.name, self.module, self.port = name, module, port
        self.base = "http://127.0.0.1:%d" % port
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [NAMEKO, "run", "--config", "config.yml", module], cwd=ROOT, env=env,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.peak_kb = None

    @property
    def pid(self):
        return self.proc.pid

    def wait_ready(self, path="/health/ready", timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s; see %s" % (self.name, self.proc.returncode,
                                                                  self.log_path))
            try:
                if requests.get(self.base + path, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("%s not ready after %d s; see %s" % (self.name, timeout, self.log_path))

    def memory(self):
        rss, hwm = memory_kb(self.pid)
        if hwm is not None:
            self.peak_kb = hwm
        return rss, hwm

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.memory()
            self.proc.send_signal(signal.SIGTERM)  # nameko stops gracefully on SIGTERM
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class Stack:
    """Scratch database + vhost + Redis prefix, and the processes on them."""

    def __init__(self, tag="bench", log_dir=None, log_level="WARNING"):
        self.tag = tag
        self.run_id = uuid.uuid4().hex[:8]
        # Unique per run: two runs at once (two developers, or a test beside
        # `make bench`) must not drop each other's database or vhost.
        self.database = "duoyou_%s_%s" % (tag, self.run_id)
        self.vhost = "duoyou_%s_%s" % (tag, self.run_id)
        # No colon: nameko YAML-loads each substituted config.yml value, and
        # "duoyou:" would arrive as a mapping, not a string.
        self.prefix = "duoyou_%s_%s_" % (tag, self.run_id)
        self.log_dir = log_dir or os.path.join(ROOT, "reports", "logs")
        self.log_level = log_level
        self.processes = {}
        self.database_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + self.database
        self.amqp_uri = AMQP_BASE + self.vhost
        os.makedirs(self.log_dir, exist_ok=True)

    # -- lifecycle ---------------------------------------------------------
    def create(self):
        _pg('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.database)
        _pg('CREATE DATABASE "%s"' % self.database)
        requests.delete("%s/vhosts/%s" % (RABBIT_API, self.vhost), timeout=10)
        requests.put("%s/vhosts/%s" % (RABBIT_API, self.vhost), timeout=10).raise_for_status()
        requests.put("%s/permissions/%s/guest" % (RABBIT_API, self.vhost),
                     json={"configure": ".*", "write": ".*", "read": ".*"},
                     timeout=10).raise_for_status()
        return self

    def env(self, **extra):
        env = dict(os.environ)
        env.update({
            "AMQP_URI": self.amqp_uri, "DATABASE_URL": self.database_url,
            "REDIS_URL": REDIS_URL, "REDIS_PREFIX": self.prefix, "ADMIN_TOKEN": ADMIN_TOKEN,
            "LOG_LEVEL": self.log_level, "PYTHONPATH": ROOT,
        })
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start(self, name, module=None, ready_path="/health/ready", **extra_env):
        port = free_port()
        env = self.env(WEB_SERVER_ADDRESS="127.0.0.1:%d" % port, **extra_env)
        module = module or SERVICE_MODULES[name]
        log_path = os.path.join(self.log_dir, "%s-%s.log" % (self.tag, name))
        proc = Process(name, module, env, port, log_path)
        self.processes[name] = proc
        proc.wait_ready(ready_path)
        return proc

    def url(self, name):
        return self.processes[name].base

    def run_cli(self, *args, timeout=600):
        """Run a project CLI (e.g. the seed) against this stack's stores."""
        return subprocess.run([sys.executable, *args], cwd=ROOT, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    def memory(self):
        return {name: p.memory() for name, p in self.processes.items()}

    def backlog(self):
        """Events not yet delivered: unpublished outbox rows plus messages
        waiting or unacked in this vhost's queues."""
        pending = 0
        conn = psycopg2.connect(self.database_url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT table_schema FROM information_schema.tables "
                            "WHERE table_name = 'outbox'")
                for (schema,) in cur.fetchall():
                    cur.execute('SELECT count(*) FROM "%s".outbox WHERE published_at IS NULL'
                                % schema)
                    pending += cur.fetchone()[0]
        finally:
            conn.close()
        queues = requests.get("%s/queues/%s" % (RABBIT_API, self.vhost), timeout=10).json()
        for q in queues:
            pending += q.get("messages", 0) or 0
        return pending

    def settle(self, timeout=120, quiet=1.0):
        """Wait until every committed event has been published and consumed
        (the management API lags about a second, hence `quiet`)."""
        deadline = time.monotonic() + timeout
        calm_since = None
        while time.monotonic() < deadline:
            if self.backlog() == 0:
                calm_since = calm_since or time.monotonic()
                if time.monotonic() - calm_since >= quiet:
                    return True
            else:
                calm_since = None
            time.sleep(0.5)
        return False

    def stop(self):
        for proc in reversed(list(self.processes.values())):
            proc.stop()

    def close(self):
        self.stop()
        requests.delete("%s/vhosts/%s" % (RABBIT_API, self.vhost), timeout=10)
        try:
            _pg('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.database)
        except psycopg2.Error:
            pass
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(self.prefix + "*", count=5000))
        for i in range(0, len(keys), 5000):
            client.delete(*keys[i:i + 5000])

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.close()
