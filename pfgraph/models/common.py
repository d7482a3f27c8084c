"""Building blocks shared by the image models: typed hyper-parameters, activations, conv blocks,
squeeze-excitation, 1x1-conv self-attention and physics-aware input features.

Every image model takes normalised inputs (B, 4, G, G) in the order [emcal, hcal, trk_neg,
trk_pos] and returns the normalised target image (B, 1, G, G) (G: the data's grid size). Hyper-parameters come from
``pfgraph/presets/model/<name>.yaml`` and are checked by :func:`parse_params` (unknown keys -> one
ConfigError line with a did-you-mean).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import torch
from torch import nn

from pfgraph import geometry
from pfgraph.config import from_dict
from pfgraph.errors import ConfigError

T = TypeVar("T")

Activation = Literal["relu", "leaky_relu", "gelu", "elu", "silu"]
OutputActivation = Literal["sigmoid", "relu", "softplus", "none"]


@dataclass
class InputConfig:
    """Physics-aware input features (all off for the paper configs).

    ``log``: replace every energy channel by ``log1p(E / log_e0) / log1p(S / log_e0)`` (S the
    channel's training-set maximum), which spreads the dynamic range of small deposits.
    ``track_shift``: add two channels, trk_neg and trk_pos moved in phi by the B-field bend
    ``q B / E`` to where their calorimeter deposits land (B from the training file's config).
    """

    log: bool = False
    log_e0: float = 1.0
    track_shift: bool = False

    def validate(self) -> None:
        """Check values."""
        if self.log_e0 <= 0:
            raise ConfigError(f"inputs.log_e0 = {self.log_e0}: expected a positive energy in GeV")


def parse_params(cls: type[T], params: Mapping[str, Any], model: str) -> T:
    """Typed hyper-parameters of ``model`` from a plain mapping (ConfigError on unknown keys)."""
    try:
        return from_dict(cls, dict(params))
    except ConfigError as exc:
        raise ConfigError(f"model '{model}': {exc}") from None


def activation(name: str, negative_slope: float = 0.01) -> nn.Module:
    """A hidden-layer activation by name."""
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    if name == "gelu":
        return nn.GELU()
    if name == "elu":
        return nn.ELU()
    if name == "silu":
        return nn.SiLU()
    raise ConfigError(f"unknown activation '{name}'; use relu, leaky_relu, gelu, elu or silu")


def output_activation(name: str) -> nn.Module:
    """The output non-linearity: ``sigmoid`` (paper CNNs), ``relu``, ``softplus`` or ``none``."""
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "relu":
        return nn.ReLU()
    if name == "softplus":
        return nn.Softplus()
    if name == "none":
        return nn.Identity()
    raise ConfigError(f"unknown output activation '{name}'; use sigmoid, relu, softplus or none")


class ConvBlock(nn.Sequential):
    """Conv2d ('same' padding) -> optional BatchNorm -> activation."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, batch_norm: bool = True, act: str = "relu",
                 negative_slope: float = 0.01) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(activation(act, negative_slope))
        super().__init__(*layers)


class SEBlock(nn.Module):
    """Squeeze-and-excitation: global average pool -> FC -> ReLU -> FC -> sigmoid channel gates."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rescale each channel of (B, C, H, W) by its learnt gate."""
        gate = self.fc(x.mean(dim=(2, 3)))
        return x * gate[:, :, None, None]


class SelfAttention2d(nn.Module):
    """Self-attention over the pixels of a feature map with 1x1-conv queries, keys and values.

    Paper form (``scaled=False, residual=False``): ``out = V softmax(Q^T K)`` replaces the
    features. The improved form divides the logits by sqrt(key channels) and adds the result
    to the input through a learnt gate ``gamma`` (initialised to ``gamma_init``).
    """

    def __init__(self, channels: int, key_channels: int = 32, scaled: bool = False, residual: bool = False,
                 gamma_init: float = 0.1) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.scale = 1.0 / math.sqrt(key_channels) if scaled else 1.0
        self.residual = residual
        self.gamma = nn.Parameter(torch.full((1,), float(gamma_init))) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, N, Ck)
        k = self.key(x).flatten(2)  # (B, Ck, N)
        v = self.value(x).flatten(2)  # (B, C, N)
        attn = torch.softmax(torch.bmm(q, k) * self.scale, dim=-1)  # (B, N, N), rows sum to 1
        out = torch.bmm(v, attn.transpose(1, 2)).view(b, c, h, w)
        if self.gamma is not None:
            return x + self.gamma * out
        return out


def _charged_bend_pixels(energy: torch.Tensor, charge: float, b_field: torch.Tensor, size: int) -> torch.Tensor:
    """Phi bend of a charged track of ``energy`` GeV, in pixels of the ``size`` grid (0 where energy is 0)."""
    safe = torch.where(energy > 0, energy, torch.ones_like(energy))
    return torch.where(energy > 0, charge * b_field / safe / geometry.grid(size).phi_pixel, torch.zeros_like(energy))


