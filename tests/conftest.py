"""Shared fixtures: small simulated files, made once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PFGRAPH_NO_PROGRESS", "1")


def make_events(path: Path, events: int = 120, preset: str = "gauss_b050", *overrides: str) -> Path:
    """Simulate a small paper-mode file (in-process, no workers)."""
    from pfgraph.config import load_config, resolve_config_path
    from pfgraph.sim.detector import SimConfig
    from pfgraph.sim.generate import generate

    cfg = load_config(SimConfig, resolve_config_path(preset, "sim"), [f"events={events}", "output.chunk=50", *overrides])
    generate(cfg, path, workers=0)
    return path


@pytest.fixture(scope="session")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 B=0.5 paper-mode events."""
    return make_events(tmp_path_factory.mktemp("data") / "b050.root", 120)


@pytest.fixture(scope="session")
def events_file_b0(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 B=0 paper-mode events."""
    return make_events(tmp_path_factory.mktemp("data") / "b000.root", 120, "gauss_b000")
