#!/usr/bin/env python3
"""Check the layout against .schemas/monorepo-structure.yaml: `make validate-structure`.

    .venv/bin/python scripts/validate-structure.py [--repo PATH] [--schema PATH]

Exit 0: layout OK; 1: one `<path>: <what to fix>` line per violation; 2: cannot run.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    try:  # this script's folder is first on sys.path: the module beside it is found
        from structure_validation import main
    except ImportError as exc:  # outside the tools env (no pathspec, no dirschema)
        print(
            f"validate-structure: the structure validator's dependencies are not installed for "
            f"{sys.executable} ({exc}): run `make install` at the repo root, then "
            "`make validate-structure`",
            file=sys.stderr,
        )
        sys.exit(2)
    sys.exit(main())
