"""Shared fixtures and the test tiers.

The suite has three tiers, one folder each: ``tests/unit`` (hand-computed
values, seconds), ``tests/smoke`` (every chapter through papermill with
``profile=smoke``, and the strict book build) and ``tests/slow`` (end-to-end
training, benchmarks, multi-process runs). ``make test`` runs all of them;
``make test TIER=unit`` one. Each test gets its tier's marker, so
``pytest -m "not slow"`` works across folders too.
"""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TIERS = ("unit", "smoke", "slow")


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO / "tests").parts
        if parts[0] in TIERS and parts[0] != "unit":
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository checkout."""
    return REPO


@pytest.fixture(scope="session")
def smoke_cache_dir(tmp_path_factory) -> Path:
    """One capture/detector cache per test session, shared by every smoke chapter run (the smoke book build
    has its own, empty at its start), never the repository's ``.cache``."""
    path = tmp_path_factory.getbasetemp() / "mislabel-smoke-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def smoke_cache(smoke_cache_dir):
    """Point MISLABEL_CACHE (and MISLABEL_PROFILE) at the session's values while chapters run."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MISLABEL_CACHE", str(smoke_cache_dir))
    mp.setenv("MISLABEL_PROFILE", "smoke")
    yield smoke_cache_dir
    mp.undo()
