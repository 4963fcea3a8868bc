"""The root Makefile's loops tell the truth (every member runs, every failure is named, the
exit status is non-zero) and installs are incremental."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from scaffold import MiniRepo, run

# Each test runs make in a copy of an installed mini repo: part of `make test-all` and CI.
pytestmark = pytest.mark.slow

FAILING_TEST = """\
def test_fails_on_purpose():
    assert 1 == 2
"""


def test_failure_in_first_package_fails_root_and_later_packages_still_run(
    mini_repo: MiniRepo,
) -> None:
    # libs/alpha sorts first; the loop must not stop there, nor end with beta's success.
    mini_repo.write_test("libs/alpha", "test_broken.py", FAILING_TEST)

    result = mini_repo.make("test")

    assert result.returncode != 0, result.output
    assert "==> test: FAILED in libs/alpha" in result.output
    assert "test: FAILED in: libs/alpha" in result.output
    beta_block = result.output.split("==> test: libs/beta", 1)[1]
    assert "1 passed" in beta_block  # beta ran after alpha failed


def test_every_failing_package_is_named_and_output_stays_in_blocks(mini_repo: MiniRepo) -> None:
    mini_repo.write_test("libs/alpha", "test_broken.py", FAILING_TEST)
    mini_repo.write_test("libs/beta", "test_broken.py", FAILING_TEST)

    result = mini_repo.make("-j3", "test")  # -j must not interleave the members' output

    assert result.returncode != 0
    assert "test: FAILED in: libs/alpha libs/beta" in result.output
    blocks = re.split(r"^==> test: (?!FAILED)", result.output, flags=re.MULTILINE)[1:]
    assert [block.split()[0] for block in blocks] == ["libs/alpha", "libs/beta", "scripts"]
    for block in blocks:
        assert block.count("test session starts") == 1, block


def test_green_run_passes_and_counts_packages(mini_repo: MiniRepo) -> None:
    result = mini_repo.make("test")

    assert result.returncode == 0, result.output
    assert "test: OK in all 3: libs/alpha libs/beta scripts" in result.output


def test_noop_install_does_no_pip_work(mini_repo: MiniRepo) -> None:
    stamps = sorted(mini_repo.root.glob("libs/*/.venv/.installed"))
    before = [stamp.stat().st_mtime_ns for stamp in stamps]

    result = mini_repo.make("install")

    assert result.returncode == 0, result.output
    assert "pip" not in result.output, result.output
    assert "workspace.py" not in result.output
    assert [stamp.stat().st_mtime_ns for stamp in stamps] == before


def test_changed_library_pyproject_reinstalls_it_and_its_dependents(mini_repo: MiniRepo) -> None:
    pyproject = mini_repo.root / "libs" / "beta" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.2.0"'))

    result = mini_repo.make("install")

    assert result.returncode == 0, result.output
    assert "installed libs/beta" in result.output
    assert "installed libs/alpha" in result.output  # alpha depends on beta


def test_changed_dependent_pyproject_does_not_reinstall_its_library(mini_repo: MiniRepo) -> None:
    pyproject = mini_repo.root / "libs" / "alpha" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n")

    result = mini_repo.make("install")

    assert result.returncode == 0, result.output
    assert "installed libs/alpha" in result.output
    assert "installed libs/beta" not in result.output


def test_too_old_interpreter_is_refused_with_a_clear_message(
    mini_repo: MiniRepo, tmp_path: Path
) -> None:
    fake = tmp_path / "python3.9"
    fake.write_text(
        "#!/bin/sh\nexec python3 -c 'import sys; sys.version_info = (3, 9); "
        'exec(open(sys.argv[1]).read())\' "$@"\n'
    )
    fake.chmod(0o755)

    result = mini_repo.make(f"PYTHON={fake}", "install")

    assert result.returncode != 0
    assert "this repo needs Python >= 3.10" in result.output
    assert "make install PYTHON=" in result.output


def test_missing_interpreter_is_named(mini_repo: MiniRepo) -> None:
    result = mini_repo.make("PYTHON=python3.999", "install")

    assert result.returncode != 0
    assert "PYTHON=python3.999 was not found" in result.output


def test_package_make_targets_run_alone(mini_repo: MiniRepo) -> None:
    result = mini_repo.make("-C", "libs/beta", "test")

    assert result.returncode == 0, result.output
    assert "1 passed" in result.output


def test_package_make_keeps_the_interpreter_chosen_at_the_root(mini_repo: MiniRepo) -> None:
    # The venvs were built with PYTHON=<this interpreter>; a later command without PYTHON
    # must reuse it (recorded in .make/python-id), not rebuild with the default python3.
    env = {key: value for key, value in os.environ.items() if key != "PYTHON"}
    result = run(["make", "-C", "libs/beta", "install"], cwd=mini_repo.root, env=env)

    assert result.returncode == 0, result.output
    assert "installed" not in result.output
