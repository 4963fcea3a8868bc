"""Sphinx configuration: `make docs` builds this site into docs/_build/html.

The API page is generated at build time from the packages' docstrings (autodoc + napoleon for
the Google style), for every package the root Makefile's loops see (apps/*/ and libs/*/ with a
pyproject.toml): a new package appears with no edit here. Warnings fail the build
(`sphinx-build -W --keep-going`).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from sphinx.application import Sphinx

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

project = "live-broadcast-dubbing-cloud"
author = "live-broadcast-dubbing-cloud contributors"
copyright = "the live-broadcast-dubbing-cloud contributors"
release = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

extensions = [
    "myst_parser",  # the pages are Markdown, readable on GitHub as well
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # Google-style docstrings (the root ruff config enforces them)
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", ".venv", "README.md"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Sphinx 9's new autodoc rewrites the annotations of pydantic models it inspects, which breaks
# importing FastAPI's models (sphinx-doc/sphinx#14337); the class-based autodoc does not.
# Sphinx 8 (the newest on Python 3.10) has only the class-based one and ignores this setting.
autodoc_use_legacy_class_based = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "sphinx_rtd_theme"
html_title = project

API_MARKER = "<!-- generated: package API -->"


def package_folders(root: Path = ROOT) -> list[Path]:
    """Every package folder, as the root Makefile discovers them."""
    found = root.glob("apps/*/pyproject.toml"), root.glob("libs/*/pyproject.toml")
    return [pyproject.parent for group in found for pyproject in sorted(group)]


def public_modules(package: Path) -> list[str]:
    """Dotted names of a package's public modules (no `_private`, no `__main__`)."""
    import_name = package.name.replace("-", "_")
    modules = []
    for path in sorted((package / import_name).rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
            if len(parts) > 1:
                modules.append(".".join(parts))
            continue
        if any(part.startswith("_") for part in parts):
            continue
        modules.append(".".join(parts))
    return modules


def api_markdown(root: Path = ROOT) -> str:
    """The body of the API page: one section per package, one per public module."""
    lines: list[str] = []
    for package in package_folders(root):
        meta = tomllib.loads((package / "pyproject.toml").read_text())["project"]
        rel = package.relative_to(root).as_posix()
        lines += [f"## {meta['name']}", "", f"`{rel}`: {meta.get('description', '')}", ""]
        for module in public_modules(package):
            directive = ["```{eval-rst}", f".. automodule:: {module}", "```"]
            lines += [f"### `{module}`", "", *directive, ""]
    return "\n".join(lines)


def _fill_api_page(app: Sphinx, docname: str, source: list[str]) -> None:
    if API_MARKER in source[0]:
        source[0] = source[0].replace(API_MARKER, api_markdown())


# A Markdown link to a repository file outside docs/ (`[README](../apps/x/README.md)`, which
# reads well on GitHub) is not a page of this site; MyST would report it as a missing document.
# It becomes a `path:` link: Sphinx copies the file next to the site and links to it, and
# still warns (failing the build) when the file does not exist.
_MD_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|#)([^)\s#]+\.md)(#[^)\s]*)?\)")


def _link_files_outside_docs(app: Sphinx, docname: str, source: list[str]) -> None:
    folder = (Path(app.srcdir) / docname).parent

    def rewrite(link: re.Match[str]) -> str:
        target = (folder / link.group(1)).resolve()
        if Path(app.srcdir).resolve() in target.parents:
            return link.group(0)
        return f"](path:{link.group(1)})"

    source[0] = _MD_LINK.sub(rewrite, source[0])


def setup(app: Sphinx) -> dict[str, bool]:
    """Sphinx extension hook: generate the API page's body when Sphinx reads it."""
    app.connect("source-read", _fill_api_page)
    app.connect("source-read", _link_files_outside_docs)
    return {"parallel_read_safe": True}
