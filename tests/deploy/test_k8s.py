"""The Kubernetes manifests: valid against the Kubernetes schemas (offline,
kubernetes-validate, strict: unknown fields fail), rendered the way kustomize
would, and sound for running the services: probes, limits, non-root, graceful
stop, autoscaling, disruption budgets, a city with several replicas, and a
PostgreSQL that can take every pod's connections."""
import re
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from deploy_helpers import (K8S, PORT, ROOT, all_containers, find, kustomization,
                            kustomization_dirs, load_docs, pod_specs, render, resource_files,
                            service_exists, service_names, service_spec, strategic_merge)

K8S_VERSION = "1.32"
DIRS = kustomization_dirs()
IDS = [str(d.relative_to(K8S)) for d in DIRS]
CRD_KINDS = {"ScaledObject", "TriggerAuthentication"}   # KEDA: no upstream schema


def need(name):
    assert service_exists(name), "services/%s/service.py is missing" % name


def test_there_is_a_base_and_a_city_overlay():
    assert {"base", "overlays/city"} <= set(IDS)


ALL_DIRS = kustomization_dirs(buildable=False)


@pytest.mark.parametrize("directory", ALL_DIRS, ids=[str(d.relative_to(K8S)) for d in ALL_DIRS])
def test_kustomization_references_existing_files(directory):
    k = kustomization(directory)
    for entry in (k.get("resources", []) + k.get("components", [])
                  + [p["path"] for p in k.get("patches", [])]):
        target = directory / entry
        assert target.exists(), "%s names missing %s" % (directory, entry)
        if target.is_dir():
            assert (target / "kustomization.yaml").exists()


def test_every_manifest_file_is_used_by_a_kustomization():
    used = set()
    for directory in DIRS:
        used |= set(resource_files(directory))
    files = {p.resolve() for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert files - used == set(), "orphan manifests"


@pytest.mark.parametrize("directory", DIRS, ids=IDS)
def test_rendered_manifests_validate_against_the_kubernetes_schemas(directory):
    docs = render(directory)
    assert docs
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail("%s/%s: %s at %s" % (doc["kind"], doc["metadata"]["name"],
                                              exc.message, "/".join(map(str, exc.path))))


def test_each_base_file_validates_alone():
    for path in sorted((K8S / "base").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_docs(path):
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_rejects_a_broken_manifest():
    deployment = find(render(K8S / "base"), "Deployment", "booking")
    broken = strategic_merge(deployment, {"spec": {"replicas": "three"}})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    typo = strategic_merge(deployment, {"spec": {"template": {"spec": {"terminationGracePeriod": 5}}}})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSION, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not installed")
@pytest.mark.parametrize("directory", DIRS, ids=IDS)
def test_render_agrees_with_kubectl_kustomize(directory):
    out = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    theirs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out.stdout) if d}
    mine = {(d["kind"], d["metadata"]["name"]): d for d in render(directory)}
    assert mine == theirs


# -- the services' workloads ---------------------------------------------------

@pytest.mark.parametrize("name", service_names())
def test_one_app_label_from_deployment_to_service_hpa_and_pdb(name):
    need(name)
    docs = render(K8S / "base")
    deployment = find(docs, "Deployment", name)
    assert deployment["metadata"]["labels"]["app"] == name
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": name}
    assert deployment["spec"]["template"]["metadata"]["labels"]["app"] == name
    assert find(docs, "Service", name)["spec"]["selector"] == {"app": name}
    hpa = find(docs, "HorizontalPodAutoscaler", name)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    pdb = find(docs, "PodDisruptionBudget", name)
    if pdb:
        assert pdb["spec"]["selector"]["matchLabels"] == {"app": name}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [service_spec(name)]
    assert container["image"].split(":")[0].endswith("duoyou")


@pytest.mark.parametrize("name", service_names())
def test_probes_on_health_live_and_ready(name):
    need(name)
    from shared import openapi
    import importlib
    importlib.import_module("services.%s.service" % name)
    served = {r.path for r in openapi.ROUTES}
    container = find(render(K8S / "base"), "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready"),
                        ("startupProbe", "/health/live")):
        get = container[probe]["httpGet"]
        assert get["path"] == path and path in served
        assert ports.get(get["port"], get["port"]) == PORT


@pytest.mark.parametrize("name", service_names())
def test_graceful_stop_drains_before_nameko_stops(name):
    need(name)
    spec = find(render(K8S / "base"), "Deployment", name)["spec"]["template"]["spec"]
    pre_stop = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    sleep = int(pre_stop[1])
    assert sleep >= 5   # endpoints and ingress drop the pod first
    assert spec["terminationGracePeriodSeconds"] >= sleep + 20  # then nameko finishes workers


@pytest.mark.parametrize("directory", DIRS, ids=IDS)
def test_every_container_has_limits_and_runs_as_non_root(directory):
    for doc, spec in pod_specs(render(directory)):
        assert spec["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        assert spec["securityContext"].get("runAsUser", 1) != 0
        for container in spec["containers"]:
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[kind]), (doc["metadata"]["name"], kind)
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("name", service_names())
def test_service_pods_have_a_read_only_root_and_match_the_image_user(name):
    need(name)
    spec = find(render(K8S / "base"), "Deployment", name)["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    user = re.search(r"^USER\s+(\d+)", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    assert spec["securityContext"]["runAsUser"] == int(user)
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])


