"""Common evaluation of every model on the G x G truth grid (DESIGN §5).

* :mod:`pfgraph.eval.energy` -- per-pixel residuals, Gaussian core fit, robust figures, fake
  energy, out-of-reach share;
* :mod:`pfgraph.eval.antikt` -- batched anti-kt in torch (CPU/CUDA), FastJet as reference;
* :mod:`pfgraph.eval.jets` -- jet position and energy deviations on the jet sample;
* :mod:`pfgraph.eval.metrics` -- the versioned ``metrics.json`` and :func:`evaluate_arrays`;
* :mod:`pfgraph.eval.output` -- ``predictions.root``; :mod:`pfgraph.eval.plots` -- figures;
* :mod:`pfgraph.eval.stage` -- :func:`~pfgraph.eval.stage.evaluate`, the stage (one pass over the data);
  :mod:`pfgraph.eval.cmd` -- ``pfgraph evaluate``, its command line.

Heavy modules load on first use: ``from pfgraph.eval import evaluate_arrays`` works without
importing torch at package import.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "evaluate_arrays": "pfgraph.eval.metrics",
    "read_metrics": "pfgraph.eval.metrics",
    "METRICS_VERSION": "pfgraph.eval.metrics",
    "cluster": "pfgraph.eval.antikt",
    "cluster_images": "pfgraph.eval.antikt",
    "cluster_fastjet": "pfgraph.eval.antikt",
    "fit_gaussian_core": "pfgraph.eval.energy",
    "robust_stats": "pfgraph.utils.stats",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pfgraph.eval' has no attribute '{name}'")
