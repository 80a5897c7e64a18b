"""The shared HTTP plumbing: one port for several services, the error envelope,
request ids, health, OpenAPI and metrics."""
from marshmallow import Schema, fields
from sqlalchemy import MetaData

from shared.database import Database
from shared.errors import ApiError
from shared.http import api, body
from shared.platform import PlatformEndpoints


class EchoBody(Schema):
    word = fields.String(required=True)


class AlphaService(PlatformEndpoints):
    name = "alpha"
    db = Database("alpha", MetaData())

    @api("POST", "/test/alpha", body=EchoBody)
    def alpha(self, request):
        data = body(request)
        return 201, {"service": "alpha", "word": data["word"]}

    @api("GET", "/test/boom")
    def boom(self, request):
        raise ApiError("sold_out", "nothing left")


class BetaService(PlatformEndpoints):
    name = "beta"

    @api("GET", "/test/beta/<thing>")
    def beta(self, request, thing):
        return {"service": "beta", "thing": thing}


def test_two_services_share_one_port(start_services):
    client = start_services(AlphaService, BetaService)
    for _ in range(20):  # every connection must reach the right service
        assert client.post("/test/alpha", json={"word": "hi"}).json()["service"] == "alpha"
        assert client.get("/test/beta/x").json() == {"service": "beta", "thing": "x"}


def test_error_envelope(start_services):
    client = start_services(AlphaService)
    r = client.post("/test/alpha", data="{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "bad_json"
    r = client.post("/test/alpha", json={"word": 3, "extra": 1})
    assert r.status_code == 400
    assert r.json()["error"] == "validation_error"
    assert set(r.json()["fields"]) == {"word", "extra"}
    r = client.get("/test/boom")
    assert r.status_code == 409 and r.json() == {"error": "sold_out", "message": "nothing left"}
    r = client.get("/no/such/route")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = client.post("/test/alpha", data="x" * 70000)
    assert r.status_code == 413 and r.json()["error"] == "too_large"


def test_request_id_is_echoed(start_services):
    client = start_services(AlphaService)
    r = client.get("/health/live", headers={"X-Request-Id": "abc123"})
    assert r.headers["X-Request-Id"] == "abc123"
    assert client.get("/health/live").headers["X-Request-Id"]


def test_health_openapi_metrics(start_services):
    client = start_services(AlphaService, BetaService)
    assert client.get("/health/ready").json() == {"status": "ready"}
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert "/test/beta/{thing}" in doc["paths"] and "/test/alpha" in doc["paths"]
    assert "duoyou_http_requests_total" in client.get("/metrics").text
