"""Digital room keys in Redis: the door lock's only lookup.

A key is a random token shown once to the guest; Redis and the database keep
only its SHA-256. The Redis record answers a lock in one GET; it outlives the
key's validity by a day so a late try says "expired", not "unknown". Redis
may lose recent writes: a key missing there is looked up in PostgreSQL (the
record) and put back.
"""
import hashlib
import json
import secrets
import time

PREFIX = "rk_"
AFTER_EXPIRY_SECONDS = 24 * 3600


def new_key():
    return PREFIX + secrets.token_urlsafe(24)


def key_hash(key):
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    def __init__(self, client, prefix):
        self.redis = client
        self.prefix = prefix

    def _key(self, hashed):
        return "%sroomkey:%s" % (self.prefix, hashed)

    def put(self, hashed, stay_id, hotel_id, room, valid_until_epoch, revoked=False):
        record = {"stay_id": stay_id, "hotel_id": hotel_id, "room": room,
                  "valid_until": valid_until_epoch}
        if revoked:
            record["revoked"] = True
        ttl = max(60, int(valid_until_epoch - time.time()) + AFTER_EXPIRY_SECONDS)
        self.redis.set(self._key(hashed), json.dumps(record, separators=(",", ":")), ex=ttl)

    def get(self, hashed):
        raw = self.redis.get(self._key(hashed))
        return json.loads(raw) if raw else None


    def revoke(self, hashes):
        """Mark keys revoked (kept until their record would expire)."""
        for hashed in hashes:
            record = self.get(hashed)
            if record is not None:
                record["revoked"] = True
                self.redis.set(self._key(hashed), json.dumps(record, separators=(",", ":")),
                               keepttl=True)

    def ping(self):
        """Readiness: /health/ready calls it."""
        self.redis.ping()

    def forget(self, hashed):
        self.redis.delete(self._key(hashed))
