"""Compose, Kubernetes, the proxy and the code agree: every service is
deployed everywhere, every setting the code reads is provided, every public
route reaches the service that serves it, and every port is 8000."""
import re

import pytest
import yaml

from deploy_helpers import (K8S, PLATFORM_PATHS, PORT, ROOT, code_settings, find, nginx_locations,
                            nginx_route, nginx_upstreams, render, sample_path, service_exists,
                            service_names, service_routes)

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
BASE = render(K8S / "base")
CITY = render(K8S / "overlays" / "city")


def need(name):
    assert service_exists(name), "services/%s/service.py is missing" % name


def ingress_paths(docs=BASE, name="duoyou-api"):
    """[(path, pathType, backend service, port)] of one Ingress."""
    ingress = find(docs, "Ingress", name)
    return [(p["path"], p["pathType"], p["backend"]["service"]["name"],
             p["backend"]["service"]["port"]["number"])
            for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]


def ingress_match(path, paths):
    """Paths of a use-regex ingress-nginx Ingress that match (case-insensitive regex)."""
    return [p for p in paths if re.search(p[0], path, re.I)]


# -- every service everywhere -------------------------------------------------

@pytest.mark.parametrize("name", service_names())
def test_service_is_in_compose_k8s_and_the_proxy(name):
    need(name)
    assert name in COMPOSE
    for docs in (BASE, CITY):
        assert find(docs, "Deployment", name) and find(docs, "Service", name) \
            and find(docs, "HorizontalPodAutoscaler", name), name
    assert name in nginx_upstreams()
    assert any(p[2] == name for p in ingress_paths())


@pytest.mark.parametrize("name", service_names())
def test_each_service_publishes_its_openapi_document(name):
    need(name)
    loc = nginx_route("/%s/openapi.json" % name)
    assert loc[0] == "=" and loc[2] == name
    assert any(p[0] == "/%s/openapi.json" % name and p[2] == name
               for p in ingress_paths(name="duoyou-openapi"))
    rewrite = find(BASE, "Ingress", "duoyou-openapi")["metadata"]["annotations"]
    assert rewrite["nginx.ingress.kubernetes.io/rewrite-target"] == "/openapi.json"


# -- settings -----------------------------------------------------------------

def test_code_settings_include_the_defaults_and_config_yml():
    from shared.config import DEFAULTS
    names = code_settings()
    assert set(DEFAULTS) <= names and {"MAX_WORKERS", "PREFETCH_COUNT"} <= names


@pytest.mark.parametrize("name", service_names())
def test_compose_provides_every_setting_the_code_reads(name):
    need(name)
    missing = code_settings() - set(COMPOSE[name]["environment"])
    assert not missing, "compose %s lacks %s" % (name, sorted(missing))


@pytest.mark.parametrize("docs", [BASE, CITY], ids=["base", "city"])
def test_k8s_provides_every_setting_the_code_reads(docs):
    provided = {}
    for name in [n for n in service_names() if service_exists(n)]:
        container = find(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        keys = {e["name"] for e in container.get("env", [])}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                keys |= set(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
            if "secretRef" in source:
                secret = find(docs, "Secret", source["secretRef"]["name"])
                keys |= set(secret.get("stringData", {})) | set(secret.get("data", {}))
        provided[name] = keys
        missing = code_settings() - keys
        assert not missing, "k8s %s lacks %s" % (name, sorted(missing))


def test_secrets_are_in_the_secret_not_the_configmap():
    config = find(BASE, "ConfigMap", "duoyou-config")["data"]
    secret = find(BASE, "Secret", "duoyou-secrets")["stringData"]
    for key in ("ADMIN_TOKEN", "ID_HASH_KEY", "QR_SIGNING_KEY", "AMQP_URI", "DATABASE_URL"):
        assert key in secret and key not in config


# -- routes -------------------------------------------------------------------

def test_the_route_table_has_no_overlaps():
    """Regex locations in nginx and paths in the Ingress are order-free only if
    no URL matches two of them: check on every route of every service."""
    regexes = [loc for loc in nginx_locations() if loc[0] in ("~", "~*")]
    for name in [n for n in service_names() if service_exists(n)]:
        for method, path in service_routes(name):
            url = sample_path(path)
            assert len([r for r in regexes if re.search(r[1], url)]) == 1, url
            assert len(ingress_match(url, ingress_paths())) == 1, url


@pytest.mark.parametrize("name", service_names())
def test_every_route_reaches_its_service_through_nginx_and_the_ingress(name):
    need(name)
    routes = service_routes(name)
    assert routes
    for method, path in sorted(routes):
        url = sample_path(path)
        loc = nginx_route(url)
        assert loc is not None and loc[2] == name, \
            "nginx sends %s %s to %s, not %s" % (method, path, loc and loc[2], name)
        matches = ingress_match(url, ingress_paths())
        assert [m[2] for m in matches] == [name], "Ingress sends %s %s to %s" % (method, path, matches)


def test_no_route_is_left_to_a_default_and_unknown_paths_get_404():
    assert nginx_route("/v1/nothing-here")[2] is None
    assert not ingress_match("/v1/nothing-here", ingress_paths())
    for platform in PLATFORM_PATHS:   # not published; scraped and probed in-cluster
        assert nginx_route(platform)[2] is None
        assert not ingress_match(platform, ingress_paths())


def test_every_proxy_rule_serves_some_route():
    """No dead entries: each nginx location and Ingress path is used."""
    assert all(service_exists(n) for n in service_names())
    urls = [sample_path(p) for n in service_names() for _, p in service_routes(n)]
    for loc in nginx_locations():
        if loc[0] in ("~", "~*"):
            assert any(re.search(loc[1], u) for u in urls), loc[1]
    for path in ingress_paths():
        assert any(re.search(path[0], u, re.I) for u in urls), path[0]


# -- ports --------------------------------------------------------------------

@pytest.mark.parametrize("name", service_names())
def test_port_8000_everywhere(name):
    need(name)
    from shared.config import DEFAULTS
    assert DEFAULTS["WEB_SERVER_ADDRESS"].endswith(":%d" % PORT)
    assert COMPOSE[name]["environment"]["WEB_SERVER_ADDRESS"].endswith(":%d" % PORT)
    assert nginx_upstreams()[name] == ["%s:%d" % (name, PORT)]
    assert find(BASE, "ConfigMap", "duoyou-config")["data"]["WEB_SERVER_ADDRESS"].endswith(":%d" % PORT)
    container = find(BASE, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    assert [p["containerPort"] for p in container["ports"]] == [PORT]
    service = find(BASE, "Service", name)
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == \
        [(PORT, container["ports"][0]["name"])]
    for ingress in ("duoyou-api", "duoyou-openapi"):
        assert all(p[3] == PORT for p in ingress_paths(name=ingress) if p[2] == name)


def test_the_openapi_registry_holds_no_route_outside_the_service_classes():
    """Every public route in shared.openapi.ROUTES (what /openapi.json shows)
    belongs to a service class, so the routing checks above cover it."""
    assert all(service_exists(n) for n in service_names())
    from shared import openapi
    claimed = set()
    for name in service_names():
        claimed |= service_routes(name)
    registered = {(r.method.upper(), r.path) for r in openapi.ROUTES
                  if r.path not in PLATFORM_PATHS and not r.path.startswith("/test/")}
    assert registered and registered <= claimed, registered - claimed
    for method, path in registered:
        assert nginx_route(sample_path(path))[2] is not None, path
