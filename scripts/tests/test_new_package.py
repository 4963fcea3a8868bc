"""The package generator (scripts/new_package.py, `make new-service` / `make new-lib`); the slow
test proves a generated service and library pass every root target untouched."""

from __future__ import annotations

import functools
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import new_package
import pytest
from monorepo.checks import check_package
from monorepo.packages import discover, load_toml
from scaffold import REPO, TOOLS_VENV, api_page_gaps, commit_all, copy_tracked_tree, run, run_ok


@pytest.fixture
def mini_root(tmp_path: Path) -> Path:
    """A root with the real pyproject.toml and one library, shared-audio, in libs/audio-core."""
    root = tmp_path / "repo"
    (root / "libs" / "audio-core").mkdir(parents=True)
    (root / "apps").mkdir()
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    shutil.copy2(REPO / "libs/shared-audio/pyproject.toml", root / "libs/audio-core/pyproject.toml")
    return root


NOT_KEBAB = ["Foo", "foo_bar", "1foo", "foo-", "foo--bar", "a-b-c-d-e", ""]


@pytest.mark.parametrize(
    ("name", "refusal"),
    [
        *((name, "use kebab-case") for name in NOT_KEBAB),
        ("audio-core", "libs/audio-core already exists"),  # a service's name too: one namespace
        ("shared-audio", "it is the project name of libs/audio-core"),
        ("json", "shadow the standard library"),
    ],
)
def test_a_bad_name_is_refused(mini_root: Path, name: str, refusal: str) -> None:
    with pytest.raises(new_package.GeneratorError, match=refusal):
        new_package.check_name(name, mini_root)


def schema_name_pattern() -> re.Pattern[str]:
    text = (REPO / ".schemas" / "monorepo-structure.yaml").read_text()
    found = re.search(r'match: "\^\(apps\|libs\)/(\[a-z\][^"]*)"', text)
    assert found, "the schema's package-folder naming rule was not found"
    return re.compile("^" + found.group(1))


@pytest.mark.parametrize(
    "name",
    ["foo", "foo-bar", "a1-b2-c3-d4", "a-b-c-d-e", "Foo", "foo_bar", "1foo", "foo-", "x9", "-a"],
)
def test_the_name_rule_is_the_structure_schemas(name: str) -> None:
    assert bool(new_package.NAME_PATTERN.match(name)) == bool(schema_name_pattern().match(name))


@pytest.fixture
def fake_pypi(tmp_path: Path) -> Iterator[str]:
    """PyPI's JSON API knowing one project, `taken-name` (any other is a 404)."""
    (tmp_path / "taken-name").mkdir()
    (tmp_path / "taken-name" / "json").write_text('{"releases": {"0.1": [], "1.0": []}}')
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        # A short poll interval: shutdown() waits for one, 0.5 s by default.
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_port}"
        server.shutdown()
    thread.join(timeout=5)


@pytest.mark.parametrize(
    ("name", "listening", "start", "then"),
    [
        (
            "taken-name",
            True,
            "WARNING: PyPI already serves a project named 'taken-name'",
            "dependency confusion",
        ),
        ("free-name", True, "PyPI check: 'free-name' is not on PyPI", "good: nobody can"),
        ("any-name", False, "PyPI check skipped (offline or unreachable", ""),  # none listens
    ],
)
def test_the_pypi_check_warns_clears_or_says_it_was_skipped(
    fake_pypi: str, name: str, listening: bool, start: str, then: str
) -> None:
    url = fake_pypi if listening else "http://127.0.0.1:9"  # the discard port: nothing there
    status = new_package.pypi_status(name, url, timeout=2)

    assert status.startswith(start) and then in status, status


SERVICE_FILES = """audio_mixer/__main__.py audio_mixer/main.py tests/conftest.py
    tests/unit/test_main.py tests/contract/test_health_contract.py
    tests/integration/test_process.py"""


