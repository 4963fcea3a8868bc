"""`make docs` builds the Sphinx site (warnings fail it), and the pages tell the truth."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from monorepo.packages import direct_local_deps, discover
from scaffold import REPO, run

DOCS = REPO / "docs"
# The pages of this area (docs/dev-loop.md and docs/structure-validation.md have their own tests).
PAGES = ["index.md", "architecture.md", "adding-a-package.md", "troubleshooting.md", "api.md"]
PROMPTS = sorted((REPO / ".codex" / "prompts").glob("*.md"))


@pytest.fixture(scope="module")
def built_docs() -> Path:
    result = run(["make", "docs"], cwd=REPO, timeout=1200)
    assert result.returncode == 0, result.output
    assert "docs: OK" in result.output
    return DOCS / "_build" / "html"


@pytest.mark.slow
def test_api_page_documents_every_public_module_of_every_package(built_docs: Path) -> None:
    api = (built_docs / "api.html").read_text()

    for package in discover(REPO).values():
        assert f'id="{package.name}"' in api, f"{package.name} has no section on the API page"
        modules = [
            ".".join(path.relative_to(package.path).with_suffix("").parts)
            for path in sorted((package.path / package.import_name).glob("*.py"))
            if not path.name.startswith("_")
        ]
        for module in modules:  # a new library may have none yet: only its __init__.py
            assert f'id="module-{module}"' in api, f"{module} is missing from the API page"
    # Docstrings really are rendered: one function of each library, with its summary line.
    assert 'id="shared_audio.pcm.pcm_to_array"' in api
    assert 'id="shared_utils.settings.load_settings"' in api


@pytest.mark.slow
def test_every_page_is_built(built_docs: Path) -> None:
    for page in PAGES:
        assert (built_docs / page.replace(".md", ".html")).exists(), page


@pytest.mark.slow
def test_a_warning_fails_the_build(built_docs: Path, tmp_path: Path) -> None:
    source = tmp_path / "repo" / "docs"  # conf.py reads the version from ../pyproject.toml
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build", ".venv"))
    shutil.copy2(REPO / "pyproject.toml", source.parent / "pyproject.toml")
    (source / "broken.md").write_text("# Broken\n\nSee {ref}`a-label-that-does-not-exist`.\n")

    result = run(
        ["make", "docs", f"DOCS_SRC={source}", f"DOCS_OUT={tmp_path / 'html'}"],
        cwd=REPO,
        timeout=600,
    )

    assert result.returncode != 0
    assert "broken.md" in result.output
    assert "a-label-that-does-not-exist" in result.output


def test_architecture_dependency_table_matches_the_pyprojects() -> None:
    text = (DOCS / "architecture.md").read_text()
    table = text.split("## Local dependencies", 1)[1].split("```", 1)[0]
    rows = dict(re.findall(r"^\| `((?:apps|libs)/[^`]+)` \| (.+) \|$", table, re.MULTILINE))
    packages = {p.rel: p for p in discover(REPO).values()}

    # The four packages the page describes are all there; a package added later (e.g. by
    # `make new-service`) may be missing from the table, but no row may be wrong.
    assert {
        "apps/sts-service",
        "apps/stream-worker",
        "libs/shared-audio",
        "libs/shared-utils",
    } <= set(rows)
    for rel, cell in rows.items():
        assert rel in packages, f"architecture.md lists {rel}, which is not a package"
        documented = sorted(re.findall(r"`([^`]+)`", cell))
        actual = sorted(d.name for d in direct_local_deps(packages[rel], discover(REPO)))
        assert documented == actual, rel


def make_targets_in(path: Path) -> set[str]:
    targets: set[str] = set()
    for found in re.finditer(r"`(?:cd \S+ && )?make ((?:[a-z][a-z0-9-]*\s?)+)", path.read_text()):
        targets.update(found.group(1).split())
    targets.update(re.findall(r"^\s*(?:cd \S+ && )?make ([a-z][a-z0-9-]*)", path.read_text(), re.M))
    return targets


def known_targets() -> set[str]:
    listed: set[str] = set()
    for folder in (REPO, REPO / "apps" / "sts-service", REPO / "libs" / "shared-audio"):
        result = run(["make", "help"], cwd=folder)
        assert result.returncode == 0, result.output
        listed |= set(re.findall(r"^  ([a-zA-Z0-9_.-]+) ", result.output, re.MULTILINE))
    return listed


def test_every_make_target_named_in_the_docs_and_prompts_exists() -> None:
    known = known_targets()

    for path in [DOCS / page for page in PAGES] + PROMPTS:
        for target in make_targets_in(path):
            assert target in known, f"{path.relative_to(REPO)} names `make {target}`"


# Messages quoted by the troubleshooting page, and the source that prints each one.
QUOTED = {
    "this repo needs Python >= ": "scripts/mk/check_python.py",
    "has no `venv` module.": "scripts/mk/check_python.py",
    "On Debian/Ubuntu: `apt-get install python3-venv` (or python3.X-venv).": (
        "scripts/mk/check_python.py"
    ),
    "was not found": "scripts/mk/common.mk",
    "could not start on": "apps/sts-service/sts_service/main.py",
    "no Docker engine is reachable": "scripts/mk/dev.mk",
    "DEFAULT_STS_PORT = 8000": "libs/shared-utils/shared_utils/contract.py",
}


def test_troubleshooting_quotes_the_real_messages() -> None:
    page = (DOCS / "troubleshooting.md").read_text()

    for message, source in QUOTED.items():
        assert message in (REPO / source).read_text(), f"{source} no longer says {message!r}"
        shown = message.replace("DEFAULT_STS_PORT = ", "127.0.0.1:")
        assert shown in page, f"troubleshooting.md does not show {shown!r}"


def test_readme_troubleshooting_symptoms_are_covered() -> None:
    page = (DOCS / "troubleshooting.md").read_text()

    for heading in [
        "Wrong Python",
        "Missing venv module",
        "Stale venv after a pyproject change",
        "No Docker engine",
        "Port in use",
    ]:
        assert f"## {heading}" in page