def shift_tracks(trk: torch.Tensor, energy: torch.Tensor, charge: float, b_field: torch.Tensor) -> torch.Tensor:
    """Move track pixels (B, H, W) in phi by their B-field bend, splitting between the two
    pixels they can reach (linear in the fractional shift); bent out of range is dropped."""
    b, h, w = trk.shape
    shift = _charged_bend_pixels(energy, charge, b_field, w)
    k = torch.floor(shift)
    f = shift - k
    cols = torch.arange(w, device=trk.device, dtype=trk.dtype).view(1, 1, w) + k
    out = torch.zeros(b, h, w + 2, dtype=trk.dtype, device=trk.device)  # two spill columns for "dropped"
    for offset, weight in ((0.0, 1.0 - f), (1.0, f)):
        target = cols + offset
        inside = (target >= 0) & (target < w)
        index = torch.where(inside, target, torch.full_like(target, float(w))).long()
        out.scatter_add_(2, index, trk * weight * inside)
    return out[..., :w]


class InputFeatures(nn.Module):
    """Normalised [emcal, hcal, trk_neg, trk_pos] -> model input channels (see :class:`InputConfig`).

    Holds the training normalisation and the B field as buffers (set by
    :meth:`configure_from_data`), so they travel with the checkpoint.
    """

    def __init__(self, cfg: InputConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("input_scale", torch.ones(4))
        self.register_buffer("b_field", torch.zeros(()))

    @property
    def out_channels(self) -> int:
        """Number of channels produced."""
        return 4 + (2 if self.cfg.track_shift else 0)

    @property
    def identity(self) -> bool:
        """True when the features are the normalised inputs unchanged."""
        return not (self.cfg.log or self.cfg.track_shift)

    def configure_from_data(self, meta: Mapping[str, Any], norm: Any) -> None:
        """Take input scales from the fitted normalisation and the B field from the file's config."""
        self.input_scale.copy_(torch.as_tensor(norm.input_scale, dtype=self.input_scale.dtype))
        det = dict((meta.get("config") or {}).get("detector") or {})
        self.b_field.fill_(float(det.get("b_field", 0.0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4, H, W) normalised -> (B, out_channels, H, W)."""
        if self.identity:
            return x
        scale = self.input_scale.to(x.dtype).view(1, 4, 1, 1)
        chans = [x[:, i] for i in range(4)]
        if self.cfg.track_shift:
            energy = x[:, 2:4] * scale[:, 2:4]  # GeV
            chans.append(shift_tracks(x[:, 2], energy[:, 0], -1.0, self.b_field))
            chans.append(shift_tracks(x[:, 3], energy[:, 1], 1.0, self.b_field))
        out = torch.stack(chans, dim=1)
        if self.cfg.log:
            s = torch.cat([scale, scale[:, 2:4]], dim=1) if self.cfg.track_shift else scale
            e0 = self.cfg.log_e0
            out = torch.log1p(out.clamp(min=0) * s / e0) / torch.log1p(s / e0)
        return out


class ImageModel(nn.Module):
    """Base of the image models: input features + an architecture-specific body."""

    def __init__(self, inputs: InputConfig) -> None:
        super().__init__()
        self.features = InputFeatures(inputs)

    def configure_from_data(self, meta: Mapping[str, Any], norm: Any) -> None:
        """Called by the trainer once the normalisation is fitted (before training starts)."""
        self.features.configure_from_data(meta, norm)


def point_mlp(sizes: list[int], batch_norm: bool, negative_slope: float, dropout: float) -> nn.Sequential:
    """Per-point MLP ``sizes[0] -> ... -> sizes[-1]``: Linear (no bias before a BatchNorm), BatchNorm,
    LeakyReLU and Dropout after every layer (the graph models' building block)."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers.append(nn.Linear(a, b, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(b))
        layers.append(nn.LeakyReLU(negative_slope))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def init_output_bias(head: nn.Module, value: float | None) -> None:
    """Set the bias of the last conv/linear layer of ``head`` (None: keep the default init).

    With a sigmoid output and targets normalised by their maximum (mean ~0.05 in paper mode),
    a bias near logit(mean) starts the model at the data's scale instead of at 0.5.
    """
    if value is None:
        return
    layers = [m for m in head.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None]
    if not layers:
        raise ConfigError("output_bias: the model's head has no bias to initialise")
    with torch.no_grad():
        layers[-1].bias.fill_(float(value))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def inputs_field() -> Any:
    """Dataclass field for an ``inputs`` section."""
    return field(default_factory=InputConfig)
