"""The installed package holds the worker, not its test helpers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import stream_worker


def test_the_runtime_package_ships_no_fake_service() -> None:
    assert importlib.util.find_spec("stream_worker.testing") is None
    package = Path(stream_worker.__file__).parent
    for module in package.glob("*.py"):
        text = module.read_text(encoding="utf-8")
        assert "MockTransport" not in text and "import pytest" not in text, module.name
