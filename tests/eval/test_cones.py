"""Cone energies around the truth (pfgraph/eval/cones.py): the same physical cone at every grid size."""

from __future__ import annotations

import numpy as np
import pytest

from pfgraph import geometry
from pfgraph.eval.cones import ConeAccumulator, cone_offsets, cone_sums, empty_cones
from pfgraph.eval.metrics import evaluate_arrays


def _direct(image: np.ndarray, i: int, j: int, radius: float) -> float:
    """The cone sum at pixel (i, j) by the definition (phi periodic, nothing beyond the eta edges)."""
    g = geometry.grid_of_shape(image.shape)
    a, b = np.meshgrid(np.arange(g.size), np.arange(g.size), indexing="ij")
    dphi = (j - b) * g.phi_pixel
    dphi = (dphi + np.pi) % (2 * np.pi) - np.pi
    inside = ((i - a) * g.eta_pixel) ** 2 + dphi**2 <= radius * radius * (1 + 1e-12)
    return float(image[inside].sum())


def test_cone_sums_match_the_definition() -> None:
    rng = np.random.default_rng(1)
    for size in (56, 224):
        img = rng.exponential(1.0, (2, size, size)) * (rng.random((2, size, size)) < 0.2)
        for radius in (0.1, 0.4):
            got = cone_sums(img, radius)
            for k, i, j in ((0, 0, 0), (1, size // 2, size - 1), (0, 3, size // 3), (1, size - 1, 5)):
                assert got[k, i, j] == pytest.approx(_direct(img[k], i, j, radius), abs=1e-9)
    # one pixel: its cone sum spreads over exactly the cone's pixels, wrapping in phi at the edge
    one = np.zeros((1, 56, 56))
    one[0, 28, 0] = 2.0
    got = cone_sums(one, 0.4)
    de, dp = cone_offsets(geometry.grid(56), 0.4)
    assert np.isclose(got, 2.0).sum() == len(de) and np.isclose(got[0, 28, 55], 2.0)
    assert np.allclose(got[np.abs(got) > 1e-9], 2.0)


def test_the_same_cone_covers_the_same_area_at_every_grid() -> None:
    """The cone's pixel area approaches pi R^2 as the cells shrink."""
    for radius in (0.1, 0.4):
        areas = []
        for size in geometry.GRID_SIZES:
            g = geometry.grid(size)
            de, _ = cone_offsets(g, radius)
            areas.append(len(de) * g.eta_pixel * g.phi_pixel)
        assert abs(areas[-1] / (np.pi * radius**2) - 1) < 0.05
        assert abs(areas[-1] / (np.pi * radius**2) - 1) <= abs(areas[0] / (np.pi * radius**2) - 1) + 0.05


def test_cone_accumulator_figures() -> None:
    truth = np.zeros((3, 112, 112), np.float32)
    truth[:, 50, 50] = 4.0
    truth[:, 50, 52] = 0.5  # below the seed threshold, inside the R = 0.4 cone
    truth[0, 10, 10] = 0.3  # no seed anywhere near
    pred = truth * np.float32(1.1)
    acc = ConeAccumulator()
    acc.update(pred, truth)
    doc = acc.result()
    assert doc["seed_gev"] == 1.0 and [r["radius"] for r in doc["per_radius"]] == [0.1, 0.4]
    for row in doc["per_radius"]:
        assert row["n_cones"] == 3 and row["median"] == pytest.approx(0.1, rel=1e-5)
        assert row["half_width_68"] == pytest.approx(0.0, abs=1e-6)
    assert doc["per_radius"][0]["truth_mean_gev"] == pytest.approx(4.0)  # 2 pixels away: outside R = 0.1
    assert doc["per_radius"][1]["truth_mean_gev"] == pytest.approx(4.5)
    assert all(v is None for v in (empty_cones()["per_radius"][0]["median"], empty_cones()["per_radius"][1]["n_cones"]))
    # evaluate_arrays carries them in metrics.json's cones section
    assert evaluate_arrays(pred, truth, bootstrap=0)["cones"]["per_radius"][1]["n_cones"] == 3
