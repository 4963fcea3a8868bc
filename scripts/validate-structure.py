#!/usr/bin/env python3
"""Check the layout against .schemas/monorepo-structure.yaml: `make validate-structure`.

    .venv/bin/python scripts/validate-structure.py [--repo PATH] [--schema PATH]

Exit 0: layout OK; 1: one `<path>: <what to fix>` line per violation; 2: cannot run.
"""

import sys

from structure_validation import main  # this script's folder is first on sys.path

if __name__ == "__main__":
    sys.exit(main())
