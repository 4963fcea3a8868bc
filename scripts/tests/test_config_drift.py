"""One source of truth for the dev stack's configuration: the variables, health route, default
URL and port named by compose, .env.example, the Dockerfiles, k8s and the docs are the settings
classes' and the contract's (asked with each package's own interpreter: the tools env never
imports a service). Plus the compose schema, hadolint and the Dockerfiles' shared policy."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from devproc import DevError, read_env_file
from ruamel.yaml import YAML
from scaffold import REPO, TOOLS_VENV, package_venv_python, run, run_ok

COMPOSE = REPO / "infra" / "docker-compose.local.yml"
ENV_EXAMPLE = REPO / ".env.example"
COMPOSE_SCHEMA = REPO / "infra" / "compose-spec" / "compose-spec.json"
STS_DOCKERFILE = REPO / "infra" / "sts-service.Dockerfile"
STS_PROD_DOCKERFILE = REPO / "infra" / "sts-service.prod.Dockerfile"
ALL_DOCKERFILES = sorted((REPO / "infra").glob("*.Dockerfile"))
#: The dev images: editable installs that compose mounts the sources over.
DOCKERFILES = [path for path in ALL_DOCKERFILES if not path.name.endswith(".prod.Dockerfile")]

#: Anything that names a variable: STS_PORT, `WORKER_STS_URL`, ${STS_PORT}, STS_FAULT_* ...
VAR_TOKEN = re.compile(r"(?<![A-Za-z0-9_])(?:STS|WORKER)_[A-Z0-9_]+")
#: How load_settings reports an unknown variable (docs may quote it, typo included).
UNKNOWN_VARIABLE = ": unknown variable"
LOCAL_ADDRESS = re.compile(r"(?:127\.0\.0\.1|localhost|0\.0\.0\.0|sts-service):(\d{2,5})\b")
HEALTH_LIKE = re.compile(r"/[A-Za-z0-9_./-]*health[A-Za-z0-9_./-]*")

#: Run with a package's own interpreter and the .env.example values of its prefix: what its
#: settings class reads, its defaults, and the error (if any) loading those values gives.
FACTS = """
import json
from shared_utils.contract import DEFAULT_STS_HOST, DEFAULT_STS_PORT, DEFAULT_STS_URL, HEALTH_PATH
from shared_utils.settings import SettingsError, load_settings
from {module} import {cls} as Settings
try:
    load_settings(Settings)
    error = None
except SettingsError as exc:
    error = str(exc)
