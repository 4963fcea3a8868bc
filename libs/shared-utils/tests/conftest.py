"""Fixtures shared by the shared-utils tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared_utils.buildinfo import clear_build_info_cache


def find_repo_root(start: Path) -> Path:
    """The nearest parent of `start` that holds a `specs/` directory."""
    for parent in start.resolve().parents:
        if (parent / "specs").is_dir():
            return parent
    raise AssertionError(f"no parent of {start} contains specs/")


@pytest.fixture
def repo_root() -> Path:
    return find_repo_root(Path(__file__))


@pytest.fixture
def restore_root_logger() -> Iterator[logging.Logger]:
    """Give the test the root logger and put its handlers and level back afterwards."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    level = root.level
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
def fresh_build_info() -> Iterator[None]:
    clear_build_info_cache()
    yield
    clear_build_info_cache()
