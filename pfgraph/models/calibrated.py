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
        """Per-pixel weights (B, 1, 56, 56) for normalised inputs and the normalised analytic estimate."""
        a = self.analytic
        gev = x * a.input_scale.view(1, 4, 1, 1).to(x.dtype)
        est_gev = estimate * a.target_scale.to(x.dtype)
        feats = torch.log1p(torch.cat([gev, est_gev], dim=1).clamp(min=0.0) / self.log_e0)
        z = self.head(self.blocks(self.stem(feats)))
        return torch.exp(self.alpha * torch.tanh(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4, 56, 56) normalised inputs -> (B, 1, 56, 56) normalised truth."""
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
