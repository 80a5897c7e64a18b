"""Dependency providers of the booking service: the store (bookings and
catalogue in PostgreSQL), the Redis records it writes, and its keys."""
import hmac
import json
import time
from types import SimpleNamespace

from nameko.extensions import DependencyProvider
from sqlalchemy import create_engine, select

from shared import qr
from shared.clock import city_today
from shared.config import setting
from shared.credentials import CredentialCache, expiry_epoch
from shared.database import Database, Store
from shared.devices import DEVICE_TTL
from shared.errors import ApiError
from shared.redis import RedisDependency
from services.booking import catalogue, inventory, ledger, rules
from services.booking.models import bookings, venue_slots, venues

# SET every key of a record unless one of them already holds a cancelled
# record: a slow confirm must never overwrite a cancellation that won the race.
_PUT_UNLESS_CANCELLED = """
for _, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  if current and string.find(current, '"status":"cancelled"', 1, true) then return 0 end
end
for _, key in ipairs(KEYS) do redis.call('SET', key, ARGV[1], 'EX', ARGV[2]) end
return 1
"""


class BookingStore(Store):
    """Each method is one transaction."""

    def tourist(self, token):
        with self.session() as s:
            tourist_id = ledger.tourist_by_token(s, token)
        if tourist_id is None:
            raise ApiError("unauthenticated", "unknown tourist token")
        return tourist_id

    def register_tourist(self, phone, name):
        with self.session() as s:
            return ledger.register_tourist(s, phone, name)

    def __init__(self, engine, reader=None):
        super().__init__(engine)
        self.reader = reader or engine

    def search(self, **query):
        # read-only, on the autocommit pool: no BEGIN/COMMIT round trips, and
        # no isolation-level switch on every checkout and return
        with self.reader.connect() as conn:
            return inventory.search(conn, **query)

    def availability(self, venue_id, day):
        with self.session() as s:
            daily = s.execute(select(venues.c.daily_capacity)
                              .where(venues.c.venue_id == venue_id)).scalar()
            if daily is None:
                raise ApiError("not_found", "venue not found")
            slots = s.execute(select(venue_slots).where(venue_slots.c.venue_id == venue_id)
                              .order_by(venue_slots.c.start, venue_slots.c.slot)).all()
            sold, day_counter = inventory.slot_counters(s, venue_id, day)
        day_counter = day_counter or (daily, 0)
        return [{"slot": x.slot, "start": x.start, "end": x.end,
                 "remaining": rules.remaining(sold.get(x.slot, (x.quota, 0)), day_counter)}
                for x in slots]

    def book(self, tourist_id, key, req_hash, data, today, id_key, outbox):
        """One transaction; a retry of a committed key reads that booking."""
        with self.session() as s:
            status, booking_id, shown, record = ledger.create(
                s, tourist_id, key, req_hash, data, today, id_key, outbox.row)
        if shown is None:
            return status, self.booking(tourist_id, booking_id), None
        return status, shown, record

    def booking(self, tourist_id, booking_id):
        with self.session() as s:
            return ledger.get(s, tourist_id, booking_id)[1]

    def booking_row(self, tourist_id, booking_id):
        with self.session() as s:
            return ledger.get(s, tourist_id, booking_id)[0]

    def bookings(self, tourist_id, limit, offset):
        with self.session() as s:
            return ledger.list_for(s, tourist_id, limit, offset)

    def credential_of(self, tourist_id, booking_id):
        """The current record of the caller's booking (404 if not theirs)."""
        with self.session() as s:
            ledger.get(s, tourist_id, booking_id)
            return ledger.credential_record(s, booking_id)

    def cancel(self, tourist_id, booking_id, outbox):
        with self.session() as s:
            return ledger.cancel(s, tourist_id, booking_id, outbox.add)

    def credential(self, credential_id):
        with self.session() as s:
            booking_id = s.execute(select(bookings.c.booking_id)
                                   .where(bookings.c.credential_id == credential_id)).scalar()
            return ledger.credential_record(s, booking_id) if booking_id else None

    def find_credential(self, **criteria):
        with self.session() as s:
            return ledger.find_credential(s, **criteria)

    def apply_facts(self, fact, consumer, bookings_by_event):
        """Gate or desk facts of one kind ({event_id: booking_id}): one
        statement, no ORM session."""
        if not bookings_by_event:   # all dropped: no transaction to open
            return {}
        with self.engine.begin() as conn:
            return ledger.apply_facts(conn, fact, consumer, bookings_by_event)

    # -- catalogue (admin) --
    def add_hotel(self, spec, outbox):
        with self.session() as s:
            return catalogue.add_hotels(s, outbox.add, [spec])[0]

    def add_venue(self, spec):
        with self.session() as s:
            return catalogue.add_venues(s, [spec])[0]

    def hotel(self, hotel_id):
        with self.session() as s:
            return catalogue.hotel(s, hotel_id)

    def venue(self, venue_id):
        with self.session() as s:
            return catalogue.venue(s, venue_id)

    def add_device(self, spec, key_hash):
        with self.session() as s:
            if not catalogue.target_exists(s, spec):
                raise ApiError("not_found", "%s not found" % ("venue" if spec.get("venue_id")
                                                               else "hotel"))
            device_id = catalogue.add_device(s, spec, key_hash)
            return catalogue.device_by_hash(s, key_hash) | {"device_id": device_id}

    def revoke_device(self, device_id):
        with self.session() as s:
            return catalogue.revoke_device(s, device_id)

    def device(self, key_hash):
        with self.session() as s:
            return catalogue.device_by_hash(s, key_hash)

    def hotel_rooms(self, hotel_id):
        found = self.hotel(hotel_id)
        if found is None:
            return None
        return {"hotel_id": hotel_id, "room_types": [
            {"room_type": rt["room_type"], "rooms": rt["rooms"]} for rt in found["room_types"]]}


