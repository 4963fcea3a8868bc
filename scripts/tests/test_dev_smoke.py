"""make dev-smoke without Docker (the smoke test itself needs an engine, as in .ci/run)."""

from __future__ import annotations

import sys

from scaffold import REPO, run


def test_dev_smoke_says_why_it_cannot_run_without_docker() -> None:
    result = run(
        [sys.executable, str(REPO / "scripts" / "dev_smoke.py")],
        cwd=REPO,
        env={"PATH": "/nonexistent"},
    )
    assert result.returncode == 2, result.output
    assert "Docker is not installed" in result.output
    assert "cannot run the container smoke test" in result.output
