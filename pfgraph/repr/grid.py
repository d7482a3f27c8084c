"""THE shared adapter: any model output -> (B, 56, 56) on the truth grid.

Nothing downstream of this module knows which representation produced a prediction.
Accepted forms: image outputs (B,1,56,56) or (B,56,56); per-pixel outputs (B,3136) or
(B,3136,1); per-point outputs (N,) or (N,1) together with the points' event index and pixel
indices (graph models), scattered onto the grid with 0 where no point exists.
"""

from __future__ import annotations

import torch

from pfgraph.io.schema import IMSIZE

NPIX = IMSIZE * IMSIZE


def image_to_grid(output: torch.Tensor) -> torch.Tensor:
    """Image or per-pixel outputs -> (B, 56, 56)."""
    if output.dim() == 4 and output.shape[1] == 1:
        output = output[:, 0]
    if output.dim() == 3 and output.shape[-1] == 1 and output.shape[1] == NPIX:
        output = output[..., 0]
    if output.dim() == 2 and output.shape[1] == NPIX:
        output = output.reshape(-1, IMSIZE, IMSIZE)
    if output.dim() != 3 or tuple(output.shape[1:]) != (IMSIZE, IMSIZE):
        raise ValueError(f"cannot map output of shape {tuple(output.shape)} onto the {IMSIZE}x{IMSIZE} grid")
    return output


def points_to_grid(values: torch.Tensor, event: torch.Tensor, ieta: torch.Tensor, iphi: torch.Tensor,
                   n_events: int) -> torch.Tensor:
    """Scatter per-point values onto (n_events, 56, 56); pixels without a point stay 0."""
    values = values.reshape(-1)
    grid = torch.zeros(n_events * NPIX, dtype=values.dtype, device=values.device)
    flat = event.long() * NPIX + ieta.long() * IMSIZE + iphi.long()
    grid.index_put_((flat,), values, accumulate=True)
    return grid.reshape(n_events, IMSIZE, IMSIZE)


def grid_to_points(grid: torch.Tensor, event: torch.Tensor, ieta: torch.Tensor, iphi: torch.Tensor) -> torch.Tensor:
    """Read (B, 56, 56) values at the given points (inverse of :func:`points_to_grid`)."""
    return grid[event.long(), ieta.long(), iphi.long()]
