"""Per-pixel energy metrics on the G x G truth grid (DESIGN §5), identical for every model.

* **Residual** ``r = (E_pred - E_true) / E_true`` over pixels with ``E_true > 0``: histogram of
  1000 bins over [-5, 2], iterative Gaussian core fit (:func:`fit_gaussian_core`) and robust
  figures (:func:`robust_stats`), overall and in bins of ``E_true``.
* **Absolute form** ``dE_nor = (E_pred - E_true) / S``, ``S`` the training-set truth maximum
  from the checkpoint's normalisation: over truth pixels and over all pixels.
* Per-image mean squared error (plain, and weighted by ``E_true`` over truth pixels).
* **Fake energy**: predicted energy in pixels with ``E_true = 0`` as a fraction of all
  predicted energy, and the number of such pixels above 0.1 GeV per event (the residual
  cannot see these: a model spreading small energies everywhere would look good on it).
* **Out of reach**: truth pixels without any input in any channel (no point-cloud model can
  predict them): their share of truth pixels and of truth energy.
* **Missed truth pixels**: truth pixels the model predicts as empty (``E_pred <= threshold``,
  0 GeV by default, so ``r <= -1``): their share of truth pixels and of truth energy. They are
  their own figure and are left out of the core fit (they form a spike at ``r = -1`` that is no
  part of a resolution); the robust figures still count them.

Every fit states whether it describes its core (:data:`MAX_CHI2_NDF`, :data:`MIN_WINDOW_FRACTION`):
a fit with ``chi2/ndf`` above 3 or fewer than half of its entries inside the fit window is
flagged ``core_gaussian: false`` and is never used to rank models; the robust figures are the
ranking figures.

Predicted energies are clipped at 0 for the fake-energy sums (a negative prediction is not
energy); residuals use the raw prediction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import ndtr

from pfgraph import geometry
from pfgraph.errors import PfgraphError
from pfgraph.io import schema
from pfgraph.utils.stats import ROBUST_KEYS, TAIL_CUT, robust_stats  # noqa: F401 (re-exported: the evaluation's figures)

RESIDUAL_BINS = 1000
RESIDUAL_RANGE = (-5.0, 2.0)
#: sigma of a Gaussian = 0.7413 x its interquartile range.
IQR_TO_SIGMA = 0.7413
#: The core fit uses mean +- FIT_NSIGMA sigma.
FIT_NSIGMA = 2.0
FIT_MAX_ITER = 50
#: Below this many entries no fit is attempted.
MIN_FIT_ENTRIES = 50
#: Windows narrower than this many histogram bins are refitted on a finer local histogram.
MIN_FIT_BINS = 10
FINE_BINS = 50
#: Edges (GeV) of the E_true bins.
E_TRUE_EDGES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, math.inf)
#: Fake pixels counted above this predicted energy (GeV).
FAKE_PIXEL_THRESHOLD = 0.1
#: Truth pixels predicted at or below this energy (GeV) are "missed" (r <= -1).
MISSED_THRESHOLD = 0.0
#: A core fit describes a Gaussian core only if chi2/ndf <= MAX_CHI2_NDF ...
MAX_CHI2_NDF = 3.0
#: ... and at least this share of the fitted entries lies inside its window.
MIN_WINDOW_FRACTION = 0.5
#: Where the training range comes from when it is the target scale S.
TRAIN_MAX_FROM_S = "largest truth pixel of the training split (the run's target scale S)"
GAUSSIAN_RULE = (f"Gaussian core: chi2/ndf <= {MAX_CHI2_NDF:g} and at least {100 * MIN_WINDOW_FRACTION:g} % "
                 "of the fitted entries inside the fit window")

FIT_KEYS = ("status", "mu", "mu_err", "sigma", "sigma_err", "amplitude", "chi2", "ndf", "chi2_ndf",
            "iterations", "converged", "window", "n_window", "binning", "hist_range", "hist_bins",
            "n_entries", "window_fraction", "core_gaussian", "flag")
#: Keys the fit gained in metrics schema 3.
FIT_KEYS_V3 = ("n_entries", "window_fraction", "core_gaussian", "flag")


def _none_fit(status: str) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(FIT_KEYS)
    out["status"] = status
    return out


def _window_bins(edges: np.ndarray, lo: float, hi: float) -> tuple[int, int]:
    """Bins [a, b) whose centres lie inside [lo, hi]."""
    centres = 0.5 * (edges[:-1] + edges[1:])
    a = int(np.searchsorted(centres, lo, side="left"))
    b = int(np.searchsorted(centres, hi, side="right"))
    return a, b


def _fit_window(counts: np.ndarray, edges: np.ndarray, n0: float, mu0: float, s0: float) -> Any:
    """Extended binned maximum-likelihood Gaussian fit (iminuit) of one window."""
    from iminuit import Minuit
    from iminuit.cost import ExtendedBinnedNLL

    def scaled_cdf(xe: np.ndarray, amplitude: float, mu: float, sigma: float) -> np.ndarray:
        return amplitude * ndtr((xe - mu) / sigma)

    cost = ExtendedBinnedNLL(counts, edges, scaled_cdf)
    m = Minuit(cost, amplitude=max(n0, 1.0), mu=mu0, sigma=max(s0, 1e-12))
    width = edges[-1] - edges[0]
    m.limits["amplitude"] = (0.0, None)
    m.limits["sigma"] = (1e-6 * max(s0, 1e-12), 10.0 * width)
    m.migrad()
    m.hesse()
    return m


def fit_gaussian_core(values: np.ndarray, bins: int = RESIDUAL_BINS, range: tuple[float, float] | None = RESIDUAL_RANGE,
                      nsigma: float = FIT_NSIGMA, max_iter: int = FIT_MAX_ITER) -> dict[str, Any]:
    """Iterative Gaussian fit to the core of a distribution.

    Histogram ``bins`` bins over ``range`` (default [-5, 2]; ``None``: median +- 10 x the
    68 % half-width). Start at the median and ``0.7413 x IQR``; fit (extended binned
    likelihood, iminuit) within ``mu +- nsigma * sigma``; move the window to the fitted
    ``mu +- nsigma * sigma`` and refit until the window (in bins) no longer changes. Windows
    spanning fewer than ``MIN_FIT_BINS`` bins are fitted on a local histogram of ``FINE_BINS``
    bins (``binning: "fine"``). ``chi2`` is the likelihood-ratio chi2 of the last fit,
    ``ndf`` its bins minus 3.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < MIN_FIT_ENTRIES:
        return _none_fit("too few entries")
    q25, q50, q75 = np.percentile(v, [25.0, 50.0, 75.0])
    if q75 == q25:  # half the values or more are identical: no Gaussian core to fit
        out = _none_fit("zero width: at least half of the values are identical")
        out.update(mu=float(q50), sigma=0.0, iterations=0, converged=False)
        return out
    if range is None:
        q16, q84 = np.percentile(v, [15.865525393145708, 84.13447460685429])
        half = 10.0 * max(0.5 * (q84 - q16), 1e-12 * max(1.0, abs(q50)))
        range = (float(q50 - half), float(q50 + half))
    lo_r, hi_r = float(range[0]), float(range[1])
    counts, edges = np.histogram(v, bins=bins, range=(lo_r, hi_r))
    mu, sigma = float(q50), float(IQR_TO_SIGMA * (q75 - q25))
    if not sigma > 0:
        sigma = (hi_r - lo_r) / bins
    seen: list[tuple[int, int]] = []
    result: dict[str, Any] = _none_fit("failed")
    converged = False
    for it in np.arange(1, max_iter + 1):
        lo, hi = mu - nsigma * sigma, mu + nsigma * sigma
        a, b = _window_bins(edges, lo, hi)
        fine = b - a < MIN_FIT_BINS
        if fine:
            sel = v[(v >= lo) & (v <= hi)]
            c_w, e_w = np.histogram(sel, bins=FINE_BINS, range=(lo, hi))
            key = (-1, len(seen))  # fine windows are compared by value below
        else:
            c_w, e_w = counts[a:b], edges[a:b + 1]
            key = (a, b)
        if c_w.sum() < MIN_FIT_ENTRIES // 2 or len(c_w) < 4:
            return _none_fit("too few entries in the core window") | {"iterations": int(it)}
        m = _fit_window(c_w, e_w, float(c_w.sum()) / 0.954, mu, sigma)
        if not m.valid:
            result = _none_fit("fit did not converge") | {"iterations": int(it)}
            break
        new_mu, new_sigma = float(m.values["mu"]), abs(float(m.values["sigma"]))
        ndf = len(c_w) - 3
        result = {
            "status": "ok", "mu": new_mu, "mu_err": float(m.errors["mu"]), "sigma": new_sigma,
            "sigma_err": float(m.errors["sigma"]), "amplitude": float(m.values["amplitude"]),
            "chi2": float(m.fval), "ndf": int(ndf), "chi2_ndf": float(m.fval / ndf) if ndf > 0 else None,
            "iterations": int(it), "converged": False, "window": [float(e_w[0]), float(e_w[-1])],
            "n_window": int(c_w.sum()), "binning": "fine" if fine else "histogram",
            "hist_range": [lo_r, hi_r], "hist_bins": int(bins),
        }
        if fine:
            same = abs(new_mu - mu) <= 1e-3 * sigma and abs(new_sigma - sigma) <= 1e-3 * sigma
        else:
            na, nb = _window_bins(edges, new_mu - nsigma * new_sigma, new_mu + nsigma * new_sigma)
            same = (na, nb) == key
            if (na, nb) in seen and not same:  # a cycle between windows: no exact fixed point
                cycle = seen[seen.index((na, nb)):] + [key]
                # converged within the binning when the cycling windows differ by at most one bin
                converged = max(abs(w[0] - na) for w in cycle) <= 1 and max(abs(w[1] - nb) for w in cycle) <= 1
                break
            seen.append(key)
        mu, sigma = new_mu, new_sigma
        if same:
            converged = True
            break
    if result["status"] == "ok":
        result["converged"] = converged
        flag_core(result, int(v.size))
    return result


