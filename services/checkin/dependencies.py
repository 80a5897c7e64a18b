"""Dependency providers of the check-in service: each injects a small domain
wrapper (rooms and stays in PostgreSQL, keys and credentials in Redis)."""
import json

from shared.cacheaside import MISSING
from shared.credentials import CredentialCache, CredentialReader, CredentialStore
from shared.database import Database
from shared.redis import RedisDependency

from services.checkin.keys import KeyRing
from services.checkin.models import metadata
from services.checkin.store import HotelStore


def hotel_database():
    return Database("checkin", metadata, HotelStore)


class Keys(RedisDependency):
    """Injects a KeyRing: digital room keys in Redis."""

    def wrap(self, client, prefix):
        return KeyRing(client, prefix)


class DeskCredentials(CredentialStore):
    """Credential lookups, plus the ID-card lookup over several arrival days."""

    def by_id_card(self, hotel_id, days, id_hash):
        """The record of `id_hash` at `hotel_id` whose arrival day is one of
        `days` (first match in that order): one Redis MGET; on a full miss,
        booking is asked about the first day only (negative answers cached)."""
        keys = [self.cache.id_key("hotel", hotel_id, day.isoformat(), id_hash) for day in days]
        for raw in self.cache.redis.mget(keys):
            if raw is not None and raw != MISSING:
                return json.loads(raw)
        return self.by_id_hash("hotel", hotel_id, days[0].isoformat(), id_hash)


class Credentials(CredentialReader):
    def make(self, cache, caller):
        return DeskCredentials(CredentialCache(cache.redis, cache.prefix), caller)
