"""docker-compose.yml, checked statically (no Docker engine here): the
stateful servers with persistence and health checks, every service from one
image selected by command, start order on health, configuration only
through the environment, the proxy and the seed job."""
import re

import pytest
import yaml

from deploy_helpers import PORT, ROOT, service_exists, service_names, service_spec

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def command_of(svc):
    cmd = svc.get("command")
    return cmd.split() if isinstance(cmd, str) else list(cmd or [])


def test_compose_has_the_stateful_servers_with_persistence():
    assert "management" in SERVICES["rabbitmq"]["image"]
    redis_cmd = command_of(SERVICES["redis"])
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    for name in ("rabbitmq", "redis", "postgres"):
        volumes = SERVICES[name].get("volumes", [])
        assert volumes and all(v.split(":")[0] in COMPOSE["volumes"] for v in volumes), name


def test_every_container_with_dependants_has_a_health_check():
    for name, svc in SERVICES.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in SERVICES, (name, dep)
            assert cond == {"condition": "service_healthy"}, (name, dep)
            assert "healthcheck" in SERVICES[dep], "%s waits on %s, which has no health check" % (name, dep)


@pytest.mark.parametrize("name", service_names())
def test_service_runs_from_the_one_image_selected_by_command(name):
    assert service_exists(name), "services/%s/service.py is missing" % name
    svc = SERVICES[name]
    assert svc["image"] == SERVICES["booking"]["image"]
    assert command_of(svc) == [service_spec(name)]
    assert "entrypoint" not in svc  # the image's exec-form nameko entrypoint
    deps = svc["depends_on"]
    assert {"rabbitmq", "redis", "postgres"} <= set(deps)
    check = " ".join(svc["healthcheck"]["test"])
    assert "/health/ready" in check and str(PORT) in check
    assert svc.get("stop_grace_period"), "nameko needs time to finish workers on SIGTERM"


@pytest.mark.parametrize("name", service_names())
def test_service_is_configured_only_through_the_environment(name):
    assert service_exists(name), "services/%s/service.py is missing" % name
    svc = SERVICES[name]
    assert not svc.get("volumes"), "no mounted config files"
    assert not svc.get("env_file")
    env = svc["environment"]
    assert isinstance(env, dict)
    assert env["WEB_SERVER_ADDRESS"].endswith(":%d" % PORT)
    hosts = {"AMQP_URI": "rabbitmq", "DATABASE_URL": "postgres", "REDIS_URL": "redis"}
    for key, host in hosts.items():
        assert re.search(r"@%s:|//%s:" % (host, host), env[key]), (key, env[key])


def test_seed_job_runs_once_after_the_services():
    seed = SERVICES["seed"]
    assert seed["image"] == SERVICES["booking"]["image"]
    assert list(seed["entrypoint"]) + command_of(seed) == \
        ["python", "-m", "services.booking.seed", "demo"]
    assert seed["restart"] == "no"
    assert "booking" in seed["depends_on"]
    assert seed["environment"] == SERVICES["booking"]["environment"]


def test_proxy_mounts_the_nginx_config_and_waits_for_every_service():
    proxy = SERVICES["proxy"]
    mounts = [v.split(":") for v in proxy["volumes"]]
    assert any((ROOT / src.lstrip("./")).is_file() and dst == "/etc/nginx/nginx.conf"
               for src, dst, *_ in mounts)
    assert set(proxy["depends_on"]) >= {n for n in service_names() if service_exists(n)}
    assert proxy["ports"]


def test_secrets_have_only_development_defaults_in_compose():
    """Keys are overridable from the environment (a .env file), never fixed."""
    env = SERVICES["booking"]["environment"]
    for key in ("ADMIN_TOKEN", "ID_HASH_KEY", "QR_SIGNING_KEY"):
        assert env[key].startswith("${%s:-" % key), key


def test_every_container_of_the_image_can_build_it():
    """None of them may try to pull duoyou:dev from a registry."""
    for name in [n for n in service_names() if service_exists(n)] + ["seed"]:
        build = SERVICES[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"
