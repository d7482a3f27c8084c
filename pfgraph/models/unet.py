"""The paper's U-Nets: ``unet`` and ``unet_attn``.

* ``unet``: per level conv-BN-LeakyReLU blocks, 2x2 max-pool down, nearest upsampling + 1x1
  convolutions up, skip concatenation, sigmoid output.
* ``unet_attn``: 3 encoder levels (3x3 convs, 2x2 down) with 1x1-conv Q/K/V self-attention
  after the convolutions of the chosen levels (the deepest, 14x14, by default), the same
  nearest-upsampling + 1x1-conv decoder with skips.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pfgraph.errors import ConfigError
from pfgraph.geometry import GRID_SIZES
from pfgraph.models.cnn_attn import AttentionParams
from pfgraph.models.common import (
    ConvBlock,
    ImageModel,
    InputConfig,
    OutputActivation,
    SelfAttention2d,
    init_output_bias,
    output_activation,
    parse_params,
)
from pfgraph.models.registry import register


@dataclass
class UNetParams:
    """Hyper-parameters of :class:`UNet` (``unet``)."""

    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    convs_per_level: int = 2
    kernel: int = 3
    negative_slope: float = 0.01
    batch_norm: bool = True
    output: OutputActivation = "sigmoid"
    output_bias: float | None = None
    inputs: InputConfig = field(default_factory=InputConfig)

    def validate(self) -> None:
        """Check values."""
        if len(self.channels) < 2 or any(c <= 0 for c in self.channels):
            raise ConfigError(f"channels = {self.channels}: expected at least two positive widths (levels)")
        if min(GRID_SIZES) % (2 ** (len(self.channels) - 1)):  # every allowed grid is the smallest times 2^k
            raise ConfigError(f"channels = {self.channels}: {min(GRID_SIZES)} pixels must halve evenly "
                              f"{len(self.channels) - 1} times")
        if self.convs_per_level <= 0:
            raise ConfigError(f"convs_per_level = {self.convs_per_level}: expected a positive number")
        if self.kernel <= 0 or self.kernel % 2 == 0:
            raise ConfigError(f"kernel = {self.kernel}: expected an odd positive kernel size")


@dataclass
class UNetAttnParams(UNetParams):
    """``unet_attn``: the U-Net hyper-parameters plus the self-attention block and its levels."""

    channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    attention: AttentionParams = field(default_factory=AttentionParams)
    attention_levels: list[int] = field(default_factory=lambda: [-1])

    def validate(self) -> None:
        """Check values."""
        super().validate()
        n = len(self.channels)
        for lvl in self.attention_levels:
            if not -n <= lvl < n:
                raise ConfigError(f"attention_levels = {self.attention_levels}: levels are 0..{n - 1} (or -1 for the deepest)")


class UNet(ImageModel):
    """U-Net with optional self-attention after the convolutions of some encoder levels."""

    def __init__(self, p: UNetParams, attention: AttentionParams | None = None,
                 attention_levels: list[int] | tuple[int, ...] = ()) -> None:
        super().__init__(p.inputs)
        n = len(p.channels)
        levels = {lvl % n for lvl in attention_levels}

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(*[ConvBlock(cin if i == 0 else cout, cout, p.kernel, p.batch_norm, "leaky_relu",
                                             p.negative_slope) for i in range(p.convs_per_level)])

        width = self.features.out_channels
        self.down = nn.ModuleList()
        self.attn = nn.ModuleDict()
        for i, c in enumerate(p.channels):
            self.down.append(block(width, c))
            if i in levels and attention is not None:
                a = attention
                self.attn[str(i)] = SelfAttention2d(c, a.key_channels, a.scaled, a.residual, a.gamma_init)
            width = c
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for c in reversed(p.channels[:-1]):
            self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, c, 1)))
            self.merge.append(block(2 * c, c))
            width = c
        self.head = nn.Sequential(nn.Conv2d(width, 1, 1), output_activation(p.output))
        init_output_bias(self.head, p.output_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4, G, G) -> (B, 1, G, G)."""
        h = self.features(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h if i == 0 else self.pool(h))
            if str(i) in self.attn:
                h = self.attn[str(i)](h)
            skips.append(h)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1])):
            h = merge(torch.cat([up(h), skip], dim=1))
        return self.head(h)


@register("unet", repr="image", description="U-Net: conv-BN-LeakyReLU, 2x2 down, nearest up + 1x1 convs, skips, sigmoid (paper)")
def build_unet(config: Mapping[str, Any]) -> UNet:
    """Build ``unet`` from its hyper-parameters."""
    return UNet(parse_params(UNetParams, config, "unet"))


@register("unet_attn", repr="image", description="3-level U-Net with 1x1-conv Q/K/V self-attention after the convs (paper)")
def build_unet_attn(config: Mapping[str, Any]) -> UNet:
    """Build ``unet_attn`` from its hyper-parameters."""
    p = parse_params(UNetAttnParams, config, "unet_attn")
    return UNet(p, p.attention, p.attention_levels)
