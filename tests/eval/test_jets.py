"""Jet metrics: the truth-jet-pixel and matched-jet energy definitions, position deviation, efficiency."""

from __future__ import annotations

import numpy as np
import pytest

from pfgraph import geometry
from pfgraph.errors import PfgraphError
from pfgraph.eval.jets import JetAccumulator, empty_jet_metrics, synthetic_jet_images

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


def test_synthetic_jet_images_are_seeded_and_hold_their_energy() -> None:
    a = synthetic_jet_images(3, seed=7, n_background=100, jet_energy=(200.0, 200.0))
    assert a.shape == (3, geometry.IMSIZE, geometry.IMSIZE) and a.dtype == np.float32 and (a >= 0).all()
    np.testing.assert_array_equal(a, synthetic_jet_images(3, seed=7, n_background=100, jet_energy=(200.0, 200.0)))
    assert not np.array_equal(a, synthetic_jet_images(3, seed=8, n_background=100, jet_energy=(200.0, 200.0)))
    c = geometry.IMSIZE // 2  # the jet sits at (0, 0): the 4 central pixels and their ring hold most of 200 GeV
    core = a[:, c - 3:c + 3, c - 3:c + 3].sum(axis=(1, 2))
    assert (core > 150.0).all() and (a.sum(axis=(1, 2)) > 200.0).all()


def test_empty_images_give_no_jets_and_a_null_efficiency() -> None:
    empty = np.zeros((2, geometry.IMSIZE, geometry.IMSIZE), np.float32)
    acc = JetAccumulator(backend="torch")
    tt, pt, m = acc.update(empty, empty)
    assert tt.counts.tolist() == [0, 0] and pt.counts.tolist() == [0, 0]
    assert m["truth_rank"].tolist() == [-1, -1] and not m["matched"].any()
    res = acc.result()
    assert res["n_events"] == 2 and res["n_truth_jets"] == 0 and res["efficiency"] is None


def test_the_selected_jet_comes_first_and_event_slices_the_table() -> None:
    truth = np.zeros((1, geometry.IMSIZE, geometry.IMSIZE), np.float32)
    c = geometry.IMSIZE // 2
    truth[0, 5, 5] = 300.0  # the hardest jet, far from the axis
    truth[0, c, c] = 50.0  # the jet at (0, 0): the selected one
    acc = JetAccumulator(backend="torch")
    tt, _, m = acc.update(truth.copy(), truth)
    assert tt.counts.tolist() == [2] and m["truth_rank"].tolist() == [1]  # pT rank 1 ...
    first = tt.event(0)
    assert first["energy"][0] == pytest.approx(50.0) and first["energy"][1] == pytest.approx(300.0)  # ... but first
    assert abs(first["ceta"][0] - c) < 0.05 and abs(first["cphi"][0] - c) < 0.05  # pixel c's centre is at c


def test_empty_jet_metrics_has_every_key_of_a_result() -> None:
    truth = synthetic_jet_images(2, seed=1, n_background=50)
    acc = JetAccumulator(backend="torch", target_scale=20.0)
    acc.update(truth, truth)
    full, empty = acc.result(), empty_jet_metrics(0.4, 0.1, "torch", 0.01, "no jet image")
    assert set(full) == set(empty) and empty["available"] is False and empty["reason"] == "no jet image"
    assert full["available"] is True and full["efficiency"] == 1.0


@pytest.mark.parametrize(("kwargs", "text"), [({"radius": 0.0}, "jet radius R = 0.0: expected R > 0"),
                                              ({"threshold": -1.0}, "jet threshold -1.0: expected a non-negative")])
def test_impossible_jet_settings_are_one_line(kwargs: dict, text: str) -> None:
    with pytest.raises(PfgraphError, match=text):
        JetAccumulator(backend="torch", **kwargs)
