"""The paper's v2 loss (``train.loss=mixed_mse``): weighted MSE plus an SSIM term, as the authors'
v2 code defines its ``MixedMSE`` (arXiv:2410.07250 v2; the repository
"Computer-Vision-for-Full-Event-Particle-Flow-Energy-Reconstruction", ``model/train_and_eval.py``,
used in its ``model/main.py`` as ``MixedMSE(1, 0.05)``). Our own implementation of their definition.

Per event e (images y_pred, y_true of H x W normalised energies, E / S with S the training set's
largest truth pixel, so in [0, 1] as the authors' max-min normalised images):

    wmse_e = sum_ij y_true (y_pred - y_true)^2 / (sum_ij y_true + 1e-8)      (truth-energy weights)
    loss   = w_wmse x mean_e wmse_e + w_ssim x (1 - SSIM)

with w_wmse = ``train.wmse_weight`` (1.0) and w_ssim = ``train.ssim_weight`` (0.05), the authors'
values. SSIM is theirs exactly, including what their code does beyond its comments:

- the window is a 1 x 11 Gaussian (sigma 1.5) along the image's last axis: their kernel is
  built 1-D (``view(1, 1, -1)``, then ``unsqueeze(1)``: shape (1, 1, 1, 11)) though its comment says
  11 x 11;
- ``conv2d`` pads 5 zeros on both axes, so the local statistics near the left and right edges see
  zeros, and the SSIM map has H + 10 rows: 5 rows of padding above and below, where both images are
  zero and the local SSIM is exactly (C1 C2) / (C1 C2) = 1;
- SSIM is the mean of that (H + 10) x W map over the batch, with C1 = 0.01^2 and C2 = 0.03^2 (a data
  range of 1, as the normalised images have). The padded rows dilute the structural term by
  H / (H + 10) (0.85 on the paper's grid).

The loss is per event (the SSIM of an image is the mean of its own map), so the batch mean is the
mean over events. ``reduction="sum"`` returns the per-event losses summed, each times the elements
of one target image, so that the trainer's validation (a sum divided by the number of target
elements) is the mean per event, as for the element-wise losses. It needs image targets
(B, 1, H, W) or (B, H, W): point-cloud models and ``train.reweight`` (element weights) are refused
by the train config.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: The authors' SSIM constants: an 11-tap Gaussian window of sigma 1.5, C1 = 0.01^2, C2 = 0.03^2.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2
#: The guard of the weighted MSE's denominator (normalised units), as the authors'.
WMSE_EPS = 1e-8


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """The normalised 1-D Gaussian window as a ``conv2d`` weight of shape (1, 1, 1, size)."""
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-x * x / (2.0 * sigma * sigma))
    return (g / g.sum()).view(1, 1, 1, size)


def _images(t: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) or (B, H, W) -> (B, 1, H, W); a clear error for anything else."""
    if t.dim() == 3:
        return t.unsqueeze(1)
    if t.dim() == 4 and t.shape[1] == 1:
        return t
    raise ValueError(f"mixed_mse needs image targets (B, 1, H, W) or (B, H, W); got shape {tuple(t.shape)}")


def ssim_per_image(pred: torch.Tensor, target: torch.Tensor, size: int = SSIM_WINDOW,
                   sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Each image's SSIM as the authors compute it (module docstring): the mean of the SSIM map of
    a 1 x ``size`` Gaussian window, zero padding ``size // 2`` on both axes, over its (H + 2p) x W
    entries. Shape (B,)."""
    a, b = _images(pred), _images(target)
    w = gaussian_window(size, sigma).to(device=a.device, dtype=a.dtype)
    pad = size // 2

    def local(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, padding=pad)

    mu_a, mu_b = local(a), local(b)
    var_a = local(a * a) - mu_a * mu_a
    var_b = local(b * b) - mu_b * mu_b
    cov = local(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)) / (
        (mu_a * mu_a + mu_b * mu_b + SSIM_C1) * (var_a + var_b + SSIM_C2))
    return ssim_map.flatten(1).mean(dim=1)


def weighted_mse_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each image's squared error weighted by the truth energy and divided by the image's total truth
    energy (+ 1e-8). Shape (B,)."""
    a, b = _images(pred).flatten(1), _images(target).flatten(1)
    return (b * (a - b) ** 2).sum(dim=1) / (b.sum(dim=1) + WMSE_EPS)


class MixedMSELoss(nn.Module):
    """The paper's v2 loss: ``wmse_weight`` x weighted MSE + ``ssim_weight`` x (1 - SSIM), per event
    (see the module docstring). ``reduction``: ``mean`` (over events) or ``sum`` (per-event losses
    times the elements of one target image, summed)."""

    def __init__(self, wmse_weight: float = 1.0, ssim_weight: float = 0.05, reduction: str = "mean") -> None:
        super().__init__()
        if not (wmse_weight >= 0 and ssim_weight >= 0 and wmse_weight + ssim_weight > 0):
            raise ValueError("mixed_mse: wmse_weight and ssim_weight must be >= 0, not both 0")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"mixed_mse: reduction '{reduction}' (a per-event loss: mean or sum)")
        self.wmse_weight, self.ssim_weight, self.reduction = float(wmse_weight), float(ssim_weight), reduction

    def per_event(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Each event's loss, shape (B,)."""
        loss = self.wmse_weight * weighted_mse_per_image(pred, target)
        if self.ssim_weight:
            loss = loss + self.ssim_weight * (1.0 - ssim_per_image(pred, target))
        return loss

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The batch's loss, reduced by ``reduction``."""
        per = self.per_event(pred, target)
        if self.reduction == "sum":
            return per.sum() * (target.numel() // max(target.shape[0], 1))
        return per.mean()
