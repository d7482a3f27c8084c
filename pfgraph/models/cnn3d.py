"""The paper's ``cnn3d``: detector channels as depth: 3D convolutions 3x3x3 / 3x5x5 / 3x7x7 (2 channels
each) over the stacks [emcal, hcal, trk_neg] and [emcal, hcal, trk_pos], then the ``cnn`` encoder /
SE / decoder (:class:`pfgraph.models.cnn.CNNBody`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pfgraph.errors import ConfigError
from pfgraph.models.cnn import CNNBody, CNNParams
from pfgraph.models.common import (
    ImageModel,
    parse_params,
)
from pfgraph.models.registry import register


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
        """(B, 4, G, G) -> (B, 1, G, G)."""
        f = self.features(x)
        parts = []
        for stack, convs in zip(self.stacks, self.stem):
            vol = f[:, stack].unsqueeze(1)  # (B, 1, D, H, W)
            for conv in convs:
                parts.append(conv(vol).flatten(1, 2))  # (B, C * D', H, W)
        return self.body(torch.cat(parts, dim=1))


@register("cnn3d", repr="image", description="detector layers as depth: 3D convs 3x3x3/3x5x5/3x7x7, then the cnn (paper)")
def build_cnn3d(config: Mapping[str, Any]) -> DepthCNN:
    """Build ``cnn3d`` from its hyper-parameters."""
    return DepthCNN(parse_params(CNN3DParams, config, "cnn3d"))