def flag_core(fit: dict[str, Any], n_entries: int) -> dict[str, Any]:
    """Mark ``fit`` (in place) as describing a Gaussian core or not, by the stated rule.

    Sets ``n_entries``, ``window_fraction`` (share of the entries inside the fit window),
    ``core_gaussian`` and ``flag`` (None for a Gaussian core, else the reason).
    """
    fit["n_entries"] = n_entries
    frac = fit["n_window"] / n_entries if n_entries else None
    fit["window_fraction"] = frac
    reasons = []
    if fit.get("chi2_ndf") is None or fit["chi2_ndf"] > MAX_CHI2_NDF:
        reasons.append(f"chi2/ndf {fit.get('chi2_ndf') or float('nan'):.3g} > {MAX_CHI2_NDF:g}")
    if frac is None or frac < MIN_WINDOW_FRACTION:
        reasons.append(f"{100 * (frac or 0):.1f} % of entries in the window < {100 * MIN_WINDOW_FRACTION:g} %")
    if not fit.get("converged"):
        reasons.append("window did not converge")
    fit["core_gaussian"] = not reasons
    fit["flag"] = ("non-Gaussian core: " + "; ".join(reasons)) if reasons else None
    return fit


def gaussian_summary(values: np.ndarray, tail_cut: float | None = TAIL_CUT, bins: int = RESIDUAL_BINS,
                     range: tuple[float, float] | None = None, fit_mask: np.ndarray | None = None) -> dict[str, Any]:
    """``{"fit": fit_gaussian_core(...), "robust": robust_stats(...)}``.

    With ``fit_mask`` the core fit sees only ``values[fit_mask]`` (e.g. residuals without the
    missed pixels); the robust figures always use every value.
    """
    fitted = values if fit_mask is None else np.asarray(values)[fit_mask]
    return {"fit": fit_gaussian_core(fitted, bins=bins, range=range), "robust": robust_stats(values, tail_cut)}


