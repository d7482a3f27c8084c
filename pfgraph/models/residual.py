"""Residual models: the analytic inversion plus a learned, unbounded correction from the neighbourhood.

One head, one loss and one feature set for both representations; only the context network differs
(image convolutions for ``residual_cnn``, message passing on the static (eta, phi) grid graph for
``residual_gnn``), so comparing the two compares representations. Per pixel (image) or point
(graph), in GeV:

    E_pred = relu(C exp(a_c) + H exp(a_had) + M exp(a_em) + e0 * b)

* ``C``, ``H``, ``M``: the analytic inversion's pieces (:meth:`~pfgraph.models.analytic.AnalyticInversion.parts`,
  the one implementation; on a point cloud computed on the event's grid and gathered back at the
  points, :func:`~pfgraph.models.calibrated.analytic_parts_at_points`): the pixel's track energy,
  and the neutral hadron and EM energy the formula inverts from what the tracks' expected deposits
  leave. Their sum is the analytic estimate A.
* ``a_c``, ``a_had``, ``a_em``, ``b``: the outputs of a linear head; ``e0`` (GeV, ``add_scale``) sets
  the unit of the additive term.
* Features: ``log1p(E / log_e0)`` of the four input channels and of the inversion's pieces (C, M, H,
  the expected charged ECAL and HCAL deposits it subtracted at the pixel, and the HCAL deposit
  measured where each track's bent shower lands), so the network sees scale-free inputs that
  already line a track up with its own calorimeter signal. A per-pixel network (``pointwise``
  layers) reads them; the context network adds the neighbourhood (its blocks start as the identity).
  With ``cap_features`` (on in both presets) a pixel beyond the training range S (its largest energy
  above S) has its feature energies scaled down together to S, so the learned weights exp(a) of a
  pixel above the range are those of the same mixture at its edge and its energy stays linear in the
  inversion's pieces: a network on log features otherwise extrapolates its weights freely there (on
  pTHat > 300 GeV jets, 10 % of the truth energy is above S).

Why per-component weights and these features: the formula takes a track's energy from the track
alone and a neutral's from the calorimeter remainder, whatever else fell in the pixel. A charged
hadron's calorimeter deposit measures its energy too (a second measurement to combine with the
track), and a neutral pixel that had a large charged deposit subtracted carries that deposit's 10 %
fluctuation: how much to trust each piece depends on what the pixel holds, which these features say.
Measured figures, per seed, beside the formula and the oracle: docs/BENCHMARKS.md, "Residual models
and the aligned loss" (``scripts/bench_residual.py``).

The correction is unbounded: no sigmoid x S, no clamp of the weights, so a pixel can exceed the
training range S; a negative enough ``b`` sets a pixel to exactly zero (less fake energy), and
``b > 0`` gives energy to a pixel the formula leaves empty (fewer missed truth pixels). The head
starts at zero, so an untrained model returns ``relu(C + H + M) = A`` bit for bit (summed in float64
in the inversion's order): it *is* the analytic inversion (tested). Below zero the relu passes
upward gradients only, scaled by ``leak`` (a zeroed or empty pixel whose truth is not empty can
come back; its forward value stays exactly zero).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from pfgraph.models.analytic import AnalyticInversion, analytic_from_config
from pfgraph.models.calibrated import _NodeBlock, _ResBlock, analytic_parts_at_points
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


#: The analytic inversion's pieces the networks see (:meth:`AnalyticInversion.parts`), after the four inputs.
PARTS = ("charged", "e_em", "e_had", "ecal_sub", "hcal_sub", "hcal_at_bend")
#: The pieces the head reweights, in the order the inversion sums them (charged + e_had + e_em).
COMPONENTS = ("charged", "e_had", "e_em")
#: Input features per pixel / point: the four detector channels and the inversion's pieces.
N_FEATURES = 4 + len(PARTS)


class ResidualHead(nn.Module):
    """The shared head: features (..., width) and the inversion's components (..., 3) in GeV -> the
    normalised prediction (...).

    ``relu((charged exp(a_c) + e_had exp(a_had) + e_em exp(a_em)) / S + e0 / S * b)``: a learned
    weight per component (a track's energy, the neutral hadron and the EM energy the formula found)
    and an additive term in units of ``add_scale`` GeV. The sum is formed in float64 in the
    inversion's own order, so with the head at zero it is the inversion bit for bit.
    """

    def __init__(self, width: int, add_scale: float, leak: float, negative_slope: float) -> None:
        super().__init__()
        if width <= 0 or add_scale <= 0 or not 0 <= leak <= 1:
            raise ValueError("residual head: width > 0, add_scale > 0 and 0 <= leak <= 1 are required")
        self.act = nn.LeakyReLU(negative_slope)
        self.out = nn.Linear(width, len(COMPONENTS) + 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.add_scale, self.leak = float(add_scale), float(leak)

    def forward(self, h: torch.Tensor, components: torch.Tensor, target_scale: torch.Tensor,
                dtype: torch.dtype) -> torch.Tensor:
        """The prediction in ``dtype`` (see the class docstring)."""
        o = self.out(self.act(h)).double()
        w = torch.exp(o[..., :3])
        c = components.double()
        s = target_scale.double()
        z = (c[..., 0] * w[..., 0] + c[..., 1] * w[..., 1] + c[..., 2] * w[..., 2]) / s + (self.add_scale / s) * o[..., 3]
        return _UpwardLeakyReLU.apply(z.to(dtype), self.leak)


class _ResidualBase(nn.Module):
    """What both residual models share: the analytic inversion, the input features, the per-pixel
    network and the head (only the context network between them differs)."""

    def __init__(self, detector: Mapping[str, float], width: int, pointwise: int, log_e0: float, add_scale: float,
                 leak: float, negative_slope: float, cap_features: bool = False) -> None:
        super().__init__()
        if log_e0 <= 0 or pointwise < 1:
            raise ValueError("residual models: log_e0 > 0 and pointwise >= 1 are required")
        self.analytic = AnalyticInversion(detector)
        self.log_e0 = float(log_e0)
        #: Scale a pixel's feature energies down to the training range S (see :meth:`features`).
        self.cap_features = bool(cap_features)
        layers: list[nn.Module] = []
        for i in range(pointwise):
            layers += [nn.Linear(N_FEATURES if i == 0 else width, width), nn.LeakyReLU(negative_slope)]
        self.pointwise = nn.Sequential(*layers)
        self.head = ResidualHead(width, add_scale, leak, negative_slope)

    def configure_from_data(self, meta: Mapping[str, Any], norm: Any) -> None:
        """The analytic part takes its scales and detector constants from the training data."""
        self.analytic.configure_from_data(meta, norm)

    def features(self, inputs: torch.Tensor, parts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``log1p(E / log_e0)`` of the four inputs (normalised, channels last) and of the inversion's
        pieces (GeV), all in GeV first: (..., N_FEATURES). With ``cap_features`` a pixel whose largest
        energy exceeds the training range S has all its energies scaled down together to S first (the
        network sees the pixel as the same mixture at the edge of its training range)."""
        gev = inputs * self.analytic.input_scale.to(inputs.dtype)
        pieces = torch.stack([parts[k].to(inputs.dtype) for k in PARTS], dim=-1)
        e = torch.cat([gev, pieces], dim=-1).clamp(min=0.0)
        if self.cap_features:
            top = e.amax(dim=-1, keepdim=True)
            e = e * (self.analytic.target_scale.to(e.dtype) / top).clamp(max=1.0)  # top = 0: inf -> 1
        return torch.log1p(e / self.log_e0)

    @staticmethod
    def components(parts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The head's components (..., 3), float64 GeV."""
        return torch.stack([parts[k] for k in COMPONENTS], dim=-1)


class ResidualCNN(_ResidualBase):
    """The residual model on images: the per-pixel network, then dilated residual 3x3 convolutions give
    each pixel its neighbourhood (each block starts as the identity: its last convolution is zero)."""

    def __init__(self, detector: Mapping[str, float], channels: int = 32, dilations: tuple[int, ...] = (1, 2),
                 pointwise: int = 2, log_e0: float = 0.5, add_scale: float = 1.0, leak: float = 0.1,
                 negative_slope: float = 0.01, cap_features: bool = False) -> None:
        super().__init__(detector, channels, pointwise, log_e0, add_scale, leak, negative_slope, cap_features)
        if channels <= 0 or not dilations:
            raise ValueError("residual_cnn: channels > 0 and at least one dilation are required")
        self.blocks = nn.Sequential(*(_ResBlock(channels, int(d), negative_slope) for d in dilations))
        for block in self.blocks:
            nn.init.zeros_(block.c2.weight)
            nn.init.zeros_(block.c2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4, G, G) normalised inputs -> (B, 1, G, G) normalised truth."""
        with torch.no_grad():  # no parameters: a fixed function of the inputs
            parts = self.analytic.parts(x)
        h = self.pointwise(self.features(x.permute(0, 2, 3, 1), parts))
        h = self.blocks(h.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.head(h, self.components(parts), self.analytic.target_scale, x.dtype).unsqueeze(1)


class ResidualGNN(_ResidualBase):
    """The residual model on point clouds: the per-point network, then message passing over each
    point's static (eta, phi) neighbours (an EdgeConv in its gather-max form,
    ``h_i + act(norm(A h_i + max_j C h_j))``, on the grid graph; each block starts as the identity:
    its norm's scale is zero)."""

    def __init__(self, detector: Mapping[str, float], width: int = 32, blocks: int = 2, pointwise: int = 2,
                 log_e0: float = 0.5, add_scale: float = 1.0, leak: float = 0.1, negative_slope: float = 0.01,
                 cap_features: bool = False) -> None:
        super().__init__(detector, width, pointwise, log_e0, add_scale, leak, negative_slope, cap_features)
        if width <= 0 or blocks < 1:
            raise ValueError("residual_gnn: width > 0 and blocks >= 1 are required")
        self.blocks = nn.ModuleList(_NodeBlock(width, negative_slope) for _ in range(blocks))
        for block in self.blocks:
            nn.init.zeros_(block.norm.weight)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor,
                nbr: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 8) point features, (N, 2) positions, (N,) event index, (N, k) neighbours -> (N,) normalised truth."""
        if nbr is None:
            raise ValueError("residual_gnn needs the static (eta, phi) neighbour table 'nbr' of the graph batches")
        if x.size(0) == 0:
            return x.new_zeros(0)
        parts = analytic_parts_at_points(self.analytic, x, batch)
        h = self.pointwise(self.features(x[:, :4], parts))
        for block in self.blocks:
            h = block(h, nbr)
        return self.head(h, self.components(parts), self.analytic.target_scale, x.dtype)


def _common(config: Mapping[str, Any]) -> dict[str, Any]:
    return {"pointwise": int(config.get("pointwise", 2)), "log_e0": float(config.get("log_e0", 0.5)), "add_scale": float(config.get("add_scale", 1.0)),
            "leak": float(config.get("leak", 0.1)), "negative_slope": float(config.get("negative_slope", 0.01)),
            # off when the key is missing: checkpoints written before it existed keep the features they trained on
            "cap_features": bool(config.get("cap_features", False))}


@register("residual_cnn", repr="image",
          description="analytic inversion + unbounded learned correction relu(A exp(a) + e0 b) from a dilated "
          "residual CNN on log-energy inputs and the analytic estimate; varies analytic (improved)")
def build_residual_cnn(config: Mapping[str, Any]) -> ResidualCNN:
    """Build the image residual model (channels, dilations, log_e0, add_scale, leak, negative_slope)."""
    return ResidualCNN(analytic_from_config(config), channels=int(config.get("channels", 32)),
                       dilations=tuple(int(d) for d in config.get("dilations", (1, 2))), **_common(config))


@register("residual_gnn", repr="graph",
          description="analytic inversion + unbounded learned correction relu(A exp(a) + e0 b) from message "
          "passing on the static grid graph, same head, loss and features as residual_cnn (improved)")
def build_residual_gnn(config: Mapping[str, Any]) -> ResidualGNN:
    """Build the point-cloud residual model (width, blocks, log_e0, add_scale, leak, negative_slope)."""
    return ResidualGNN(analytic_from_config(config), width=int(config.get("width", 32)),
                       blocks=int(config.get("blocks", 2)), **_common(config))
