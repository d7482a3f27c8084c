"""Losses aligned with the evaluation's figures (``train.loss=rel_huber``).

The paper's MSE on normalised energy weighs a 20 GeV pixel 400 times a 1 GeV one, while the
ranking figure, the relative residual r = (E_pred - E_true) / E_true, weighs every truth pixel
alike. :class:`RelativeHuberLoss` is a per-element loss on the relative error over truth pixels
plus a stated penalty on the energy predicted where there is none:

    l = Huber_delta(log((E_pred + eps) / (E_true + eps)))                  (E_true > 0)
    l = empty_weight x Huber_delta(log(1 + E_pred / eps))                  (E_true = 0)

For a truth pixel, log((E_pred + eps) / (E_true + eps)) ~ r for |r| small and E_true >> eps
(``eps`` = ``train.rel_eps_gev`` keeps the smallest pixels finite; beyond ``delta`` =
``train.rel_delta`` the loss is linear in the log, so missed pixels do not dominate). An empty pixel
costs the same term with E_true = 0 (a fake of eps costs what a factor-2 miss costs), weighted by
``train.empty_weight``. Its default, 0.05, comes from a 600-event probe (B = 0.5, paper mode): with
weight 1 the empty-pixel term was ~80 % of the loss of the analytic inversion, and training traded
truth pixels for fakes (fake energy 3.8 % -> 1.8 %, r 68 % half-width 0.070 -> 0.105, a state the
weight-1 loss ranked better than the analytic inversion); with 0.05 the loss ranks the two as r
does. A penalty linear in the fake energy was rejected: near zero it costs less than the missed
truth pixels gain, so spraying a little energy into every empty pixel pays. The weights are a
reasoned starting point, not a measured optimum (``scripts/bench_residual.py --overrides``).

The loss is computed in GeV: the model's outputs and targets are energies divided by the target
scale S, so ``eps`` is divided by S and the ratio is that of the energies in GeV; the loss is the
same for every S. Predictions below zero count as zero.

A per-pixel loss does not see sums: a correction that is right on average per pixel can still move
a jet's energy coherently. :class:`ConeSumLoss` (``train.cone_weight`` > 0, added to the configured
loss) compares the energy summed in a cone of radius R around every pixel whose true cone holds at
least ``cone_min_gev``: the same Huber on log((P + eps) / (T + eps)), averaged over those cones. The
cones are the grid's own (the pixels whose centres lie within R in eta-phi, phi wrapping round), so
the term is the same for an image and for a point cloud scattered to the grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pfgraph.geometry import Grid


class RelativeHuberLoss(nn.Module):
    """Huber on log((pred + eps) / (target + eps)), empty targets weighted by ``empty_weight`` (see the
    module docstring).

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
        loss = torch.where(t > 0, loss, self.empty_weight * loss)
        if self.reduction == "none":
            return loss
        return loss.sum() if self.reduction == "sum" else loss.mean()


def cone_kernel(grid: Grid, radius: float) -> torch.Tensor:
    """(2a + 1, 2b + 1) float mask of the pixel offsets (d_eta, d_phi) of a cone of ``radius`` on
    ``grid`` (:meth:`pfgraph.geometry.Grid.cone_offsets`, the evaluation's cones)."""
    de, dp = grid.cone_offsets(radius)
    a, b = int(abs(de).max()), int(abs(dp).max())
    kernel = torch.zeros(2 * a + 1, 2 * b + 1)
    kernel[torch.as_tensor(de + a), torch.as_tensor(dp + b)] = 1.0
    return kernel


def cone_sums(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """(B, G, G) images [eta, phi] -> the sum in the cone around every pixel, (B, G, G): zero beyond
    the eta edges, phi wrapping round."""
    a, b = (kernel.shape[0] - 1) // 2, (kernel.shape[1] - 1) // 2
    x = images[:, None]
    x = F.pad(x, (b, b, 0, 0), mode="circular") if b else x
    x = F.pad(x, (0, 0, a, a))
    return F.conv2d(x, kernel.to(x.dtype)[None, None])[:, 0]


class ConeSumLoss(nn.Module):
    """The cone-sum term (module docstring): ``forward(pred, truth)`` on (B, G, G) normalised grids
    -> the mean Huber (``delta``) of log((P + eps) / (T + eps)) over the cones whose true sum is at
    least ``min_gev`` (0 without any such cone). ``target_scale``: S in GeV; ``eps_gev``: eps in GeV."""

    def __init__(self, grid: Grid, radius: float, min_gev: float, eps_gev: float, delta: float,
                 target_scale: float) -> None:
        super().__init__()
        if not (radius > 0 and min_gev > 0 and eps_gev > 0 and delta > 0 and target_scale > 0):
            raise ValueError("cone loss: radius, min_gev, eps_gev, delta and target_scale must be > 0")
        self.register_buffer("kernel", cone_kernel(grid, radius), persistent=False)
        self.min = float(min_gev) / float(target_scale)
        self.eps = float(eps_gev) / float(target_scale)
        self.delta = float(delta)

    def forward(self, pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        """The term (a scalar; see the class docstring)."""
        t = cone_sums(truth.clamp(min=0.0), self.kernel)
        use = t >= self.min
        if not bool(use.any()):
            return pred.sum() * 0.0  # keeps the graph (and the device) when no cone counts
        p = cone_sums(pred.clamp(min=0.0), self.kernel)
        d = torch.log(p[use] + self.eps) - torch.log(t[use] + self.eps)
        return F.huber_loss(d, torch.zeros_like(d), delta=self.delta)
