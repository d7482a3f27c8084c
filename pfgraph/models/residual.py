"""Residual models: the analytic inversion plus a learned, unbounded correction from the neighbourhood.

One head, one loss and one feature set for both representations; only the context network differs
(image convolutions for ``residual_cnn``, message passing on the static (eta, phi) grid graph for
``residual_gnn``), so comparing the two compares representations. Per pixel (image) or point
(graph), in GeV:

    E_pred = relu(A * exp(a) + e0 * b)

* ``A``: the analytic inversion of the detector response (:class:`~pfgraph.models.analytic.AnalyticInversion`,
  the one implementation; on a point cloud it is computed on the event's grid and gathered back at
  the points, :func:`~pfgraph.models.calibrated.analytic_at_points`).
* ``a``, ``b``: the two outputs of a linear head on the context network's features; ``e0`` (GeV,
  ``add_scale``) sets the unit of the additive term.
* Features: ``log1p(E / log_e0)`` of the four input channels and of ``A`` (the analytic estimate is
  an extra image channel / point feature), so the network sees scale-free inputs.

The correction is unbounded: no sigmoid x S, no clamp of the weight, so a pixel can exceed the
training range S; ``A * exp(a) + e0 * b <= 0`` sets a pixel to exactly zero (less fake energy),
and ``b > 0`` gives energy to a pixel the formula leaves empty (fewer missed truth pixels). The
head starts at zero, so an untrained model returns ``relu(A * 1 + e0 * 0) = A`` bit for bit: it
*is* the analytic inversion (tested). Below zero the relu passes upward gradients only, scaled by
``leak`` (a zeroed or empty pixel whose truth is not empty can come back; its forward value stays
exactly zero).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from pfgraph.models.analytic import AnalyticInversion, analytic_from_config
from pfgraph.models.calibrated import _NodeBlock, _ResBlock, analytic_at_points
from pfgraph.models.registry import register


class _UpwardLeakyReLU(torch.autograd.Function):
    """``relu(z)`` forward; backward the relu's gradient above zero and ``leak`` times the upward
    part of the gradient below it (the loss can raise a zeroed pixel, never push it further down)."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, leak: float) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(z)
        ctx.leak = leak
        return z.clamp(min=0.0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        (z,) = ctx.saved_tensors
        return torch.where(z > 0, grad, ctx.leak * grad.clamp(max=0.0)), None


class ResidualHead(nn.Module):
    """The shared head: features (..., width) and the analytic estimate (...) -> the prediction (...).

    Normalised units in and out (``A`` and the prediction divided by the target scale S); the
    additive unit ``add_scale`` GeV is divided by S here, so the head is the same in GeV for every S.
    """

    def __init__(self, width: int, add_scale: float, leak: float, negative_slope: float) -> None:
        super().__init__()
        if width <= 0 or add_scale <= 0 or not 0 <= leak <= 1:
            raise ValueError("residual head: width > 0, add_scale > 0 and 0 <= leak <= 1 are required")
        self.act = nn.LeakyReLU(negative_slope)
        self.out = nn.Linear(width, 2)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.add_scale, self.leak = float(add_scale), float(leak)

    def forward(self, h: torch.Tensor, estimate: torch.Tensor, target_scale: torch.Tensor) -> torch.Tensor:
        """``relu(A * exp(a) + e0 / S * b)`` with ``(a, b)`` the linear map of ``act(h)``."""
        ab = self.out(self.act(h))
        a, b = ab[..., 0], ab[..., 1]
        z = estimate * torch.exp(a) + (self.add_scale / target_scale.to(estimate.dtype)) * b
        return _UpwardLeakyReLU.apply(z, self.leak)


class _ResidualBase(nn.Module):
    """What both residual models share: the analytic inversion, the input features and the head."""

    def __init__(self, detector: Mapping[str, float], width: int, log_e0: float, add_scale: float, leak: float,
                 negative_slope: float) -> None:
        super().__init__()
        if log_e0 <= 0:
            raise ValueError("residual models: log_e0 > 0 is required")
        self.analytic = AnalyticInversion(detector)
        self.log_e0 = float(log_e0)
        self.head = ResidualHead(width, add_scale, leak, negative_slope)

    def configure_from_data(self, meta: Mapping[str, Any], norm: Any) -> None:
        """The analytic part takes its scales and detector constants from the training data."""
        self.analytic.configure_from_data(meta, norm)

    def features(self, inputs: torch.Tensor, estimate: torch.Tensor, dim: int) -> torch.Tensor:
        """``log1p(E / log_e0)`` of the four normalised inputs (channels along ``dim``) and of the
        normalised analytic estimate, all in GeV first: five features along ``dim``."""
        a = self.analytic
        shape = [1] * inputs.dim()
        shape[dim] = 4
        gev = inputs * a.input_scale.view(shape).to(inputs.dtype)
        est = (estimate * a.target_scale.to(inputs.dtype)).unsqueeze(dim)
        return torch.log1p(torch.cat([gev, est], dim=dim).clamp(min=0.0) / self.log_e0)


class ResidualCNN(_ResidualBase):
    """The residual model on images: dilated residual 3x3 convolutions give each pixel its context."""

    def __init__(self, detector: Mapping[str, float], channels: int = 32, dilations: tuple[int, ...] = (1, 2, 4),
                 log_e0: float = 0.5, add_scale: float = 1.0, leak: float = 0.1, negative_slope: float = 0.01) -> None:
        super().__init__(detector, channels, log_e0, add_scale, leak, negative_slope)
        if channels <= 0 or not dilations:
            raise ValueError("residual_cnn: channels > 0 and at least one dilation are required")
        self.stem = nn.Conv2d(5, channels, 3, padding=1)
        self.blocks = nn.Sequential(*(_ResBlock(channels, int(d), negative_slope) for d in dilations))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4, G, G) normalised inputs -> (B, 1, G, G) normalised truth."""
        with torch.no_grad():  # no parameters: a fixed function of the inputs
            estimate = self.analytic(x)[:, 0]
        h = self.blocks(self.stem(self.features(x, estimate, 1)))
        return self.head(h.permute(0, 2, 3, 1), estimate, self.analytic.target_scale).unsqueeze(1)


class ResidualGNN(_ResidualBase):
    """The residual model on point clouds: message passing over each point's static (eta, phi) neighbours
    (an EdgeConv in its gather-max form, ``h_i + act(norm(A h_i + max_j C h_j))``, on the grid graph)."""

    def __init__(self, detector: Mapping[str, float], width: int = 32, blocks: int = 4, log_e0: float = 0.5,
                 add_scale: float = 1.0, leak: float = 0.1, negative_slope: float = 0.01) -> None:
        super().__init__(detector, width, log_e0, add_scale, leak, negative_slope)
        if width <= 0 or blocks < 1:
            raise ValueError("residual_gnn: width > 0 and blocks >= 1 are required")
        self.embed = nn.Linear(5, width)
        self.blocks = nn.ModuleList(_NodeBlock(width, negative_slope) for _ in range(blocks))

    def forward(self, x: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor,
                nbr: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 8) point features, (N, 2) positions, (N,) event index, (N, k) neighbours -> (N,) normalised truth."""
        if nbr is None:
            raise ValueError("residual_gnn needs the static (eta, phi) neighbour table 'nbr' of the graph batches")
        if x.size(0) == 0:
            return x.new_zeros(0)
        estimate = analytic_at_points(self.analytic, x, batch)
        h = self.embed(self.features(x[:, :4], estimate, 1))
        for block in self.blocks:
            h = block(h, nbr)
        return self.head(h, estimate, self.analytic.target_scale)


