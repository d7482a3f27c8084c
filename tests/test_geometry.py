"""The detector geometry (pfgraph.geometry): one grid, its conversions, and the one set of response defaults."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from pfgraph import geometry
from pfgraph.io import schema
from pfgraph.sim.detector import DetectorConfig


def test_the_grid_edges_centres_and_pixel_sizes_agree() -> None:
    n = geometry.IMSIZE
    assert n == 56 and geometry.NPIX == n * n and geometry.MAX_ETA == 2.5
    assert geometry.ETA_EDGES[0] == -2.5 and geometry.ETA_EDGES[-1] == 2.5 and len(geometry.ETA_EDGES) == n + 1
    assert geometry.PHI_EDGES[0] == -math.pi and geometry.PHI_EDGES[-1] == math.pi
    np.testing.assert_allclose(np.diff(geometry.ETA_EDGES), geometry.ETA_PIXEL, rtol=1e-12)
    np.testing.assert_allclose(np.diff(geometry.PHI_EDGES), geometry.PHI_PIXEL, rtol=1e-12)
    np.testing.assert_allclose(geometry.ETA_CENTRES, -2.5 + (np.arange(n) + 0.5) * geometry.ETA_PIXEL, atol=1e-12)
    np.testing.assert_allclose(geometry.PHI_CENTRES, -math.pi + (np.arange(n) + 0.5) * geometry.PHI_PIXEL, atol=1e-12)
    eta, phi = geometry.pixel_centres(np.array([0, 27, 55]), np.array([55, 28, 0]))
    assert eta[0] == pytest.approx(-2.5 + geometry.ETA_PIXEL / 2) and phi[2] == pytest.approx(-math.pi + math.pi / n)
    assert eta[1] == pytest.approx(-geometry.ETA_PIXEL / 2) and phi[1] == pytest.approx(geometry.PHI_PIXEL / 2)


def test_the_file_contract_uses_the_geometry_and_defines_none_of_its_own() -> None:
    assert schema.IMSIZE is geometry.IMSIZE and schema.INPUT_CHANNELS is geometry.INPUT_CHANNELS
    assert schema.EVENT_BRANCH_MAP["emcal"].shape == (geometry.IMSIZE, geometry.IMSIZE)
    for name in ("MAX_ETA", "ETA_EDGES", "PHI_EDGES", "ETA_PIXEL", "PHI_PIXEL", "ETA_CENTRES", "PHI_CENTRES"):
        assert not hasattr(schema, name), f"pfgraph.io.schema.{name}: the grid lives in pfgraph.geometry"


def test_detector_defaults_are_the_simulators_and_read_only() -> None:
    sim = {f.name: f.default for f in dataclasses.fields(DetectorConfig)}
    assert sim == dict(geometry.DETECTOR_DEFAULTS)
    assert DetectorConfig().paper_mode
    with pytest.raises(TypeError):
        geometry.DETECTOR_DEFAULTS["b_field"] = 1.0  # type: ignore[index]
