"""Robust summary statistics of a residual distribution, shared by the evaluation and the trainer.

The evaluation ranks models by them (:mod:`pfgraph.eval.energy`); the trainer records the same
68 % half-width of the validation residuals every epoch, so both use this one definition.
"""

from __future__ import annotations

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
