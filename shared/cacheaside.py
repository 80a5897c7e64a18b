"""Cache-aside over Redis with an RPC fallback that has a deadline.

A hit answers from Redis alone. A miss asks the owning service (booking) and
refills the cache; an answer of "no such thing" is remembered briefly so a
flood of unknown codes cannot turn into a flood of RPCs.
"""
import json

from shared import metrics
from shared.config import setting
from shared.redis import client_for
from shared.rpc import DeadlineRpc

MISSING = "-"          # negative-cache marker
NEGATIVE_TTL = 10      # seconds


class JsonCache:
    def __init__(self, client, prefix):
        self.redis = client
        self.prefix = prefix

    def key(self, *parts):
        return self.prefix + ":".join(str(p) for p in parts)

    def read(self, key):
        """(found_in_cache, value or None)."""
        raw = self.redis.get(key)
        if raw is None:
            return False, None
        if raw == MISSING:
            return True, None
        return True, json.loads(raw)

    def write(self, key, value, ttl):
        if value is None:
            self.redis.set(key, MISSING, ex=NEGATIVE_TTL)
        else:
            self.redis.set(key, json.dumps(value, separators=(",", ":")), ex=max(int(ttl), 1))

    def fetch(self, key, load, ttl_of):
        """Value at `key`, else `load()` (an RPC) stored with `ttl_of(value)`."""
        found, value = self.read(key)
        if found:
            metrics.CACHE.labels("hit").inc()
            return value
        metrics.CACHE.labels("miss").inc()
        value = load()
        self.write(key, value, ttl_of(value) if value is not None else NEGATIVE_TTL)
        return value


class CacheAsideReader(DeadlineRpc):
    """A DependencyProvider holding a Redis client and a deadline RPC to the
    owner service; `make(cache, caller)` builds the injected domain wrapper."""

    def __init__(self, owner="booking"):
        super().__init__(owner)

    def setup(self):
        super().setup()
        self.client = client_for(setting(self.container.config, "REDIS_URL"))
        self.prefix = setting(self.container.config, "REDIS_PREFIX")

    def make(self, cache, caller):
        raise NotImplementedError

    def get_dependency(self, worker_ctx):
        # DeadlineRpc's caller builds its proxy on the first call only
        return self.make(JsonCache(self.client, self.prefix), super().get_dependency(worker_ctx))

