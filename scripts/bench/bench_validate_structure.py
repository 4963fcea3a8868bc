"""Benchmark `make validate-structure` (goal: under 1 s) beside dirschema's default walk.

Ours (the git listing + validation, median of N runs) and the whole command, against
dirschema's own ``rglob`` of every .venv, cache and build output, once, on the same tree.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SCRIPTS_DIR))

import structure_validation as sv  # noqa: E402  (beside this script's folder, not installed)


def main() -> int:
    """Run the benchmark and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=SCRIPTS_DIR.parent)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    repo: Path = args.repo.resolve()
    runs: int = args.runs

    start = time.perf_counter()
    validator = sv.load_validator(repo / sv.DEFAULT_SCHEMA)
    load_s = time.perf_counter() - start

    ours: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        tree = sv.TrackedTree.for_path(repo)
        violations = sv.validate_tree(tree, validator)
        ours.append(time.perf_counter() - start)
    ours_s = statistics.median(ours)

    start = time.perf_counter()
    cli = subprocess.run(
        [sys.executable, str(SCRIPTS_DIR / "validate-structure.py"), "--repo", str(repo)],
        capture_output=True,
        check=False,
    )
    cli_s = time.perf_counter() - start

    start = time.perf_counter()
    walked = sv.validate_tree(repo, validator)  # dirschema's own adapter: rglob("*")
    walk_s = time.perf_counter() - start
    walk_paths = 1 + sum(1 for p in repo.rglob("*") if not p.is_symlink())

    print(f"structure validation of {repo} (python {sys.version.split()[0]})")
    print(f"  schema load (import + parse), once:      {load_s:8.3f} s")
    print(
        f"  ours ({tree.source} listing + validate), median of {runs}: {ours_s:8.3f} s"
        f"  paths={len(tree.get_paths()):6d}  violations={len(violations)}"
        f"  goal<1 s: {'yes' if ours_s < 1 else 'NO'}"
    )
    print(
        f"  whole command (interpreter + import + validation): {cli_s:.3f} s"
        f"  (exit {cli.returncode})"
    )
    print(
        f"  dirschema default walk (rglob), once:     {walk_s:8.3f} s"
        f"  paths={walk_paths:6d}  violations={len(walked)}"
    )
    print(f"  ratio default walk / ours: {walk_s / ours_s:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
