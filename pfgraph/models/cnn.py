"""The paper's convolutional models: ``cnn``, ``cnn_attn`` and ``cnn3d``.

* ``cnn``: parallel 3x3 / 5x5 / 7x7 convolutions (2 channels each) concatenated to 6
  channels, a conv+BN+ReLU encoder to 64 channels (5x5 kernels), a squeeze-excitation block,
  and a convolutional decoder to one channel with a sigmoid.
* ``cnn_attn``: encoder 4 -> 64 -> 128 -> 256 with 2x max-pooling (56 -> 28 -> 14), 1x1-conv
  Q/K/V self-attention over the 14x14 map, an upsampling decoder back to 56x56 and 1 channel.
* ``cnn3d``: detector channels as depth: 3D convolutions 3x3x3 / 3x5x5 / 3x7x7 (2 channels
  each) over the stacks [emcal, hcal, trk_neg] and [emcal, hcal, trk_pos], then the ``cnn``
  encoder / SE / decoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pfgraph.errors import ConfigError
from pfgraph.geometry import IMSIZE
from pfgraph.models.common import (
    Activation,
    ConvBlock,
    ImageModel,
    InputConfig,
    OutputActivation,
    SEBlock,
    SelfAttention2d,
    init_output_bias,
    output_activation,
    parse_params,
)
from pfgraph.models.registry import register


def _check_kernels(kernels: list[int], where: str) -> None:
    if not kernels or any(k <= 0 or k % 2 == 0 for k in kernels):
        raise ConfigError(f"{where} = {kernels}: expected odd positive kernel sizes")


def _check_widths(widths: list[int], where: str, allow_empty: bool = False) -> None:
    if (not widths and not allow_empty) or any(w <= 0 for w in widths):
        raise ConfigError(f"{where} = {widths}: expected a list of positive channel numbers")


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
        _check_kernels(self.stem_kernels, "stem_kernels")
        _check_kernels([self.encoder_kernel], "encoder_kernel")
        _check_kernels([self.decoder_kernel], "decoder_kernel")
        _check_widths(self.encoder, "encoder")
        _check_widths(self.decoder, "decoder", allow_empty=True)
        if self.stem_channels <= 0:
            raise ConfigError(f"stem_channels = {self.stem_channels}: expected a positive number")
        if self.se_reduction < 0:
            raise ConfigError(f"se_reduction = {self.se_reduction}: expected >= 0 (0 switches the SE block off)")


class CNNBody(nn.Module):
    """Encoder (conv+BN+act) -> SE block -> decoder -> 1x1 conv to one channel -> output activation."""

    def __init__(self, cin: int, p: CNNParams) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = cin
        for w in p.encoder:
            layers.append(ConvBlock(width, w, p.encoder_kernel, p.batch_norm, p.activation))
            width = w
        self.encoder = nn.Sequential(*layers)
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
        return self.head(self.decoder(self.se(self.encoder(x))))


class MultiScaleCNN(ImageModel):
    """``cnn``: multi-scale stem + :class:`CNNBody`."""

    def __init__(self, p: CNNParams) -> None:
        super().__init__(p.inputs)
        cin = self.features.out_channels
        self.stem = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, p.stem_channels, k, padding=k // 2), nn.ReLU()) for k in p.stem_kernels
        )
        self.body = CNNBody(p.stem_channels * len(p.stem_kernels), p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4, 56, 56) -> (B, 1, 56, 56)."""
        f = self.features(x)
        return self.body(torch.cat([branch(f) for branch in self.stem], dim=1))


@dataclass
class CNN3DParams(CNNParams):
    """``cnn3d``: the ``cnn`` hyper-parameters plus the depth of the 3D kernels."""

    depth_kernel: int = 3

    def validate(self) -> None:
        """Check values."""
        super().validate()
        if self.depth_kernel <= 0:
            raise ConfigError(f"depth_kernel = {self.depth_kernel}: expected a positive number")


