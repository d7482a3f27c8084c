"""What every representation shares: the normalisation contract.

Normalisation (input scales, target scale) is fitted on the training split only, stored in
the checkpoint (:meth:`Normalisation.to_dict`) and applied unchanged to every later dataset,
the jet set included. Scales are the maxima over the training split, as in the paper: the
target scale ``S`` is the training-set truth maximum, so ``dE_nor = (E_pred - E_true) / S``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pfgraph.errors import DataError
from pfgraph.io import schema
from pfgraph.io.root import EventFiles


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

    def inputs_array(self) -> np.ndarray:
        """Input scales as float32 array (4,)."""
        return np.asarray(self.input_scale, dtype=np.float32)


def fit_normalisation(files: EventFiles, indices: Sequence[int] | np.ndarray, target: str = "truth",
                      step: int = 2000) -> Normalisation:
    """Fit scales on the events ``indices`` (global entry numbers) of ``files``: channel maxima."""
    if target not in schema.TARGET_CHANNELS:
        raise DataError(f"target '{target}' is not one of {', '.join(schema.TARGET_CHANNELS)}")
    idx = np.sort(np.asarray(indices, dtype=np.int64))
    if len(idx) == 0:
        raise DataError("cannot fit normalisation on an empty training split")
    maxima = np.zeros(len(schema.INPUT_CHANNELS) + 1, dtype=np.float64)
    branches = [*schema.INPUT_CHANNELS, target]
    lo, hi = int(idx[0]), int(idx[-1]) + 1
    for chunk in files.iterate(branches, step=step, start=lo, stop=hi):
        start = _global_start(files, chunk)
        sel = idx[(idx >= start) & (idx < start + len(chunk[target]))] - start
        if len(sel) == 0:
            continue
        for k, b in enumerate(branches):
            maxima[k] = max(maxima[k], float(np.abs(chunk[b][sel]).max()))
    scales = [float(m) if m > 0 else 1.0 for m in maxima]
    return Normalisation(input_scale=scales[:-1], target_scale=scales[-1], target=target)


def _global_start(files: EventFiles, chunk: dict[str, Any]) -> int:
    i = [str(p) for p in files.paths].index(chunk["_file"])
    return int(files.offsets[i]) + int(chunk["_entry_start"])
