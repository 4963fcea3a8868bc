"""The production images: wheels pinned by a current lock and the Dockerfiles' policy, offline;
built and run (scripts/images.py) on a Docker engine. Without one the engine tests skip and
say so, unless REQUIRE_CONTAINER_ENGINE=1 (CI on a machine with an engine) makes that a failure,
and the make targets that need one (dev, dev-smoke, images...) say why they cannot run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import images
import pytest
from devproc import health
from monorepo.locks import lock_path, locked_pins_current, package_spec, pins
from monorepo.packages import canonical_name, discover, load_toml, local_deps, requirement_name
from packaging.requirements import Requirement
from scaffold import REPO, outside_make_env, run

SERVICES = tuple(images.SERVICES)
VARIANTS = [(service, "") for service in SERVICES]
if "engines" in images.project("sts-service").get("optional-dependencies", {}):
    VARIANTS.append(("sts-service", "engines"))


def _dockerfile(service: str) -> str:
    return (REPO / "infra" / f"{service}.prod.Dockerfile").read_text(encoding="utf-8")


@pytest.mark.parametrize(("service", "extra"), VARIANTS)
def test_the_image_lock_is_current_and_pins_every_runtime_dependency(
    service: str, extra: str
) -> None:
    minor = re.findall(r"^ARG PYTHON_VERSION=(\S+)$", _dockerfile(service), re.M)
    assert minor and images.BASE_IMAGE == f"python:{minor[0]}-slim", "one Python minor"
    packages = discover()
    spec = package_spec(packages[service], packages, (extra,) if extra else ())
    lock = lock_path(spec.lock_name, minor[0])
    assert lock.exists() and locked_pins_current(spec, lock), f"{lock}: run `make lock`"
    wanted = set()
    for package in [*local_deps(packages[service], packages), packages[service]]:
        project = load_toml(package.path / "pyproject.toml")["project"]
        groups = project.get("optional-dependencies", {})
        for requirement in [*project.get("dependencies", []), *groups.get(extra, [])]:
            marker = Requirement(requirement).marker  # e.g. tomli only below 3.11
            if marker is None or marker.evaluate({"python_version": minor[0]}):
                wanted.add(requirement_name(requirement))
    missing = wanted - set(packages) - {canonical_name(name) for name in pins(lock.read_text())}
    assert not missing, f"{lock} does not pin {sorted(missing)}: run `make lock`"


@pytest.mark.parametrize("service", SERVICES)
def test_production_dockerfile_policy(service: str) -> None:
    text = _dockerfile(service)
    # test_config_drift checks what every Dockerfile shares: slim bases, non-root, offline.
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.M)
    assert len(stages) == 2 and stages[0][1] == "builder", "a builder stage, then the runtime"
    builder, runtime = text.split("\nFROM python:${PYTHON_VERSION}-slim\n", 1)
    assert "--constraint /src/constraints.txt" in builder
    assert "COPY locks /src/locks" in builder and f"/src/locks/py$minor/{service}" in builder
    assert "COPY " not in runtime, "the runtime stage copies no source: it installs wheels only"
    assert "--no-index --no-deps /wheels/*.whl" in runtime and "--no-cache-dir" in runtime
    assert "pip check" in runtime
    assert re.search(r"^HEALTHCHECK --", runtime, re.M), "a HEALTHCHECK"
    for label in ('version="${VERSION}"', 'revision="${GIT_REVISION}"'):
        assert f"org.opencontainers.image.{label}" in runtime
    assert "GIT_REVISION=${GIT_REVISION}" in runtime, "health must report the labelled revision"


@pytest.mark.parametrize("target", ["dev", "stop", "logs", "dev-smoke", "images"])
def test_make_without_an_engine_says_so_in_one_line(target: str) -> None:
    env = {**outside_make_env(), "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    result = run(["make", target], cwd=REPO, env=env, timeout=60)
    assert result.returncode == 2, result.output
    ours = [line for line in result.output.splitlines() if not line.startswith("make: ***")]
    assert len(ours) == 1, result.output
    assert "make dev-local" in ours[0] and ("Docker" in ours[0] or "docker" in ours[0])


def _engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not installed"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker engine is reachable (docker info failed)"
    # The Dockerfiles use `RUN --mount=type=cache`, which the legacy builder refuses.
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode != 0:
        return "the engine has no BuildKit (docker buildx is not installed)"
    return None


@pytest.fixture(scope="module")
def built() -> Iterator[dict[tuple[str, str], images.Built]]:
    """Every variant, the engines one included when sts-service declares that extra."""
    if problem := _engine_problem():
        if os.environ.get("REQUIRE_CONTAINER_ENGINE") == "1":
            pytest.fail(f"REQUIRE_CONTAINER_ENGINE=1 but {problem}")
        pytest.skip(f"production images not built: {problem} (start one, e.g. container-engine)")
    suffix = f"-test{uuid.uuid4().hex[:6]}"
    result = {}
    try:
        for service, extra in VARIANTS:
            try:
                result[service, extra] = images.build(service, sts_extras=extra, tag_suffix=suffix)
            except subprocess.CalledProcessError as exc:
                pytest.fail(f"{service} {extra}: docker build failed:\n{exc.stdout}{exc.stderr}")
        yield result
    finally:
        for item in result.values():
            subprocess.run(["docker", "image", "rm", item.tag], capture_output=True)


def _docker(*args: str) -> str:
    return images.output("docker", *args).strip()


@pytest.mark.parametrize(("service", "extra"), VARIANTS)
def test_image_runs_help_as_non_root_with_labels(
    built: dict[tuple[str, str], images.Built], service: str, extra: str
) -> None:
    image = built[service, extra]
    config = json.loads(_docker("image", "inspect", image.tag))[0]["Config"]
    assert str(config["User"]).split(":")[0] not in ("", "root", "0")
    labels = config["Labels"]
    assert isinstance(labels, dict)
    assert labels["org.opencontainers.image.version"] == image.version
    assert labels["org.opencontainers.image.revision"] == image.git_revision != "unknown"
    assert config.get("Healthcheck"), "the image declares a HEALTHCHECK"
    usage = _docker("run", "--rm", image.tag, "--help")
    assert service != "stream-worker" or "usage: stream-worker" in usage


def test_sts_service_image_answers_health_with_its_labels(
    built: dict[tuple[str, str], images.Built],
) -> None:
    image = built["sts-service", ""]
    container = _docker("run", "--detach", "--publish", "127.0.0.1::8000", image.tag)
    try:
        port = _docker("port", container, "8000").split(":")[-1]
        deadline = time.monotonic() + 60
        while (body := health(f"http://127.0.0.1:{port}", 2.0)) is None:
            if time.monotonic() > deadline:
                logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
                pytest.fail(f"no answer on /v1/health within 60 s:\n{logs.stdout}{logs.stderr}")
            time.sleep(0.5)
        assert body["status"] == "healthy"
        assert (body["version"], body["git_revision"]) == (image.version, image.git_revision)
    finally:
        subprocess.run(["docker", "rm", "--force", container], capture_output=True)


def test_echo_sts_service_image_is_within_its_size_budget(
    built: dict[tuple[str, str], images.Built],
) -> None:
    added = built["sts-service", ""].added_bytes
    assert added < images.SIZE_BUDGET_BYTES, (
        f"sts-service adds {added / 1e6:.1f} MB to {images.BASE_IMAGE}; "
        f"the budget is {images.SIZE_BUDGET_BYTES / 1e6:.0f} MB"
    )