def _mean_median(values: Sequence[float] | np.ndarray) -> dict[str, Any]:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "median": None}
    return {"mean": float(v.mean()), "median": float(np.median(v))}


def stack_inputs(inputs: Any) -> np.ndarray | None:
    """Inputs as (B, 4, G, G) from an array of that shape or a mapping channel -> (B, G, G)."""
    if inputs is None:
        return None
    if isinstance(inputs, Mapping):
        missing = [c for c in schema.INPUT_CHANNELS if c not in inputs]
        if missing:
            raise PfgraphError(f"inputs: channel '{missing[0]}' missing (expected {', '.join(schema.INPUT_CHANNELS)})")
        return np.stack([np.asarray(inputs[c]) for c in schema.INPUT_CHANNELS], axis=1)
    arr = np.asarray(inputs)
    if arr.ndim != 4 or arr.shape[1] != len(schema.INPUT_CHANNELS) or arr.shape[2] != arr.shape[3]:
        raise PfgraphError(f"inputs of shape {arr.shape}: expected (B, 4, G, G)")
    return arr


def check_images(name: str, arr: Any) -> np.ndarray:
    """A (B, G, G) finite float array, or one clear error naming the array."""
    a = np.asarray(arr)
    if a.ndim != 3 or a.shape[1] != a.shape[2] or a.shape[1] not in geometry.GRID_SIZES:
        raise PfgraphError(f"{name}: shape {a.shape}, expected (B, G, G) on the truth grid "
                           f"(G one of {', '.join(map(str, geometry.GRID_SIZES))})")
    if a.dtype.kind not in "fiu":
        raise PfgraphError(f"{name}: dtype {a.dtype}, expected numbers")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = int(np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(1))[0])
        raise PfgraphError(f"{name}: event {bad} holds NaN or Inf, expected finite energies")
    return a