@pytest.mark.parametrize("name", ["entry", "checkin"])
def test_gate_and_desk_paths_have_disruption_budgets(name):
    need(name)
    for directory in DIRS:
        pdb = find(render(directory), "PodDisruptionBudget", name)
        assert pdb and ("maxUnavailable" in pdb["spec"] or "minAvailable" in pdb["spec"])


def test_the_stateful_parts_are_statefulsets_with_storage():
    docs = render(K8S / "base")
    for name in ("rabbitmq", "redis", "postgres"):
        sts = find(docs, "StatefulSet", name)
        assert sts and sts["spec"]["volumeClaimTemplates"], name
        assert find(docs, "Service", name)["spec"]["clusterIP"] == "None"
    redis_args = find(docs, "StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert redis_args[redis_args.index("--appendonly") + 1] == "yes"
    assert "management" in find(docs, "StatefulSet", "rabbitmq")["spec"]["template"]["spec"]["containers"][0]["image"]


def test_ingress_and_configmap_point_at_the_in_cluster_servers():
    docs = render(K8S / "base")
    config = find(docs, "ConfigMap", "duoyou-config")["data"]
    secret = find(docs, "Secret", "duoyou-secrets")["stringData"]
    assert re.search(r"//redis:6379/", config["REDIS_URL"])
    assert "@rabbitmq:5672/" in secret["AMQP_URI"] and "@postgres:5432/duoyou" in secret["DATABASE_URL"]


# -- scaling out --------------------------------------------------------------

def test_city_overlay_runs_several_replicas_and_the_hpa_never_goes_below():
    docs = render(K8S / "overlays" / "city")
    for name in [n for n in service_names() if service_exists(n)]:
        replicas = find(docs, "Deployment", name)["spec"]["replicas"]
        hpa = find(docs, "HorizontalPodAutoscaler", name)["spec"]
        assert replicas >= 3 and hpa["minReplicas"] >= replicas and hpa["maxReplicas"] > hpa["minReplicas"]


def _pool_limit():
    """Connections one service process may open: shared.database's pool + overflow."""
    import inspect
    from shared import database
    pool = inspect.signature(database.engine_for).parameters["pool_size"].default
    assert "max_overflow=pool_size" in inspect.getsource(database.engine_for)
    return 2 * pool


def max_pods(docs):
    """Service pods at full scale: each service's HPA maximum, or KEDA's."""
    total = 0
    for name in service_names():
        hpa = find(docs, "HorizontalPodAutoscaler", name)
        scaled = find(docs, "ScaledObject", name)
        if hpa:
            total += hpa["spec"]["maxReplicas"]
        elif scaled:
            total += scaled["spec"]["maxReplicaCount"]
        elif find(docs, "Deployment", name):
            total += find(docs, "Deployment", name)["spec"]["replicas"]
    return total


@pytest.mark.parametrize("directory", DIRS, ids=IDS)
def test_postgres_takes_every_pod_at_full_scale(directory):
    docs = render(directory)
    args = find(docs, "StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"][0]["args"]
    max_connections = int(next(a.split("=")[1] for a in args if a.startswith("max_connections=")))
    pods = max_pods(docs)
    reserve = 20  # superuser, migrations, operators' psql
    assert pods * _pool_limit() + reserve <= max_connections, \
        "%d pods x %d connections > max_connections %d" % (pods, _pool_limit(), max_connections)


@pytest.mark.parametrize("directory", DIRS, ids=IDS)
def test_redis_takes_every_pod_at_full_scale(directory):
    import inspect
    from shared import redis as shared_redis
    per_pod = int(re.search(r"max_connections=(\d+)", inspect.getsource(shared_redis.client_for)).group(1))
    docs = render(directory)
    args = find(docs, "StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]["args"]
    maxclients = int(args[args.index("--maxclients") + 1])
    assert max_pods(docs) * per_pod <= maxclients


def test_compose_postgres_takes_one_process_per_service():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    args = compose["postgres"]["command"]
    max_connections = int(next(a.split("=")[1] for a in args if a.startswith("max_connections=")))
    assert len(service_names()) * _pool_limit() + 20 <= max_connections


def test_images_are_pinned_to_a_tag():
    for directory in DIRS:
        for container in all_containers(render(directory)):
            assert ":" in container["image"] and not container["image"].endswith(":latest"), container["image"]


# -- optional KEDA component ---------------------------------------------------

def test_keda_overlay_scales_booking_on_real_queues():
    from shared import events
    docs = render(K8S / "overlays" / "city-keda")
    scaled = find(docs, "ScaledObject", "booking")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "booking" and find(docs, "Deployment", "booking")
    assert find(docs, "HorizontalPodAutoscaler", "booking") is None  # KEDA owns booking's HPA
    city_hpa = find(render(K8S / "overlays" / "city"), "HorizontalPodAutoscaler", "booking")["spec"]
    assert scaled["spec"]["minReplicaCount"] == city_hpa["minReplicas"]
    assert scaled["spec"]["maxReplicaCount"] <= city_hpa["maxReplicas"]
    known = {"rpc-%s" % n for n in service_names()}  # nameko's RPC queue per service
    known |= {events.queue_name(*sub) for sub in events.SUBSCRIPTIONS}
    secret = find(docs, "Secret", "duoyou-secrets")["stringData"]
    queues = [t for t in scaled["spec"]["triggers"] if t["type"] == "rabbitmq"]
    assert queues
    for trigger in queues:
        assert trigger["metadata"]["queueName"] in known, trigger["metadata"]["queueName"]
        auth = find(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["name"] == "duoyou-secrets"
            assert secret[ref["key"]].startswith("amqp://")
