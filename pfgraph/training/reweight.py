"""Loss weights that flatten the training targets' energy spectrum in log E (``train.reweight``).

A loss minimised over a training sample estimates the target given the inputs *under that
sample's spectrum*: where the spectrum falls steeply (the paper's |N(0, sigma)| particles: pixel
energies above a few GeV are rare) a measured deposit is more likely an upward fluctuation of a
smaller energy than the reverse, so the trained model pulls large deposits down. That is right
for events drawn like the training set and wrong for jets, whose pixels are far harder. Single-
particle calibrations in HEP (ATLAS's local cell weighting among them) are therefore derived from
samples flat in log E. ``flat_log`` does that by weights instead of by generation: each bin of
log E of the training targets' non-zero values carries the same total weight, so the loss sees a
spectrum flat in log E wherever the training data reach (the simulator's ``particles.hard_tail_*``
option makes them reach jet energies).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from pfgraph.errors import PfgraphError

#: log10 range of the normalised target values the bins cover.
LOG10_RANGE = (-6, 1)


class TargetWeights:
    """Per-element weights as a step function of log10 of the (normalised) target value."""

    def __init__(self, log_edges: torch.Tensor, weights: torch.Tensor) -> None:
        if log_edges.numel() != weights.numel() + 1:
            raise ValueError("TargetWeights: need one more edge than weights")
        self.log_edges = log_edges.double()
        self.weights = weights.float()

    @classmethod
    def flat_log(cls, targets: Iterable[torch.Tensor], bins_per_decade: int = 10,
                 max_weight: float = 1000.0, reduce: Any = None) -> TargetWeights:
        """Weights from the non-zero values of ``targets`` (normalised energies): every non-empty bin
        of ``bins_per_decade`` per decade of log10 gets the same total weight, the mean weight over
        the non-zero values is 1 before capping at ``max_weight``. ``reduce`` sums a count tensor
        over processes (DDP) when given."""
        n_bins = (LOG10_RANGE[1] - LOG10_RANGE[0]) * int(bins_per_decade)
        # fixed edges (the same on every process): normalised targets lie below ~1 (S is the training
        # maximum); values beyond the edges fall into the first or last bin
        edges = torch.linspace(LOG10_RANGE[0], LOG10_RANGE[1], n_bins + 1, dtype=torch.float64)
        counts = torch.zeros(n_bins, dtype=torch.float64)
        for t in targets:
            t = t.detach().reshape(-1)
            t = t[t > 0]
            if t.numel():
                counts += torch.bincount(_bin(torch.log10(t.double()), edges.to(t.device)), minlength=n_bins).cpu().double()
        if reduce is not None:
            counts = reduce(counts)
        filled = counts > 0
        if not bool(filled.any()):
            raise PfgraphError("train.reweight = flat_log: the training targets have no non-zero value")
        per_bin = counts.sum() / filled.sum()  # each filled bin's total weight
        weights = (per_bin / counts.clamp(min=1.0)).clamp(max=float(max_weight))
        # an empty bin (a gap, or beyond the training range) takes the weight of the nearest filled bin
        have = torch.nonzero(filled).reshape(-1)
        pos = torch.searchsorted(have, torch.arange(n_bins)).clamp(max=have.numel() - 1)
        left = have[(pos - 1).clamp(min=0)]
        right = have[pos]
        nearest = torch.where((torch.arange(n_bins) - left).abs() < (right - torch.arange(n_bins)).abs(), left, right)
        return cls(edges, weights[nearest])

    def __call__(self, target: torch.Tensor) -> torch.Tensor:
        """Weights of the elements of ``target`` (empty targets: 1; values outside the training range:
        the weight of the nearest bin)."""
        w = torch.ones_like(target, dtype=torch.float32)
        has = target > 0
        if bool(has.any()):
            idx = _bin(torch.log10(target[has].double()), self.log_edges.to(target.device))
            w[has] = self.weights.to(target.device)[idx]
        return w

    def describe(self) -> dict[str, Any]:
        """What the weights are, for the training summary."""
        return {"bins": int(self.weights.numel()), "log10_range": [float(self.log_edges[0]), float(self.log_edges[-1])],
                "min_weight": float(self.weights[self.weights > 0].min()), "max_weight": float(self.weights.max())}


def _bin(logs: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Bin index of every value (clamped into the first and last bins)."""
    idx = torch.bucketize(logs, edges[1:-1].to(logs.dtype), right=True)
    return idx.clamp(0, edges.numel() - 2)
