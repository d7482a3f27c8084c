"""``edgeconv``: a DGCNN for per-point energy regression on point clouds.

Architecture (Wang et al., "Dynamic Graph CNN for Learning on Point Clouds"), for one output
per point:

* ``len(widths)`` EdgeConv blocks (torch-geometric :class:`~torch_geometric.nn.EdgeConv`, max
  aggregation over centre-sorted edges: :class:`SortedMaxAggregation`). The message of edge
  j -> i is an MLP of ``[h_i, h_j - h_i]`` (``edge_depth`` Linear + BatchNorm + LeakyReLU
  layers, all of the block's width).
* The kNN graph of every block is rebuilt on that block's input features (dynamic graph);
  the first block may instead use the fixed (eta, phi) graph of the points
  (``first_graph: position``). kNN runs through :func:`pfgraph.repr.knn.knn_graph`
  (torch-cluster called directly, or the pure-torch backend: ``knn_backend``).
* The input features and every block's output are concatenated (skip connections) and an
  MLP head (``head`` widths, then Linear -> 1) predicts the normalised target per point.

Input: ``x`` (N, F) point features, ``pos`` (N, 2) positions for the fixed graph, ``batch``
(N,) sorted event index; output (N,). The graph representation
(:class:`pfgraph.repr.graph.GraphRepresentation`) builds these from a batch. Every
hyper-parameter lives in ``configs/model/edgeconv.yaml``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

with warnings.catch_warnings():  # torch-geometric's import-time notices (torch.jit.script, torch-cluster)
    warnings.simplefilter("ignore", DeprecationWarning)
    from torch_geometric import EdgeIndex
    from torch_geometric.nn import EdgeConv
    from torch_geometric.nn.aggr import Aggregation
    from torch_geometric.utils import segment

from pfgraph.config import from_dict
from pfgraph.errors import ConfigError
from pfgraph.models.registry import register
from pfgraph.repr.graph import N_FEATURES
from pfgraph.repr.knn import knn_graph, resolve_backend


@dataclass
class EdgeConvConfig:
    """Hyper-parameters of :class:`EdgeConvNet` (``configs/model/edgeconv.yaml``)."""

    name: str = "edgeconv"
    #: neighbours per point (the first block's fixed graph and every dynamic graph)
    k: int = 12
    #: output width of each EdgeConv block; the number of entries is the depth
    widths: list[int] = field(default_factory=lambda: [32, 32, 32])
    #: Linear layers in each block's edge MLP
    edge_depth: int = 1
    #: hidden widths of the per-point head (a final Linear to 1 output follows)
    head: list[int] = field(default_factory=lambda: [64, 32])
    #: graph of the first block: "position" = fixed (eta, phi) kNN, "features" = kNN on the input features
    first_graph: Literal["position", "features"] = "position"
    #: kNN backend: "auto" (torch-cluster if importable), "torch_cluster" or "torch"
    knn_backend: Literal["auto", "torch_cluster", "torch"] = "auto"
    #: include each point among its own neighbours (DGCNN's convention; no point is ever isolated)
    loop: bool = True
    negative_slope: float = 0.2
    batch_norm: bool = True
    dropout: float = 0.0
    #: per-point input features (the graph representation gives 8)
    in_features: int = N_FEATURES
    #: activation on the output: none (linear), relu, softplus or sigmoid
    output: Literal["none", "relu", "softplus", "sigmoid"] = "none"

    def validate(self) -> None:
        """Reject impossible values with one clear line."""
        if self.k < 1:
            raise ConfigError(f"model.k must be >= 1, got {self.k}")
        if not self.widths or any(w < 1 for w in self.widths):
            raise ConfigError(f"model.widths must be a non-empty list of positive widths, got {self.widths}")
        if self.edge_depth < 1:
            raise ConfigError(f"model.edge_depth must be >= 1, got {self.edge_depth}")
        if any(w < 1 for w in self.head):
            raise ConfigError(f"model.head widths must be positive, got {self.head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.in_features < 1:
            raise ConfigError(f"model.in_features must be >= 1, got {self.in_features}")


def _mlp(sizes: list[int], cfg: EdgeConvConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers.append(nn.Linear(a, b, bias=not cfg.batch_norm))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm1d(b))
        layers.append(nn.LeakyReLU(cfg.negative_slope))
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
    return nn.Sequential(*layers)


class SortedMaxAggregation(Aggregation):
    """Max aggregation that runs as a segment reduction when the edges come sorted by centre.

    Given a centre-sorted :class:`~torch_geometric.EdgeIndex`, message passing hands the
    aggregation the CSC pointer ``ptr``; the maximum over each centre's edge segment is then
    :func:`torch_geometric.utils.segment` (same values and gradients as ``aggr="max"``, about
    3x cheaper backward on the CPU than the scatter). Without ``ptr`` it is PyG's scatter max.
    Centres without edges get 0, as with ``aggr="max"``.
    """

    def forward(self, x: torch.Tensor, index: torch.Tensor | None = None, ptr: torch.Tensor | None = None,
                dim_size: int | None = None, dim: int = -2, max_num_elements: int | None = None) -> torch.Tensor:
        """Per-centre maxima of the edge messages ``x`` (E, C) -> (N, C)."""
        if ptr is not None and x.dim() == 2 and dim in (0, -2) and (dim_size is None or dim_size == ptr.numel() - 1):
            return segment(x, ptr, reduce="max")
        return self.reduce(x, index, ptr, dim_size, dim, reduce="max")


_OUTPUTS: dict[str, type[nn.Module]] = {"none": nn.Identity, "relu": nn.ReLU, "softplus": nn.Softplus,
                                        "sigmoid": nn.Sigmoid}


class EdgeConvNet(nn.Module):
    """DGCNN with dynamic kNN graphs, skip-concatenated blocks and a per-point head."""

    def __init__(self, cfg: EdgeConvConfig) -> None:
        super().__init__()
        self.cfg = cfg
        resolve_backend(cfg.knn_backend)  # fail early on an unusable explicit backend
        self.convs = nn.ModuleList()
        width_in = cfg.in_features
        for w in cfg.widths:
            self.convs.append(EdgeConv(_mlp([2 * width_in] + [w] * cfg.edge_depth, cfg), aggr=SortedMaxAggregation()))
            width_in = w
        concat = cfg.in_features + sum(cfg.widths)
        self.head = nn.Sequential(_mlp([concat, *cfg.head], cfg), nn.Linear(([concat, *cfg.head])[-1], 1),
                                  _OUTPUTS[cfg.output]())

    def graph(self, h: torch.Tensor, batch: torch.Tensor) -> EdgeIndex:
        """kNN edges of ``h`` within events (no gradient flows through the selection).

        Returned as a torch-geometric :class:`EdgeIndex` sorted by centre, so the max
        aggregation runs as a segment reduction (:class:`SortedMaxAggregation`).
        """
        edges = knn_graph(h.detach(), self.cfg.k, batch, loop=self.cfg.loop, backend=self.cfg.knn_backend)
        centre = edges[1]
        if centre.numel() > 1 and bool((centre[1:] < centre[:-1]).any()):
            edges = edges[:, torch.argsort(centre, stable=True)]
        n = h.size(0)
        return EdgeIndex(edges, sparse_size=(n, n), sort_order="col")

    def forward(self, x: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """(N, F) features, (N, 2) positions, (N,) sorted event index -> (N,) per-point output."""
        if x.dim() != 2 or x.size(1) != self.cfg.in_features:
            raise ValueError(f"edgeconv expects (N, {self.cfg.in_features}) point features, got {tuple(x.shape)}")
        feats = [x]
        h = x
        for i, conv in enumerate(self.convs):
            src = pos if (i == 0 and self.cfg.first_graph == "position") else h
            h = conv(h, self.graph(src, batch))
            feats.append(h)
        return self.head(torch.cat(feats, dim=1)).reshape(-1)


def edgeconv_config(config: Mapping[str, Any]) -> EdgeConvConfig:
    """Validated :class:`EdgeConvConfig` from a plain mapping (unknown keys are an error)."""
    return from_dict(EdgeConvConfig, dict(config), "model")


@register("edgeconv", repr="graph",
          description="DGCNN: EdgeConv blocks on dynamic kNN graphs, skip concatenation, per-point head")
def build_edgeconv(config: Mapping[str, Any]) -> EdgeConvNet:
    """Build the DGCNN from its config (``configs/model/edgeconv.yaml`` after overrides)."""
    return EdgeConvNet(edgeconv_config(config))
