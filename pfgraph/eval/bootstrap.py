"""68 % bootstrap intervals over events for the headline figures of an evaluation (DESIGN §5).

Events are the independent units (pixels of one event share its particles), so every
interval comes from resampling **events** with replacement: ``n_resamples`` multinomial
weight vectors (seeded), each figure recomputed with those weights, and the interval is
the central 68 % of the replicas (percentile bootstrap). All of it is vectorised: quantiles
of per-pixel values use one sort of the values and, per replica, a cumulative sum of the
gathered event weights; ratios of per-event sums are one matrix product.

The figure's ``value`` is the evaluation's own number (the same definition as the robust
figures in :mod:`pfgraph.eval.energy` and :mod:`pfgraph.eval.jets`); only ``lo`` and ``hi``
come from the replicas.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from pfgraph.errors import PfgraphError

#: Default number of bootstrap replicas and their seed.
N_RESAMPLES = 200
SEED = 12345
#: Central 68 % (one Gaussian sigma) in percent.
Q_LO, Q_HI = 15.865525393145708, 84.13447460685429
#: Equal-count blocks of the sorted values used to locate a quantile before the exact search.
BLOCKS = 2048

#: Headline figures: key -> what it is (the definitions rendered by reports and docs).
ENERGY_FIGURES = {
    "residual_median": "median of r = (E_pred - E_true) / E_true over truth pixels",
    "residual_half_width_68": "half-width of the central 68 % of r",
    "residual_tail_fraction": "share of truth pixels with |r| > 0.5",
    "missed_pixel_fraction": "share of truth pixels predicted empty (r = -1)",
    "missed_energy_fraction": "share of truth energy in missed truth pixels",
    "fake_energy_fraction": "predicted energy in pixels without truth / all predicted energy",
    "fake_pixels_per_event": "pixels without truth predicted above 0.1 GeV, per event",
    "abs_norm_median": "median of dE_nor = (E_pred - E_true) / S over truth pixels (paper Eq. 1)",
    "abs_norm_half_width_68": "half-width of the central 68 % of dE_nor over truth pixels",
    "mse_per_image": "mean over events of the per-image MSE (GeV^2)",
}
JET_FIGURES = {
    "jet_efficiency": "share of truth jets with a predicted jet within R",
    "jet_position_median": "median jet position deviation D_jet (pixels)",
    "jet_energy_rel_median": "median of sum over the truth jet's pixels of (E_pred - E_true) / E_truth_jet",
    "jet_energy_rel_half_width_68": "68 % half-width of the truth-jet-pixel dE / E_truth_jet",
    "jet_energy_match_rel_median": "median of (E_pred_jet - E_truth_jet) / E_truth_jet of the matched jets",
    "jet_energy_match_rel_half_width_68": "68 % half-width of the matched jets' (E_pred_jet - E_truth_jet) / E_truth_jet",
    "jet_energy_norm_half_width_68": "68 % half-width of the truth-jet-pixel dE / S (paper's normalised form)",
}
FIGURES = {**ENERGY_FIGURES, **JET_FIGURES}
#: Where each headline figure's value stands in the metrics document (the same number).
FIGURE_PATHS = {
    "residual_median": "energy.residual.robust.median",
    "residual_half_width_68": "energy.residual.robust.half_width_68",
    "residual_tail_fraction": "energy.residual.robust.tail_fraction",
    "missed_pixel_fraction": "energy.missed.pixel_fraction",
    "missed_energy_fraction": "energy.missed.energy_fraction",
    "fake_energy_fraction": "energy.fake.energy_fraction",
    "fake_pixels_per_event": "energy.fake.pixels_above_threshold_per_event.mean",
    "abs_norm_median": "energy.abs_norm.truth_pixels.robust.median",
    "abs_norm_half_width_68": "energy.abs_norm.truth_pixels.robust.half_width_68",
    "mse_per_image": "energy.mse_per_image.mean",
    "jet_efficiency": "jets.efficiency",
    "jet_position_median": "jets.position.robust.median",
    "jet_energy_rel_median": "jets.energy_rel.robust.median",
    "jet_energy_rel_half_width_68": "jets.energy_rel.robust.half_width_68",
    "jet_energy_match_rel_median": "jets.energy_match_rel.robust.median",
    "jet_energy_match_rel_half_width_68": "jets.energy_match_rel.robust.half_width_68",
    "jet_energy_norm_half_width_68": "jets.energy_norm.robust.half_width_68",
}


def resample_counts(n: int, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(n_resamples, n) int32 multiplicities of ``n`` events drawn with replacement."""
    if n <= 0 or n_resamples <= 0:
        return np.zeros((max(n_resamples, 0), max(n, 0)), np.int32)
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(np.int32)


