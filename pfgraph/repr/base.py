"""What every representation shares: the normalisation contract and the Representation API.

Normalisation (input scales, target scale) is fitted on the training split only, stored in
the checkpoint (:meth:`Normalisation.to_dict`) and applied unchanged to every later dataset,
the jet set included. Scales are the maxima over the training split, as in the paper: the
target scale ``S`` is the training-set truth maximum, so ``dE_nor = (E_pred - E_true) / S``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from pfgraph.errors import DataError
from pfgraph.io import schema
from pfgraph.io.root import EventFiles
from pfgraph.utils.memory import reuse_cpu_memory


@dataclass
class Normalisation:
    """Per-input-channel scales and the target scale (GeV per unit)."""

    input_scale: list[float]
    target_scale: float
    target: str = "truth"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoints (``torch.load(weights_only=True)`` safe)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalisation:
        """Inverse of :meth:`to_dict`."""
        return cls(input_scale=[float(x) for x in data["input_scale"]], target_scale=float(data["target_scale"]),
                   target=str(data.get("target", "truth")))

    def target_in_gev(self) -> Normalisation:
        """The same input scales with the target left in GeV (scale 1): datasets built with it carry
        the exact target the file holds, as the evaluation needs it."""
        return Normalisation(input_scale=list(self.input_scale), target_scale=1.0, target=self.target)

    def inputs_array(self) -> np.ndarray:
        """Input scales as float32 array (4,)."""
        return np.asarray(self.input_scale, dtype=np.float32)


def fit_normalisation(files: EventFiles, indices: Sequence[int] | np.ndarray, target: str = "truth",
                      step: int = 2048) -> Normalisation:
    """Fit scales on the events ``indices`` (global entry numbers) of ``files``: channel maxima
    (absolute values; a channel that is zero everywhere gets scale 1)."""
    if target not in schema.TARGET_CHANNELS:
        raise DataError(f"target '{target}' is not one of {', '.join(schema.TARGET_CHANNELS)}")
    idx = np.unique(np.asarray(indices, dtype=np.int64))
    if len(idx) == 0:
        raise DataError("cannot fit normalisation on an empty training split")
    from pfgraph.io.datasets import read_images  # torch-backed fast reader, imported on use

    branches = [*schema.INPUT_CHANNELS, target]
    maxima = np.zeros(len(branches), dtype=np.float64)
    g = files.grid
    buf = np.empty((min(step, len(idx)), len(branches), g.size, g.size), dtype=np.float32)
    for first in range(int(idx[0]), int(idx[-1]) + 1, step):  # windows of entries: each basket read ~once
        a, b = np.searchsorted(idx, [first, first + step])
        if a == b:
            continue
        part = idx[a:b]
        block = buf[:len(part)]
        read_images(files, branches, part, [1.0] * len(branches), block)
        for k in range(len(branches)):
            maxima[k] = max(maxima[k], float(block[:, k].max()), -float(block[:, k].min()))
    scales = [float(m) if m > 0 else 1.0 for m in maxima]
    return Normalisation(input_scale=scales[:-1], target_scale=scales[-1], target=target)


# ------------------------------------------------------------------------ representation API


class Representation(ABC):
    """How events become model inputs, and model outputs become the (B, G, G) truth grid.

    The trainer, :mod:`pfgraph.training.predict` and everything downstream use only this
    interface, so a model of any representation trains and evaluates through the same code.
    A batch (from :meth:`collate`) supports ``.to(device)`` (returning the moved batch) and has
    ``.num_events`` and ``.event_id`` (the events' ids), so one pass over the data predicts and
    evaluates. Register a subclass with
    :func:`@register_representation("name") <pfgraph.repr.registry.register_representation>`.
    """

    name: ClassVar[str]
    #: True when the model's native outputs are per point (written beside the grid by the evaluation).
    point_outputs: ClassVar[bool] = False

    def __init__(self, memory_budget_gb: float = 8.0, reuse_memory: bool = True) -> None:
        """``memory_budget_gb``: datasets larger than this are streamed in blocks of events instead
        of being held in memory whole; ``reuse_memory``: keep freed CPU memory in the process
        (:func:`pfgraph.utils.memory.reuse_cpu_memory`: batches are large and allocated per step)."""
        if memory_budget_gb <= 0:
            raise DataError(f"memory_budget_gb = {memory_budget_gb}: expected a positive number")
        self.memory_budget_gb = float(memory_budget_gb)
        if reuse_memory:
            reuse_cpu_memory()

    @abstractmethod
    def branches(self, target: str) -> list[str]:
        """ROOT branches needed to build datasets of this representation (inputs + ``target``)."""

    @abstractmethod
    def make_dataset(self, files: EventFiles, indices: np.ndarray, norm: Normalisation, with_target: bool = True) -> Any:
        """A ``torch.utils.data.Dataset`` over the events ``indices``.

        ``with_target=False`` reads the inputs only (files without truth: ``pfgraph predict``);
        the target then reads as zeros.

        The trainer and :func:`pfgraph.training.predict.predict` pass sorted global entry numbers
        and expect item ``i`` to be event ``indices[i]``. A dataset may define
        ``__getitems__(positions)`` (one item for a whole batch) and ``block_size`` (events
        held in memory at once; the sampler then keeps batches within blocks).
        """

    @abstractmethod
    def collate(self, items: list) -> Any:
        """Combine dataset items into one batch object."""

    @abstractmethod
    def forward(self, model: Any, batch: Any) -> Any:
        """Run ``model`` on ``batch``; the model's native output tensor."""

    @abstractmethod
    def target(self, batch: Any) -> Any:
        """The normalised target, with the same shape as :meth:`forward`'s output."""

    @abstractmethod
    def to_grid(self, output: Any, batch: Any) -> Any:
        """Native output -> (B, G, G) tensor on the truth grid, normalised units."""

    @abstractmethod
    def truth_grid(self, batch: Any) -> Any:
        """(B, G, G) normalised full target image of the batch."""

    @abstractmethod
    def input_mask(self, batch: Any) -> Any:
        """(B, G, G) boolean tensor: True where the event has any input (a point of the cloud)."""

    def event_ids(self, batch: Any) -> np.ndarray:
        """The batch's event ids (int64, batch order)."""
        ids = batch.event_id
        return np.asarray(ids.cpu().numpy() if hasattr(ids, "cpu") else ids, dtype=np.int64)

    def per_point(self, output: Any, batch: Any) -> list[np.ndarray] | None:
        """Per-event native predictions (e.g. per point), normalised units; None for image models."""
        return None

    def point_pixels(self, batch: Any) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """Per event, the (ieta, iphi) of :meth:`per_point`'s values; None without per-point outputs."""
        return None
