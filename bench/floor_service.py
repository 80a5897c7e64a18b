"""The floor: a bare nameko @http handler doing one Redis GET.

Started like the services (`nameko run --config config.yml bench.floor_service`)
so every benchmark can be read against what nameko + eventlet + one Redis
round trip cost on this machine in the same run.
"""
from nameko.extensions import DependencyProvider
from nameko.web.handlers import http

from shared.config import setting
from shared.redis import client_for


class FloorRedis(DependencyProvider):
    def setup(self):
        self.client = client_for(setting(self.container.config, "REDIS_URL"))
        self.key = setting(self.container.config, "REDIS_PREFIX") + "floor"
        self.client.set(self.key, "x" * 200, ex=3600)

    def get_dependency(self, worker_ctx):
        return lambda: self.client.get(self.key)


class FloorService:
    name = "bench_floor"
    value = FloorRedis()

    @http("GET", "/floor")
    def floor(self, request):
        return 200, {"Content-Type": "application/json"}, '{"v":%d}' % len(self.value())

    @http("GET", "/health/ready")
    def ready(self, request):
        return 200, "ready"
