"""Device keys (gates, desks, kiosks, door locks).

A key is shown once when an operator creates the device; booking stores only
its SHA-256. Desks and gates authenticate `Authorization: Device <key>` from
Redis (cache-aside, booking RPC on a miss). The device's hotel or venue comes
from here, never from a request body.
"""
import hashlib
import secrets

from shared.cacheaside import CacheAsideReader
from shared.errors import ApiError
from shared.http import authorization

KINDS = ("gate", "desk", "kiosk", "lock")
DEVICE_TTL = 3600


def new_key():
    return "dk_" + secrets.token_urlsafe(32)


def key_hash(key):
    return hashlib.sha256(key.encode()).hexdigest()


class DeviceDirectory:
    def __init__(self, cache, booking):
        self.cache = cache
        self.booking = booking

    def cache_key(self, hashed):
        return self.cache.key("device", hashed)

    def lookup(self, key):
        hashed = key_hash(key)
        return self.cache.fetch(self.cache_key(hashed),
                                lambda: self.booking.call("get_device", key_hash=hashed),
                                lambda _: DEVICE_TTL)

    def authenticate(self, request, kinds):
        """The calling device's record, if it is one of `kinds`."""
        key = authorization(request, "Device")
        if len(key) > 200:
            raise ApiError("unauthenticated", "unknown device key")
        device = self.lookup(key)
        if device is None or not device.get("active", True):
            raise ApiError("unauthenticated", "unknown device key")
        if device["kind"] not in kinds:
            raise ApiError("forbidden", "a %s device cannot do this" % device["kind"])
        return device

    def forget(self, hashed):
        self.cache.redis.delete(self.cache_key(hashed))


class DeviceAuth(CacheAsideReader):
    def make(self, cache, caller):
        return DeviceDirectory(cache, caller)
