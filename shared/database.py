"""PostgreSQL for a service: one engine per process, one schema per service.

Each service owns a schema (booking, checkin, entry) and reaches it through
search_path, so no service can name another's tables by accident. Tables are
created on start under an advisory lock (idempotent, safe with replicas).
"""
import contextlib

from nameko.extensions import DependencyProvider
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from shared.config import setting

_engines = {}


def engine_for(url, schema, pool_size=10):
    key = (url, schema)
    if key not in _engines:
        # psycopg2, made cooperative by psycogreen (SQLAlchemy 2.1 would pick psycopg 3)
        driver_url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
        _engines[key] = create_engine(
            driver_url, pool_size=pool_size, max_overflow=pool_size,
            # no pre-ping: it costs a round trip per checkout on the gate path;
            # a dropped connection fails one request (503) and is replaced
            pool_pre_ping=False,
            pool_recycle=1800,
            connect_args={"options": "-csearch_path=%s -cstatement_timeout=5000" % schema,
                          "connect_timeout": 3,
                          "application_name": "duoyou-%s" % schema})
    return _engines[key]


def create_schema(engine, schema, metadata):
    """CREATE SCHEMA and tables if missing; concurrent starters wait their turn."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
        conn.execute(text('CREATE SCHEMA IF NOT EXISTS "%s"' % schema))
        conn.execute(text('SET LOCAL search_path TO "%s"' % schema))
        metadata.create_all(conn)


class Store:
    """What a worker sees: sessions and a readiness check."""

    def __init__(self, engine):
        self.engine = engine

    @contextlib.contextmanager
    def session(self):
        """A transaction: commits on success, rolls back on any error."""
        with Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    def ping(self):
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


class Database(DependencyProvider):
    """Engine for the service's schema; subclasses may wrap `Store`."""

    def __init__(self, schema, metadata, store_class=Store):
        self.schema = schema
        self.metadata = metadata
        self.store_class = store_class

    def setup(self):
        from psycogreen.eventlet import patch_psycopg
        patch_psycopg()  # without it psycopg2 blocks every green thread of the process
        url = setting(self.container.config, "DATABASE_URL")
        self.engine = engine_for(url, self.schema)
        create_schema(self.engine, self.schema, self.metadata)

    def get_dependency(self, worker_ctx):
        return self.store_class(self.engine)
