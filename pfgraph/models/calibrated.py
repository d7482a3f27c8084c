"""Learned per-pixel calibration weights on the analytic inversion: a model that extrapolates.

The idea is ATLAS's local cell weighting applied to this detector: an energy estimate is built
from the inputs by physics (here :class:`~pfgraph.models.analytic.AnalyticInversion`, which
inverts the simulated response and subtracts the tracks' expected deposits), and a network
predicts one multiplicative weight per pixel from the local pattern of deposits:

    E_pred = A(x) * exp(alpha * tanh(z(x))),     z = a dilated residual CNN

so the prediction scales with the measured energy instead of being bounded by the training
range (a sigmoid output cannot exceed the training-set maximum S, and Pythia jet cores do).
The network sees scale-free inputs: ``log1p(E / e0)`` of the four channels and of the analytic
estimate, so a 100 GeV jet core is a shifted, not an unseen, input. Its last layer starts at
zero, so an untrained model *is* the analytic inversion; training can only move each weight
within ``[exp(-alpha), exp(alpha)]``. Pixels where the estimate is zero stay zero (no fake
energy beyond the analytic inversion's support).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from pfgraph.models.analytic import AnalyticInversion, analytic_from_config
from pfgraph.models.registry import register


class _ResBlock(nn.Module):
    """Two 3x3 convolutions (dilated) with a skip: x + conv(act(conv(act(x))))."""

    def __init__(self, channels: int, dilation: int, negative_slope: float) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.c2 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c2(self.act(self.c1(self.act(x))))


class CalibratedAnalytic(nn.Module):
    """Analytic inversion times learned per-pixel weights (see the module docstring)."""

    def __init__(self, detector: Mapping[str, float], channels: int = 16, dilations: tuple[int, ...] = (1, 2, 4, 8),
                 alpha: float = math.log(2.0), log_e0: float = 0.5, negative_slope: float = 0.01) -> None:
        super().__init__()
        if channels <= 0 or not dilations or alpha <= 0 or log_e0 <= 0:
            raise ValueError("calibrated: channels > 0, at least one dilation, alpha > 0 and log_e0 > 0 are required")
        self.analytic = AnalyticInversion(detector)
        self.alpha, self.log_e0 = float(alpha), float(log_e0)
        self.stem = nn.Conv2d(5, channels, 3, padding=1)
        self.blocks = nn.Sequential(*(_ResBlock(channels, int(d), negative_slope) for d in dilations))
        self.head = nn.Conv2d(channels, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def configure_from_data(self, meta: Mapping[str, Any], norm: Any) -> None:
        """The analytic part takes its scales and detector constants from the training data."""
        self.analytic.configure_from_data(meta, norm)

    def weights(self, x: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        """Per-pixel weights (B, 1, G, G) for normalised inputs and the normalised analytic estimate."""
        a = self.analytic
        gev = x * a.input_scale.view(1, 4, 1, 1).to(x.dtype)
        est_gev = estimate * a.target_scale.to(x.dtype)
        feats = torch.log1p(torch.cat([gev, est_gev], dim=1).clamp(min=0.0) / self.log_e0)
        z = self.head(self.blocks(self.stem(feats)))
        return torch.exp(self.alpha * torch.tanh(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4, G, G) normalised inputs -> (B, 1, G, G) normalised truth."""
        with torch.no_grad():
            estimate = self.analytic(x)
        return estimate * self.weights(x, estimate)


@register("calibrated", repr="image",
          description="analytic inversion x learned per-pixel calibration weights, local cell weighting; varies analytic (improved)")
def build_calibrated(config: Mapping[str, Any]) -> CalibratedAnalytic:
    """Build the calibrated analytic model from its config (channels, dilations, alpha, log_e0)."""
    return CalibratedAnalytic(analytic_from_config(config), channels=int(config.get("channels", 16)),
                              dilations=tuple(int(d) for d in config.get("dilations", (1, 2, 4, 8))),
                              alpha=float(config.get("alpha", math.log(2.0))),
                              log_e0=float(config.get("log_e0", 0.5)),
                              negative_slope=float(config.get("negative_slope", 0.01)))


