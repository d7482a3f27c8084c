"""Robust summary statistics of a residual distribution, shared by the evaluation and the trainer,
and the statistics over training seeds that RESULTS.md uses.

The evaluation ranks models by them (:mod:`pfgraph.eval.energy`); the trainer records the same
68 % half-width of the validation residuals every epoch, so both use this one definition.
Over seeds (:mod:`pfgraph.study.results`): the t-based 68 % interval for the mean, paired
differences of two models trained with the same seeds, a pooled seed spread, and the F interval of
a ratio of seed variances.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Residual tail cut: fraction with |r| > TAIL_CUT.
TAIL_CUT = 0.5
ROBUST_KEYS = ("n", "mean", "rms", "std", "median", "half_width_68", "q16", "q84", "tail_cut", "tail_fraction")


def robust_stats(values: np.ndarray, tail_cut: float | None = TAIL_CUT) -> dict[str, Any]:
    """Median, half-width of the central 68 %, RMS (about 0), std, mean and |x| > cut fraction."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    out: dict[str, Any] = dict.fromkeys(ROBUST_KEYS)
    out["n"] = int(v.size)
    out["tail_cut"] = tail_cut
    if v.size == 0:
        return out
    q16, q50, q84 = np.percentile(v, [15.865525393145708, 50.0, 84.13447460685429])
    out.update(mean=float(v.mean()), rms=float(np.sqrt(np.mean(v * v))), std=float(v.std()),
               median=float(q50), q16=float(q16), q84=float(q84), half_width_68=float(0.5 * (q84 - q16)))
    if tail_cut is not None:
        out["tail_fraction"] = float(np.mean(np.abs(v) > tail_cut))
    return out


# ------------------------------------------------------------------------------ statistics over seeds
#: Confidence of every interval over seeds (the one-sigma level, like the evaluation's bootstrap intervals).
SEED_CONFIDENCE = 0.68


def t_quantile(n: int, confidence: float = SEED_CONFIDENCE) -> float:
    """The two-sided Student-t factor for ``n`` values (``n - 1`` degrees of freedom): the mean's
    interval is mean +- t * s / sqrt(n). n = 3, 68 %: 1.3116."""
    from scipy import stats

    if n < 2:
        raise ValueError(f"a t interval needs at least 2 values, got {n}")
    return float(stats.t.ppf(0.5 + confidence / 2.0, n - 1))


def t_interval(values: Sequence[float], confidence: float = SEED_CONFIDENCE) -> dict[str, float | int]:
    """Mean, standard deviation (n - 1) and the t-based ``confidence`` interval for the mean of ``values``.

    Returns ``{"n", "mean", "std", "sem", "t", "lo", "hi"}``; for 3 values at 68 % the interval is
    mean +- 0.757 s. Fewer than two finite values: a ValueError (no spread to estimate).
    """
    v = np.asarray([x for x in values if x is not None and math.isfinite(float(x))], dtype=np.float64)
    n = int(v.size)
    if n < 2:
        raise ValueError(f"a t interval needs at least 2 finite values, got {n}")
    mean = float(v.mean())
    std = float(v.std(ddof=1))
    t = t_quantile(n, confidence)
    sem = std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "sem": sem, "t": t, "lo": mean - t * sem, "hi": mean + t * sem}


def paired_difference(a: Mapping[Any, float], b: Mapping[Any, float],
                      confidence: float = SEED_CONFIDENCE) -> dict[str, Any] | None:
    """The mean of the per-seed differences a[s] - b[s] over the seeds both have, with its t interval.

    Returns :func:`t_interval` of the differences plus ``"seeds"`` (the common seeds, sorted), or
    None when fewer than two seeds are common (no paired comparison possible).
    """
    common = sorted(s for s in a if s in b and a[s] is not None and b[s] is not None
                    and math.isfinite(float(a[s])) and math.isfinite(float(b[s])))
    if len(common) < 2:
        return None
    out: dict[str, Any] = dict(t_interval([float(a[s]) - float(b[s]) for s in common], confidence))
    out["seeds"] = common
    return out


def pooled_std(groups: Sequence[Sequence[float]]) -> tuple[float, int] | None:
    """The pooled standard deviation of several groups (each its own mean) and its degrees of freedom
    sum(n_i - 1); groups of fewer than two values add nothing. None without any such group."""
    ss, dof = 0.0, 0
    for g in groups:
        v = np.asarray([x for x in g if x is not None and math.isfinite(float(x))], dtype=np.float64)
        if v.size >= 2:
            ss += float(((v - v.mean()) ** 2).sum())
            dof += int(v.size) - 1
    if dof == 0:
        return None
    return math.sqrt(ss / dof), dof


def variance_ratio_interval(s_a: float, n_a: int, s_b: float, n_b: int,
                            confidence: float = SEED_CONFIDENCE) -> tuple[float, float, float]:
    """The ratio of two seed variances s_a^2 / s_b^2 and its F-based ``confidence`` interval
    (degrees of freedom n_a - 1, n_b - 1): (ratio, lo, hi). A ratio whose interval lies below 1
    says ``a`` varies less from seed to seed than ``b``."""
    from scipy import stats

    if min(n_a, n_b) < 2:
        raise ValueError("a variance ratio needs at least 2 values on each side")
    if s_b <= 0:
        return (math.inf if s_a > 0 else 1.0), math.nan, math.nan
    ratio = (s_a / s_b) ** 2
    tail = (1.0 - confidence) / 2.0
    lo = ratio / float(stats.f.ppf(1.0 - tail, n_a - 1, n_b - 1))
    hi = ratio / float(stats.f.ppf(tail, n_a - 1, n_b - 1))
    return ratio, lo, hi
