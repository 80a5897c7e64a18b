"""Device keys (gates, desks, kiosks, door locks).

A key is shown once when an operator creates the device; booking stores only
its SHA-256. Desks and gates authenticate `Authorization: Device <key>` from
Redis (cache-aside, booking RPC on a miss). The device's hotel or venue comes
from here, never from a request body.
"""
import hashlib
import secrets
import time

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
    def __init__(self, cache, booking, local=None, local_seconds=0.0):
        self.cache = cache
        self.booking = booking
        self.local = local                  # {key hash: (expires, record)} or None
        self.local_seconds = local_seconds

    def cache_key(self, hashed):
        return self.cache.key("device", hashed)

    def lookup(self, key):
        hashed = key_hash(key)
        if self.local is not None:
            hit = self.local.get(hashed)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        device = self.cache.fetch(self.cache_key(hashed),
                                  lambda: self.booking.call("get_device", key_hash=hashed),
                                  lambda _: DEVICE_TTL)
        if self.local is not None and device is not None:
            if len(self.local) > LOCAL_MAX:
                self.local.clear()
            self.local[hashed] = (time.monotonic() + self.local_seconds, device)
        return device

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
        if self.local is not None:
            self.local.pop(hashed, None)
        self.cache.redis.delete(self.cache_key(hashed))


LOCAL_MAX = 10000  # device records held in-process at most (then start over)


class DeviceAuth(CacheAsideReader):
    """`DeviceAuth(local_seconds=n)` also holds each found device record in
    this process for n seconds (a gate scanning hundreds of times a second
    spares a Redis round trip per request); a revoked key then keeps working
    here for up to n seconds. Default 0: every request reads Redis."""

    def __init__(self, owner="booking", local_seconds=0.0):
        super().__init__(owner)
        self.local_seconds = local_seconds
        self.local = {} if local_seconds > 0 else None

    def make(self, cache, caller):
        return DeviceDirectory(cache, caller, self.local, self.local_seconds)
