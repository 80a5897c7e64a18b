"""The credential record: what a desk or gate needs to decide without booking.

Booking writes it to Redis when a booking confirms and marks it cancelled when
the booking is cancelled, with a TTL to the end of validity. Readers (checkin,
entry) use `CredentialReader`: Redis first, booking over RPC on a miss.

Keys (under the Redis prefix):
  cred:<credential_id>                                  the record (JSON)
  cred:code:<booking code>                              -> the record
  cred:id:<hotel|venue>:<target_id>:<valid_from>:<id_hash> -> the record
"""
import datetime
import json
import time
import zoneinfo

from marshmallow import Schema, fields, validate

from shared.cacheaside import CacheAsideReader, JsonCache

ACTIVE, CANCELLED = "active", "cancelled"
GRACE_SECONDS = 24 * 3600  # keep a record a day past validity (late exits, check-outs)


class CredentialRecordSchema(Schema):
    """Version 1 of the record, shared by writer and readers."""
    version = fields.Integer(load_default=1)
    credential_id = fields.String(required=True)
    booking_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["hotel_stay", "venue_ticket"]))
    target_type = fields.String(required=True, validate=validate.OneOf(["hotel", "venue"]))
    target_id = fields.String(required=True)
    code = fields.String(required=True)
    valid_from = fields.String(required=True)   # YYYY-MM-DD: arrival day or ticket day
    valid_until = fields.String(required=True)  # YYYY-MM-DD: departure day or ticket day
    slot = fields.String(allow_none=True, load_default=None)
    slot_start = fields.String(allow_none=True, load_default=None)  # HH:MM local
    slot_end = fields.String(allow_none=True, load_default=None)
    party_size = fields.Integer(required=True)
    entry_policy = fields.String(allow_none=True, load_default=None,
                                 validate=validate.OneOf(["single", "multi"]))
    room_type = fields.String(allow_none=True, load_default=None)
    holder_name_masked = fields.String(required=True)
    id_hashes = fields.List(fields.String(), required=True)
    status = fields.String(required=True, validate=validate.OneOf([ACTIVE, CANCELLED]))


def expiry_epoch(record, tz_name="Asia/Shanghai"):
    """End of the last valid day, local time, plus grace (epoch seconds)."""
    until = datetime.date.fromisoformat(record["valid_until"])
    end = datetime.datetime.combine(until + datetime.timedelta(days=1), datetime.time(),
                                    tzinfo=zoneinfo.ZoneInfo(tz_name))
    return end.timestamp() + GRACE_SECONDS


def _ttl(record):
    return max(60, int(expiry_epoch(record) - time.time()))


class CredentialCache(JsonCache):
    """Redis side of the records: the writer (booking) and the readers use it."""

    def record_key(self, credential_id):
        return self.key("cred", credential_id)

    def code_key(self, code):
        return self.key("cred", "code", code.upper())

    def id_key(self, target_type, target_id, day, id_hash):
        return self.key("cred", "id", target_type, target_id, day, id_hash)

    def keys_of(self, record):
        keys = [self.record_key(record["credential_id"]), self.code_key(record["code"])]
        keys += [self.id_key(record["target_type"], record["target_id"], record["valid_from"], h)
                 for h in record["id_hashes"]]
        return keys

    def put(self, record):
        """Store the record under every key it is found by (one round trip)."""
        ttl = _ttl(record)
        pipe = self.redis.pipeline(transaction=True)
        for key in self.keys_of(record):
            self.write_to(pipe, key, record, ttl)
        pipe.execute()

    def write_to(self, pipe, key, record, ttl):
        pipe.set(key, json.dumps(record, separators=(",", ":")), ex=ttl)


class CredentialStore:
    """What readers get: lookups by id, QR, booking code and ID hash."""

    def __init__(self, cache, booking):
        self.cache = cache
        self.booking = booking

    def get(self, credential_id):
        return self.cache.fetch(
            self.cache.record_key(credential_id),
            lambda: self.booking.call("get_credential", credential_id=credential_id), _ttl)

    def by_code(self, code):
        return self.cache.fetch(
            self.cache.code_key(code),
            lambda: self.booking.call("find_credential", code=code.upper()), _ttl)

    def by_id_hash(self, target_type, target_id, day, id_hash):
        return self.cache.fetch(
            self.cache.id_key(target_type, target_id, day, id_hash),
            lambda: self.booking.call("find_credential", target_type=target_type,
                                      target_id=target_id, day=day, id_hash=id_hash), _ttl)

    def refresh(self, record):
        """Store a record learnt elsewhere (an event) under all its keys."""
        self.cache.put(record)


class CredentialReader(CacheAsideReader):
    """Inject a CredentialStore: Redis first, booking RPC (with deadline) on a miss."""

    def make(self, cache, caller):
        return CredentialStore(CredentialCache(cache.redis, cache.prefix), caller)
