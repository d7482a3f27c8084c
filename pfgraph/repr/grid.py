"""THE shared adapter: any model output -> (B, G, G) on the truth grid (G: the data's grid size).

Nothing downstream of this module knows which representation produced a prediction.
Accepted forms: image outputs (B,1,G,G) or (B,G,G) (RNN sequences of G eta-rows x G
are already this shape); per-pixel outputs (B,G*G) or (B,G*G,1); per-point outputs (N,) or
(N,1) together with the points' event index and pixel indices (graph models, whose batches
carry their grid size ``grid_size``), scattered onto the grid with 0 where no point exists.

Pixels without a point are out of reach of any point-cloud model: their truth energy can
never be predicted. :func:`out_of_reach_fraction` measures that share (about 3 % of truth
pixels and 0.1 % of the truth energy in paper mode) so every comparison can state it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def image_to_grid(output: torch.Tensor) -> torch.Tensor:
    """Image or per-pixel outputs -> (B, G, G) (the grid size read off the output's shape)."""
    if output.dim() == 4 and output.shape[1] == 1:
        output = output[:, 0]
    if output.dim() == 3 and output.shape[-1] == 1 and output.shape[1] > 1:
        output = output[..., 0]
    if output.dim() == 2:
        side = math.isqrt(int(output.shape[1]))
        if side > 1 and side * side == output.shape[1]:
            output = output.reshape(-1, side, side)
    if output.dim() != 3 or output.shape[1] != output.shape[2]:
        raise ValueError(f"cannot map output of shape {tuple(output.shape)} onto a square G x G grid")
    return output


def points_to_grid(values: torch.Tensor, event: torch.Tensor, ieta: torch.Tensor, iphi: torch.Tensor,
                   n_events: int, size: int) -> torch.Tensor:
    """Scatter per-point values onto (n_events, size, size); pixels without a point stay 0."""
    values = values.reshape(-1)
    npix = size * size
    grid = torch.zeros(n_events * npix, dtype=values.dtype, device=values.device)
    flat = event.long() * npix + ieta.long() * size + iphi.long()
    grid.index_put_((flat,), values, accumulate=True)
    return grid.reshape(n_events, size, size)


def grid_to_points(grid: torch.Tensor, event: torch.Tensor, ieta: torch.Tensor, iphi: torch.Tensor) -> torch.Tensor:
    """Read (B, G, G) values at the given points (inverse of :func:`points_to_grid`)."""
    return grid[event.long(), ieta.long(), iphi.long()]


def split_pixel(pix: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat pixel index ``ieta * size + iphi`` -> (ieta, iphi) as int64 tensors."""
    pix = pix.long()
    return torch.div(pix, size, rounding_mode="floor"), torch.remainder(pix, size)


def graph_to_grid(output: torch.Tensor, batch: Any) -> torch.Tensor:
    """Per-point outputs of a graph batch (``pix``, ``batch``, ``num_events``, ``grid_size``) -> (B, G, G).

    ``output`` is (N,) or (N, 1) in the batch's point order; pixels without a point get 0.
    """
    values = output.reshape(-1)
    pix = batch.pix
    if values.numel() != pix.numel():
        raise ValueError(f"graph output has {values.numel()} values for {pix.numel()} points")
    size = int(batch.grid_size)
    ieta, iphi = split_pixel(pix, size)
    return points_to_grid(values, batch.batch, ieta, iphi, int(batch.num_events), size)


def is_graph_batch(batch: Any) -> bool:
    """True for point-cloud batches (they carry per-point pixel indices ``pix``)."""
    try:
        return isinstance(batch.pix, torch.Tensor)
    except (AttributeError, KeyError):
        return False


def to_grid(output: torch.Tensor, batch: Any = None, repr: Any = None) -> torch.Tensor:
    """Any model's output -> (B, G, G), the one entry point for evaluation.

    ``repr`` is a representation object (its own ``to_grid`` is used), a name (``"image"`` or
    ``"graph"``) or None (graph when ``batch`` carries per-point pixel indices, else image).
    """
    if repr is not None and not isinstance(repr, str):
        return repr.to_grid(output, batch)
    name = repr if repr is not None else ("graph" if is_graph_batch(batch) else "image")
    if name == "image":
        return image_to_grid(output)
    if name == "graph":
        if batch is None:
            raise ValueError("per-point outputs need their batch (pixel and event indices) to reach the grid")
        return graph_to_grid(output, batch)
    raise ValueError(f"unknown representation '{name}': use 'image' or 'graph'")


def out_of_reach_fraction(truth: Any, inputs: Any) -> dict[str, float]:
    """Share of the truth that no point-cloud model can reach: truth in pixels without input.

    ``truth`` is (B, G, G); ``inputs`` is (B, C, G, G) channel images (a pixel is a point
    when any channel is non-zero) or a (B, G, G) boolean point mask. numpy or torch.
    Returns sums (so batches can be added) and the two fractions:
    ``truth_pixels``, ``out_pixels``, ``truth_energy``, ``out_energy``, ``pixel_fraction``,
    ``energy_fraction``.
    """
    t = truth.detach().cpu().numpy() if isinstance(truth, torch.Tensor) else np.asarray(truth)
    m = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    if t.ndim != 3 or t.shape[1] != t.shape[2]:
        raise ValueError(f"truth must be (B, G, G), got {t.shape}")
    if m.dtype != np.bool_:
        if m.ndim != 4:
            raise ValueError(f"inputs must be (B, C, G, G) or a boolean mask, got {m.shape}")
        m = (m != 0).any(axis=1)
    if m.shape != t.shape:
        raise ValueError(f"point mask {m.shape} does not match truth {t.shape}")
    has_truth = t != 0
    out = has_truth & ~m
    return reach_summary(int(has_truth.sum()), int(out.sum()), float(np.abs(t[has_truth]).sum(dtype=np.float64)),
                         float(np.abs(t[out]).sum(dtype=np.float64)))


def reach_summary(truth_pixels: int, out_pixels: int, truth_energy: float, out_energy: float) -> dict[str, float]:
    """The out-of-reach record from its four sums (see :func:`out_of_reach_fraction`)."""
    return {
        "truth_pixels": truth_pixels,
        "out_pixels": out_pixels,
        "truth_energy": truth_energy,
        "out_energy": out_energy,
        "pixel_fraction": out_pixels / truth_pixels if truth_pixels else 0.0,
        "energy_fraction": out_energy / truth_energy if truth_energy else 0.0,
    }
