"""Cell-summed energy in cones of fixed eta-phi radius around the truth (metrics.json ``cones``).

The per-pixel figures of :mod:`pfgraph.eval.energy` depend on the cell size: a finer grid splits a
particle's energy over more cells, and the residual per cell is not comparable across grids. A cone
of fixed radius R in (eta, phi) holds the same physical region at every grid size, so the cone
energy deviation is (issue 28, the granularity study):

* **seeds**: every truth pixel with at least :data:`SEED_GEV` GeV (a truth particle, or on coarse
  grids the particles sharing its pixel); the cone is centred on the seed pixel's centre;
* **cone**: every pixel whose centre lies within R of the seed's centre, ``deta^2 + dphi^2 <= R^2``
  (phi periodic, as the detector; nothing beyond the eta edges);
* **per cone**: ``(sum of pred - sum of truth) / sum of truth`` over the cone's pixels, and its
  robust statistics (median, 68 % half-width, :func:`pfgraph.utils.stats.robust_stats`) per radius
  (:data:`RADII`: 0.1, about a particle's own deposit, and 0.4, the jet radius).

The cone sums are a convolution of each image with the cone's disc of pixels (FFT: periodic in phi,
zero-padded in eta; float64).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pfgraph import geometry
from pfgraph.utils.stats import robust_stats

#: Cone radii in eta-phi units.
RADII: tuple[float, ...] = (0.1, 0.4)
#: Truth pixels with at least this energy (GeV) seed a cone.
SEED_GEV = 1.0
#: Events per FFT (bounds the memory at 448 x 448).
_GROUP = 16


def cone_offsets(grid: geometry.Grid, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets (deta, dphi in pixels) of a cone of ``radius``: :meth:`pfgraph.geometry.Grid.cone_offsets`."""
    return grid.cone_offsets(radius)


def cone_sums(images: np.ndarray, radius: float) -> np.ndarray:
    """(B, G, G) images -> (B, G, G) float64: at every pixel, the sum of the image over the cone of ``radius``
    centred there (phi periodic, zero beyond the eta edges)."""
    img = np.asarray(images, dtype=np.float64)
    g = geometry.grid_of_shape(img.shape)
    de, dp = cone_offsets(g, radius)
    if dp.size and 2 * int(np.abs(dp).max()) + 1 > g.size:
        raise ValueError(f"cone radius {radius} wraps around the {g.size}-pixel phi range")
    pad = int(np.abs(de).max()) if de.size else 0
    rows = g.size + 2 * pad
    kernel = np.zeros((rows, g.size))
    kernel[de % rows, dp % g.size] = 1.0  # centred at (0, 0), circular layout
    fk = np.fft.rfft2(kernel)
    out = np.empty(img.shape, dtype=np.float64)
    for a in range(0, len(img), _GROUP):
        part = np.zeros((min(_GROUP, len(img) - a), rows, g.size))
        part[:, pad:pad + g.size] = img[a:a + _GROUP]
        summed = np.fft.irfft2(np.fft.rfft2(part) * fk, s=(rows, g.size))
        out[a:a + _GROUP] = summed[:, pad:pad + g.size]
    return out


class ConeAccumulator:
    """Streams (pred, truth) batches; :meth:`result` gives the ``cones`` section of metrics.json."""

    def __init__(self, radii: tuple[float, ...] = RADII, seed_gev: float = SEED_GEV) -> None:
        self.radii = tuple(float(r) for r in radii)
        self.seed_gev = float(seed_gev)
        self._dev: dict[float, list[np.ndarray]] = {r: [] for r in self.radii}
        self._true: dict[float, list[np.ndarray]] = {r: [] for r in self.radii}

    def update(self, pred: np.ndarray, truth: np.ndarray) -> None:
        """Add a batch: ``pred`` and ``truth`` (B, G, G) in GeV."""
        truth = np.asarray(truth, dtype=np.float64)
        seeds = truth >= self.seed_gev
        if not seeds.any():
            return
        for r in self.radii:
            t = cone_sums(truth, r)[seeds]
            p = cone_sums(pred, r)[seeds]
            self._dev[r].append((p - t) / t)
            self._true[r].append(t)

    def result(self) -> dict[str, Any]:
        """``seed_gev``, ``definition`` and per radius the cone count, mean truth cone energy and the
        robust statistics of the relative cone energy deviation."""
        per = []
        for r in self.radii:
            dev = np.concatenate(self._dev[r]) if self._dev[r] else np.zeros(0)
            true = np.concatenate(self._true[r]) if self._true[r] else np.zeros(0)
            stats = robust_stats(dev)
            per.append({"radius": r, "n_cones": int(dev.size),
                        "truth_mean_gev": float(true.mean()) if true.size else None,
                        "median": stats["median"], "half_width_68": stats["half_width_68"], "mean": stats["mean"]})
        return {"seed_gev": self.seed_gev,
                "definition": "cones of fixed eta-phi radius around every truth pixel with at least seed_gev GeV; "
                              "per cone (sum pred - sum truth) / sum truth over the pixels whose centres lie within "
                              "the radius (phi periodic)",
                "per_radius": per}


def empty_cones() -> dict[str, Any]:
    """The ``cones`` section with null figures (the template of metrics.json)."""
    doc = ConeAccumulator().result()
    for row in doc["per_radius"]:
        for k in ("n_cones", "truth_mean_gev", "median", "half_width_68", "mean"):
            row[k] = None
    return doc