def _common(config: Mapping[str, Any]) -> dict[str, Any]:
    return {"log_e0": float(config.get("log_e0", 0.5)), "add_scale": float(config.get("add_scale", 1.0)),
            "leak": float(config.get("leak", 0.1)), "negative_slope": float(config.get("negative_slope", 0.01))}


@register("residual_cnn", repr="image",
          description="analytic inversion + unbounded learned correction relu(A exp(a) + e0 b) from a dilated "
          "residual CNN on log-energy inputs and the analytic estimate; varies analytic (improved)")
def build_residual_cnn(config: Mapping[str, Any]) -> ResidualCNN:
    """Build the image residual model (channels, dilations, log_e0, add_scale, leak, negative_slope)."""
    return ResidualCNN(analytic_from_config(config), channels=int(config.get("channels", 32)),
                       dilations=tuple(int(d) for d in config.get("dilations", (1, 2, 4))), **_common(config))


@register("residual_gnn", repr="graph",
          description="analytic inversion + unbounded learned correction relu(A exp(a) + e0 b) from message "
          "passing on the static grid graph, same head, loss and features as residual_cnn (improved)")
def build_residual_gnn(config: Mapping[str, Any]) -> ResidualGNN:
    """Build the point-cloud residual model (width, blocks, log_e0, add_scale, leak, negative_slope)."""
    return ResidualGNN(analytic_from_config(config), width=int(config.get("width", 32)),
                       blocks=int(config.get("blocks", 4)), **_common(config))
