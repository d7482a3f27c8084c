"""``pfn``: a Particle Flow Network (Deep Sets) for per-point energy regression on point clouds.

Komiske, Metodiev, Thaler, "Energy Flow Networks: Deep Sets for Particle Jets" (2019), made
per-point: the point-cloud analogue of the per-pixel MLP, with the event as context but no
neighbourhood graph. It answers what the graph of :mod:`pfgraph.models.edgeconv` buys.

* encoder Phi: per-point MLP of the input features -> ``encoder`` widths (last = latent size);
* pooling: permutation-invariant reductions of the latent vectors over each event (``pool``,
  any of ``mean``, ``max``, ``sum``; ``sum`` is divided by ``sum_scale`` points so its size stays
  near 1 for paper-mode events of ~1600 points);
* decoder F: per-point MLP of ``[input features, latent vector, pooled event context]`` ->
  ``decoder`` widths -> Linear -> 1, the normalised target per point.

Input: ``x`` (N, F) point features, ``pos`` (N, 2) positions and ``nbr`` (unused, accepted so
every graph model is called alike), ``batch`` (N,) sorted event index; output (N,).
Hyper-parameters: ``pfgraph/presets/model/pfn.yaml``.
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
    from torch_geometric.utils import segment

from pfgraph.config import from_dict
from pfgraph.errors import ConfigError
from pfgraph.models.common import point_mlp
from pfgraph.models.registry import register
from pfgraph.repr.features import N_FEATURES

_POOLS = ("mean", "max", "sum")
_OUTPUTS: dict[str, type[nn.Module]] = {"none": nn.Identity, "relu": nn.ReLU, "softplus": nn.Softplus,
                                        "sigmoid": nn.Sigmoid}


@dataclass
class PFNConfig:
    """Hyper-parameters of :class:`PFN` (``pfgraph/presets/model/pfn.yaml``)."""

    name: str = "pfn"
    #: widths of the per-point encoder; the last is the latent size pooled per event
    encoder: list[int] = field(default_factory=lambda: [64, 128, 128])
    #: per-event pooling of the latent vectors (concatenated): any of mean, max, sum
    pool: list[Literal["mean", "max", "sum"]] = field(default_factory=lambda: ["mean", "max"])
    #: the sum pool is divided by this many points
    sum_scale: float = 1000.0
    #: hidden widths of the per-point decoder (a final Linear to 1 output follows)
    decoder: list[int] = field(default_factory=lambda: [128, 64])
    negative_slope: float = 0.2
    batch_norm: bool = True
    dropout: float = 0.0
    #: per-point input features (the graph representation gives 8)
    in_features: int = N_FEATURES
    #: activation on the output: none (linear), relu, softplus or sigmoid
    output: Literal["none", "relu", "softplus", "sigmoid"] = "none"

    def validate(self) -> None:
        """Reject impossible values with one clear line."""
        if not self.encoder or any(w < 1 for w in self.encoder):
            raise ConfigError(f"model.encoder must be a non-empty list of positive widths, got {self.encoder}")
        if not self.pool or len(set(self.pool)) != len(self.pool):
            raise ConfigError(f"model.pool must list distinct poolings among {', '.join(_POOLS)}, got {self.pool}")
        if self.sum_scale <= 0:
            raise ConfigError(f"model.sum_scale must be positive, got {self.sum_scale}")
        if any(w < 1 for w in self.decoder):
            raise ConfigError(f"model.decoder widths must be positive, got {self.decoder}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.in_features < 1:
            raise ConfigError(f"model.in_features must be >= 1, got {self.in_features}")


def _mlp(sizes: list[int], cfg: PFNConfig) -> nn.Sequential:
    return point_mlp(sizes, cfg.batch_norm, cfg.negative_slope, cfg.dropout)


def event_pointer(batch: torch.Tensor) -> torch.Tensor:
    """Offsets (E+1,) of the events of a sorted event vector (E = last event + 1)."""
    n_events = int(batch[-1]) + 1 if batch.numel() else 0
    ptr = torch.zeros(n_events + 1, dtype=torch.long, device=batch.device)
    torch.cumsum(torch.bincount(batch, minlength=n_events), 0, out=ptr[1:])
    return ptr


class PFN(nn.Module):
    """Per-point encoder, per-event pooling, per-point decoder that sees the event's pooled context."""

    def __init__(self, cfg: PFNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = _mlp([cfg.in_features, *cfg.encoder], cfg)
        latent = cfg.encoder[-1]
        width = cfg.in_features + latent + latent * len(cfg.pool)
        self.decoder = nn.Sequential(_mlp([width, *cfg.decoder], cfg), nn.Linear([width, *cfg.decoder][-1], 1),
                                     _OUTPUTS[cfg.output]())

    def pooled(self, h: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """(N, L) latent vectors -> (E, L * len(pool)) per-event context.

        While exported to ONNX (``pfgraph export``) the number of events is not a constant of the
        graph: the poolings are scatters into N rows (N >= E; rows past the last event stay unused),
        the same values as the segment reductions (tests/training/test_export.py)."""
        if torch.onnx.is_in_onnx_export():
            return self._scatter_pooled(h, batch)
        ptr = event_pointer(batch)
        parts = []
        for kind in self.cfg.pool:
            if kind == "sum":
                parts.append(segment(h, ptr, reduce="sum") / self.cfg.sum_scale)
            else:
                parts.append(segment(h, ptr, reduce=kind))
        return torch.cat(parts, dim=1)

    def _scatter_pooled(self, h: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """:meth:`pooled` as scatters over ``batch`` into (N, L * len(pool)) rows (export form)."""
        index = batch[:, None].expand_as(h)
        total = torch.zeros_like(h).scatter_add(0, index, h)
        parts = []
        for kind in self.cfg.pool:
            if kind == "sum":
                parts.append(total / self.cfg.sum_scale)
            elif kind == "mean":
                count = torch.zeros_like(h[:, :1]).scatter_add(0, batch[:, None], torch.ones_like(h[:, :1]))
                parts.append(total / count.clamp(min=1.0))
            else:
                parts.append(torch.full_like(h, float("-inf")).scatter_reduce(0, index, h, reduce="amax"))
        return torch.cat(parts, dim=1)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor,
                nbr: torch.Tensor | None = None) -> torch.Tensor:
        """(N, F) features, (N, 2) positions (unused), (N,) sorted event index -> (N,) per-point output."""
        if x.dim() != 2 or x.size(1) != self.cfg.in_features:
            raise ValueError(f"pfn expects (N, {self.cfg.in_features}) point features, got {tuple(x.shape)}")
        if x.size(0) == 0 and not torch.onnx.is_in_onnx_export():
            return x.new_zeros(0)
        batch = batch.long()
        h = self.encoder(x)
        context = self.pooled(h, batch)[batch]
        return self.decoder(torch.cat([x, h, context], dim=1)).reshape(-1)


def pfn_config(config: Mapping[str, Any]) -> PFNConfig:
    """Validated :class:`PFNConfig` from a plain mapping (unknown keys are an error)."""
    return from_dict(PFNConfig, dict(config), "model")


@register("pfn", repr="graph",
          description="Particle Flow Network (Deep Sets): per-point encoder, per-event pooling, per-point decoder")
def build_pfn(config: Mapping[str, Any]) -> PFN:
    """Build the PFN from its config (``pfgraph/presets/model/pfn.yaml`` after overrides)."""
    return PFN(pfn_config(config))
