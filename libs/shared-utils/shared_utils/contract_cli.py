"""Write or check the generated JSON Schema block of the STS contract spec.

Regenerate after changing `shared_utils.contract` (from libs/shared-utils)::

    .venv/bin/python -m shared_utils.contract_cli --write-spec ../../specs/002-sts-contract.md

``--check-spec PATH`` exits with status 1 when the file's block is stale; with no option the
schema is printed to stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from shared_utils.contract import contract_json_schema_text

__all__ = [
    "SCHEMA_BEGIN_MARKER",
    "SCHEMA_END_MARKER",
    "SpecFormatError",
    "extract_schema_block",
    "main",
    "render_schema_block",
    "update_spec_text",
]

SCHEMA_BEGIN_MARKER = "<!-- BEGIN GENERATED CONTRACT SCHEMA -->"
SCHEMA_END_MARKER = "<!-- END GENERATED CONTRACT SCHEMA -->"


class SpecFormatError(ValueError):
    """The spec file does not have exactly one well-formed generated-schema block."""


def render_schema_block() -> str:
    """The text that belongs between the markers: the schema in a fenced ``json`` block."""
    return f"```json\n{contract_json_schema_text()}```\n"


def _block_bounds(text: str) -> tuple[int, int]:
    """Start and end offsets of the text between the markers (exclusive of the marker lines)."""
    begins = text.count(SCHEMA_BEGIN_MARKER)
    ends = text.count(SCHEMA_END_MARKER)
    if begins != 1 or ends != 1:
        raise SpecFormatError(
            f"expected exactly one {SCHEMA_BEGIN_MARKER!r} and one {SCHEMA_END_MARKER!r} line, "
            f"found {begins} and {ends}"
        )
    start = text.index(SCHEMA_BEGIN_MARKER) + len(SCHEMA_BEGIN_MARKER)
    end = text.index(SCHEMA_END_MARKER)
    if end < start:
        raise SpecFormatError(f"{SCHEMA_END_MARKER!r} comes before {SCHEMA_BEGIN_MARKER!r}")
    if not text.startswith("\n", start):
        raise SpecFormatError(f"{SCHEMA_BEGIN_MARKER!r} must end its line")
    return start + 1, end


def extract_schema_block(text: str) -> str:
    """The text between the marker lines of a spec.

    Raises:
        SpecFormatError: if the markers are missing, repeated or out of order.
    """
    start, end = _block_bounds(text)
    return text[start:end]


def update_spec_text(text: str) -> str:
    """`text` with the block between the markers replaced by `render_schema_block()`.

    Raises:
        SpecFormatError: if the markers are missing, repeated or out of order.
    """
    start, end = _block_bounds(text)
    return text[:start] + render_schema_block() + text[end:]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m shared_utils.contract_cli",
        description="Print the STS contract JSON Schema, or write/check it in a spec file.",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write-spec", metavar="PATH", type=Path, help="update the spec's block")
    group.add_argument("--check-spec", metavar="PATH", type=Path, help="fail if it is stale")
    args = parser.parse_args(argv)

    path: Path | None = args.write_spec or args.check_spec
    if path is None:
        sys.stdout.write(contract_json_schema_text())
        return 0
    try:
        text = path.read_text(encoding="utf-8")
        updated = update_spec_text(text)
    except (OSError, SpecFormatError) as exc:
        sys.stderr.write(f"{path}: {exc}\n")
        return 2
    if args.check_spec is not None:
        if updated != text:
            sys.stderr.write(
                f"{path}: the generated contract schema is stale; run "
                f"python -m shared_utils.contract_cli --write-spec {path}\n"
            )
            return 1
        return 0
    if updated != text:
        path.write_text(updated, encoding="utf-8")
        sys.stdout.write(f"{path}: contract schema updated\n")
    else:
        sys.stdout.write(f"{path}: contract schema already up to date\n")
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through main() in the tests
    sys.exit(main())
