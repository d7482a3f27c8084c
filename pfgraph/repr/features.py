"""The per-point feature layout of the point-cloud representation, shared with the models.

A neutral module (it imports only :mod:`pfgraph.geometry`): the graph representation
(:mod:`pfgraph.repr.graph`) builds the features in this order, and the point-cloud models read
it without importing the data-loading code.
"""

from __future__ import annotations

from pfgraph.geometry import INPUT_CHANNELS

#: Names of the per-point model features, in order (see :func:`pfgraph.repr.graph.point_features`):
#: the four normalised input energies, the pixel centre (eta, phi) and the pixel indices / IMSIZE.
FEATURES: tuple[str, ...] = (*INPUT_CHANNELS, "eta", "phi", "ieta", "iphi")
N_FEATURES = len(FEATURES)

#: Neighbours per point of the stored static (eta, phi) graph (the point itself included);
#: models use the first k <= STATIC_K columns.
STATIC_K = 16
#: The static graph treats phi as periodic (the evaluation wraps dphi to [-pi, pi]).
STATIC_PHI_WRAP = True
