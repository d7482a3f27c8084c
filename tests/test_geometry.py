"""The detector geometry (pfgraph.geometry): one grid, its conversions, and the one set of response defaults."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

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
    assert schema.INPUT_CHANNELS is geometry.INPUT_CHANNELS
    emcal = schema.EVENT_BRANCH_MAP["emcal"]
    assert emcal.shape_for(224) == (224, 224) and emcal.root_type_for(224) == "float[224][224]"
    assert emcal.root_type == "float[G][G]" and schema.EVENT_BRANCH_MAP["npix"].shape_for(224) == ()
    for name in ("IMSIZE", "MAX_ETA", "ETA_EDGES", "PHI_EDGES", "ETA_PIXEL", "PHI_PIXEL", "ETA_CENTRES", "PHI_CENTRES"):
        assert not hasattr(schema, name), f"pfgraph.io.schema.{name}: the grid lives in pfgraph.geometry"


def test_detector_defaults_are_the_simulators_and_read_only() -> None:
    sim = {f.name: f.default for f in dataclasses.fields(DetectorConfig)}
    assert sim == dict(geometry.DETECTOR_DEFAULTS)
    assert DetectorConfig().paper_mode
    with pytest.raises(TypeError):
        geometry.DETECTOR_DEFAULTS["b_field"] = 1.0  # type: ignore[index]


def test_grid_values_at_every_allowed_size() -> None:
    assert geometry.GRID_SIZES == (56, 112, 224, 448) and geometry.PAPER_GRID_SIZE == 56
    for size in geometry.GRID_SIZES:
        g = geometry.grid(size)
        assert g is geometry.grid(size) and g.npix == size * size and g.shape == (size, size)
        assert g.eta_edges[0] == -2.5 and g.eta_edges[-1] == 2.5 and len(g.eta_centres) == size
        assert g.phi_edges[0] == -math.pi and g.phi_edges[-1] == math.pi
        assert g.eta_pixel == pytest.approx(5.0 / size) and g.phi_pixel == pytest.approx(2 * math.pi / size)
        eta, phi = g.pixel_centres(np.array([0, size - 1]), np.array([size - 1, 0]))
        assert eta[0] == pytest.approx(-2.5 + g.eta_pixel / 2) and phi[0] == pytest.approx(math.pi - g.phi_pixel / 2)
        assert not g.eta_centres.flags.writeable
    assert geometry.PAPER_GRID.eta_edges is geometry.ETA_EDGES and geometry.PAPER_GRID.eta_pixel == geometry.ETA_PIXEL
    with pytest.raises(ValueError, match="detector.grid = 100"):
        geometry.check_grid_size(100)
    assert geometry.grid_of_meta({"imsize": 224}).size == 224 and geometry.grid_of_meta({}).size == 56
    assert geometry.grid_of_shape((3, 4, 112, 112)).size == 112
    with pytest.raises(ValueError):
        geometry.grid_of_shape((3, 56, 28))


#: The one place the paper's grid size is written down.
_PAPER_DEFINITION = "PAPER_GRID_SIZE = 56"
#: The paper-default aliases of pfgraph.geometry, kept for tests and scripts: no stage may use them.
_PAPER_ALIASES = ("IMSIZE", "NPIX", "ETA_EDGES", "PHI_EDGES", "ETA_CENTRES", "PHI_CENTRES", "ETA_PIXEL",
                  "PHI_PIXEL")


def test_no_literal_grid_size_outside_the_paper_default() -> None:
    """No literal 56 (the paper's grid size) anywhere in pfgraph's code, presets or docstrings but its one
    definition, and no stage reads the paper-default aliases: every stage takes the grid from the data."""
    import re

    root = Path(geometry.__file__).parent
    hits = []
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".py", ".yaml", ".yml") or "__pycache__" in path.parts:
            continue
        if path.relative_to(root).as_posix() == "presets/study/granularity.yaml":
            continue  # the granularity study's subject is the grid: it names each of its grids as data
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if path.name in ("geometry.py", "static_graph.py") and line.strip() == _PAPER_DEFINITION:
                continue  # the definition; static_graph.py repeats it (numpy only, to be copied without pfgraph)
            code = line.split("#")[0] if path.suffix == ".py" else line
            if re.search(r"(?<![0-9.#A-Fa-f])56(?![0-9])", line.replace("#56B4E9", "")):
                hits.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
            if path.name != "geometry.py" and path.suffix == ".py":
                for alias in _PAPER_ALIASES:
                    if re.search(rf"\b(geometry|schema)\.{alias}\b|import .*\b{alias}\b", code):
                        hits.append(f"{path.relative_to(root)}:{n}: uses the paper default {alias}: {line.strip()}")
    assert not hits, "\n".join(hits)
    from pfgraph.repr import static_graph

    assert static_graph.PAPER_GRID_SIZE == geometry.PAPER_GRID_SIZE and static_graph.MAX_ETA == geometry.MAX_ETA
