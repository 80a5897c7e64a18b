"""Endpoints every HTTP-serving service has: health, OpenAPI and metrics.

A service class inherits `PlatformEndpoints`. When one process runs several
services, the first registered copy of each route answers (shared.http).
"""
import gc

from nameko.extensions import DependencyProvider
from nameko.messaging import QueueConsumer
from werkzeug.wrappers import Response

from shared import metrics, openapi
from shared.errors import ApiError
from shared.http import api
from shared.logs import RequestContext


class AmqpConsumers(DependencyProvider):
    """Readiness of this container's RabbitMQ consumers (RPC, events, RPC
    replies). The HTTP port answers before they have connected: without this
    a pod would be ready while an RPC it makes could get no reply yet."""

    def get_dependency(self, worker_ctx):
        return self

    def ping(self):
        for extension in self.container.subextensions:
            if isinstance(extension, QueueConsumer) and not extension._consumers_ready.ready():
                raise ConnectionError("RabbitMQ consumers are not connected yet")


class FrozenStartupHeap(DependencyProvider):
    """Moves everything allocated while the service started (modules, schemas,
    SQLAlchemy metadata: ~100k objects) out of the garbage collector's reach.
    Otherwise every full collection walks them all: a ~50 ms pause of every
    request in the process, every few seconds under load, which is the p99
    of a gate. Runtime objects are still collected as usual."""

    def start(self):
        gc.collect()
        gc.freeze()

    def stop(self):
        # a process that starts containers again and again (the tests) must
        # not keep its earlier containers' cycles beyond the collector's reach
        gc.unfreeze()

    def kill(self):
        gc.unfreeze()

    def get_dependency(self, worker_ctx):
        return None


class PlatformEndpoints:
    request_id = RequestContext()
    amqp = AmqpConsumers()
    heap = FrozenStartupHeap()

    @api("GET", "/health/live", summary="The process is up", tag="platform")
    def health_live(self, request):
        return {"status": "live"}

    @api("GET", "/health/ready", summary="RabbitMQ, Redis and PostgreSQL answer",
         errors=("unavailable",), tag="platform")
    def health_ready(self, request):
        failed = []
        for name in dir(type(self)):
            dependency = getattr(self, name, None)
            ping = getattr(dependency, "ping", None)
            if callable(ping) and not isinstance(dependency, type):
                try:
                    ping()
                except Exception as exc:  # any failure means not ready
                    failed.append("%s: %s" % (name, type(exc).__name__))
        if failed:
            raise ApiError("unavailable", "not ready: " + ", ".join(failed))
        return {"status": "ready"}

    @api("GET", "/openapi.json", summary="This API as OpenAPI 3", tag="platform")
    def openapi_document(self, request):
        return openapi.document()

    @api("GET", "/metrics", summary="Prometheus metrics", tag="platform")
    def metrics(self, request):
        body, content_type = metrics.exposition()
        return Response(body, status=200, content_type=content_type)
