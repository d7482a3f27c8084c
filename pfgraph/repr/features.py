"""The per-point feature layout of the point-cloud representation, shared with the models.

A neutral module (it imports only :mod:`pfgraph.geometry`): the graph representation
(:mod:`pfgraph.repr.graph`) builds the features in this order, and the point-cloud models read
it without importing the data-loading code.
"""

from __future__ import annotations

from typing import Any

from pfgraph.geometry import GRID_SIZES, INPUT_CHANNELS, MAX_ETA

#: Names of the per-point model features, in order (see :func:`pfgraph.repr.graph.point_features`):
#: the four normalised input energies, the pixel centre (eta, phi) and the pixel indices / G (the grid size).
FEATURES: tuple[str, ...] = (*INPUT_CHANNELS, "eta", "phi", "ieta", "iphi")
N_FEATURES = len(FEATURES)

#: Neighbours per point of the stored static (eta, phi) graph (the point itself included);
#: models use the first k <= STATIC_K columns.
STATIC_K = 16
#: The static graph treats phi as periodic (the evaluation wraps dphi to [-pi, pi]).
STATIC_PHI_WRAP = True


def grid_size_of_features(x: Any) -> int:
    """The grid size G of per-point features (N, 8) laid out as :data:`FEATURES`, read off the data.

    A point's ``eta`` is its pixel centre ``-M + (ieta + 1/2) 2M / G`` and its ``ieta`` feature is
    ``ieta / G``, so ``eta + M - 2M ieta/G = M / G`` (M: the grid's eta extent; float32 features
    give G to 1e-4 relative, rounded). Raises ValueError for no points or a grid size that is not
    one of :data:`pfgraph.geometry.GRID_SIZES`.
    """
    import torch

    if x.size(0) == 0:
        raise ValueError("no points: the grid size cannot be read off the features")
    eta = x[:, FEATURES.index("eta")].double()
    frac = x[:, FEATURES.index("ieta")].double()
    half = (eta + MAX_ETA - 2 * MAX_ETA * frac).median()
    size = int(torch.round(MAX_ETA / half)) if float(half) > 0 else 0
    if size not in GRID_SIZES:
        raise ValueError(f"point features are not on a pfgraph grid (read grid size {size}; "
                         f"expected one of {', '.join(map(str, GRID_SIZES))})")
    return size
