"""The evaluation, anti-kt and the event displays at every allowed grid size (issue 28)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pfgraph import geometry
from pfgraph.eval.antikt import cluster_images, pixel_positions
from pfgraph.eval.jets import JetAccumulator, synthetic_jet_images
from pfgraph.eval.metrics import evaluate_arrays


@pytest.mark.parametrize("size", geometry.GRID_SIZES)
def test_jets_and_metrics_at_every_grid(size: int) -> None:
    truth = synthetic_jet_images(2, seed=3, n_background=200, size=size)
    assert truth.shape == (2, size, size)
    eta, phi = pixel_positions(size=size)
    g = geometry.grid(size)
    assert eta.shape == (size, size) and np.allclose(eta[:, 0], g.eta_centres, atol=1e-5 * g.eta_pixel)
    jets = cluster_images(truth, radius=0.4, threshold=1.0, backend="torch")
    assert jets.grid_size == size and jets.pixel_jet().shape == (2, size * size)
    # the injected jet (150-400 GeV around (0, 0)) is found at its place on every grid
    acc = JetAccumulator(radius=0.4, threshold=1.0, backend="torch", target_scale=1.0)
    tt, _, match = acc.update(truth, truth)
    assert np.all(match["matched"]) and np.all(match["d_jet"] == 0)
    lead = tt.event(0)
    assert abs(lead["eta"][0]) < 0.2 and abs(lead["phi"][0]) < 0.2
    assert math.isclose(lead["ceta"][0], (lead["eta"][0] + 2.5) / g.eta_pixel - 0.5, rel_tol=1e-5)
    pred = truth * 1.1
    inputs = np.stack([truth, truth, 0 * truth, 0 * truth], axis=1)
    m = evaluate_arrays(pred, truth, inputs, target_scale=float(truth.max()), jets=True, backend="torch", bootstrap=0)
    assert m["energy"] and m["headline"] and m["jets"]
