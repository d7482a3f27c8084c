"""Bootstrap intervals over events: exact weighted quantiles, coverage of a known error, one number per figure."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pfgraph import geometry
from pfgraph.eval.bootstrap import (
    FIGURE_PATHS,
    FIGURES,
    headline,
    resample_counts,
    verdict,
    weighted_quantiles,
)
from pfgraph.eval.energy import EnergyAccumulator
from pfgraph.eval.metrics import evaluate_arrays


def test_resample_counts_are_seeded_multinomial_draws() -> None:
    c = resample_counts(50, 30, seed=4)
    assert c.shape == (30, 50) and (c.sum(axis=1) == 50).all()
    assert np.array_equal(c, resample_counts(50, 30, seed=4))
    assert not np.array_equal(c, resample_counts(50, 30, seed=5))


def test_weighted_quantiles_equal_the_quantiles_of_the_repeated_values() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=500)
    groups = rng.integers(0, 40, 500)
    counts = resample_counts(40, 7, seed=1)
    got = weighted_quantiles(values, groups, counts, (15.87, 50.0, 84.13))
    for k in range(7):
        rep = np.repeat(values, counts[k][groups])
        want = np.percentile(rep, [15.87, 50.0, 84.13], method="inverted_cdf")
        assert np.allclose(got[k], want)


def test_interval_of_a_median_matches_its_known_standard_error() -> None:
    rng = np.random.default_rng(3)
    n_events, per_event = 400, 50
    truth = np.ones((n_events, per_event))
    r = rng.normal(0.0, 0.2, (n_events, per_event))
    acc_data = {"r": r.ravel().astype(np.float32), "e_true": truth.ravel().astype(np.float32),
                "missed": np.zeros(r.size, bool), "event": np.repeat(np.arange(n_events), per_event).astype(np.int32),
                "abs_truth": None, "fake_e": np.zeros(n_events), "pred_e": np.ones(n_events),
                "truth_e": np.full(n_events, per_event, float), "fake_pixels": np.zeros(n_events, np.int64),
                "mse": np.zeros(n_events)}
    fig = headline(acc_data, None, n_resamples=400, seed=1)["figures"]["residual_median"]
    half = 0.5 * (fig["hi"] - fig["lo"])
    expected = 1.2533 * 0.2 / np.sqrt(r.size)  # standard error of a median of independent normal values
    assert 0.8 * expected < half < 1.25 * expected
    assert fig["lo"] < fig["value"] < fig["hi"]


def jet_like(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from pfgraph.eval.jets import synthetic_jet_images

    truth = synthetic_jet_images(n, seed=seed, n_background=300)
    rng = np.random.default_rng(seed)
    pred = truth * rng.normal(1.0, 0.1, truth.shape).astype(np.float32)
    pred[rng.random(truth.shape) < 0.05] = 0.0
    pred += (rng.random(truth.shape) < 0.02) * 0.3
    return pred.astype(np.float32), truth


def test_headline_values_are_the_evaluations_own_figures() -> None:
    pytest.importorskip("fastjet")
    pred, truth = jet_like(30, 1)
    doc = evaluate_arrays(pred, truth, target_scale=20.0, jets=True, backend="fastjet", bootstrap=50)
    figs = doc["headline"]["figures"]
    assert set(figs) == set(FIGURES) == set(FIGURE_PATHS)
    for key, path in FIGURE_PATHS.items():
        node = doc
        for part in path.split("."):
            node = node[part]
        assert figs[key]["value"] == pytest.approx(node, rel=1e-9, abs=1e-12), key
        assert figs[key]["lo"] <= figs[key]["value"] <= figs[key]["hi"] or figs[key]["lo"] == figs[key]["hi"], key
    assert doc["headline"]["resamples"] == 50 and doc["settings"]["bootstrap_resamples"] == 50
    off = evaluate_arrays(pred, truth, target_scale=20.0, bootstrap=0)["headline"]["figures"]
    assert off["residual_median"]["value"] == figs["residual_median"]["value"] and off["residual_median"]["lo"] is None
    assert off["jet_efficiency"]["value"] is None  # no jets requested


def test_bootstrap_of_a_jet_sized_evaluation_takes_seconds() -> None:
    rng = np.random.default_rng(0)
    n = 200  # a fifth of the 1000-event jet set, ~1250 truth pixels per event
    shape = (n, geometry.IMSIZE, geometry.IMSIZE)
    truth = (rng.exponential(2.0, shape) * (rng.random(shape) < 0.4)).astype(np.float32)
    acc = EnergyAccumulator(20.0)
    acc.update((truth * rng.normal(1.0, 0.1, shape)).astype(np.float32), truth)
    t0 = time.perf_counter()
    headline(acc.event_data(), None, n_resamples=200)
    assert time.perf_counter() - t0 < 10.0  # docs/BENCHMARKS.md: ~1-2 s for 1000 events on this machine


def test_verdicts_come_from_intervals() -> None:
    a = {"value": 0.10, "lo": 0.09, "hi": 0.11}
    assert verdict(a, {"value": 0.20, "lo": 0.18, "hi": 0.22}) == "lower"
    assert verdict({"value": 0.30, "lo": 0.28, "hi": 0.32}, a) == "higher"
    assert verdict(a, {"value": 0.105, "lo": 0.095, "hi": 0.115}) == "inconclusive"
    assert verdict(a, {"value": 0.5, "lo": None, "hi": None}) == "inconclusive"
