"""RPC with a deadline. nameko's RpcProxy waits forever for a reply; on a
request path a dead callee must become a 503 in well under a second."""
import functools
import time

import eventlet
from nameko.exceptions import MethodNotFound, RemoteError, UnknownService
from nameko.rpc import RpcProxy

from shared import metrics
from shared.config import setting
from shared.errors import ApiError


class DeadlineCaller:
    """`proxy` is the nameko ServiceProxy, or a function making it: readers
    inject a caller into every worker, most of which never call (cache hits),
    so the proxy is built on the first call only."""

    def __init__(self, proxy, service_name, timeout):
        self._make = proxy if callable(proxy) else None
        self._built = None if callable(proxy) else proxy
        self._service = service_name
        self.timeout = timeout

    @property
    def _proxy(self):
        if self._built is None:
            self._built = self._make()
        return self._built

    def call(self, method, timeout=None, **kwargs):
        deadline = self.timeout if timeout is None else timeout
        started, outcome = time.perf_counter(), "ok"
        try:
            with eventlet.Timeout(deadline):
                return getattr(self._proxy, method).call_async(**kwargs).result()
        except eventlet.Timeout:
            outcome = "timeout"
            raise ApiError("unavailable", "%s did not answer within %.1f s" % (self._service, deadline))
        except UnknownService:
            outcome = "unavailable"
            raise ApiError("unavailable", "%s is not running" % self._service)
        except MethodNotFound:  # a callee of another version: retry later, not a 500
            outcome = "unavailable"
            raise ApiError("unavailable", "%s has no %s" % (self._service, method))
        except RemoteError as exc:
            outcome = "unavailable"
            raise ApiError("unavailable", "%s failed: %s" % (self._service, exc.exc_type))
        except Exception:  # the callee's own error (ApiError crosses RPC intact)
            outcome = "error"
            raise
        finally:
            metrics.observe_rpc(self._service, method, outcome, time.perf_counter() - started)


class DeadlineRpc(RpcProxy):
    """`self.booking.call("method", **kwargs)` with RPC_TIMEOUT seconds to answer."""

    def setup(self):
        super().setup()
        self.timeout = float(setting(self.container.config, "RPC_TIMEOUT"))

    def get_dependency(self, worker_ctx):
        make = functools.partial(RpcProxy.get_dependency, self, worker_ctx)
        return DeadlineCaller(make, self.target_service, self.timeout)
