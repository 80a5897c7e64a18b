"""RPC with a deadline. nameko's RpcProxy waits forever for a reply; on a
request path a dead callee must become a 503 in well under a second."""
import eventlet
from nameko.exceptions import RemoteError, UnknownService
from nameko.rpc import RpcProxy

from shared.config import setting
from shared.errors import ApiError


class DeadlineCaller:
    def __init__(self, proxy, service_name, timeout):
        self._proxy = proxy
        self._service = service_name
        self.timeout = timeout

    def call(self, method, timeout=None, **kwargs):
        deadline = self.timeout if timeout is None else timeout
        try:
            with eventlet.Timeout(deadline):
                return getattr(self._proxy, method).call_async(**kwargs).result()
        except eventlet.Timeout:
            raise ApiError("unavailable", "%s did not answer within %.1f s" % (self._service, deadline))
        except UnknownService:
            raise ApiError("unavailable", "%s is not running" % self._service)
        except RemoteError as exc:
            raise ApiError("unavailable", "%s failed: %s" % (self._service, exc.exc_type))


class DeadlineRpc(RpcProxy):
    """`self.booking.call("method", **kwargs)` with RPC_TIMEOUT seconds to answer."""

    def setup(self):
        super().setup()
        self.timeout = float(setting(self.container.config, "RPC_TIMEOUT"))

    def get_dependency(self, worker_ctx):
        proxy = super().get_dependency(worker_ctx)
        return DeadlineCaller(proxy, self.target_service, self.timeout)
