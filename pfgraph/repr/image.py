"""The image representation: events -> normalised (B, 4, G, G) inputs and (B, 1, G, G) target
on the data's G x G grid.

Inputs are [emcal, hcal, trk_neg, trk_pos] divided by their training-set maxima; the target
(``truth`` by default, ``truth_neutral`` selectable through the normalisation's ``target``)
is divided by the training-set target maximum ``S``. Loading goes through
:class:`pfgraph.io.datasets.ImageDataset` (whole chunks straight into float32 tensors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from pfgraph.errors import DataError
from pfgraph.io import schema
from pfgraph.io.datasets import ImageDataset, ImageItem, image_event_bytes
from pfgraph.io.root import EventFiles
from pfgraph.repr.base import Normalisation, Representation
from pfgraph.repr.grid import image_to_grid
from pfgraph.repr.registry import register_representation


@dataclass
class ImageBatch:
    """A batch of events: ``x`` (B, 4, G, G), ``y`` (B, 1, G, G), ``index`` (B,) global entries,
    ``event_id`` (B,) the events' ids (index and ids stay on the CPU)."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    event_id: torch.Tensor

    @property
    def num_events(self) -> int:
        """Number of events in the batch."""
        return int(self.x.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ImageBatch:
        """The batch moved to ``device``."""
        return ImageBatch(self.x.to(device, non_blocking=non_blocking), self.y.to(device, non_blocking=non_blocking),
                          self.index, self.event_id)

    def pin_memory(self) -> ImageBatch:
        """Page-locked copy (DataLoader ``pin_memory=True``)."""
        return ImageBatch(self.x.pin_memory(), self.y.pin_memory(), self.index, self.event_id)


@register_representation("image")
class ImageRepresentation(Representation):
    """Dense G x G images; see the module docstring (constructor: :class:`Representation`)."""

    name: ClassVar[str] = "image"

    def branches(self, target: str) -> list[str]:
        """The four input images and the target image."""
        if target not in schema.TARGET_CHANNELS:
            raise DataError(f"target '{target}' is not one of {', '.join(schema.TARGET_CHANNELS)}")
        return [*schema.INPUT_CHANNELS, target]

    def make_dataset(self, files: EventFiles, indices: np.ndarray, norm: Normalisation,
                     with_target: bool = True) -> ImageDataset:
        """Normalised tensors of events ``indices``; streamed in blocks beyond the memory budget
        (``with_target=False``: inputs only, the target reads as zeros)."""
        block = max(256, int(self.memory_budget_gb * 2**30 / 2 / image_event_bytes(files.grid)))  # two blocks cached
        return ImageDataset(files, indices, norm.input_scale, norm.target_scale, norm.target if with_target else None,
                            block_events=block)

    def collate(self, items: list[ImageItem]) -> ImageBatch:
        """Items (groups of events) -> one :class:`ImageBatch`."""
        if len(items) == 1:
            return ImageBatch(*items[0])
        return ImageBatch(torch.cat([it.x for it in items]), torch.cat([it.y for it in items]),
                          torch.cat([it.index for it in items]), torch.cat([it.event_id for it in items]))

    def forward(self, model: nn.Module, batch: ImageBatch) -> torch.Tensor:
        """Model output (B, 1, G, G) (or any form :func:`image_to_grid` accepts)."""
        return model(batch.x)

    def target(self, batch: ImageBatch) -> torch.Tensor:
        """The normalised target (B, 1, G, G)."""
        return batch.y

    def to_grid(self, output: torch.Tensor, batch: ImageBatch) -> torch.Tensor:
        """(B, G, G) normalised prediction."""
        return image_to_grid(output)

    def truth_grid(self, batch: ImageBatch) -> torch.Tensor:
        """(B, G, G) normalised target."""
        return batch.y[:, 0]

    def input_mask(self, batch: ImageBatch) -> torch.Tensor:
        """(B, G, G) True where any input channel is non-zero."""
        return (batch.x != 0).any(dim=1)
