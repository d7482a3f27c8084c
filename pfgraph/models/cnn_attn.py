"""Self-attention CNNs: the paper's ``cnn_attn`` and the authors'-code variant ``cnn_attn_code``.

* ``cnn_attn`` (the paper's text, section 3.2.2): the ``cnn`` with its SE block replaced by a
  1x1-conv Q/K/V self-attention module: the same multi-scale stem, full-resolution encoder to 64
  channels, attention over all G x G positions (3136 on the paper's grid) (torch's ``scaled_dot_product_attention``,
  so the N x N score matrix is never stored), the same 2-layer decoder and sigmoid.
* ``cnn_attn_code`` (the authors' code, a named variant): encoder 4 -> 64 -> 128 -> 256 with 2x
  max-pooling (G -> G/2 -> G/4), 1x1-conv Q/K/V self-attention over the 14x14 map, an upsampling
  decoder back to G x G and 1 channel. Checkpoints of ``cnn_attn`` written before the paper-text
  model existed hold this architecture; :func:`checkpoint_arch` maps them to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pfgraph.errors import ConfigError
from pfgraph.geometry import GRID_SIZES
from pfgraph.models.cnn import CNNParams, MultiScaleCNN, check_kernels, check_multiscale, check_widths
from pfgraph.models.common import (
    Activation,
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
class CNNAttnCodeParams:
    """Hyper-parameters of :class:`AttentionCNNCode` (``cnn_attn_code``, the authors' code)."""

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
        check_widths(self.encoder, "encoder")
        check_kernels([self.kernel], "kernel")
        if min(GRID_SIZES) % (2 ** (len(self.encoder) - 1)):  # every allowed grid is the smallest times 2^k
            raise ConfigError(f"encoder = {self.encoder}: {min(GRID_SIZES)} pixels must halve evenly "
                              f"{len(self.encoder) - 1} times")


class AttentionCNNCode(ImageModel):
    """``cnn_attn_code`` (the authors' code): conv encoder with max-pooling, self-attention at
    the lowest resolution, upsampling decoder."""

    def __init__(self, p: CNNAttnCodeParams) -> None:
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
        """(B, 4, G, G) -> (B, 1, G, G)."""
        h = full = self.down[0](self.features(x))
        for block in self.down[1:]:
            h = block(self.pool(h))
        h = self.attention(h)
        for block in self.up:
            h = block(h)
        if self.fuse is not None:
            h = self.fuse(torch.cat([h, full], dim=1))
        return self.head(h)


class SDPSelfAttention2d(SelfAttention2d):
    """:class:`~pfgraph.models.common.SelfAttention2d` (same parameters, same result) computed with
    ``torch.nn.functional.scaled_dot_product_attention``.

    Its fused kernels never store the N x N score matrix, so attention over all G x G pixels (3136 on the paper's grid)
    positions fits in memory. They need queries, keys and values of one width stored with unit
    stride along the channels, so queries and keys narrower than the values are padded with zero
    channels, which leaves every dot product (and so the result) unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        # Fused kernels need unit stride along the channels: (B, 1, N, C) stored contiguously.
        q = self.query(x).flatten(2).transpose(1, 2).unsqueeze(1).contiguous()  # (B, 1, N, Ck)
        k = self.key(x).flatten(2).transpose(1, 2).unsqueeze(1).contiguous()
        v = self.value(x).flatten(2).transpose(1, 2).unsqueeze(1).contiguous()  # (B, 1, N, C)
        if q.shape[-1] < c:
            q, k = F.pad(q, (0, c - q.shape[-1])), F.pad(k, (0, c - k.shape[-1]))
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # (B, 1, N, C)
        out = out.squeeze(1).transpose(1, 2).reshape(b, c, h, w)
        if self.gamma is not None:
            return x + self.gamma * out
        return out


@dataclass
class CNNAttnParams:
    """Hyper-parameters of :class:`AttentionCNN` (``cnn_attn``, the paper's text): the ``cnn``
    hyper-parameters with an attention block in place of the SE block."""

    stem_kernels: list[int] = field(default_factory=lambda: [3, 5, 7])
    stem_channels: int = 2
    encoder: list[int] = field(default_factory=lambda: [16, 32, 64])
    encoder_kernel: int = 5
    attention: AttentionParams = field(default_factory=lambda: AttentionParams(key_channels=8))
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
        self.attention.validate()

    def cnn_params(self) -> CNNParams:
        """The shared ``cnn`` hyper-parameters (SE block off)."""
        return CNNParams(stem_kernels=self.stem_kernels, stem_channels=self.stem_channels, encoder=self.encoder,
                         encoder_kernel=self.encoder_kernel, se_reduction=0, decoder=self.decoder,
                         decoder_kernel=self.decoder_kernel, batch_norm=self.batch_norm, activation=self.activation,
                         output=self.output, output_bias=self.output_bias, inputs=self.inputs)


class AttentionCNN(MultiScaleCNN):
    """``cnn_attn`` (paper text): :class:`MultiScaleCNN` with :class:`SDPSelfAttention2d` over
    every position of the full-resolution 64-channel map in place of the SE block."""

    def __init__(self, p: CNNAttnParams) -> None:
        a = p.attention
        super().__init__(p.cnn_params(), middle=lambda width: SDPSelfAttention2d(
            width, a.key_channels, a.scaled, a.residual, a.gamma_init))


#: Hyper-parameters only the authors'-code architecture has: a ``cnn_attn`` config holding one of
#: them was written for what is now ``cnn_attn_code``.
CODE_ONLY_KEYS = ("kernel", "full_res_skip")


def checkpoint_arch(arch: str, params: Mapping[str, Any]) -> str:
    """The architecture a saved config describes: ``cnn_attn`` configs written before ``cnn_attn``
    followed the paper's text (they hold ``kernel``, no ``stem_kernels``) are ``cnn_attn_code``."""
    if arch == "cnn_attn" and "stem_kernels" not in params and any(k in params for k in CODE_ONLY_KEYS):
        return "cnn_attn_code"
    return arch


@register("cnn_attn", repr="image",
          description="the cnn with 1x1-conv Q/K/V self-attention over all G x G positions replacing its SE block (paper text)")
def build_cnn_attn(config: Mapping[str, Any]) -> AttentionCNN:
    """Build ``cnn_attn`` from its hyper-parameters."""
    old = [k for k in CODE_ONLY_KEYS if k in config]
    if old and "stem_kernels" not in config:
        raise ConfigError(f"model 'cnn_attn': '{old[0]}' is a hyper-parameter of the authors'-code architecture, "
                          "now the model 'cnn_attn_code' (cnn_attn follows the paper's text)")
    return AttentionCNN(parse_params(CNNAttnParams, config, "cnn_attn"))


@register("cnn_attn_code", repr="image",
          description="conv encoder 64/128/256 pooled to 14x14 + 1x1-conv Q/K/V self-attention there, upsampling "
                      "decoder (authors' code)")
def build_cnn_attn_code(config: Mapping[str, Any]) -> AttentionCNNCode:
    """Build ``cnn_attn_code`` from its hyper-parameters."""
    return AttentionCNNCode(parse_params(CNNAttnCodeParams, config, "cnn_attn_code"))
