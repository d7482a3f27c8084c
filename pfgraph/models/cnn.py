"""The paper's ``cnn``: parallel 3x3 / 5x5 / 7x7 convolutions (2 channels each) concatenated to 6
channels, a conv+BN+ReLU encoder to 64 channels (5x5 kernels), a squeeze-excitation block, and a
convolutional decoder to one channel with a sigmoid. Its encoder/SE/decoder (:class:`CNNBody`) is
shared by ``cnn3d`` (:mod:`pfgraph.models.cnn3d`) and ``cnn_attn`` (:mod:`pfgraph.models.cnn_attn`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pfgraph.errors import ConfigError
from pfgraph.models.common import (
    Activation,
    ConvBlock,
    ImageModel,
    InputConfig,
    OutputActivation,
    SEBlock,
    init_output_bias,
    output_activation,
    parse_params,
)
from pfgraph.models.registry import register


def check_kernels(kernels: list[int], where: str) -> None:
    """Refuse kernel sizes that are not odd and positive (one ConfigError line naming ``where``)."""
    if not kernels or any(k <= 0 or k % 2 == 0 for k in kernels):
        raise ConfigError(f"{where} = {kernels}: expected odd positive kernel sizes")


def check_widths(widths: list[int], where: str, allow_empty: bool = False) -> None:
    """Refuse channel lists that are empty (unless allowed) or hold a non-positive width."""
    if (not widths and not allow_empty) or any(w <= 0 for w in widths):
        raise ConfigError(f"{where} = {widths}: expected a list of positive channel numbers")


def check_multiscale(p: Any) -> None:
    """The checks every multi-scale CNN's hyper-parameters share (``cnn``, ``cnn_attn``): stem and
    encoder/decoder kernels odd and positive, widths positive, ``stem_channels`` positive."""
    check_kernels(p.stem_kernels, "stem_kernels")
    check_kernels([p.encoder_kernel], "encoder_kernel")
    check_kernels([p.decoder_kernel], "decoder_kernel")
    check_widths(p.encoder, "encoder")
    check_widths(p.decoder, "decoder", allow_empty=True)
    if p.stem_channels <= 0:
        raise ConfigError(f"stem_channels = {p.stem_channels}: expected a positive number")


@dataclass
class CNNParams:
    """Hyper-parameters of :class:`MultiScaleCNN` (and the 2D part of ``cnn3d``)."""

    stem_kernels: list[int] = field(default_factory=lambda: [3, 5, 7])
    stem_channels: int = 2
    encoder: list[int] = field(default_factory=lambda: [16, 32, 64])
    encoder_kernel: int = 5
    se_reduction: int = 8
    decoder: list[int] = field(default_factory=lambda: [32, 16])
    decoder_kernel: int = 3
    batch_norm: bool = True
    activation: Activation = "relu"
    output: OutputActivation = "sigmoid"
    output_bias: float | None = None
    inputs: InputConfig = field(default_factory=InputConfig)

    def validate(self) -> None:
        """Check values."""
        check_multiscale(self)
        if self.se_reduction < 0:
            raise ConfigError(f"se_reduction = {self.se_reduction}: expected >= 0 (0 switches the SE block off)")


class CNNBody(nn.Module):
    """Encoder (conv+BN+act) -> SE block -> decoder -> 1x1 conv to one channel -> output activation.

    ``middle(width)``, when given, builds the module that takes the SE block's place (``cnn_attn``:
    self-attention); it is stored as ``attention`` and ``se`` is then an identity.
    """

    def __init__(self, cin: int, p: CNNParams, middle: Callable[[int], nn.Module] | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = cin
        for w in p.encoder:
            layers.append(ConvBlock(width, w, p.encoder_kernel, p.batch_norm, p.activation))
            width = w
        self.encoder = nn.Sequential(*layers)
        if middle is not None:
            self.attention: nn.Module | None = middle(width)
            self.se: nn.Module = nn.Identity()
        else:
            self.attention = None
            self.se = SEBlock(width, p.se_reduction) if p.se_reduction > 0 else nn.Identity()
        layers = []
        for w in p.decoder:
            layers.append(ConvBlock(width, w, p.decoder_kernel, p.batch_norm, p.activation))
            width = w
        self.decoder = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Conv2d(width, 1, 1), output_activation(p.output))
        init_output_bias(self.head, p.output_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1, H, W)."""
        h = self.encoder(x)
        h = self.attention(h) if self.attention is not None else self.se(h)
        return self.head(self.decoder(h))


class MultiScaleCNN(ImageModel):
    """``cnn``: multi-scale stem + :class:`CNNBody` (``middle``: see :class:`CNNBody`)."""

    def __init__(self, p: CNNParams, middle: Callable[[int], nn.Module] | None = None) -> None:
        super().__init__(p.inputs)
        cin = self.features.out_channels
        self.stem = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, p.stem_channels, k, padding=k // 2), nn.ReLU()) for k in p.stem_kernels
        )
        self.body = CNNBody(p.stem_channels * len(p.stem_kernels), p, middle)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4, G, G) -> (B, 1, G, G)."""
        f = self.features(x)
        return self.body(torch.cat([branch(f) for branch in self.stem], dim=1))


@register("cnn", repr="image", description="multi-scale 3/5/7 stem, conv encoder, SE block, decoder, sigmoid (paper)")
def build_cnn(config: Mapping[str, Any]) -> MultiScaleCNN:
    """Build ``cnn`` from its hyper-parameters."""
    return MultiScaleCNN(parse_params(CNNParams, config, "cnn"))
