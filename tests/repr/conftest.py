"""Fixtures of the representation tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_events


@pytest.fixture(scope="session")
def small_events_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two files read as one dataset: 5 events without any particle (empty point clouds), then
    40 events of 2 particles each (1 to 4 points: fewer than k)."""
    folder = tmp_path_factory.mktemp("data")
    return [make_events(folder / "empty.root", 5, "gauss_b050", "particles.multiplicity=0"),
            make_events(folder / "tiny.root", 40, "gauss_b050", "particles.multiplicity=2")]
