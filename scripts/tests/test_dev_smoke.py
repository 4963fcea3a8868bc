"""make dev-smoke without an engine: one clear line and exit status 2, nothing started.

The smoke test itself needs a Docker engine; .ci/run runs it where one can be started. Here,
offline, only its refusal is checked, with a PATH that has no docker.
"""

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
