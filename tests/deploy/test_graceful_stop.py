"""The image's start command, run here without a container: the Dockerfile's
ENTRYPOINT (`nameko run --config config.yml`) plus each service's command
from docker-compose.yml. It starts and answers, and SIGTERM (what Kubernetes
and compose send; exec form makes nameko PID 1, so it gets it) stops it
gracefully: a request already being handled gets its answer, and the process
exits 0 well inside the pod's grace period."""
import os
import signal
import subprocess
import sys
import threading
import time

import json
import re

import pytest
import requests
import yaml

from deploy_helpers import ROOT, service_exists, service_names

NAMEKO = os.path.join(os.path.dirname(sys.executable), "nameko")
GRACE = 35  # terminationGracePeriodSeconds 45 minus the preStop sleep


def entrypoint():
    """The Dockerfile's exec-form ENTRYPOINT, with this venv's nameko."""
    line = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    argv = json.loads(line)
    assert argv[0] == "nameko"
    return [NAMEKO] + argv[1:]


def compose_command(name):
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][name]["command"]


def start(command, config, port, extra_path=()):
    """Run the image's command with the test's servers in the environment."""
    env = dict(os.environ, **{k: str(v) for k, v in config.items() if k.isupper()})
    env["WEB_SERVER_ADDRESS"] = "127.0.0.1:%d" % port
    env["LOG_LEVEL"] = "INFO"   # as deployed: the start and stop lines
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *map(str, extra_path)])
    proc = subprocess.Popen(entrypoint() + command, cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = "http://127.0.0.1:%d" % port
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(base + "/health/live", timeout=1).status_code == 200:
                return proc, base
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("nameko run did not start:\n" + proc.stdout.read()[-3000:])
        time.sleep(0.05)


def stop_and_wait(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("still running %d s after SIGTERM:\n%s" % (GRACE, proc.stdout.read()[-4000:]))
    return proc.returncode, proc.stdout.read()


def test_sigterm_lets_the_running_request_finish(config):
    from tests.conftest import free_port
    proc, base = start(["graceful_service:GracefulService"], config, free_port(),
                       [ROOT / "tests" / "deploy"])
    answer = {}

    def call():
        try:
            answer["response"] = requests.get(base + "/test/slow", timeout=10)
        except requests.RequestException as exc:
            answer["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.3)   # the worker is inside its one-second handler
    started = time.monotonic()
    code, output = stop_and_wait(proc)
    caller.join(10)
    assert code == 0, output[-3000:]
    assert "error" not in answer, answer.get("error")
    assert answer["response"].status_code == 200 and answer["response"].json() == {"finished": True}
    assert time.monotonic() - started < GRACE


@pytest.mark.parametrize("name", service_names())
def test_each_service_starts_from_its_compose_command_and_stops_on_sigterm(name, config):
    assert service_exists(name), "services/%s/service.py is missing" % name
    from tests.conftest import free_port
    proc, base = start(compose_command(name), config, free_port())
    # ready = RabbitMQ consumers connected too; SIGTERM before that hangs
    # nameko 2.14.1's QueueConsumer (docs/deployment.md), so wait for it
    deadline = time.monotonic() + 30
    while requests.get(base + "/health/ready", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "never ready"
        time.sleep(0.05)
    assert requests.get(base + "/openapi.json", timeout=5).json()["info"]["title"]
    code, output = stop_and_wait(proc)
    assert code == 0, output[-3000:]
    stopping = output.index('"stopping services: %s"' % name)
    assert "Traceback" not in output[stopping:], output[stopping:][-3000:]  # a clean stop


def test_readiness_waits_for_the_rabbitmq_consumers():
    """/health/ready fails until the container's AMQP consumers have connected."""
    import types
    from nameko.messaging import QueueConsumer
    from shared.platform import AmqpConsumers
    consumer = QueueConsumer()
    readiness = AmqpConsumers()
    readiness.container = types.SimpleNamespace(subextensions={consumer})
    with pytest.raises(ConnectionError):
        readiness.ping()
    consumer._consumers_ready.send(None)
    readiness.ping()
