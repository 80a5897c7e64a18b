"""GET /openapi.json is a valid OpenAPI 3 document that describes every HTTP
route the running services serve, with its method; and each service alone
(as it runs in Kubernetes) publishes a valid document of its own routes."""
import importlib
import inspect
import json
import pathlib
import subprocess
import sys

import pytest
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from openapi_spec_validator import validate

from shared.http import ApiEntrypoint
from shared.openapi import openapi_path

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVICES = ("booking", "checkin", "entry")


def service_classes(name):
    module = importlib.import_module("services.%s.service" % name)
    return [obj for obj in vars(module).values()
            if inspect.isclass(obj) and obj.__module__ == module.__name__
            and isinstance(getattr(obj, "name", None), str)
            and any(getattr(m, ENTRYPOINT_EXTENSIONS_ATTR, None) for _, m in inspect.getmembers(obj))]


def http_routes(cls):
    """{(method, werkzeug path)} of the class's @api entrypoints (inherited included)."""
    return {(ep.method.upper(), ep.url)
            for _, member in inspect.getmembers(cls)
            for ep in getattr(member, ENTRYPOINT_EXTENSIONS_ATTR, ()) or ()
            if isinstance(ep, ApiEntrypoint)}


def documented(doc):
    return {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}


def classes():
    return [cls for name in SERVICES for cls in service_classes(name)]


def test_every_service_has_a_class_with_routes():
    for name in SERVICES:
        found = service_classes(name)
        assert len(found) == 1 and found[0].name == name
        assert len(http_routes(found[0])) > 4


def test_running_services_publish_a_valid_complete_document(start_services):
    api = start_services(*classes())
    r = api.get("/openapi.json")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    doc = r.json()
    validate(doc)  # raises OpenAPIValidationError on anything wrong
    assert doc["openapi"].startswith("3.")
    in_doc = documented(doc)
    for cls in classes():
        for method, path in http_routes(cls):
            assert (method, openapi_path(path)) in in_doc, "%s %s of %s" % (method, path, cls.name)
    # and nothing described that no service serves (test doubles of other
    # test modules register /test/... routes in this same process)
    served = {(m, openapi_path(p)) for cls in classes() for m, p in http_routes(cls)}
    ghosts = {route for route in in_doc if not route[1].startswith("/test/")} - served
    assert not ghosts, ("documented but served by no entrypoint (a method redefined under "
                        "the same name drops its @api route): %s" % sorted(ghosts))


def test_contract_paths_are_described(start_services):
    """The public contract's paths, verbs and error envelope."""
    doc = start_services(*classes()).get("/openapi.json").json()
    contract = [
        ("POST", "/v1/tourists"), ("GET", "/v1/hotels/search"),
        ("GET", "/v1/venues/{venue_id}/availability"), ("POST", "/v1/bookings"),
        ("GET", "/v1/bookings/{booking_id}"), ("GET", "/v1/bookings"),
        ("POST", "/v1/bookings/{booking_id}/cancel"), ("GET", "/v1/bookings/{booking_id}/qr"),
        ("POST", "/v1/scans"), ("POST", "/v1/scans/{nonce}/annul"),
        ("GET", "/v1/venues/{venue_id}/occupancy"), ("POST", "/v1/checkins"),
        ("POST", "/v1/stays/{stay_id}/checkout"), ("POST", "/v1/locks/{room}/unlock"),
        ("POST", "/v1/admin/hotels"), ("POST", "/v1/admin/venues"), ("POST", "/v1/admin/devices"),
        ("GET", "/health/live"), ("GET", "/health/ready"),
    ]
    in_doc = documented(doc)
    missing = [c for c in contract if c not in in_doc]
    assert not missing, missing
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "message"]
    scan = doc["paths"]["/v1/scans"]["post"]
    assert "requestBody" in scan and "200" in scan["responses"] and "400" in scan["responses"]


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_alone_documents_exactly_its_routes(name):
    """In Kubernetes each process runs one service: its document is valid and
    describes its own routes (plus the platform ones), nobody else's."""
    script = ("import eventlet; eventlet.monkey_patch()\n"
              "import json, services.%s.service\n"
              "from shared import openapi\n"
              "print(json.dumps(openapi.document()))\n" % name)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    validate(doc)
    own = {(m, openapi_path(p)) for cls in service_classes(name) for m, p in http_routes(cls)}
    assert not own - documented(doc), "served but not documented: %s" % sorted(own - documented(doc))
    ghosts = documented(doc) - own
    assert not ghosts, ("documented but served by no entrypoint (a method redefined under "
                        "the same name drops its @api route): %s" % sorted(ghosts))
