"""The Kubernetes manifests (infra/k8s): every overlay renders, validates against the Kubernetes
schemas (scripts/k8s_validate.py) and agrees with the repo (settings, health route, ports,
metrics, tokens), and each stream is one single-replica workload."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, cast

import k8s_validate
import pytest
from devproc import HEALTH_PATH, read_env_file
from scaffold import REPO

#: The contract caps timeout_ms at 30000: no request lasts longer.
LONGEST_REQUEST_S = 30
METRICS_MODULE = REPO / "apps" / "sts-service" / "sts_service" / "metrics.py"
OVERLAY_NAMES = [path.name for path in k8s_validate.overlays()]
ENV_EXAMPLE = read_env_file(k8s_validate.ENV_EXAMPLE)


Objects = list[dict[str, Any]]


@pytest.fixture(scope="module", params=OVERLAY_NAMES)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def objects(overlay: str) -> Objects:
    """What the overlay renders: each test below runs once per overlay."""
    return k8s_validate.render(k8s_validate.OVERLAYS / overlay)


def _objects(objects: Objects, kind: str) -> Objects:
    return [obj for obj in objects if obj["kind"] == kind]


def _one(objects: Objects, kind: str, name_prefix: str) -> dict[str, Any]:
    found = [o for o in _objects(objects, kind) if o["metadata"]["name"].startswith(name_prefix)]
    assert len(found) == 1, f"expected one {kind} {name_prefix}*, found {len(found)}"
    return found[0]


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    return cast(dict[str, Any], deployment["spec"]["template"]["spec"]["containers"][0])


def _env(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in _container(deployment).get("env", [])}


def _workers(objects: Objects) -> Objects:
    deployments = _objects(objects, "Deployment")
    return [d for d in deployments if d["metadata"]["name"].startswith("stream-worker-")]


# Every overlay validating cleanly is k8s_validate.py's own run, in `make check`.
def test_the_schema_check_catches_a_broken_manifest(objects: Objects) -> None:
    broken = copy.deepcopy(_one(objects, "Deployment", "sts-service"))
    broken["spec"]["replicas"] = "two"
    _container(broken)["livenessProbe"]["httpGet"]["pathh"] = HEALTH_PATH
    found = k8s_validate.problems([broken])
    assert found and "sts-service" in found[0]


def test_settings_config_map_is_env_example(objects: Objects) -> None:
    settings = _one(objects, "ConfigMap", "live-dubbing-settings")
    assert settings["data"] == ENV_EXAMPLE, "the ConfigMap must hold .env.example, unchanged"


def test_the_generated_settings_file_is_current_and_a_stale_one_is_named(tmp_path: Path) -> None:
    assert k8s_validate.settings_problem() is None, "run `make -C scripts k8s-settings`"

    env_example, settings = tmp_path / ".env.example", tmp_path / "settings.env"
    env_example.write_text("STS_PORT=8001\n")
    settings.write_text(k8s_validate.settings_text(env_example).replace("8001", "8000"))
    stale = k8s_validate.settings_problem(settings, env_example)
    assert stale is not None and "settings.env" in stale and "k8s-settings" in stale
    settings.unlink()
    missing = k8s_validate.settings_problem(settings, env_example)
    assert missing is not None and "missing" in missing


def test_no_kustomization_reaches_outside_infra_k8s() -> None:
    """kubectl, Argo CD and Flux refuse it under their default load restrictor."""
    for kustomization in k8s_validate.K8S.rglob("kustomization.yaml"):
        for line in kustomization.read_text().splitlines():
            for word in re.findall(r"(?:\.\./)+[\w./-]*", line):
                target = (kustomization.parent / word).resolve()
                assert target.is_relative_to(k8s_validate.K8S), f"{kustomization}: {line}"


def test_sts_service_probes_and_termination(objects: Objects) -> None:
    deployment = _one(objects, "Deployment", "sts-service")
    container = _container(deployment)
    for probe in ("livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == HEALTH_PATH, probe
    ready = " ".join(container["readinessProbe"]["exec"]["command"])
    assert HEALTH_PATH in ready and "['status']" in ready, "readiness keys on the health status"
    env = {name: item.get("value") for name, item in _env(deployment).items()}
    assert env["STS_HOST"] == "0.0.0.0" and env["STS_RELOAD"] == "false"
    assert env["STS_PORT"] == ENV_EXAMPLE["STS_PORT"]
    assert str(container["ports"][0]["containerPort"]) == ENV_EXAMPLE["STS_PORT"]
    pod = deployment["spec"]["template"]["spec"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    pause = int(pre_stop[-1]) if pre_stop[0] == "sleep" else 0
    assert pod["terminationGracePeriodSeconds"] > LONGEST_REQUEST_S + pause
    assert {"requests", "limits"} <= set(container["resources"])
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_selectors_match_their_pods(objects: Objects) -> None:
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in _objects(objects, "Deployment")
    }
    for deployment in _objects(objects, "Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector and selector.items() <= pods[deployment["metadata"]["name"]].items()
    for obj in _objects(objects, "Service") + _objects(objects, "PodDisruptionBudget"):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        selector = obj["spec"]["selector"]  # a Service's labels; a PDB's under matchLabels
        selector = selector["matchLabels"] if obj["kind"] == "PodDisruptionBudget" else selector
        assert selector, f"{where}: an empty selector picks every pod"
        matched = [name for name, labels in pods.items() if selector.items() <= labels.items()]
        assert matched == [n for n in pods if n.startswith("sts-service")], (where, matched)


def test_hpa_scales_sts_service_on_an_exported_metric(objects: Objects) -> None:
    hpa = _one(objects, "HorizontalPodAutoscaler", "sts-service")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "sts-service"
    names = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert names, "the HPA names a per-pod metric"
    exported = set(re.findall(r'"(sts_[a-z_]+)"', METRICS_MODULE.read_text(encoding="utf-8")))
    assert set(names) <= exported, f"{names} are not among sts-service's metrics {sorted(exported)}"
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_each_stream_is_one_single_replica_worker(objects: Objects) -> None:
    workers = _workers(objects)
    assert workers, "no stream-worker workload"
    stream_ids: list[str] = []
    for worker in workers:
        assert worker["spec"]["replicas"] == 1 and worker["spec"]["strategy"]["type"] == "Recreate"
        if _container(worker)["args"][:1] == ["--streams"]:  # a pool: many streams, one process
            stream_ids += _pool_stream_ids(objects, worker)
        else:
            refs = [e["configMapRef"]["name"] for e in _container(worker)["envFrom"]]
            stream_config = _one(objects, "ConfigMap", refs[-1].rsplit("-", 1)[0])
            stream_ids.append(stream_config["data"]["WORKER_STREAM_ID"])
        url = _env(worker)["WORKER_STS_URL"].get("value")
        assert url == f"http://sts-service:{ENV_EXAMPLE['STS_PORT']}"
    assert len(set(stream_ids)) == len(stream_ids), f"two workloads dub one stream: {stream_ids}"


def _pool_stream_ids(objects: Objects, worker: dict[str, Any]) -> list[str]:
    """The ids in a pool's streams file: the ConfigMap mounted where --streams points."""
    path = Path(_container(worker)["args"][1])
    mount = [m for m in _container(worker)["volumeMounts"] if Path(m["mountPath"]) == path.parent]
    volumes = {v["name"]: v for v in worker["spec"]["template"]["spec"]["volumes"]}
    config = _one(objects, "ConfigMap", volumes[mount[0]["name"]]["configMap"]["name"])
    # The tools env may run Python 3.10 (no tomllib): the ids are plain `id = "..."` lines.
    ids = re.findall(r'^id\s*=\s*"([^"]+)"', config["data"][path.name], re.MULTILINE)
    assert ids, f"{config['metadata']['name']}: a pool without streams"
    return ids


def test_prod_requires_tokens_and_dev_does_not(overlay: str, objects: Objects) -> None:
    assert {"dev", "prod"} <= set(OVERLAY_NAMES)
    sts = _env(_one(objects, "Deployment", "sts-service"))
    if overlay == "prod":
        ref = sts["STS_AUTH_TOKENS"]["valueFrom"]["secretKeyRef"]
        assert ref.get("optional", False) is False, "prod must not start without its tokens"
        for worker in _workers(objects):
            assert "secretKeyRef" in _env(worker)["WORKER_STS_TOKEN"]["valueFrom"]
    elif overlay == "dev":
        assert "STS_AUTH_TOKENS" not in sts


def test_no_manifest_holds_a_secret_value() -> None:
    for path in k8s_validate.K8S.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"^kind: Secret$", text, re.M), f"{path}: never commit a Secret"
            assert not re.search(r"(TOKENS?|token)\s*[:=]\s*[A-Za-z0-9]{16,}", text), path