class EnergyAccumulator:
    """Collects per-pixel quantities batch by batch; :meth:`result` gives the ``energy`` metrics.

    ``target_scale`` is S (GeV) for the absolute form; without it those entries are null.
    ``missed_threshold``: truth pixels predicted at or below it (GeV) are missed. ``train_max``
    (GeV): the largest truth pixel the model was trained on (by default ``target_scale``, which
    is the training split's truth maximum); the ``extrapolation`` figures split the truth pixels
    at it (inside / above the training range). Per-pixel
    values keep their event number and per-event sums are kept, so :meth:`event_data` can
    feed the bootstrap over events (:mod:`pfgraph.eval.bootstrap`).
    """

    def __init__(self, target_scale: float | None = None, missed_threshold: float = MISSED_THRESHOLD,
                 train_max: float | None = None, train_max_source: str | None = None) -> None:
        if target_scale is not None and not (np.isfinite(target_scale) and target_scale > 0):
            raise PfgraphError(f"target scale S = {target_scale}: expected a positive energy (GeV)")
        if not (np.isfinite(missed_threshold) and missed_threshold >= 0):
            raise PfgraphError(f"missed-pixel threshold {missed_threshold}: expected a non-negative energy (GeV)")
        self.target_scale = target_scale
        self.missed_threshold = float(missed_threshold)
        if train_max is None and target_scale is not None:
            train_max, train_max_source = target_scale, train_max_source or TRAIN_MAX_FROM_S
        if train_max is not None and not (np.isfinite(train_max) and train_max > 0):
            raise PfgraphError(f"training range maximum {train_max}: expected a positive energy (GeV)")
        self.train_max = None if train_max is None else float(train_max)
        self.train_max_source = train_max_source if train_max is not None else None
        self._r: list[np.ndarray] = []
        self._et: list[np.ndarray] = []
        self._ev: list[np.ndarray] = []
        self._missed: list[np.ndarray] = []
        self._abs_truth: list[np.ndarray] = []
        self._abs_all: list[np.ndarray] = []
        self.n_events = 0
        self.n_truth_pixels = 0
        self.mse: list[np.ndarray] = []
        self.wmse: list[np.ndarray] = []
        self.fake_e = 0.0
        self.pred_e = 0.0
        self.fake_pixels: list[np.ndarray] = []
        self.fake_e_event: list[np.ndarray] = []
        self.pred_e_event: list[np.ndarray] = []
        self.truth_e_event: list[np.ndarray] = []
        self.oor_pixels = 0
        self.oor_energy = 0.0
        self.oor_pred = 0.0
        self.truth_energy = 0.0
        self.missed_pixels = 0
        self.missed_energy = 0.0
        self.have_inputs = True

    def update(self, pred: np.ndarray, truth: np.ndarray, inputs: Any = None) -> None:
        """Add a batch: ``pred`` and ``truth`` (B, G, G) GeV; ``inputs`` (B, 4, G, G) images, a
        (B, G, G) boolean mask of the pixels with any input (what a batch carries), or None."""
        p = check_images("pred", pred).astype(np.float64)
        t = check_images("truth", truth).astype(np.float64)
        if p.shape != t.shape:
            raise PfgraphError(f"pred {p.shape} and truth {t.shape} differ in shape")
        arr = None if inputs is None or isinstance(inputs, Mapping) else np.asarray(inputs)
        if arr is not None and arr.dtype == np.bool_:
            if arr.shape != p.shape:
                raise PfgraphError(f"input mask {arr.shape} does not match predictions {p.shape}")
            has_input = arr
        else:
            inp = stack_inputs(inputs)
            if inp is not None and inp.shape[0] != p.shape[0]:
                raise PfgraphError(f"inputs hold {inp.shape[0]} events, predictions {p.shape[0]}")
            has_input = None if inp is None else np.any(inp != 0, axis=1)
        has = t > 0
        et = t[has]
        ep = p[has]
        self._ev.append((np.nonzero(has)[0] + self.n_events).astype(np.int32))
        self.n_events += p.shape[0]
        self.n_truth_pixels += int(et.size)
        self._r.append(((ep - et) / et).astype(np.float32))
        self._et.append(et.astype(np.float32))
        missed = ep <= self.missed_threshold
        self._missed.append(missed)
        self.missed_pixels += int(missed.sum())
        self.missed_energy += float(et[missed].sum())
        diff = p - t
        self.mse.append(np.mean(diff * diff, axis=(1, 2)))
        wsum = np.sum(np.where(has, t, 0.0), axis=(1, 2))
        wnum = np.sum(np.where(has, t * diff * diff, 0.0), axis=(1, 2))
        self.wmse.append(np.where(wsum > 0, wnum / np.where(wsum > 0, wsum, 1.0), np.nan))
        if self.target_scale is not None:
            self._abs_truth.append(((ep - et) / self.target_scale).astype(np.float32))
            self._abs_all.append((diff / self.target_scale).astype(np.float32).reshape(-1))
        pc = np.clip(p, 0.0, None)
        empty = ~has
        fake = np.sum(np.where(empty, pc, 0.0), axis=(1, 2))
        self.fake_e += float(fake.sum())
        self.pred_e += float(pc.sum())
        self.fake_e_event.append(fake)
        self.pred_e_event.append(pc.sum(axis=(1, 2)))
        self.truth_e_event.append(wsum)
        self.fake_pixels.append(np.sum(empty & (p > FAKE_PIXEL_THRESHOLD), axis=(1, 2)))
        self.truth_energy += float(et.sum())
        if has_input is None:
            self.have_inputs = False
        else:
            oor = has & ~has_input
            self.oor_pixels += int(oor.sum())
            self.oor_energy += float(t[oor].sum())
            self.oor_pred += float(pc[oor].sum())

    @staticmethod
    def _cat(parts: list[np.ndarray], dtype: Any = np.float32) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype)

    def result(self) -> dict[str, Any]:
        """The ``energy`` section of metrics.json."""
        r, et, missed = self.residuals_with_missed()
        kept = ~missed
        counts, _ = np.histogram(r, bins=RESIDUAL_BINS, range=RESIDUAL_RANGE)
        fitted, _ = np.histogram(r[kept], bins=RESIDUAL_BINS, range=RESIDUAL_RANGE)
        residual = gaussian_summary(r, TAIL_CUT, RESIDUAL_BINS, RESIDUAL_RANGE, fit_mask=kept)
        residual["hist"] = {"bins": RESIDUAL_BINS, "range": list(RESIDUAL_RANGE), "counts": counts.tolist(),
                            "underflow": int(np.sum(r < RESIDUAL_RANGE[0])), "overflow": int(np.sum(r > RESIDUAL_RANGE[1])),
                            "fitted_counts": fitted.tolist()}
        binned = []
        for lo, hi in zip(E_TRUE_EDGES[:-1], E_TRUE_EDGES[1:]):
            sel = (et > lo) & (et <= hi)
            entry = {"lo": lo, "hi": None if math.isinf(hi) else hi, "n": int(sel.sum()),
                     "missed_fraction": float(missed[sel].mean()) if sel.any() else None}
            entry.update(gaussian_summary(r[sel], TAIL_CUT, RESIDUAL_BINS, RESIDUAL_RANGE, fit_mask=kept[sel]))
            binned.append(entry)
        if self.target_scale is not None:
            at = self._cat(self._abs_truth)
            aa = self._cat(self._abs_all)
            abs_truth = gaussian_summary(at, None, RESIDUAL_BINS, None, fit_mask=kept)
            abs_all = gaussian_summary(aa, None, RESIDUAL_BINS, None)
        else:
            abs_truth = {"fit": _none_fit("no target scale"), "robust": robust_stats(np.zeros(0), None)}
            abs_all = {"fit": _none_fit("no target scale"), "robust": robust_stats(np.zeros(0), None)}
        mse = self._cat(self.mse, np.float64)
        wmse = self._cat(self.wmse, np.float64)
        fake_pix = self._cat(self.fake_pixels, np.int64)
        fake_ev = self._cat(self.fake_e_event, np.float64)
        n_truth = max(self.n_truth_pixels, 1)
        return {
            "n_events": self.n_events,
            "n_truth_pixels": self.n_truth_pixels,
            "residual": residual,
            "residual_vs_etrue": {"edges_gev": [e if not math.isinf(e) else None for e in E_TRUE_EDGES], "bins": binned},
            "abs_norm": {"target_scale": self.target_scale, "truth_pixels": abs_truth, "all_pixels": abs_all},
            "mse_per_image": _mean_median(mse),
            "weighted_mse_per_image": _mean_median(wmse[np.isfinite(wmse)]),
            "extrapolation": self._extrapolation(r, et, kept),
            "missed": {
                "threshold_gev": self.missed_threshold,
                "pixels": self.missed_pixels,
                "pixel_fraction": self.missed_pixels / n_truth if self.n_truth_pixels else None,
                "energy_fraction": self.missed_energy / self.truth_energy if self.truth_energy > 0 else None,
            },
            "fake": {
                "energy_fraction": self.fake_e / self.pred_e if self.pred_e > 0 else None,
                "energy_per_event": _mean_median(fake_ev),
                "pixel_threshold_gev": FAKE_PIXEL_THRESHOLD,
                "pixels_above_threshold_per_event": _mean_median(fake_pix),
            },
            "out_of_reach": {
                "available": self.have_inputs,
                "pixel_fraction": self.oor_pixels / n_truth if self.have_inputs and self.n_truth_pixels else None,
                "energy_fraction": (self.oor_energy / self.truth_energy
                                    if self.have_inputs and self.truth_energy > 0 else None),
                "pred_over_truth": (self.oor_pred / self.oor_energy
                                    if self.have_inputs and self.oor_energy > 0 else None),
            },
        }

    def _extrapolation(self, r: np.ndarray, et: np.ndarray, kept: np.ndarray) -> dict[str, Any]:
        """Truth pixels inside and above the training range: shares and residual figures of each part."""
        out: dict[str, Any] = {"train_max_gev": self.train_max, "source": self.train_max_source,
                               "pixel_fraction_above": None, "energy_fraction_above": None}
        parts = {"inside": np.ones(0, bool), "above": np.ones(0, bool)}
        if self.train_max is not None:
            above = et > self.train_max
            parts = {"inside": ~above, "above": above}
            if et.size:
                out["pixel_fraction_above"] = float(above.mean())
                total = float(et.sum(dtype=np.float64))
                out["energy_fraction_above"] = float(et[above].sum(dtype=np.float64)) / total if total > 0 else None
        for name, sel in parts.items():
            if sel.size:
                out[name] = gaussian_summary(r[sel], TAIL_CUT, RESIDUAL_BINS, RESIDUAL_RANGE, fit_mask=kept[sel])
            else:
                out[name] = {"fit": _none_fit("no training range"), "robust": robust_stats(np.zeros(0), TAIL_CUT)}
        return out

    def residuals(self) -> tuple[np.ndarray, np.ndarray]:
        """All residuals and their E_true (float32), for plots."""
        r, et, _ = self.residuals_with_missed()
        return r, et

    def residuals_with_missed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All residuals, their E_true (float32) and the missed-pixel mask."""
        return self._cat(self._r), self._cat(self._et), self._cat(self._missed, bool)

    def event_data(self) -> dict[str, np.ndarray]:
        """Per-pixel values with their event number and per-event sums, for the bootstrap over events."""
        r, et, missed = self.residuals_with_missed()
        return {
            "r": r, "e_true": et, "missed": missed, "event": self._cat(self._ev, np.int32),
            "abs_truth": self._cat(self._abs_truth) if self.target_scale is not None else None,
            "fake_e": self._cat(self.fake_e_event, np.float64), "pred_e": self._cat(self.pred_e_event, np.float64),
            "truth_e": self._cat(self.truth_e_event, np.float64), "fake_pixels": self._cat(self.fake_pixels, np.int64),
            "mse": self._cat(self.mse, np.float64),
        }
