"""The image, checked statically (no Docker engine here): multi-stage on
Python 3.11 slim, dependencies from requirements.txt, non-root, exec-form
start so SIGTERM reaches nameko, a health check, a service chosen by command."""
import fnmatch
import json
import re

import pytest

from deploy_helpers import ROOT, service_exists, service_spec

DOCKERFILE = ROOT / "Dockerfile"


def instructions(text=None):
    """[(INSTRUCTION, arguments)], continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text() if text is None else text
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1].rstrip() + " "
            continue
        current += stripped
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def stages(items=None):
    """[[instructions of stage 0], [stage 1], ...]."""
    result = []
    for item in instructions() if items is None else items:
        if item[0] == "FROM":
            result.append([])
        result[-1].append(item)
    return result


def exec_form(args):
    """The JSON array of an exec-form instruction, or None for shell form."""
    try:
        value = json.loads(args)
    except ValueError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def test_parser_reads_continuations_and_forms():
    items = instructions('FROM a AS b\n# c\nRUN x \\\n  && y\nCMD ["p", "q"]\nCMD p q\n')
    assert items == [("FROM", "a AS b"), ("RUN", "x && y"), ("CMD", '["p", "q"]'), ("CMD", "p q")]
    assert exec_form(items[2][1]) == ["p", "q"] and exec_form(items[3][1]) is None


def test_multi_stage_on_python_311_slim():
    all_stages = stages()
    assert len(all_stages) >= 2
    froms = [s[0][1] for s in all_stages]
    assert all(re.match(r"python:3\.11(\.\d+)?-slim\b", f) for f in froms), froms
    builder = re.search(r"\bAS\s+(\w+)", froms[0], re.I).group(1)
    runtime = all_stages[-1]
    copies = [args for kind, args in runtime if kind == "COPY"]
    assert any(("--from=%s" % builder) in c for c in copies), "runtime must copy the builder's venv"
    # no compilers or pip installs in the runtime stage
    assert not any(kind == "RUN" and "pip install" in args for kind, args in runtime)


def test_dependencies_come_from_requirements_before_the_code():
    builder = stages()[0]
    copy_req = next(i for i, (k, a) in enumerate(builder) if k == "COPY" and "requirements.txt" in a)
    install = next(i for i, (k, a) in enumerate(builder)
                   if k == "RUN" and re.search(r"pip install .*-r \S*requirements\.txt", a))
    assert copy_req < install
    assert "setuptools<82" in (ROOT / "requirements.txt").read_text()  # nameko CLI needs pkg_resources


def test_runs_as_a_non_root_user():
    users = [args for kind, args in stages()[-1] if kind == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_exec_form_start_selects_the_service_by_command():
    runtime = stages()[-1]
    entrypoint = exec_form([a for k, a in runtime if k == "ENTRYPOINT"][-1])
    cmd = exec_form([a for k, a in runtime if k == "CMD"][-1])
    assert entrypoint == ["nameko", "run", "--config", "config.yml"]
    assert cmd and len(cmd) == 1 and re.fullmatch(r"services\.\w+\.service:\w+", cmd[0])
    name = cmd[0].split(".")[1]
    if service_exists(name):
        assert cmd[0] == service_spec(name)


def test_health_check_probes_the_http_port():
    checks = [a for k, a in stages()[-1] if k == "HEALTHCHECK"]
    assert checks and "CMD" in checks[-1] and "/health/live" in checks[-1] and "8000" in checks[-1]
    assert exec_form(checks[-1].split("CMD", 1)[1].strip()), "health check must be exec form"


def test_every_copied_source_exists_and_is_not_dockerignored():
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for stage in stages():
        for kind, args in stage:
            if kind != "COPY" or "--from=" in args:
                continue
            sources = [w for w in args.split() if not w.startswith("--")][:-1]
            for src in sources:
                assert (ROOT / src).exists(), src
                assert not any(fnmatch.fnmatch(src, pat) or src == pat for pat in ignored), src
    for needed in ("shared", "services", "config.yml", "requirements.txt"):
        assert needed not in ignored
    for secret_or_bulk in (".git", ".venv", "tests"):
        assert secret_or_bulk in ignored


@pytest.mark.parametrize("bad, why", [
    ('FROM python:3.11-slim\nUSER root\nCMD ["x"]\n', "root"),
    ('FROM python:3.11-slim\nUSER 1000\nCMD nameko run x\n', "shell"),
])
def test_the_checks_catch_a_bad_dockerfile(bad, why):
    runtime = stages(instructions(bad))[-1]
    user = [a for k, a in runtime if k == "USER"][-1]
    cmd = [a for k, a in runtime if k == "CMD"][-1]
    assert (user in ("root", "0")) if why == "root" else exec_form(cmd) is None


def test_hadolint_finds_nothing():
    """hadolint (pinned in requirements-dev.txt) lints the Dockerfile: pinned
    versions, exec form, no sudo, etc."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    binary = Path(sys.executable).parent / "hadolint"
    binary = str(binary) if binary.exists() else shutil.which("hadolint")
    if binary is None:
        pytest.skip("hadolint is not installed (make venv installs it)")
    out = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
