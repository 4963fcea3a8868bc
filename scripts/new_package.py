#!/usr/bin/env python3
"""Create a new package from .specify/templates/package: ``make new-service NAME=foo-bar``.

The name must be kebab-case (the rule of .schemas/monorepo-structure.yaml) and free; when PyPI
already serves it, a warning explains the dependency-confusion risk.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from monorepo.packages import ROOT, WorkspaceError, canonical_name, discover, load_toml

TEMPLATES = ROOT / ".specify" / "templates" / "package"
#: The package-folder rule of .schemas/monorepo-structure.yaml (a test compares the two).
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+){0,3}$")
PYPI_JSON_URL = "https://pypi.org/pypi"
PYPI_TIMEOUT_S = 3.0
DEFAULT_PORT = 8080
KINDS = {"service": "apps", "lib": "libs"}


class GeneratorError(Exception):
    """Bad input or a state the generator refuses to touch; the message says what to do."""


@dataclass(frozen=True)
class Spec:
    """What to generate."""

    kind: str  # "service" or "lib"
    name: str  # kebab-case folder and project name
    description: str
    port: int
    root: Path = ROOT

    @property
    def folder(self) -> Path:
        """The new package's folder."""
        return self.root / KINDS[self.kind] / self.name

    @property
    def import_name(self) -> str:
        """The import package: the name with '-' replaced by '_'."""
        return self.name.replace("-", "_")

    def placeholders(self) -> dict[str, str]:
        """Values of the ``{{key}}`` placeholders of the templates."""
        root = load_toml(self.root / "pyproject.toml")
        return {
            "build_requires": json.dumps(root["build-system"]["requires"]),
            "build_backend": root["build-system"]["build-backend"],
            "dev": json.dumps(root["project"]["optional-dependencies"]["dev"], indent=2),
            "name": self.name,
            "import_name": self.import_name,
            "description": self.description,
            "makefile_fragment": "app.mk" if self.kind == "service" else "package.mk",
            "env_prefix": self.import_name.upper() + "_",
            "port": str(self.port),
        }


def check_name(name: str, root: Path = ROOT) -> None:
    """Refuse a name that is not kebab-case, shadows a module, or is already taken."""
    if not NAME_PATTERN.match(name):
        raise GeneratorError(
            f"invalid name {name!r}: use kebab-case, lowercase words of letters and digits "
            "joined by '-', starting with a letter, at most 4 words (e.g. audio-mixer)"
        )
    import_name = name.replace("-", "_")
    if import_name in sys.stdlib_module_names:
        raise GeneratorError(
            f"invalid name {name!r}: its import name {import_name!r} would shadow the standard "
            "library module of that name; choose another name"
        )
    for group in KINDS.values():
        if (root / group / name).exists():
            raise GeneratorError(f"name {name!r} is taken: {group}/{name} already exists")
    try:
        packages = discover(root)
    except WorkspaceError as exc:
        raise GeneratorError(f"cannot read the existing packages: {exc}") from None
    taken = packages.get(canonical_name(name))
    if taken is not None:
        where = taken.path.relative_to(root.resolve()).as_posix()
        raise GeneratorError(f"name {name!r} is taken: it is the project name of {where}")
    if any(package.import_name == import_name for package in packages.values()):
        raise GeneratorError(f"name {name!r} is taken: import name {import_name!r} exists")


def check_description(description: str) -> None:
    """Refuse text that cannot go verbatim into a docstring, a string literal or TOML."""
    bad = sorted(set(description) & set('"\\{}\n\r\t`'))
    if not description.strip() or bad:
        raise GeneratorError(
            f"invalid description {description!r}: one line of text without {bad or 'nothing'}"
        )


