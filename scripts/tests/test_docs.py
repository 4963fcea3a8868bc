"""`make docs` builds the Sphinx site (warnings fail it), and the pages tell the truth."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from monorepo.packages import direct_local_deps, discover
from scaffold import PACKAGES, REPO, api_page_gaps, make_help_targets, run, run_ok

DOCS = REPO / "docs"
# The pages of this area (docs/dev-loop.md and docs/structure-validation.md have their own tests).
PAGES = ["index.md", "architecture.md", "adding-a-package.md", "troubleshooting.md", "api.md"]
PROMPTS = sorted((REPO / ".codex" / "prompts").glob("*.md"))


@pytest.mark.slow
def test_make_docs_builds_every_page_and_the_api_of_every_public_module() -> None:
    assert "docs: OK" in run_ok(["make", "docs"], cwd=REPO)
    built = DOCS / "_build" / "html"

    for page in PAGES:
        assert (built / page.replace(".md", ".html")).exists(), page
    assert api_page_gaps() == [], "packages or public modules missing from the API page"
    # Docstrings really are rendered: one function of each library, with its summary line.
    api = (built / "api.html").read_text()
    assert 'id="shared_audio.pcm.pcm_to_array"' in api
    assert 'id="shared_utils.settings.load_settings"' in api


@pytest.mark.slow
def test_a_warning_fails_the_build(tmp_path: Path) -> None:
    source = tmp_path / "repo" / "docs"  # conf.py reads the version from ../pyproject.toml
    source.mkdir(parents=True)
    shutil.copy2(DOCS / "conf.py", source / "conf.py")  # the real configuration, a tiny site
    shutil.copy2(REPO / "pyproject.toml", source.parent / "pyproject.toml")
    (source / "index.md").write_text("# Index\n\n```{toctree}\nbroken\n```\n")
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
    assert set(PACKAGES) <= set(rows)
    for rel, cell in rows.items():
        assert rel in packages, f"architecture.md lists {rel}, which is not a package"
        documented = sorted(re.findall(r"`([^`]+)`", cell))
        actual = sorted(d.name for d in direct_local_deps(packages[rel], discover(REPO)))
        assert documented == actual, rel


def make_targets_in(path: Path) -> set[str]:
    """The targets of each `[cd DIR && ]make ...` in a code span or starting a line."""
    pattern = r"(?:`|^\s*)(?:cd \S+ && )?make ((?:[a-z][a-z0-9-]* ?)+)"
    return {t for found in re.findall(pattern, path.read_text(), re.M) for t in found.split()}


def test_every_make_target_named_in_the_docs_and_prompts_exists() -> None:
    folders = (REPO, REPO / "apps" / "sts-service", REPO / "libs" / "shared-audio")
    known = set().union(*(make_help_targets(folder) for folder in folders))

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


def test_troubleshooting_covers_the_symptoms_and_quotes_the_real_messages() -> None:
    page = (DOCS / "troubleshooting.md").read_text()

    for message, source in QUOTED.items():
        assert message in (REPO / source).read_text(), f"{source} no longer says {message!r}"
        shown = message.replace("DEFAULT_STS_PORT = ", "127.0.0.1:")
        assert shown in page, f"troubleshooting.md does not show {shown!r}"
    for heading in [
        "Wrong Python",
        "Missing venv module",
        "Stale venv after a pyproject change",
        "No Docker engine",
        "Port in use",
    ]:
        assert f"## {heading}" in page


def test_the_decision_index_lists_every_record_once_by_its_number() -> None:
    records = sorted(p.name for p in (DOCS / "decisions").glob("[0-9][0-9][0-9][0-9]-*.md"))
    numbers = [name[:4] for name in records]
    assert len(numbers) == len(set(numbers)), f"two records share a number: {records}"
    index = (DOCS / "decisions" / "index.md").read_text()
    listed = re.findall(r"\| \[(\d{4})\]\((\d{4}-[^)]+\.md)\) \|", index)
    assert [link for _, link in listed] == records
    assert all(link.startswith(number) for number, link in listed)