def _points_on_grids(x: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The points' four input energies scattered onto their events' grids, (E, 4, G, G) with G read
    off the features (:func:`pfgraph.repr.features.grid_size_of_features`), and each point's flat
    index ``event * G * G + pixel`` to gather a (E, G, G) map back at the points.

    ``batch`` is sorted (events in order, as graph batches are). The number of events is taken from
    ``batch`` as a tensor (its last entry + 1) and the grids are one flat buffer written with flat
    indices, so an ONNX export keeps the number of events and points dynamic (no Python int of a
    tensor, no multi-dimensional index_put)."""
    from pfgraph.repr.features import FEATURES, grid_size_of_features

    n_side = grid_size_of_features(x)
    npix = n_side * n_side
    ieta = torch.round(x[:, FEATURES.index("ieta")] * n_side).long()
    iphi = torch.round(x[:, FEATURES.index("iphi")] * n_side).long()
    pix = ieta * n_side + iphi
    b = batch.long()
    n_flat = (b[-1] + 1) * (4 * npix)  # a 0-d tensor: traced, not frozen
    flat = torch.zeros_like(torch.arange(n_flat, device=x.device), dtype=x.dtype)
    channel = torch.arange(4, device=x.device)
    index = ((b.unsqueeze(1) * 4 + channel) * npix + pix.unsqueeze(1)).reshape(-1)
    flat = flat.scatter(0, index, x[:, :4].reshape(-1))
    return flat.view(-1, 4, n_side, n_side), b * npix + pix


def analytic_at_points(analytic: AnalyticInversion, x: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """The analytic estimate (normalised) at every point: the points' inputs scattered onto their
    events' grids, inverted there (a fixed physics function, no gradient), gathered back."""
    if x.size(0) == 0:
        return x.new_zeros(0)
    grids, at = _points_on_grids(x, batch)
    with torch.no_grad():
        est = analytic(grids)
    return est.reshape(-1)[at]


def analytic_parts_at_points(analytic: AnalyticInversion, x: torch.Tensor, batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """:meth:`AnalyticInversion.parts` at every point (each a (N,) float64 map in GeV), computed on the
    events' grids as :func:`analytic_at_points` does."""
    grids, at = _points_on_grids(x, batch)
    with torch.no_grad():
        parts = analytic.parts(grids)
    return {k: v.reshape(-1)[at] for k, v in parts.items()}


class _NodeBlock(nn.Module):
    """h_i + act(norm(A h_i + max_{j in N(i)} C h_j)): one message-passing step on a fixed neighbour table."""

    def __init__(self, width: int, negative_slope: float) -> None:
        super().__init__()
        self.self_lin = nn.Linear(width, width)
        self.nbr_lin = nn.Linear(width, width, bias=False)
        self.norm = nn.BatchNorm1d(width)
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, h: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        m = self.nbr_lin(h)
        nb = nbr.long()
        valid = nb >= 0
        # The max over each point's neighbours, channel by channel. The (N, k, C) candidates are only
        # needed to find which neighbour wins (no gradient); the winners are then gathered as an
        # (N, C) tensor, so the backward pass scatters N x C values, not N x k x C (the gather-max
        # with autograd through the candidates took most of a training step on CPU).
        with torch.no_grad():
            candidates = m.detach().float()[nb.clamp(min=0)].masked_fill(~valid.unsqueeze(-1), float("-inf"))
            source = nb.clamp(min=0).gather(1, candidates.max(dim=1).indices)  # (N, C): the winning neighbour
        gathered = m.gather(0, source)
        gathered = torch.where(valid.any(dim=1, keepdim=True), gathered, torch.zeros_like(gathered))
        return h + self.act(self.norm(self.self_lin(h) + gathered))


class CalibratedGNN(nn.Module):
    """The calibrated analytic model on point clouds: per-point weights from a grid-graph network.

    The points' energies are scattered onto the event's grid once to build the analytic estimate
    (a fixed physics function of the inputs, not learned), which is gathered back at the points;
    a message-passing network over each point's static (eta, phi) neighbours (the graph
    representation's ``nbr`` table) predicts ``E_pred = A * exp(alpha * tanh(z))`` per point, as
    :class:`CalibratedAnalytic` does per pixel.
    """

    def __init__(self, detector: Mapping[str, float], width: int = 32, blocks: int = 3, alpha: float = math.log(2.0),
                 log_e0: float = 0.5, negative_slope: float = 0.01) -> None:
        super().__init__()
        if width <= 0 or blocks < 1 or alpha <= 0 or log_e0 <= 0:
            raise ValueError("calibrated_gnn: width > 0, blocks >= 1, alpha > 0 and log_e0 > 0 are required")
        self.analytic = AnalyticInversion(detector)
        self.alpha, self.log_e0 = float(alpha), float(log_e0)
        self.embed = nn.Linear(7, width)
        self.blocks = nn.ModuleList(_NodeBlock(width, negative_slope) for _ in range(blocks))
        self.head = nn.Linear(width, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def configure_from_data(self, meta: Mapping[str, Any], norm: Any) -> None:
        """The analytic part takes its scales and detector constants from the training data."""
        self.analytic.configure_from_data(meta, norm)

    def estimate(self, x: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """Analytic estimate (normalised) at every point (:func:`analytic_at_points`)."""
        return analytic_at_points(self.analytic, x, batch)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor,
                nbr: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 8) point features, (N, 2) positions, (N,) event index, (N, k) neighbours -> (N,) normalised truth."""
        if nbr is None:
            raise ValueError("calibrated_gnn needs the static (eta, phi) neighbour table 'nbr' of the graph batches")
        if x.size(0) == 0:
            return x.new_zeros(0)
        est = self.estimate(x, batch)
        a = self.analytic
        gev = x[:, :4] * a.input_scale.view(1, 4).to(x.dtype)
        feats = torch.log1p(torch.cat([gev, (est * a.target_scale.to(x.dtype))[:, None]], dim=1).clamp(min=0.0)
                            / self.log_e0)
        h = self.embed(torch.cat([feats, x[:, 4:6]], dim=1))
        for block in self.blocks:
            h = block(h, nbr)
        z = self.head(h).reshape(-1)
        return est * torch.exp(self.alpha * torch.tanh(z))


@register("calibrated_gnn", repr="graph",
          description="analytic inversion x learned per-point calibration weights from message passing on the "
          "static (eta, phi) grid graph; varies analytic and edgeconv (improved)")
def build_calibrated_gnn(config: Mapping[str, Any]) -> CalibratedGNN:
    """Build the graph calibrated model from its config (width, blocks, alpha, log_e0)."""
    return CalibratedGNN(analytic_from_config(config), width=int(config.get("width", 32)),
                         blocks=int(config.get("blocks", 3)), alpha=float(config.get("alpha", math.log(2.0))),
                         log_e0=float(config.get("log_e0", 0.5)),
                         negative_slope=float(config.get("negative_slope", 0.01)))
