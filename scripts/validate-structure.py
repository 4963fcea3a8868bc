#!/usr/bin/env python3
"""Check the monorepo layout against .schemas/monorepo-structure.yaml with dirschema.

Usage (from the root tools environment, which `make install` builds)::

    make validate-structure
    .venv/bin/python scripts/validate-structure.py [--repo PATH] [--schema PATH]

Prints one ``<path>: <what to fix>`` line per violation and exits 1; prints
``structure OK: ...`` and exits 0 when the layout is right; exits 2 (saying what to do) when
dirschema cannot run on this interpreter. See docs/structure-validation.md.
"""

from __future__ import annotations

import sys


def _run() -> int:
    try:
        # Python puts this script's folder first on sys.path, so the helper module is found.
        from structure_validation import main
    except ImportError as exc:
        print(
            f"validate-structure: the structure validator's dependencies are not installed for "
            f"{sys.executable} ({exc}): run `make install` at the repo root, then "
            f"`make validate-structure`",
            file=sys.stderr,
        )
        return 2
    return main()


if __name__ == "__main__":
    sys.exit(_run())
