"""Training FLOPs: forward + backward floating-point operations of every optimisation step.

:class:`FlopMeter` counts a step's FLOPs with ``torch.utils.flop_counter.FlopCounterMode`` (matrix
products, convolutions and attention, forward and backward; element-wise operations and the
optimiser's update are not counted, as is usual for FLOP budgets) **once per batch shape** and
caches the count, so a run pays the counter's overhead on a handful of steps only. A batch's shape
is its number of events and the shape of its target (image models: (B, 1, G, G), so only the last,
smaller batch of an epoch is a second shape; point-cloud models: (N,) with N the batch's points,
different in nearly every batch). The first :data:`MAX_EXACT` distinct shapes of a run are counted
exactly; a later new shape is estimated as its target elements (pixels or points) times the FLOPs
per target element of the counted steps (their totals' ratio). For image models every count is
therefore exact; for point-cloud models it is a per-point scaling of 16 counted batches, which
misses only the super-linear part of the dynamic kNN graph (the feature-space distances of a batch
grow with its events' squared point counts).

The trainer adds each step's FLOPs to the epoch's and records the run's cumulative total in every
``metrics.csv`` row (``train_flops``); with DDP the processes' counts are summed.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Hashable, Iterator
from typing import Any

import torch

#: Distinct batch shapes counted exactly per run; later new shapes are scaled per target element.
MAX_EXACT = 16


def step_key(num_events: int, target: torch.Tensor) -> tuple[tuple[int, tuple[int, ...]], int]:
    """(the shape a step's FLOP count is cached under: events and the target's shape; the target's
    elements, the unit a new shape beyond :data:`MAX_EXACT` is scaled by)."""
    return (int(num_events), tuple(int(s) for s in target.shape)), int(target.numel())


class FlopMeter:
    """Forward + backward FLOPs of training steps, counted once per batch shape (module docstring).

    Per step: ``meter.start(key, units)`` before the forward pass, ``meter.stop()`` after the
    backward pass (or the optimiser step: its update is not counted); ``epoch_flops`` sums the steps
    since :meth:`epoch` was entered. ``units`` are the target elements of the batch.
    """

    def __init__(self, max_exact: int = MAX_EXACT) -> None:
        self.max_exact = max_exact
        self.cache: dict[Hashable, float] = {}
        self.counted_flops = 0.0
        self.counted_units = 0
        self.epoch_flops = 0.0
        self.estimated_steps = 0
        self._pending: tuple[Hashable, int, Any] | None = None

    @property
    def flops_per_unit(self) -> float:
        """FLOPs per target element of the steps counted so far (0 before any)."""
        return self.counted_flops / self.counted_units if self.counted_units else 0.0

    @contextlib.contextmanager
    def epoch(self) -> Iterator[FlopMeter]:
        """A new epoch's sum (``epoch_flops`` from 0); a counter left running by an interrupted
        step is closed when the block ends."""
        self.epoch_flops = 0.0
        try:
            yield self
        finally:
            self._close(None)

    def start(self, key: Hashable, units: int) -> None:
        """Before a step's forward pass: add its cached count, or start counting it."""
        self._close(None)
        if key in self.cache:
            self.epoch_flops += self.cache[key]
        elif len(self.cache) < self.max_exact or not self.counted_units:
            from torch.utils.flop_counter import FlopCounterMode

            mode = FlopCounterMode(display=False)
            mode.__enter__()
            self._pending = (key, int(units), mode)
        else:
            self.epoch_flops += units * self.flops_per_unit
            self.estimated_steps += 1

    def stop(self) -> None:
        """After a step's backward pass: finish a count started by :meth:`start`."""
        if self._pending is None:
            return
        key, units, mode = self._pending
        self._close(key)
        flops = float(mode.get_total_flops())
        self.cache[key] = flops
        self.counted_flops += flops
        self.counted_units += units
        self.epoch_flops += flops

    def _close(self, key: Hashable | None) -> None:
        if self._pending is not None:
            _, _, mode = self._pending
            self._pending = None
            mode.__exit__(None, None, None)


def add_epoch(rows: list[dict[str, Any]], row: dict[str, Any], epoch_flops: float, events: int) -> None:
    """Set the new epoch's ``row["train_flops"]``: the run's cumulative training FLOPs, the last
    of ``rows`` (the earlier epochs) plus ``epoch_flops``. Earlier epochs without a count (NaN: a
    run resumed from a metrics.csv written before the column) are filled in, in ``rows``, as their
    training events (``stage_events``) times this epoch's FLOPs per event (``events`` trained), so
    the total counts the whole run."""
    per_event = epoch_flops / events if events > 0 else 0.0
    total = 0.0
    for r in rows:
        prev = r.get("train_flops", math.nan)
        if isinstance(prev, (int, float)) and math.isfinite(prev):
            total = float(prev)
        else:
            total += float(r["stage_events"]) * per_event
            r["train_flops"] = total
    row["train_flops"] = total + epoch_flops


def total(rows: list[dict[str, Any]]) -> float | None:
    """A run's training FLOPs: its last row's cumulative count (0 without epochs; None when the
    rows predate the column)."""
    if not rows:
        return 0.0
    last = rows[-1].get("train_flops", math.nan)
    return float(last) if isinstance(last, (int, float)) and math.isfinite(last) else None