@pytest.mark.parametrize(
    ("kind", "files", "dependencies"),
    [
        ("service", SERVICE_FILES, ["shared-audio>=0.1.0", "shared-utils>=0.1.0"]),
        ("lib", "tests/unit/test_version.py", []),
    ],
)
def test_a_package_of_each_kind_gets_its_files_and_keeps_every_workspace_rule(
    mini_root: Path, kind: str, files: str, dependencies: list[str]
) -> None:
    spec = new_package.Spec(kind, "audio-mixer", "The mixer.", 8123, mini_root)
    new_package.generate(spec)

    common = "Makefile README.md pyproject.toml audio_mixer/__init__.py audio_mixer/py.typed"
    written = {p.relative_to(spec.folder).as_posix() for p in spec.folder.rglob("*") if p.is_file()}
    assert written == {*common.split(), *files.split()}
    for path in written:
        assert "{{" not in (spec.folder / path).read_text(), path
    # The rules `make lint` holds every package to: the root's build system and dev list, one
    # configuration, the setuptools layout mypy follows, py.typed, the kind's Makefile fragment.
    packages = discover(mini_root)
    root_dev = load_toml(REPO / "pyproject.toml")["project"]["optional-dependencies"]["dev"]
    assert check_package(packages["audio-mixer"], packages, root_dev) == []
    project = load_toml(spec.folder / "pyproject.toml")["project"]
    assert project["optional-dependencies"]["dev"] == root_dev
    assert project["dependencies"][:2] == dependencies
    if kind == "service":
        main = (spec.folder / "audio_mixer" / "main.py").read_text()
        assert 'env_prefix="AUDIO_MIXER_"' in main and "HEALTH_PATH" in main


def test_a_bad_description_writes_nothing(mini_root: Path) -> None:
    spec = new_package.Spec("lib", "audio-tools", 'say "hi"', 8123, mini_root)

    with pytest.raises(new_package.GeneratorError, match="invalid description"):
        new_package.generate(spec)
    assert not spec.folder.exists()


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (["new-service"], "give a name: make new-service NAME=foo-bar"),
        (
            ["new-lib", "NAME=shared-utils", "PYPI_URL=http://127.0.0.1:9"],
            "error: name 'shared-utils' is taken: libs/shared-utils already exists",
        ),
    ],
)
def test_make_refuses_a_missing_or_taken_name(args: list[str], refusal: str) -> None:
    result = run(["make", *args], cwd=REPO)

    assert result.returncode != 0
    assert refusal in result.output


def build_python() -> str:
    """The interpreter the real repo's venvs were built with (what `make install` used)."""
    identity = REPO / ".make" / "python-id"
    if identity.exists():
        return identity.read_text().split()[0]
    return sys.executable


@pytest.mark.slow
def test_generated_packages_pass_every_root_loop_in_a_copy_of_the_repo(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    copy_tracked_tree(root)
    commit_all(root)

    def make(*args: str) -> str:
        return run_ok(["make", f"PYTHON={build_python()}", *args], root)

    made = make("new-service", "NAME=audio-mixer", "PYPI_URL=http://127.0.0.1:9")
    assert "created apps/audio-mixer" in made
    assert "PyPI check skipped" in made
    assert "created libs/audio-tools" in make("new-lib", "NAME=audio-tools")
    # Every loop in one go. install and docs take every package; SINCE=HEAD keeps the other
    # loops to the new packages (the outer run checks the existing ones), and proves that the
    # change-selection sees a new package as changed.
    loops = ["install", "validate-structure", "check", "test", "test-coverage", "docs"]
    output = make(*loops, "SINCE=HEAD")

    assert "structure OK" in output
    assert "docs: OK" in output
    assert not api_page_gaps(root)  # the API page has a section for each new package
    new = "apps/audio-mixer libs/audio-tools"
    for loop in ("install", "lint", "type-check", "test", "test-coverage"):
        for package in new.split():
            assert f"==> {loop}: {package}" in output, loop
    for loop in ("lint", "type-check", "test", "test-coverage"):
        assert f"\n{loop}: OK in all 2: {new}\n" in output, loop
    assert re.search(r"^install: OK in all \d+: .*apps/audio-mixer.*libs/audio-tools", output, re.M)
    # The scaffold's own tests (the root `make test`'s last member) check every package of the
    # copy, the new ones included: an API page or README they miss fails here.
    assert " passed" in make("-C", "scripts", "test")
    assert TOOLS_VENV.exists()  # the real repo's tools env was not touched
