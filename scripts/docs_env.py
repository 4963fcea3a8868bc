#!/usr/bin/env python3
"""Build docs/.venv, the environment `make docs` runs Sphinx from.

It holds the root pyproject's ``docs`` extra (Sphinx, its theme, MyST) and every package of
the repo, editable, so that autodoc imports the real code. It cannot be the tools env: the
packages need pydantic 2 and dirschema (in the tools env) needs pydantic 1. The pip steps are
the installer's own (scripts/workspace.py): a venv without pip, the build backend first, then
one resolver run with every package as an editable path, so no local name is ever looked up
on an index. `make docs` reruns this only when a pyproject.toml or the interpreter changed.
"""

from __future__ import annotations

import argparse
import sys
import time

from workspace import (
    ROOT,
    STAMP,
    WorkspaceError,
    build_venv,
    discover,
    load_toml,
    local_deps,
)

DOCS_VENV = ROOT / "docs" / ".venv"


def docs_requirements() -> list[str]:
    """The root pyproject's ``docs`` extra."""
    extras = load_toml(ROOT / "pyproject.toml")["project"].get("optional-dependencies", {})
    if "docs" not in extras:
        raise WorkspaceError(
            "the root pyproject.toml has no `docs` extra ([project.optional-dependencies] docs "
            "= [sphinx, sphinx-rtd-theme, myst-parser]); `make docs` installs Sphinx from it"
        )
    return [str(requirement) for requirement in extras["docs"]]


def install_docs_env(python: str, *, quiet: bool) -> None:
    """Create or refresh docs/.venv."""
    started = time.perf_counter()
    requirements = docs_requirements()
    packages = discover()
    ordered = []  # libraries first, then the rest: the order pip is told about them
    for package in packages.values():
        for dependency in [*local_deps(package, packages), package]:
            if dependency not in ordered:
                ordered.append(dependency)
    identity = build_venv(
        DOCS_VENV,
        python,
        [(package, "") for package in ordered],
        requirements=tuple(requirements),
        quiet=quiet,
    )
    (DOCS_VENV / STAMP).write_text(identity + "\n")
    names = ", ".join(p.rel for p in ordered)
    print(f"installed docs/.venv in {time.perf_counter() - started:.1f} s (packages: {names})")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter for the venv")
    parser.add_argument("--verbose", action="store_true", help="show pip's full output")
    args = parser.parse_args(argv)
    try:
        install_docs_env(args.python, quiet=not args.verbose)
    except WorkspaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
