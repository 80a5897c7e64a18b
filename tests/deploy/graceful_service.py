"""A service for test_graceful_stop.py: one slow HTTP route, started by
`nameko run --config config.yml` exactly as the image starts a service."""
import eventlet

from shared.http import api
from shared.platform import PlatformEndpoints


class GracefulService(PlatformEndpoints):
    name = "graceful"

    @api("GET", "/test/slow")
    def slow(self, request):
        eventlet.sleep(1.0)
        return {"finished": True}
