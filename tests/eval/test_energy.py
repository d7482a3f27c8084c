"""Energy metrics: the Gaussian core fit recovers known parameters, robust figures, fake energy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from pfgraph import geometry
from pfgraph.errors import PfgraphError
from pfgraph.eval.energy import (
    E_TRUE_EDGES,
    FIT_KEYS,
    ROBUST_KEYS,
    EnergyAccumulator,
    fit_gaussian_core,
    robust_stats,
)
from pfgraph.io import schema


def with_tails(rng: np.random.Generator, mu: float, sigma: float, n: int, tail: float = 0.08) -> np.ndarray:
    """N(mu, sigma) plus a fraction ``tail`` of outliers far outside the core (both sides)."""
    core = rng.normal(mu, sigma, n)
    k = int(tail * n)
    left = rng.uniform(-5.0, mu - 4 * sigma - 0.2, k // 2)
    right = rng.uniform(mu + 4 * sigma + 0.2, 2.0, k - k // 2)
    return np.concatenate([core, left, right])


@pytest.mark.parametrize(("mu", "sigma", "n"), [(0.05, 0.1, 20_000), (-0.2, 0.3, 50_000), (0.01, 0.004, 30_000),
                                                 (0.3, 0.05, 3_000)])
def test_fit_recovers_mu_and_sigma_within_errors(mu: float, sigma: float, n: int) -> None:
    pulls_mu, pulls_sigma = [], []
    for seed in range(4):
        fit = fit_gaussian_core(with_tails(np.random.default_rng(seed), mu, sigma, n))
        assert fit["status"] == "ok" and fit["converged"]
        assert fit["ndf"] > 0 and 0.5 < fit["chi2_ndf"] < 2.0
        pulls_mu.append((fit["mu"] - mu) / fit["mu_err"])
        pulls_sigma.append((fit["sigma"] - sigma) / fit["sigma_err"])
        assert fit["mu_err"] < sigma / np.sqrt(n) * 2.5 and fit["sigma_err"] < sigma / np.sqrt(n) * 2.5
    assert np.max(np.abs(pulls_mu)) < 3.5 and np.max(np.abs(pulls_sigma)) < 3.5
    # the tails do not pull the core, but they inflate the RMS
    vals = with_tails(np.random.default_rng(9), mu, sigma, n)
    assert robust_stats(vals)["rms"] > 2 * sigma


def test_fit_of_a_narrow_core_uses_a_fine_binning() -> None:
    fit = fit_gaussian_core(np.random.default_rng(1).normal(0.0, 0.002, 20_000))
    assert fit["binning"] == "fine" and fit["status"] == "ok"
    assert abs(fit["sigma"] - 0.002) < 4 * fit["sigma_err"]


def test_fit_with_too_few_entries_gives_null_values() -> None:
    fit = fit_gaussian_core(np.array([0.1, 0.2, 0.3]))
    assert fit["status"] == "too few entries" and fit["mu"] is None and set(fit) == set(FIT_KEYS)


def test_a_perfect_prediction_has_zero_width_not_a_failed_fit() -> None:
    fit = fit_gaussian_core(np.r_[np.zeros(1000), np.random.default_rng(0).normal(0, 1, 100)])
    assert fit["status"].startswith("zero width") and fit["mu"] == 0.0 and fit["sigma"] == 0.0


def test_robust_stats_of_a_gaussian() -> None:
    v = np.random.default_rng(3).normal(0.2, 0.5, 200_000)
    r = robust_stats(v, 0.5)
    assert set(r) == set(ROBUST_KEYS)
    assert abs(r["median"] - 0.2) < 0.01 and abs(r["half_width_68"] - 0.5) < 0.01 and abs(r["std"] - 0.5) < 0.01
    expected = norm.sf(0.5, 0.2, 0.5) + norm.cdf(-0.5, 0.2, 0.5)  # P(|x| > 0.5)
    assert abs(r["tail_fraction"] - expected) < 0.005
    empty = robust_stats(np.zeros(0))
    assert empty["n"] == 0 and empty["median"] is None


def images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.exponential(2.0, (n, geometry.IMSIZE, geometry.IMSIZE)) * (rng.random((n, geometry.IMSIZE, geometry.IMSIZE)) < 0.4)
    inputs = np.stack([truth * 0.5] * 4, axis=1)
    return truth.astype(np.float32), (truth * 1.1).astype(np.float32), inputs.astype(np.float32)


def test_accumulator_figures_on_known_predictions() -> None:
    truth, pred, inputs = images(6, 0)
    pred[:, 0, 0] = 3.0  # fake energy where the truth is empty (pixel (0,0) is empty below)
    truth[:, 0, 0] = 0.0
    truth[:, 5, 5], pred[:, 5, 5], inputs[:, :, 5, 5] = 4.0, 4.4, 0.0  # a truth pixel without any input
    acc = EnergyAccumulator(target_scale=20.0)
    acc.update(pred[:3], truth[:3], inputs[:3])
    acc.update(pred[3:], truth[3:], {c: inputs[3:, i] for i, c in enumerate(schema.INPUT_CHANNELS)})
    res = acc.result()
    has = truth > 0
    assert res["n_events"] == 6 and res["n_truth_pixels"] == int(has.sum())
    assert abs(res["residual"]["robust"]["median"] - 0.1) < 1e-6  # every residual is 0.1
    assert sum(res["residual"]["hist"]["counts"]) == int(has.sum())
    np.testing.assert_allclose(res["fake"]["energy_fraction"], 18.0 / pred.astype(np.float64).sum(), rtol=1e-6)
    np.testing.assert_allclose(res["fake"]["energy_per_event"]["mean"], 3.0)
    assert res["fake"]["pixels_above_threshold_per_event"]["mean"] == 1.0
    np.testing.assert_allclose(res["out_of_reach"]["pixel_fraction"], 6 / has.sum())
    np.testing.assert_allclose(res["out_of_reach"]["energy_fraction"], 24.0 / truth[has].sum(), rtol=1e-6)
    np.testing.assert_allclose(res["out_of_reach"]["pred_over_truth"], 1.1, rtol=1e-6)
    np.testing.assert_allclose(res["abs_norm"]["truth_pixels"]["robust"]["median"],
                               np.median(0.1 * truth[has] / 20.0), rtol=1e-5)
    assert len(res["residual_vs_etrue"]["bins"]) == len(E_TRUE_EDGES) - 1
    assert sum(b["n"] for b in res["residual_vs_etrue"]["bins"]) == int(has.sum())
    mse = ((pred.astype(np.float64) - truth) ** 2).mean(axis=(1, 2))
    np.testing.assert_allclose(res["mse_per_image"]["mean"], mse.mean(), rtol=1e-6)


def test_accumulator_without_inputs_or_scale_gives_nulls() -> None:
    truth, pred, _ = images(2, 1)
    acc = EnergyAccumulator()
    acc.update(pred, truth)
    res = acc.result()
    assert res["out_of_reach"]["pixel_fraction"] is None and res["out_of_reach"]["available"] is False
    assert res["abs_norm"]["truth_pixels"]["fit"]["status"] == "no target scale"


def test_bad_arrays_are_one_clear_error() -> None:
    acc = EnergyAccumulator()
    truth, pred, _ = images(2, 1)
    with pytest.raises(PfgraphError, match="expected \\(B, G, G\\) on the truth grid"):
        acc.update(pred[:, :28, :28], truth[:, :28, :28])
    pred[1, 3, 3] = np.nan
    with pytest.raises(PfgraphError, match="event 1 holds NaN"):
        acc.update(pred, truth)
    with pytest.raises(PfgraphError, match="target scale"):
        EnergyAccumulator(target_scale=0.0)


def _mixture_images(rng: np.random.Generator, mu: float, sigma: float, n_events: int, missed: float,
                    tail: float, wide: bool) -> tuple[np.ndarray, np.ndarray]:
    """Truth images and predictions whose residuals are a known mixture: a Gaussian core N(mu, sigma),
    a share ``missed`` of truth pixels predicted empty (r = -1 exactly) and a share ``tail`` of outliers
    (``wide``: N(mu, 2); else uniform far outside the core, |r - mu| > 4 sigma)."""
    shape = (n_events, geometry.IMSIZE, geometry.IMSIZE)
    truth = (rng.exponential(2.0, shape) + 0.05).astype(np.float32)
    n = truth.size
    r = rng.normal(mu, sigma, n)
    kind = rng.random(n)
    is_missed = kind < missed
    is_tail = (kind >= missed) & (kind < missed + tail)
    k = int(is_tail.sum())
    if wide:
        r[is_tail] = rng.normal(mu, 2.0, k)
    else:
        side = rng.random(k) < 0.5
        r[is_tail] = np.where(side, rng.uniform(-5.0, mu - 4 * sigma, k), rng.uniform(mu + 4 * sigma, 2.0, k))
    r[is_missed] = -1.0
    pred = truth.ravel() * (1.0 + r)
    pred[is_missed] = 0.0
    return pred.reshape(shape).astype(np.float32), truth


@pytest.mark.parametrize(("mu", "sigma", "wide"), [(0.0, 0.4, False), (-0.1, 0.4, False), (0.05, 0.10, True)])
def test_core_fit_recovers_a_known_core_beside_missed_pixels_and_tails(mu: float, sigma: float, wide: bool) -> None:
    """Regression (issue 13): the spike of missed pixels at r = -1 widened the fit window (0.55 for a true 0.40)."""
    pred, truth = _mixture_images(np.random.default_rng(5), mu, sigma, 40, missed=0.10, tail=0.10, wide=wide)
    acc = EnergyAccumulator(target_scale=20.0)
    acc.update(pred, truth)
    res = acc.result()
    fit = res["residual"]["fit"]
    assert fit["status"] == "ok" and fit["converged"]
    assert abs(fit["sigma"] - sigma) < 0.03 * sigma
    assert abs(fit["mu"] - mu) < 0.03 * sigma
    assert fit["core_gaussian"] and fit["flag"] is None and 0.5 < fit["chi2_ndf"] < 2.0
    # missed: the r = -1 spike plus left-tail outliers with r <= -1 (predicted energy <= 0)
    assert res["missed"]["pixel_fraction"] == pytest.approx(float(np.mean(pred <= 0)))
    assert res["missed"]["pixel_fraction"] >= 0.095
    assert fit["n_entries"] == res["n_truth_pixels"] - res["missed"]["pixels"]
    # what the old fit did: with the spike inside the fitted population the window grows onto it
    r, _, _ = acc.residuals_with_missed()
    if not wide:
        assert fit_gaussian_core(r)["sigma"] > 1.2 * sigma


def test_missed_pixels_are_their_own_figure() -> None:
    truth = np.zeros((2, geometry.IMSIZE, geometry.IMSIZE), np.float32)
    truth[0, :10, :10] = 2.0
    truth[1, :10, :10] = 1.0
    pred = truth.copy()
    pred[0, :5, :10] = 0.0  # 50 of 200 truth pixels missed, 100 of 300 GeV
    pred[1, 0, 0] = 0.05  # above a 0 GeV threshold: not missed ...
    acc = EnergyAccumulator(missed_threshold=0.0)
    acc.update(pred, truth)
    m = acc.result()["missed"]
    assert m["pixels"] == 50 and m["pixel_fraction"] == pytest.approx(0.25)
    assert m["energy_fraction"] == pytest.approx(100.0 / 300.0)
    acc = EnergyAccumulator(missed_threshold=0.1)  # ... but missed below a 0.1 GeV threshold
    acc.update(pred, truth)
    assert acc.result()["missed"]["pixels"] == 51
    with pytest.raises(PfgraphError, match="missed-pixel threshold"):
        EnergyAccumulator(missed_threshold=-1.0)


def test_a_non_gaussian_core_is_flagged_and_a_gaussian_one_is_not() -> None:
    rng = np.random.default_rng(2)
    laplace = fit_gaussian_core(rng.laplace(0.0, 0.1, 400_000))
    assert laplace["status"] == "ok" and laplace["core_gaussian"] is False
    assert "chi2/ndf" in laplace["flag"] and laplace["chi2_ndf"] > 3
    two = fit_gaussian_core(np.r_[rng.normal(0.0, 0.05, 100_000), rng.normal(0.0, 0.6, 300_000)])
    assert two["core_gaussian"] is False
    gauss = fit_gaussian_core(rng.normal(0.0, 0.1, 400_000))
    assert gauss["core_gaussian"] is True and gauss["flag"] is None and gauss["window_fraction"] > 0.9


def test_truth_above_the_training_range_is_split_out() -> None:
    """Issue 15: the share of truth energy above the training range and the residuals on each side."""
    truth = np.zeros((3, geometry.IMSIZE, geometry.IMSIZE), np.float32)
    truth[:, :20, :20] = 5.0  # inside a 10 GeV training range: 1200 pixels, 6000 GeV
    truth[:, 30:35, 30:40] = 40.0  # above it: 150 pixels, 6000 GeV
    pred = truth.copy()
    rng = np.random.default_rng(0)
    pred[:, :20, :20] *= rng.normal(1.0, 0.05, (3, 20, 20)).astype(np.float32)
    pred[:, 30:35, 30:40] = 10.0  # a bounded model saturates at the training maximum: r = -0.75
    acc = EnergyAccumulator(target_scale=10.0)
    acc.update(pred, truth)
    ex = acc.result()["extrapolation"]
    assert ex["train_max_gev"] == 10.0 and "target scale S" in ex["source"]
    assert ex["pixel_fraction_above"] == pytest.approx(150 / 1350)
    assert ex["energy_fraction_above"] == pytest.approx(0.5)
    assert ex["inside"]["robust"]["n"] == 1200 and ex["above"]["robust"]["n"] == 150
    assert ex["inside"]["robust"]["half_width_68"] == pytest.approx(0.05, rel=0.15)
    assert ex["above"]["robust"]["median"] == pytest.approx(-0.75)
    # an explicit training range overrides S; without either, the split is null
    acc = EnergyAccumulator(target_scale=10.0, train_max=50.0, train_max_source="run folder")
    acc.update(pred, truth)
    assert acc.result()["extrapolation"]["energy_fraction_above"] == 0.0
    acc = EnergyAccumulator()
    acc.update(pred, truth)
    assert acc.result()["extrapolation"]["train_max_gev"] is None