def weighted_quantiles(values: np.ndarray, groups: np.ndarray, counts: np.ndarray,
                       qs: tuple[float, ...]) -> np.ndarray:
    """Quantiles ``qs`` (percent) of ``values`` under each replica's event weights.

    ``groups[i]`` is the event of ``values[i]``; ``counts`` (R, n_events) the replicas'
    multiplicities. Returns (R, len(qs)); the quantile is the smallest value whose cumulative
    weight reaches q % of the total (``inverted_cdf``; NaN for an empty replica). Exact and
    vectorised in two steps: the sorted values are cut into equal-count blocks, every replica's
    weight per block is one matrix product (events x blocks), and only the block holding the
    quantile is searched value by value.
    """
    v = np.asarray(values, np.float64)
    g = np.asarray(groups, np.int64)
    ok = np.isfinite(v)
    v, g = v[ok], g[ok]
    r, n_events = counts.shape
    out = np.full((r, len(qs)), np.nan)
    if v.size == 0 or r == 0:
        return out
    order = np.argsort(v, kind="stable")
    v, g = v[order], g[order]
    nb = min(BLOCKS, v.size)
    block = (np.arange(v.size, dtype=np.int64) * nb) // v.size
    starts = np.searchsorted(block, np.arange(nb + 1))
    per_event = np.bincount(g * nb + block, minlength=n_events * nb).reshape(n_events, nb)
    # integer sums below 2**24 are exact in float32 (each block holds ~N/BLOCKS values)
    cum = np.cumsum(counts.astype(np.float32) @ per_event.astype(np.float32), axis=1, dtype=np.float64)
    tot = cum[:, -1]
    for j, q in enumerate(np.asarray(qs, np.float64) / 100.0):
        target = q * tot
        b = np.minimum((cum < target[:, None]).sum(axis=1), nb - 1)
        for k in np.flatnonzero(tot > 0):
            lo, hi = starts[b[k]], starts[b[k] + 1]
            before = cum[k, b[k] - 1] if b[k] > 0 else 0.0
            inside = before + np.cumsum(counts[k, g[lo:hi]], dtype=np.float64)
            i = int(np.searchsorted(inside, target[k], side="left"))
            out[k, j] = v[min(lo + i, v.size - 1)]
    return out


def _interval(replicas: np.ndarray) -> tuple[float | None, float | None]:
    x = replicas[np.isfinite(replicas)]
    if x.size == 0:
        return None, None
    lo, hi = np.percentile(x, [Q_LO, Q_HI])
    return float(lo), float(hi)


def _figure(value: float | None, replicas: np.ndarray | None) -> dict[str, float | None]:
    if value is None or not np.isfinite(value):
        return {"value": None, "lo": None, "hi": None}
    lo, hi = _interval(replicas) if replicas is not None else (None, None)
    return {"value": float(value), "lo": lo, "hi": hi}


