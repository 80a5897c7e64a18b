"""deploy/nginx.conf run by a real nginx in front of the three services, each
on its own port as in compose: nginx accepts the file, and every route of
every service reaches that service (a misrouted request would meet another
service's "no such route"). Skipped where nginx is not installed
(`apt-get install nginx-light`); the static checks in test_agreement.py run
everywhere."""
import pathlib
import re
import shutil
import socket
import subprocess
import time

import pytest
import requests

from deploy_helpers import ROOT, sample_path, service_exists, service_names, service_routes

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_config(tmp, ports, listen):
    """The real file with upstream hosts and the listen port made local."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    for name, port in ports.items():
        text, count = re.subn(r"server\s+%s:8000;" % name, "server 127.0.0.1:%d;" % port, text)
        assert count == 1, name
    text, count = re.subn(r"listen\s+80;", "listen 127.0.0.1:%d;" % listen, text)
    assert count == 1
    text = "pid %s/nginx.pid;\nerror_log %s/error.log warn;\n" % (tmp, tmp) + text
    path = pathlib.Path(tmp) / "nginx.conf"
    path.write_text(text)
    return path


@pytest.fixture
def proxy(start_services, tmp_path):
    import importlib
    names = [n for n in service_names() if service_exists(n)]
    ports = {name: free_port() for name in names}
    for name in names:
        module = importlib.import_module("services.%s.service" % name)
        classes = [c for c in vars(module).values()
                   if isinstance(c, type) and getattr(c, "name", None) == name]
        start_services(*classes, extra_config={"WEB_SERVER_ADDRESS": "127.0.0.1:%d" % ports[name]})
    listen = free_port()
    conf = local_config(tmp_path, ports, listen)
    check = subprocess.run(["nginx", "-t", "-q", "-p", str(tmp_path), "-e", str(tmp_path / "e.log"),
                            "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    server = subprocess.Popen(["nginx", "-p", str(tmp_path), "-e", str(tmp_path / "e.log"),
                               "-c", str(conf), "-g", "daemon off;"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = "http://127.0.0.1:%d" % listen
    deadline = time.monotonic() + 10
    while True:
        try:
            requests.get(base + "/nginx-health", timeout=1)
            break
        except requests.ConnectionError:
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
    yield base, names
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def test_every_route_reaches_its_service_through_the_real_proxy(proxy):
    base, names = proxy
    session = requests.Session()
    for name in names:
        for method, path in sorted(service_routes(name)):
            r = session.request(method, base + sample_path(path), timeout=10,
                                headers={"Authorization": "Bearer nobody"})
            what = "%s %s (%s)" % (method, path, name)
            assert r.headers.get("Content-Type", "").startswith("application/json"), what
            body = r.json()
            assert body.get("message") != "no such route", "misrouted: " + what
            assert r.status_code not in (405, 502, 503, 504), "%s -> %s %s" % (what, r.status_code, body)
            assert r.headers.get("X-Request-Id"), what  # set by the service, so it got there


def test_request_id_openapi_and_unknown_paths_through_the_real_proxy(proxy):
    base, names = proxy
    r = requests.get(base + "/v1/venues/x1/occupancy", headers={"X-Request-Id": "trace-me-1"})
    assert r.headers["X-Request-Id"] == "trace-me-1"          # the caller's id is kept
    made = requests.get(base + "/v1/venues/x1/occupancy").headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)                # nginx made one
    for name in names:
        doc = requests.get(base + "/%s/openapi.json" % name)
        assert doc.status_code == 200 and doc.json()["openapi"].startswith("3.")
    for hidden in ("/metrics", "/health/ready", "/v1/nothing", "/"):
        r = requests.get(base + hidden)
        assert r.status_code == 404 and r.json()["error"] == "not_found", hidden