def autocommit_engine(url, schema, pool_size=5):
    """A pool of its own for read-only statements, in autocommit from the
    connection's start (the engine-wide isolation level is set once per
    connection, not per checkout like a per-connection execution option)."""
    return create_engine(
        url.replace("postgresql://", "postgresql+psycopg2://", 1), isolation_level="AUTOCOMMIT",
        pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False, pool_recycle=1800,
        connect_args={"options": "-csearch_path=%s -cstatement_timeout=5000" % schema,
                      "connect_timeout": 3, "application_name": "duoyou-%s-reader" % schema})


class BookingDatabase(Database):
    """The booking schema, plus the autocommit reader pool for search."""

    def setup(self):
        super().setup()
        self.reader = autocommit_engine(setting(self.container.config, "DATABASE_URL"),
                                        self.schema)

    def stop(self):
        self.reader.dispose()

    def get_dependency(self, worker_ctx):
        return self.store_class(self.engine, self.reader)


class Records:
    """The Redis records booking owns: credentials and devices."""

    def __init__(self, client, prefix, tz_name, put_unless_cancelled=None):
        self.cache = CredentialCache(client, prefix)
        self.tz_name = tz_name
        self._put_unless_cancelled = (put_unless_cancelled
                                      or client.register_script(_PUT_UNLESS_CANCELLED))

    def _ttl(self, record):
        return max(60, int(expiry_epoch(record, self.tz_name) - time.time()))

    def confirm(self, record):
        """After the booking committed; never overwrites a cancellation."""
        self._put_unless_cancelled(keys=self.cache.keys_of(record), args=[
            json.dumps(record, separators=(",", ":")), self._ttl(record)])

    def revoke(self, record):
        """Mark cancelled under every key (unconditional)."""
        self.cache.put(dict(record, status="cancelled"))

    def put(self, record):
        self.cache.put(record)

    def put_device(self, key_hash, record):
        self.cache.write(self.cache.key("device", key_hash), record, DEVICE_TTL)

    def forget_device(self, key_hash):
        self.cache.redis.delete(self.cache.key("device", key_hash))

    def ping(self):
        self.cache.redis.ping()


class RecordsDependency(RedisDependency):
    def setup(self):
        super().setup()
        self.tz_name = setting(self.container.config, "CITY_TZ")
        # once per process, not per worker (it hashes the script)
        self.put_unless_cancelled = self.client.register_script(_PUT_UNLESS_CANCELLED)

    def wrap(self, client, prefix):
        return Records(client, prefix, self.tz_name, self.put_unless_cancelled)


class Keys(DependencyProvider):
    """Secrets and settings the booking code needs, read once."""

    def setup(self):
        config = self.container.config
        self.values = SimpleNamespace(
            admin_token=setting(config, "ADMIN_TOKEN"),
            id_hash_key=setting(config, "ID_HASH_KEY"),
            qr_key=qr.signing_key(setting(config, "QR_SIGNING_KEY")),
            config=config)

    def get_dependency(self, worker_ctx):
        return self.values


def is_admin(keys, token):
    return hmac.compare_digest(token.encode(), keys.admin_token.encode())


def today(keys):
    return city_today(keys.config)