print(json.dumps({{
    "vars": Settings.env_vars(),
    "defaults": {{name: str(field.default) for name, field in Settings.model_fields.items()}},
    "load_error": error,
    "health_path": HEALTH_PATH,
    "default_host": DEFAULT_STS_HOST,
    "default_port": DEFAULT_STS_PORT,
    "default_url": DEFAULT_STS_URL,
}}))
"""


def _facts(package: str, module: str, cls: str, prefix: str) -> dict[str, Any]:
    python = package_venv_python(package)
    env = {k: v for k, v in read_env_file(ENV_EXAMPLE).items() if k.startswith(prefix)}
    assert env, f".env.example sets no {prefix}* variable"
    snippet = FACTS.format(module=module, cls=cls)
    output = run_ok([str(python), "-c", snippet], REPO, {**env, "PYTHONWARNINGS": "ignore"})
    data: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return data


@pytest.fixture(scope="module")
def both() -> list[dict[str, Any]]:
    services = [
        ("apps/sts-service", "sts_service.config", "StsSettings", "STS_"),
        ("apps/stream-worker", "stream_worker.config", "WorkerSettings", "WORKER_"),
    ]
    with ThreadPoolExecutor() as pool:  # the two interpreters start at the same time
        return list(pool.map(lambda service: _facts(*service), services))


@pytest.fixture(scope="module")
def sts(both: list[dict[str, Any]]) -> dict[str, Any]:
    return both[0]


@pytest.fixture(scope="module")
def worker(both: list[dict[str, Any]]) -> dict[str, Any]:
    return both[1]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(COMPOSE.read_text(encoding="utf-8"))
    return data


def _doc_files() -> list[Path]:
    files = [REPO / "README.md", REPO / "infra" / "README.md"]
    files += sorted((REPO / "docs").glob("*.md")) + sorted(REPO.glob("apps/*/README.md"))
    return [path for path in files if path.exists()]


def _config_files() -> list[Path]:
    k8s = [p for p in (REPO / "infra" / "k8s").rglob("*") if p.suffix in (".yaml", ".env")]
    return [COMPOSE, ENV_EXAMPLE, *ALL_DOCKERFILES, *sorted(k8s), *_doc_files()]


def unknown_tokens(text: str, known: set[str]) -> set[str]:
    """Variable names in `text` that no settings class reads (``STS_FAULT_*`` is a prefix)."""
    unknown = set()
    for match in VAR_TOKEN.finditer(text):
        token = match.group()
        if text.startswith(UNKNOWN_VARIABLE, match.end()):
            continue  # quoting shared_utils' error for a typo is documentation, not drift
        if token.endswith("_"):  # a family: STS_FAULT_* must prefix a real variable
            if not any(name.startswith(token) for name in known):
                unknown.add(token + "*")
        elif token not in known:
            unknown.add(token)
    return unknown


def test_settings_classes_list_variables_and_load_env_example(
    sts: dict[str, Any], worker: dict[str, Any]
) -> None:
    assert "STS_PORT" in sts["vars"] and "STS_HOST" in sts["vars"]
    assert "WORKER_STS_URL" in worker["vars"]
    for cls, facts in (("StsSettings", sts), ("WorkerSettings", worker)):
        assert facts["load_error"] is None, (
            f".env.example is rejected by {cls}: {facts['load_error']}"
        )


#: Settings that hold secrets: never given a value in a committed file.
SECRET_VARIABLES = ("STS_AUTH_TOKENS", "WORKER_STS_TOKEN")


@pytest.mark.parametrize("path", _config_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_variable_named_is_read_by_a_settings_class_and_no_secret_is_set(
    path: Path, sts: dict[str, Any], worker: dict[str, Any]
) -> None:
    known_vars = set(sts["vars"]) | set(worker["vars"])
    text, where = path.read_text(encoding="utf-8"), path.relative_to(REPO)
    unknown = unknown_tokens(text, known_vars)
    assert not unknown, (
        f"{where} names {sorted(unknown)}, which neither StsSettings nor "
        f"WorkerSettings reads (they read: {sorted(known_vars)})"
    )
    assert set(SECRET_VARIABLES) <= known_vars, "a secret setting was renamed: update this test"
    for name in SECRET_VARIABLES:
        assigned = re.findall(rf"^\s*(?:export\s+)?{name}\s*[=:]\s*(\S+)", text, re.M)
        assert not assigned, f"{where} sets {name}: secrets never go in git"


def test_unknown_token_detection_is_real() -> None:
    known = {"STS_PORT", "STS_FAULT_SEED"}
    assert unknown_tokens("set STS_PORT and `STS_FAULT_*`", known) == set()
    assert unknown_tokens("set STS_PROT, WORKER_X and STS_NOPE_*", known) == {
        "STS_PROT",
        "WORKER_X",
        "STS_NOPE_*",
    }
    assert unknown_tokens("DEFAULT_STS_URL and WORKER_<NAME>", known) == set()
    assert unknown_tokens("`STS_PROT: unknown variable (did you mean STS_PORT?)`", known) == set()


def test_the_env_file_reader_refuses_a_line_without_a_value_or_a_key_set_twice(
    tmp_path: Path,
) -> None:
    env = tmp_path / ".env"
    for text, error in (
        ("A=1\nB\n", ":2: expected KEY=VALUE"),
        ("A=1\nA=2\n", ":2: A is set twice"),
    ):
        env.write_text(text)
        with pytest.raises(DevError, match=error):
            read_env_file(env)


def test_env_example_holds_only_service_and_dev_loop_variables() -> None:
    env = read_env_file(ENV_EXAMPLE)
    assert [key for key in env if not key.isupper()] == [], ".env.example: keys are upper case"
    dev_local = (REPO / "scripts" / "dev_local.py").read_text(encoding="utf-8")
    compose = COMPOSE.read_text(encoding="utf-8")
    # An STS_*/WORKER_* key is the settings classes' (test_every_variable_named_is_read_...).
    for key in [key for key in env if not key.startswith(("STS_", "WORKER_"))]:
        assert key.startswith("DEV_"), f".env.example: {key} is not STS_*, WORKER_* or DEV_*"
        assert key in dev_local and key in compose, (
            f".env.example sets {key}: both scripts/dev_local.py and the compose file must "
            "use it (the two paths must run the same way)"
        )


@pytest.mark.parametrize(
    "path",
    [STS_DOCKERFILE, STS_PROD_DOCKERFILE, COMPOSE, REPO / "scripts" / "devproc.py"],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_health_checks_use_the_contract_route(path: Path, sts: dict[str, Any]) -> None:
    found = set(HEALTH_LIKE.findall(path.read_text(encoding="utf-8")))
    assert found, f"{path.relative_to(REPO)} has no health check"
    assert found == {sts["health_path"]}, (
        f"{path.relative_to(REPO)} checks {sorted(found)}, but the health route is "
        f"{sts['health_path']} (shared_utils.contract.HEALTH_PATH)"
    )


def test_sts_dockerfile_and_compose_both_have_a_healthcheck() -> None:
    assert re.search(r"^HEALTHCHECK .*CMD", STS_DOCKERFILE.read_text(), re.M | re.S)
    healthcheck = _compose()["services"]["sts-service"]["healthcheck"]
    assert healthcheck["test"][0] == "CMD"


def test_defaults_agree_across_contract_settings_and_env_example(
    sts: dict[str, Any], worker: dict[str, Any]
) -> None:
    defaults, url = sts["defaults"], sts["default_url"]
    assert defaults["port"] == str(sts["default_port"]), "StsSettings.port default drifted"
    assert defaults["host"] == sts["default_host"], "StsSettings.host default drifted"
    assert url == f"http://{sts['default_host']}:{sts['default_port']}"
    assert worker["defaults"]["sts_url"] == url, (
        f"WorkerSettings.sts_url defaults to {worker['defaults']['sts_url']}, "
        f"the contract's DEFAULT_STS_URL is {url}"
    )
    env = read_env_file(ENV_EXAMPLE)
    assert (env.get("STS_HOST"), env.get("STS_PORT")) == (defaults["host"], defaults["port"])
    assert env.get("WORKER_STS_URL", url) == url, ".env.example: the default URL or none"


@pytest.mark.parametrize("dockerfile", [STS_DOCKERFILE, STS_PROD_DOCKERFILE], ids=lambda p: p.name)
def test_sts_dockerfile_uses_the_default_port(dockerfile: Path, sts: dict[str, Any]) -> None:
    text = dockerfile.read_text(encoding="utf-8")
    port = str(sts["default_port"])
    assert re.search(rf"\bSTS_PORT={port}\b", text), f"set ENV STS_PORT={port}"
    assert re.search(rf"^EXPOSE {port}$", text, re.M), f"EXPOSE {port}"
    assert set(re.findall(r"\b\d{4,5}\b", text)) <= {port, "10001"}, "another port is spelled"


def test_compose_takes_ports_and_url_from_env_example() -> None:
    services = _compose()["services"]
    sts, worker = services["sts-service"], services["stream-worker"]
    assert sts["ports"] == ["127.0.0.1:${STS_PORT}:${STS_PORT}"]
    assert sts["environment"]["STS_PORT"].startswith("${STS_PORT")
    assert worker["environment"]["WORKER_STS_URL"] == "http://sts-service:${STS_PORT}"
    for name in ("sts-service", "stream-worker"):
        assert services[name]["env_file"] == "../.env.example", f"{name}: env_file"
    literal = LOCAL_ADDRESS.findall(COMPOSE.read_text(encoding="utf-8"))
    assert not literal, f"compose spells port(s) {literal}: use ${{STS_PORT}} from .env.example"


@pytest.mark.parametrize("path", _doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_docs_use_the_default_sts_url_and_port(path: Path, sts: dict[str, Any]) -> None:
    port, url = str(sts["default_port"]), sts["default_url"]
    where = path.relative_to(REPO)
    text = path.read_text(encoding="utf-8")
    # Another port is fine only in an example that sets it explicitly (STS_PORT=8001 ...).
    allowed = {port, *re.findall(r"\bSTS_PORT=(\d+)", text)}
    for number, line in enumerate(text.splitlines(), start=1):
        for found in LOCAL_ADDRESS.findall(line):
            assert found in allowed, (
                f"{where}:{number}: port {found}, but the default is {port} and no example "
                f"sets STS_PORT={found}: {line}"
            )
        # A table row documenting a setting (named in its first cells) states its default;
        # a row spelling ${STS_PORT} documents a derived value instead.
        if line.lstrip().startswith("|") and "${STS_PORT}" not in line:
            tokens = set(VAR_TOKEN.findall("|".join(line.split("|")[:3])))
            if "STS_PORT" in tokens:
                assert port in line or "DEFAULT_STS_PORT" in line, f"{where}:{number}: {line}"
            if "WORKER_STS_URL" in tokens:
                assert url in line or "DEFAULT_STS_URL" in line, f"{where}:{number}: {line}"


def test_compose_file_matches_the_compose_specification_which_catches_mistakes(
    tmp_path: Path,
) -> None:
    checker = str(TOOLS_VENV / "bin" / "check-jsonschema")
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE.read_text(encoding="utf-8")
    broken.write_text(text.replace("condition: service_healthy", "condition: when_ready"))

    result = run([checker, "--schemafile", str(COMPOSE_SCHEMA), str(COMPOSE), str(broken)], REPO)

    assert result.returncode != 0, "the schema accepted an invalid depends_on condition"
    assert f"{broken}::" in result.output, result.output
    assert f"{COMPOSE}::" not in result.output, result.output


def test_compose_mounts_and_build_files_exist() -> None:
    services = _compose()["services"]
    base = COMPOSE.parent
    for name, service in services.items():
        dockerfile = base / service["build"]["context"] / service["build"]["dockerfile"]
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (base / source).exists(), f"{name}: mounted {source} does not exist"


def test_dockerfiles_pass_hadolint() -> None:  # the production ones too
    hadolint = str(TOOLS_VENV / "bin" / "hadolint")
    run_ok([hadolint, "--no-color", *map(str, ALL_DOCKERFILES)], cwd=REPO)


@pytest.mark.parametrize("dockerfile", ALL_DOCKERFILES, ids=lambda p: p.name)
def test_every_dockerfile_is_slim_non_root_and_parsed_offline(dockerfile: Path) -> None:
    text = dockerfile.read_text(encoding="utf-8")
    # A `# syntax=` line makes BuildKit pull its Dockerfile parser from Docker Hub, which
    # fails offline and behind many proxies; the built-in parser supports cache mounts.
    assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I), "no `# syntax=` line"
    assert "ARG PYTHON_VERSION=3." in text
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert bases and set(bases) == {"python:${PYTHON_VERSION}-slim"}, "slim bases"
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0"), "must run as non-root"
    assert "[dev]" not in text, "no dev extras in a runtime image"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dev_dockerfile_installs_local_packages_from_their_paths(dockerfile: Path) -> None:
    text = dockerfile.read_text(encoding="utf-8")
    assert "RUN --mount=type=cache,target=/root/.cache/pip" in text, "pip cache mount"
    install = re.search(r"pip install((?:[^\n]*\\\n)*[^\n]*)", text)
    assert install, "no pip install"
    args = [arg for arg in install.group(1).replace("\\\n", " ").split() if arg != "&&"]
    args = args[: args.index("groupadd")] if "groupadd" in args else args
    packages = [arg for arg in args if not arg.startswith("-")]
    assert packages and all(arg.startswith("/app/") for arg in packages), (
        f"install local packages from their paths only, got {packages}"
    )
    for lib in ("libs/shared-audio", "libs/shared-utils"):
        assert f"COPY {lib} /app/{lib}" in text


def test_dockerignore_keeps_venvs_and_secrets_out() -> None:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for pattern in ("**/.venv", ".git", ".env", "**/__pycache__"):
        assert pattern in lines, f".dockerignore must exclude {pattern}"
