"""Losses aligned with the evaluation's figures (``train.loss=rel_huber``).

The paper's MSE on normalised energy weighs a 20 GeV pixel 400 times a 1 GeV one, while the
ranking figure, the relative residual r = (E_pred - E_true) / E_true, weighs every truth pixel
alike. :class:`RelativeHuberLoss` is a per-element loss on the relative error plus a stated
penalty on energy predicted where there is none:

    l = Huber_delta(log((E_pred + eps) / (E_true + eps)))   x 1             (E_true > 0)
                                                              x empty_weight (E_true = 0)

For a truth pixel, log((E_pred + eps) / (E_true + eps)) ~ r for |r| small and E_true >> eps; for
an empty pixel it is log(1 + E_pred / eps), so a fake deposit of eps costs what a factor-2 miss
on a truth pixel costs, and larger fakes grow logarithmically (linearly in the log beyond
``delta``: Huber). The loss is computed in GeV: the model's outputs and targets are divided by the
target scale S, and ``eps`` (``train.rel_eps_gev``) is divided by S too, so the ratio is that of
the energies in GeV and the loss is the same for every S. Predictions below zero count as zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RelativeHuberLoss(nn.Module):
    """Huber on log((pred + eps) / (target + eps)), empty targets weighted by ``empty_weight`` (see module docstring).

    ``eps_gev``: eps in GeV; ``target_scale``: S in GeV (outputs and targets are energies / S).
    """

    def __init__(self, eps_gev: float, delta: float, empty_weight: float, target_scale: float,
                 reduction: str = "mean") -> None:
        super().__init__()
        if not (eps_gev > 0 and delta > 0 and empty_weight >= 0 and target_scale > 0):
            raise ValueError("rel_huber: eps_gev > 0, delta > 0, empty_weight >= 0 and target_scale > 0 are required")
        self.eps = float(eps_gev) / float(target_scale)
        self.delta, self.empty_weight, self.reduction = float(delta), float(empty_weight), reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Elementwise loss, reduced by ``reduction`` (``mean`` | ``sum`` | ``none``)."""
        t = target.clamp(min=0.0)
        d = torch.log(pred.clamp(min=0.0) + self.eps) - torch.log(t + self.eps)
        loss = F.huber_loss(d, torch.zeros_like(d), reduction="none", delta=self.delta)
        if self.empty_weight != 1.0:
            loss = loss * torch.where(t > 0, torch.ones_like(t), torch.full_like(t, self.empty_weight))
        if self.reduction == "none":
            return loss
        return loss.sum() if self.reduction == "sum" else loss.mean()