def _ratio(num: np.ndarray, den: np.ndarray, counts: np.ndarray) -> tuple[float | None, np.ndarray]:
    """sum(num) / sum(den) and its replicas (per-event sums ``num``, ``den``)."""
    total = float(np.sum(den))
    if total <= 0:
        return None, np.full(counts.shape[0], np.nan)
    w = counts.astype(np.float64)
    d = w @ np.asarray(den, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rep = (w @ np.asarray(num, np.float64)) / d
    return float(np.sum(num)) / total, np.where(d > 0, rep, np.nan)


def _median_and_width(values: np.ndarray, groups: np.ndarray, counts: np.ndarray
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Median and central-68 % half-width of ``values`` (np.percentile, as the robust figures)."""
    v = np.asarray(values, np.float64)
    ok = np.isfinite(v)
    if not ok.any():
        return _figure(None, None), _figure(None, None)
    q16, q50, q84 = np.percentile(v[ok], [Q_LO, 50.0, Q_HI])
    reps = weighted_quantiles(v, groups, counts, (Q_LO, 50.0, Q_HI)) if counts.shape[0] else None
    med = _figure(float(q50), None if reps is None else reps[:, 1])
    width = _figure(float(0.5 * (q84 - q16)), None if reps is None else 0.5 * (reps[:, 2] - reps[:, 0]))
    return med, width


def empty_headline(n_resamples: int | None = None, seed: int | None = None,
                   reason: str | None = None) -> dict[str, Any]:
    """The ``headline`` section with every figure null."""
    return {"method": "percentile bootstrap over events", "confidence": 0.68, "resamples": n_resamples,
            "seed": seed, "seconds": None, "reason": reason,
            "figures": {k: _figure(None, None) for k in FIGURES}, "definitions": dict(FIGURES)}


def headline(energy: Mapping[str, np.ndarray], jets: Mapping[str, np.ndarray] | None = None,
             n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """Headline figures with 68 % bootstrap intervals over events.

    ``energy``: :meth:`pfgraph.eval.energy.EnergyAccumulator.event_data`; ``jets``:
    :meth:`pfgraph.eval.jets.JetAccumulator.matches` (None: jet figures null). With
    ``n_resamples = 0`` the values are filled and the intervals are null.
    """
    if n_resamples < 0:
        raise PfgraphError(f"bootstrap resamples {n_resamples}: expected 0 (off) or a positive number")
    t0 = time.perf_counter()
    out = empty_headline(n_resamples, seed)
    n_ev = len(energy["mse"])
    counts = resample_counts(n_ev, n_resamples, seed)
    fig = out["figures"]
    r, ev = energy["r"], energy["event"]
    fig["residual_median"], fig["residual_half_width_68"] = _median_and_width(r, ev, counts)
    n_e = np.bincount(ev, minlength=n_ev).astype(np.float64)
    tail_e = np.bincount(ev, weights=(np.abs(r) > 0.5).astype(np.float64), minlength=n_ev)
    fig["residual_tail_fraction"] = _figure(*_ratio(tail_e, n_e, counts))
    missed = energy["missed"]
    fig["missed_pixel_fraction"] = _figure(*_ratio(np.bincount(ev, weights=missed.astype(np.float64),
                                                               minlength=n_ev), n_e, counts))
    missed_e = np.bincount(ev, weights=np.where(missed, energy["e_true"], 0.0).astype(np.float64), minlength=n_ev)
    fig["missed_energy_fraction"] = _figure(*_ratio(missed_e, energy["truth_e"], counts))
    fig["fake_energy_fraction"] = _figure(*_ratio(energy["fake_e"], energy["pred_e"], counts))
    fig["fake_pixels_per_event"] = _figure(*_ratio(energy["fake_pixels"], np.ones(n_ev), counts))
    fig["mse_per_image"] = _figure(*_ratio(energy["mse"], np.ones(n_ev), counts))
    if energy.get("abs_truth") is not None:
        fig["abs_norm_median"], fig["abs_norm_half_width_68"] = _median_and_width(energy["abs_truth"], ev, counts)
    if jets is not None and len(jets.get("truth_rank", ())):
        has_truth = np.asarray(jets["truth_rank"]) >= 0
        has_pred = np.asarray(jets["pred_rank"]) >= 0
        if len(has_truth) != n_ev:
            raise PfgraphError(f"bootstrap: {len(has_truth)} jet entries for {n_ev} events")
        events = np.arange(n_ev)
        fig["jet_efficiency"] = _figure(*_ratio(np.asarray(jets["matched"], np.float64) * has_truth,
                                                has_truth.astype(np.float64), counts))
        both = has_truth & has_pred
        fig["jet_position_median"], _ = _median_and_width(np.where(both, jets["d_jet"], np.nan), events, counts)
        rel = np.where(has_truth, jets["de_jet_rel"], np.nan)
        fig["jet_energy_rel_median"], fig["jet_energy_rel_half_width_68"] = _median_and_width(rel, events, counts)
        if "de_match_rel" in jets:
            match = np.where(both, jets["de_match_rel"], np.nan)
            fig["jet_energy_match_rel_median"], fig["jet_energy_match_rel_half_width_68"] = \
                _median_and_width(match, events, counts)
        _, fig["jet_energy_norm_half_width_68"] = _median_and_width(
            np.where(has_truth, jets["de_jet_norm"], np.nan), events, counts)
    out["seconds"] = time.perf_counter() - t0
    return out


def format_figure(fig: Mapping[str, Any], digits: int = 4) -> str:
    """A headline figure as ``value [lo, hi]`` (fixed decimals), ``value`` without interval, ``-`` without value."""
    if fig.get("value") is None:
        return "-"
    if fig.get("lo") is None or fig.get("hi") is None:
        return f"{fig['value']:.{digits}f}"
    return f"{fig['value']:.{digits}f} [{fig['lo']:.{digits}f}, {fig['hi']:.{digits}f}]"


def verdict(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """Compare two figures with intervals: 'lower', 'higher' (a vs b) or 'inconclusive'.

    The intervals are 68 % intervals; two figures differ only when the intervals do not overlap.
    Without intervals (old documents) the answer is 'inconclusive'.
    """
    if any(x.get(k) is None for x in (a, b) for k in ("value", "lo", "hi")):
        return "inconclusive"
    if a["hi"] < b["lo"]:
        return "lower"
    if a["lo"] > b["hi"]:
        return "higher"
    return "inconclusive"
