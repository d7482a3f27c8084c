"""``edgeconv``: a DGCNN for per-point energy regression on point clouds.

Architecture (Wang et al., "Dynamic Graph CNN for Learning on Point Clouds"), for one output
per point:

* ``len(widths)`` EdgeConv blocks. The message of edge j -> i is an MLP of ``[h_i, h_j - h_i]``;
  its first Linear ``W = [Theta | Phi]`` equals ``(Theta - Phi) h_i + Phi h_j``, so both products
  are computed once per *node* and only added per edge (``impl``):

  - ``gather_max`` (default): one Linear + LeakyReLU message. LeakyReLU is monotone, so the max
    over neighbours commutes with it and a block is ``act(norm(a_i + max_j c_j))`` with
    ``a = (Theta - Phi) h``, ``c = Phi h``: one gather-max per block, nothing of size
    points x k x width is kept for the backward pass (:func:`gather_max`). The normalisation
    (BatchNorm) acts on nodes, after the max, instead of on edges: a deliberate change from
    DGCNN (measured in docs/BENCHMARKS.md). Without BatchNorm it equals DGCNN exactly.
  - ``split``: DGCNN exactly (BatchNorm over edges, ``edge_depth`` layers per edge), with the
    first Linear split per node (tested equal to torch-geometric's ``EdgeConv``).
  - ``pyg``: torch-geometric :class:`~torch_geometric.nn.EdgeConv` on edge lists, the position
    graph from a KD-tree on (eta, phi) without phi wrap-around: the implementation before the
    grid graph, kept as the benchmark baseline (scripts/bench_graph.py).
* Graphs per block (``dynamic_from``): ``position`` = the static (eta, phi) graph, read off the
  data's G x G grid and stored with the points (batch field ``nbr``, phi periodic; see
  :mod:`pfgraph.repr.graph`), or ``features`` = kNN on the block's input features (a dynamic
  graph, for the blocks from index ``dynamic_from`` on, rebuilt every step through :func:`pfgraph.repr.knn.knn_graph`, torch-cluster or the
  pure-torch backend: ``knn_backend``).
* The input features and every block's output are concatenated (skip connections) and an
  MLP head (``head`` widths, then Linear -> 1) predicts the normalised target per point.

Input: ``x`` (N, F) point features, ``pos`` (N, 2) positions, ``batch`` (N,) sorted event
index, optionally ``nbr`` (N, K) the stored static graph (built from ``pos`` when absent);
output (N,). The graph representation (:class:`pfgraph.repr.graph.GraphRepresentation`) builds
these from a batch. Every hyper-parameter lives in ``pfgraph/presets/model/edgeconv.yaml``.
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
from pfgraph.models.common import point_mlp
from pfgraph.models.registry import register
from pfgraph.repr.features import N_FEATURES, STATIC_K, STATIC_PHI_WRAP, grid_size_of_features
from pfgraph.repr.knn import edges_to_table, grid_knn, knn_graph, resolve_backend

GraphKind = Literal["position", "features"]


@dataclass
class EdgeConvConfig:
    """Hyper-parameters of :class:`EdgeConvNet` (``pfgraph/presets/model/edgeconv.yaml``)."""

    name: str = "edgeconv"
    #: neighbours per point (static graph and every dynamic graph)
    k: int = 12
    #: output width of each EdgeConv block; the number of entries is the depth
    widths: list[int] = field(default_factory=lambda: [64, 64, 64, 64])
    #: blocks from this index on (0 = the first) use kNN on their input features (dynamic graphs);
    #: the others the static (eta, phi) graph. null: static everywhere (DGCNN: 1)
    dynamic_from: int | None = None
    #: block implementation: "gather_max" (node-cost messages, normalisation on nodes), "split"
    #: (DGCNN exactly, first Linear split per node), "pyg" (torch-geometric EdgeConv: the baseline)
    impl: Literal["gather_max", "split", "pyg"] = "gather_max"
    #: Linear layers in each block's edge MLP ("split" and "pyg"; "gather_max" needs 1)
    edge_depth: int = 1
    #: hidden widths of the per-point head (a final Linear to 1 output follows)
    head: list[int] = field(default_factory=lambda: [128, 64])
    #: kNN backend of the dynamic graphs: "auto" (torch-cluster if importable), "torch_cluster" or "torch"
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

    def graphs(self) -> list[GraphKind]:
        """The graph of each block: ``position`` (static) or ``features`` (dynamic)."""
        first = len(self.widths) if self.dynamic_from is None else self.dynamic_from
        return ["position" if i < first else "features" for i in range(len(self.widths))]

    def validate(self) -> None:
        """Reject impossible values with one clear line."""
        if self.k < 1:
            raise ConfigError(f"model.k must be >= 1, got {self.k}")
        if not self.widths or any(w < 1 for w in self.widths):
            raise ConfigError(f"model.widths must be a non-empty list of positive widths, got {self.widths}")
        if self.dynamic_from is not None and self.dynamic_from < 0:
            raise ConfigError(f"model.dynamic_from must be >= 0 or null, got {self.dynamic_from}")
        if self.edge_depth < 1:
            raise ConfigError(f"model.edge_depth must be >= 1, got {self.edge_depth}")
        if self.impl == "gather_max" and self.edge_depth != 1:
            raise ConfigError("model.impl gather_max needs model.edge_depth = 1 (use impl: split for deeper edge MLPs)")
        need = self.k + (0 if self.loop else 1)
        if self.impl != "pyg" and "position" in self.graphs() and need > STATIC_K:
            raise ConfigError(f"model.k = {self.k} needs {need} stored neighbours per point, the static graph holds "
                              f"{STATIC_K} (pfgraph.repr.features.STATIC_K)")
        if any(w < 1 for w in self.head):
            raise ConfigError(f"model.head widths must be positive, got {self.head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.in_features < 1:
            raise ConfigError(f"model.in_features must be >= 1, got {self.in_features}")


def _mlp(sizes: list[int], cfg: EdgeConvConfig) -> nn.Sequential:
    return point_mlp(sizes, cfg.batch_norm, cfg.negative_slope, cfg.dropout)


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


class _GatherMax(torch.autograd.Function):
    """``max_j c[nbr[i, j]]`` per node and channel; the backward keeps only the (N, C) argmax."""

    @staticmethod
    def forward(ctx: Any, c: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:  # noqa: D102
        n, k = nbr.shape
        val, arg = c.index_select(0, nbr.reshape(-1)).view(n, k, c.size(1)).max(dim=1)  # (N, k, C) -> (N, C)
        src = torch.gather(nbr, 1, arg)  # (N, C) index of the winning neighbour per channel
        ctx.save_for_backward(src)
        ctx.n = c.size(0)
        return val

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        (src,) = ctx.saved_tensors
        out = grad.new_zeros(ctx.n, grad.size(1))
        out.scatter_add_(0, src, grad)
        return out, None


def gather_max(c: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
    """``out[i] = max_j c[nbr[i, j]]`` for ``c`` (N, C) and a full neighbour table ``nbr`` (N, k).

    The gradient goes to one maximal neighbour per node and channel (as torch-geometric's max
    aggregation). Memory kept for the backward pass: (N, C) indices. While exported to ONNX it is
    the plain gather and max (the same forward, without the custom backward).
    """
    if torch.onnx.is_in_onnx_export():
        n, k = nbr.shape
        return c.index_select(0, nbr.reshape(-1)).view(n, k, c.size(1)).amax(dim=1)
    return _GatherMax.apply(c, nbr)


def full_table(table: torch.Tensor) -> torch.Tensor:
    """Neighbour table with ``-1`` gaps -> every entry a real point (gaps repeat the row's first
    neighbour, or the point itself when it has none; a repeated neighbour does not change a max)."""
    if not torch.onnx.is_in_onnx_export() and (table.numel() == 0 or bool((table >= 0).all())):
        return table  # (an exported graph always fills: whether gaps exist is a property of the data)
    first = table[:, :1]
    first = torch.where(first >= 0, first, torch.arange(table.size(0), device=table.device)[:, None])
    return torch.where(table >= 0, table, first)


class NodeEdgeConv(nn.Module):
    """EdgeConv block with its first Linear applied per node: ``lin_i`` = Theta - Phi, ``lin_j`` = Phi.

    ``gather_max``: ``act(norm(lin_i(h)_i + max_j lin_j(h)_j))`` (one Linear + LeakyReLU message,
    normalisation on nodes). Otherwise the DGCNN block: per edge ``lin_i(h)_i + lin_j(h)_j`` then
    BatchNorm over edges, LeakyReLU, ``depth - 1`` more Linear + BatchNorm + LeakyReLU layers, and
    the max over neighbours.
    """

    def __init__(self, width_in: int, width: int, cfg: EdgeConvConfig, gather: bool) -> None:
        super().__init__()
        self.gather = gather
        self.lin_i = nn.Linear(width_in, width, bias=not cfg.batch_norm)
        self.lin_j = nn.Linear(width_in, width, bias=False)
        post: list[nn.Module] = []
        if cfg.batch_norm:
            post.append(nn.BatchNorm1d(width))
        post.append(nn.LeakyReLU(cfg.negative_slope))
        if cfg.dropout > 0:
            post.append(nn.Dropout(cfg.dropout))
        self.post = nn.Sequential(*post)
        self.edge = _mlp([width] * cfg.edge_depth, cfg)  # the deeper edge layers ("split" only)

    @torch.no_grad()
    def load_edgeconv_linear(self, linear: nn.Linear) -> None:
        """Take the weights of a Linear(2 C, W) acting on ``[h_i, h_j - h_i]`` (torch-geometric's EdgeConv)."""
        c = self.lin_i.in_features
        theta, phi = linear.weight[:, :c], linear.weight[:, c:]
        self.lin_i.weight.copy_(theta - phi)
        self.lin_j.weight.copy_(phi)
        if self.lin_i.bias is not None:
            self.lin_i.bias.copy_(linear.bias if linear.bias is not None else 0.0)

    def forward(self, h: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        """(N, C) node features, (N, k) full neighbour table -> (N, W)."""
        a, c = self.lin_i(h), self.lin_j(h)
        if self.gather:
            return self.post(a + gather_max(c, nbr))
        n, k = nbr.shape
        e = (a[:, None, :] + c.index_select(0, nbr.reshape(-1)).view(n, k, c.size(1))).reshape(n * k, c.size(1))
        e = self.edge(self.post(e))
        return e.reshape(n, k, e.size(1)).amax(dim=1)


_OUTPUTS: dict[str, type[nn.Module]] = {"none": nn.Identity, "relu": nn.ReLU, "softplus": nn.Softplus,
                                        "sigmoid": nn.Sigmoid}


class EdgeConvNet(nn.Module):
    """DGCNN with static or dynamic kNN graphs per block, skip-concatenated blocks and a per-point head."""

    def __init__(self, cfg: EdgeConvConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if "features" in cfg.graphs():
            resolve_backend(cfg.knn_backend)  # fail early on an unusable explicit backend
        self.convs = nn.ModuleList()
        width_in = cfg.in_features
        for w in cfg.widths:
            if cfg.impl == "pyg":
                self.convs.append(EdgeConv(_mlp([2 * width_in] + [w] * cfg.edge_depth, cfg),
                                           aggr=SortedMaxAggregation()))
            else:
                self.convs.append(NodeEdgeConv(width_in, w, cfg, gather=cfg.impl == "gather_max"))
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

    def feature_table(self, h: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """(N, k) full neighbour table of the kNN graph of ``h`` within events (dynamic graph)."""
        edges = knn_graph(h.detach(), self.cfg.k, batch, loop=self.cfg.loop, backend=self.cfg.knn_backend)
        return full_table(edges_to_table(edges, h.size(0), self.cfg.k))

    def position_table(self, pos: torch.Tensor, batch: torch.Tensor, nbr: torch.Tensor | None,
                       x: torch.Tensor | None = None) -> torch.Tensor:
        """(N, k) full neighbour table of the static (eta, phi) graph: the stored ``nbr`` columns, or
        built from ``pos`` on the grid when no table (or too narrow a one) is given (the grid size read
        off the point features ``x``, :func:`pfgraph.repr.features.grid_size_of_features`)."""
        k, loop = self.cfg.k, self.cfg.loop
        first = 0 if loop else 1  # column 0 of the stored table is the point itself
        if nbr is None or nbr.size(1) < first + k:
            size = grid_size_of_features(x) if x is not None and x.size(0) else None
            nbr = grid_knn(pos, first + k, batch, loop=True, phi_wrap=STATIC_PHI_WRAP, size=size)
        return full_table(nbr[:, first:first + k].long())

    def export_refusal(self) -> str | None:
        """Why this configuration cannot be exported to ONNX (``pfgraph export``), or None."""
        if self.cfg.impl == "pyg":
            return ("impl 'pyg' builds its graph with a KD-tree at run time (no ONNX operator); "
                    "export a gather_max or split configuration")
        if "features" in self.cfg.graphs():
            return (f"blocks from {self.cfg.dynamic_from} on use a dynamic kNN graph in feature space, and ONNX "
                    "has no kNN operator; only static (eta, phi) graphs (dynamic_from: null) export")
        return None

    def forward(self, x: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor,
                nbr: torch.Tensor | None = None) -> torch.Tensor:
        """(N, F) features, (N, 2) positions, (N,) sorted event index[, (N, K) static graph] -> (N,)."""
        if x.dim() != 2 or x.size(1) != self.cfg.in_features:
            raise ValueError(f"edgeconv expects (N, {self.cfg.in_features}) point features, got {tuple(x.shape)}")
        feats = [x]
        h = x
        static: torch.Tensor | None = None
        for conv, kind in zip(self.convs, self.cfg.graphs()):
            if self.cfg.impl == "pyg":
                h = conv(h, self.graph(pos if kind == "position" else h, batch))
            else:
                if kind == "position":
                    if static is None:
                        static = self.position_table(pos, batch, nbr, x)
                    table = static
                else:
                    table = self.feature_table(h, batch)
                h = conv(h, table)
            feats.append(h)
        return self.head(torch.cat(feats, dim=1)).reshape(-1)


def edgeconv_config(config: Mapping[str, Any]) -> EdgeConvConfig:
    """Validated :class:`EdgeConvConfig` from a plain mapping (unknown keys are an error)."""
    return from_dict(EdgeConvConfig, dict(config), "model")


@register("edgeconv", repr="graph",
          description="DGCNN: EdgeConv blocks (node-cost messages) on static grid / dynamic kNN graphs, per-point head")
def build_edgeconv(config: Mapping[str, Any]) -> EdgeConvNet:
    """Build the DGCNN from its config (``pfgraph/presets/model/edgeconv.yaml`` after overrides)."""
    return EdgeConvNet(edgeconv_config(config))