def pypi_status(name: str, base_url: str = PYPI_JSON_URL, timeout: float = PYPI_TIMEOUT_S) -> str:
    """A line saying whether PyPI serves `name`: a warning, an all-clear, or "skipped"."""
    url = f"{base_url.rstrip('/')}/{name}/json"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            versions = sorted(json.load(response).get("releases", {}))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return f"PyPI check: {name!r} is not on PyPI (good: nobody can shadow it there yet)"
        return f"PyPI check skipped: {url} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"PyPI check skipped (offline or unreachable: {reason})"
    shown = ", ".join(versions[-3:]) or "no release"
    return (
        f"WARNING: PyPI already serves a project named {name!r} ({shown}). Anyone running a "
        f"plain `pip install {name}` gets that stranger's code, not this package (dependency "
        "confusion). `make install` always installs local packages from their "
        "folders; consider a more distinctive name."
    )


def render(text: str, values: dict[str, str]) -> str:
    """Replace every ``{{key}}``; fail on an unknown one."""
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    leftover = re.search(r"\{\{\s*\w+\s*\}\}", text)
    if leftover:
        raise GeneratorError(f"template placeholder {leftover.group(0)} has no value")
    return text


def template_files(kind: str) -> list[tuple[Path, Path]]:
    """(template file, path relative to the new package) for every file of `kind`."""
    layers = [TEMPLATES / "common", TEMPLATES / ("service" if kind == "service" else "library")]
    files: list[tuple[Path, Path]] = []
    for layer in layers:
        for source in sorted(p for p in layer.rglob("*") if p.is_file()):
            relative = source.relative_to(layer)
            if relative.suffix == ".tmpl":
                relative = relative.with_suffix("")
            files.append((source, relative))
    return files


def generate(spec: Spec) -> list[Path]:
    """Write the package; return the files written. Nothing is written if a check fails."""
    check_name(spec.name, spec.root)
    check_description(spec.description)
    values = spec.placeholders()
    outputs: dict[Path, str | bytes] = {}
    for source, relative in template_files(spec.kind):
        target = spec.folder / str(relative).replace("__import_name__", spec.import_name)
        is_template = source.suffix == ".tmpl"
        outputs[target] = render(source.read_text(), values) if is_template else source.read_bytes()
    try:
        for target, content in outputs.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
    except OSError:
        shutil.rmtree(spec.folder, ignore_errors=True)
        raise
    return sorted(outputs)


def tidy(folder: Path) -> str:
    """Sort imports and format the new code as the package's own `make lint` will check it.

    ruff runs in the package folder, as package.mk runs it: that decides what is first-party.
    """
    ruff = ROOT / ".venv" / "bin" / "ruff"
    if not ruff.exists():
        return "ruff not found in .venv: run `make install`, then `make format` to tidy it"
    config = str(ROOT / "pyproject.toml")
    for command in (["check", "--fix", "--select", "I"], ["format"]):
        subprocess.run([str(ruff), *command, "--quiet", "--config", config, "."], cwd=folder)
    return "formatted with ruff (root configuration)"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=sorted(KINDS), help="service (apps/) or lib (libs/)")
    parser.add_argument("name", help="kebab-case name, e.g. audio-mixer")
    parser.add_argument("--description", default="", help="one line for pyproject and README")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="a service's default port")
    parser.add_argument("--pypi-url", default=PYPI_JSON_URL, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    kind_word = "service" if args.kind == "service" else "library"
    description = args.description or f"The {args.name} {kind_word}."
    spec = Spec(args.kind, args.name, description, args.port)
    try:
        if not 1 <= spec.port <= 65535:
            raise GeneratorError(f"invalid port {spec.port}: use 1-65535")
        check_name(spec.name)
        check_description(spec.description)
        print(pypi_status(spec.name, args.pypi_url))
        written = generate(spec)
    except GeneratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rel = spec.folder.relative_to(ROOT).as_posix()
    print(f"created {rel} ({kind_word}, import name {spec.import_name}): {len(written)} files")
    print(tidy(spec.folder))
    print(f"next: make install && make check test   (or: cd {rel} && make test)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
