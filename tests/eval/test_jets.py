"""Jet metrics: the truth-jet-pixel and matched-jet energy definitions, position deviation, efficiency."""

from __future__ import annotations

import numpy as np
import pytest

from pfgraph import geometry
from pfgraph.eval.jets import JetAccumulator, synthetic_jet_images

pytest.importorskip("fastjet")


def _acc(pred: np.ndarray, truth: np.ndarray) -> tuple[dict, dict]:
    acc = JetAccumulator(backend="fastjet", target_scale=20.0)
    acc.update(pred, truth)
    return acc.matches(), acc.result()


def test_a_perfect_prediction_has_no_deviation() -> None:
    truth = synthetic_jet_images(4, seed=3, n_background=200)
    m, res = _acc(truth.copy(), truth)
    assert (m["truth_rank"] >= 0).all() and m["matched"].all() and res["efficiency"] == 1.0
    assert np.allclose(m["d_jet"], 0.0) and np.allclose(m["de_jet_rel"], 0.0) and np.allclose(m["de_match_rel"], 0.0)


def test_a_uniform_scale_moves_both_energy_definitions_alike() -> None:
    truth = synthetic_jet_images(4, seed=4, n_background=200)
    m, res = _acc(truth * 1.1, truth)
    assert np.allclose(m["de_jet_rel"], 0.1, atol=1e-5) and np.allclose(m["de_match_rel"], 0.1, atol=1e-5)
    assert np.allclose(m["de_jet_norm"], m["de_jet"] / 20.0)
    assert res["energy_rel"]["robust"]["median"] == pytest.approx(0.1, abs=1e-5)


def test_energy_outside_the_truth_jets_pixels_counts_only_for_the_matched_jet() -> None:
    """The two definitions differ: a fake deposit beside the jet core joins the prediction jet
    (matched-jet definition) but lies outside the truth jet's pixels (truth-jet-pixel definition)."""
    truth = np.zeros((1, geometry.IMSIZE, geometry.IMSIZE), np.float32)
    c = geometry.IMSIZE // 2
    truth[0, c, c], truth[0, c - 1, c] = 80.0, 20.0  # a 100 GeV jet at the centre
    pred = truth.copy()
    pred[0, c + 2, c + 1] = 10.0  # 0.2 in eta, 0.1 in phi away: inside R = 0.4, empty in truth
    m, _ = _acc(pred, truth)
    assert m["de_jet_rel"][0] == pytest.approx(0.0, abs=1e-6)
    assert m["de_match_rel"][0] == pytest.approx(0.1, rel=0.05)  # E_pred_jet ~ 110 vs 100 GeV
    assert m["matched"][0] and 0 < m["d_jet"][0] < 1.0  # the prediction jet's axis moved a little
