"""Redis for a service: one client per process, every key under a prefix
(tests and tenants get their own)."""
import redis
from nameko.extensions import DependencyProvider

from shared.config import setting

_clients = {}


def client_for(url):
    if url not in _clients:
        # Short timeouts: Redis is the fast path; a stuck Redis must surface
        # as an error (503) in milliseconds, not hang a gate.
        _clients[url] = redis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5,
            health_check_interval=30, max_connections=64, decode_responses=True)
    return _clients[url]


class RedisDependency(DependencyProvider):
    """Owns the client; injects `wrap(client, prefix)`, a domain wrapper."""

    def setup(self):
        self.client = client_for(setting(self.container.config, "REDIS_URL"))
        self.prefix = setting(self.container.config, "REDIS_PREFIX")

    def wrap(self, client, prefix):
        raise NotImplementedError

    def get_dependency(self, worker_ctx):
        return self.wrap(self.client, self.prefix)
