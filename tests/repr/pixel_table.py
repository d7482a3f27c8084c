"""A small representation defined outside the package, to pin that adding one touches only its
own module and one registration: every event as a table of its 3136 pixels (4 input energies
per row), a per-pixel model on it, and the grid back by reshaping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pfgraph import geometry
from pfgraph.io import schema
from pfgraph.io.datasets import ImageDataset, ImageItem
from pfgraph.io.root import EventFiles
from pfgraph.models.registry import register
from pfgraph.repr.base import Normalisation, Representation
from pfgraph.repr.registry import register_representation

NPIX = geometry.IMSIZE * geometry.IMSIZE


@dataclass
class TableBatch:
    """``x`` (B*3136, 4) pixel rows, ``y`` (B*3136,) target, ``event_id`` (B,)."""

    x: torch.Tensor
    y: torch.Tensor
    event_id: torch.Tensor
    num_events: int

    def to(self, device: Any, non_blocking: bool = False) -> TableBatch:
        """The batch on ``device``."""
        return TableBatch(self.x.to(device), self.y.to(device), self.event_id, self.num_events)


@register_representation("pixel_table")
class PixelTable(Representation):
    """Events as tables of pixels."""

    def branches(self, target: str) -> list[str]:
        """The four inputs and the target."""
        return [*schema.INPUT_CHANNELS, target]

    def make_dataset(self, files: EventFiles, indices: np.ndarray, norm: Normalisation) -> ImageDataset:
        """The image dataset: the table is built per batch."""
        return ImageDataset(files, indices, norm.input_scale, norm.target_scale, norm.target)

    def collate(self, items: list[ImageItem]) -> TableBatch:
        """Items -> one table."""
        x = torch.cat([it.x for it in items])
        y = torch.cat([it.y for it in items])
        return TableBatch(x.permute(0, 2, 3, 1).reshape(-1, 4), y.reshape(-1),
                          torch.cat([it.event_id for it in items]), int(x.shape[0]))

    def forward(self, model: nn.Module, batch: TableBatch) -> torch.Tensor:
        """One value per pixel row."""
        return model(batch.x).reshape(-1)

    def target(self, batch: TableBatch) -> torch.Tensor:
        """The target per pixel row."""
        return batch.y

    def to_grid(self, output: torch.Tensor, batch: TableBatch) -> torch.Tensor:
        """Rows back onto (B, 56, 56)."""
        return output.reshape(batch.num_events, geometry.IMSIZE, geometry.IMSIZE)

    def truth_grid(self, batch: TableBatch) -> torch.Tensor:
        """The target on (B, 56, 56)."""
        return batch.y.reshape(batch.num_events, geometry.IMSIZE, geometry.IMSIZE)

    def input_mask(self, batch: TableBatch) -> torch.Tensor:
        """Pixels with any input."""
        return (batch.x != 0).any(dim=1).reshape(batch.num_events, geometry.IMSIZE, geometry.IMSIZE)


@register("pixel_table_mlp", repr="pixel_table", description="per-pixel MLP on pixel tables (test)")
def build_pixel_table_mlp(config: Any) -> nn.Module:
    """A 4 -> 8 -> 1 per-pixel MLP."""
    hidden = int(config.get("hidden", 8))
    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 1))