class DepthCNN(ImageModel):
    """``cnn3d``: 3D convolutions over channel stacks (detector layers as depth), then :class:`CNNBody`."""

    def __init__(self, p: CNN3DParams) -> None:
        super().__init__(p.inputs)
        # Stacks of [emcal, hcal, track(s) of one charge]; with track_shift also the bent tracks.
        neg, pos = [2], [3]
        if p.inputs.track_shift:
            neg, pos = [2, 4], [3, 5]
        self.stacks = [[0, 1, *neg], [0, 1, *pos]]
        depth = len(self.stacks[0])
        if p.depth_kernel > depth:
            raise ConfigError(f"depth_kernel = {p.depth_kernel}: a stack has only {depth} detector layers")
        out_depth = depth - p.depth_kernel + 1
        self.stem = nn.ModuleList(
            nn.ModuleList(
                nn.Sequential(nn.Conv3d(1, p.stem_channels, (p.depth_kernel, k, k), padding=(0, k // 2, k // 2)), nn.ReLU())
                for k in p.stem_kernels
            )
            for _ in self.stacks
        )
        self.body = CNNBody(len(self.stacks) * len(p.stem_kernels) * p.stem_channels * out_depth, p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4, 56, 56) -> (B, 1, 56, 56)."""
        f = self.features(x)
        parts = []
        for stack, convs in zip(self.stacks, self.stem):
            vol = f[:, stack].unsqueeze(1)  # (B, 1, D, H, W)
            for conv in convs:
                parts.append(conv(vol).flatten(1, 2))  # (B, C * D', H, W)
        return self.body(torch.cat(parts, dim=1))


@dataclass
class AttentionParams:
    """The self-attention block."""

    key_channels: int = 32
    scaled: bool = False
    residual: bool = False
    gamma_init: float = 0.1

    def validate(self) -> None:
        """Check values."""
        if self.key_channels <= 0:
            raise ConfigError(f"attention.key_channels = {self.key_channels}: expected a positive number")


@dataclass
class CNNAttnParams:
    """Hyper-parameters of :class:`AttentionCNN`."""

    encoder: list[int] = field(default_factory=lambda: [64, 128, 256])
    kernel: int = 3
    batch_norm: bool = True
    activation: Activation = "relu"
    attention: AttentionParams = field(default_factory=AttentionParams)
    #: Concatenate the first (full-resolution) encoder block's features to the decoder output and
    #: fuse them with one more conv block before the head (not in the paper: without it every
    #: pixel is decoded from the 4x-downsampled map by nearest-neighbour upsampling).
    full_res_skip: bool = False
    output: OutputActivation = "sigmoid"
    output_bias: float | None = None
    inputs: InputConfig = field(default_factory=InputConfig)

    def validate(self) -> None:
        """Check values."""
        _check_widths(self.encoder, "encoder")
        _check_kernels([self.kernel], "kernel")
        if IMSIZE % (2 ** (len(self.encoder) - 1)):
            raise ConfigError(f"encoder = {self.encoder}: {IMSIZE} pixels must halve evenly {len(self.encoder) - 1} times")


class AttentionCNN(ImageModel):
    """``cnn_attn``: conv encoder with max-pooling, self-attention at the lowest resolution,
    upsampling decoder."""

    def __init__(self, p: CNNAttnParams) -> None:
        super().__init__(p.inputs)
        width = self.features.out_channels
        self.down = nn.ModuleList()
        for w in p.encoder:
            self.down.append(ConvBlock(width, w, p.kernel, p.batch_norm, p.activation))
            width = w
        self.pool = nn.MaxPool2d(2)
        a = p.attention
        self.attention = SelfAttention2d(width, a.key_channels, a.scaled, a.residual, a.gamma_init)
        self.up = nn.ModuleList()
        for w in reversed(p.encoder[:-1]):
            self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                         ConvBlock(width, w, p.kernel, p.batch_norm, p.activation)))
            width = w
        self.fuse = (ConvBlock(width + p.encoder[0], p.encoder[0], p.kernel, p.batch_norm, p.activation)
                     if p.full_res_skip else None)  # the decoder ends at encoder[0] channels, as does fuse
        self.head = nn.Sequential(nn.Conv2d(width, 1, 1), output_activation(p.output))
        init_output_bias(self.head, p.output_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4, 56, 56) -> (B, 1, 56, 56)."""
        h = full = self.down[0](self.features(x))
        for block in self.down[1:]:
            h = block(self.pool(h))
        h = self.attention(h)
        for block in self.up:
            h = block(h)
        if self.fuse is not None:
            h = self.fuse(torch.cat([h, full], dim=1))
        return self.head(h)


@register("cnn", repr="image", description="multi-scale 3/5/7 stem, conv encoder, SE block, decoder, sigmoid (paper)")
def build_cnn(config: Mapping[str, Any]) -> MultiScaleCNN:
    """Build ``cnn`` from its hyper-parameters."""
    return MultiScaleCNN(parse_params(CNNParams, config, "cnn"))


@register("cnn_attn", repr="image", description="conv encoder 64/128/256 + 1x1-conv Q/K/V self-attention at 14x14 (paper)")
def build_cnn_attn(config: Mapping[str, Any]) -> AttentionCNN:
    """Build ``cnn_attn`` from its hyper-parameters."""
    return AttentionCNN(parse_params(CNNAttnParams, config, "cnn_attn"))


@register("cnn3d", repr="image", description="detector layers as depth: 3D convs 3x3x3/3x5x5/3x7x7, then the cnn (paper)")
def build_cnn3d(config: Mapping[str, Any]) -> DepthCNN:
    """Build ``cnn3d`` from its hyper-parameters."""
    return DepthCNN(parse_params(CNN3DParams, config, "cnn3d"))
