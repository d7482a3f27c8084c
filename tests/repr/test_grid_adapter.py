"""The shared grid adapter: every output form reaches (B, 56, 56); points round-trip exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pfgraph.geometry import NPIX
from pfgraph.io import schema
from pfgraph.io.root import EventFiles
from pfgraph.repr.base import Normalisation
from pfgraph.repr.graph import GraphRepresentation, load_points
from pfgraph.repr.grid import (
    grid_to_points,
    image_to_grid,
    out_of_reach_fraction,
    points_to_grid,
    split_pixel,
    to_grid,
)

NORM = Normalisation([8.0, 9.0, 10.0, 11.0], 20.0)


def dense(path: Path) -> dict[str, np.ndarray]:
    files = EventFiles(path)
    return files.read([*schema.INPUT_CHANNELS, *schema.TARGET_CHANNELS])


@pytest.mark.parametrize("shape", [(3, 1, 56, 56), (3, 56, 56), (3, 3136), (3, 3136, 1)])
def test_image_forms(shape: tuple[int, ...]) -> None:
    out = torch.arange(3 * NPIX, dtype=torch.float32).reshape(shape)
    grid = image_to_grid(out)
    assert grid.shape == (3, 56, 56)
    assert torch.equal(grid.reshape(-1), torch.arange(3 * NPIX, dtype=torch.float32))
    assert torch.equal(to_grid(out), grid) and torch.equal(to_grid(out, None, "image"), grid)


def test_bad_forms_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot map output of shape"):
        image_to_grid(torch.zeros(2, 55, 56))
    with pytest.raises(ValueError, match="unknown representation 'voxel'"):
        to_grid(torch.zeros(2, 56, 56), None, "voxel")
    with pytest.raises(ValueError, match="need their batch"):
        to_grid(torch.zeros(5), None, "graph")


def test_every_event_round_trips_through_its_points(events_file: Path) -> None:
    """grid -> points -> grid is the identity for the input images (zero off the point cloud) of every event,
    and the graph batch rebuilds the full normalised target image exactly."""
    images = dense(events_file)
    rep = GraphRepresentation()
    store = load_points(EventFiles(events_file), None, NORM)
    batch = store.batch(np.arange(store.num_events))
    ieta, iphi = split_pixel(batch.pix, 56)
    for ch in schema.INPUT_CHANNELS:
        grid = torch.from_numpy(images[ch])
        back = points_to_grid(grid_to_points(grid, batch.batch, ieta, iphi), batch.batch, ieta, iphi, batch.num_events, 56)
        assert torch.equal(back, grid), ch
    inv_t = np.float32(1.0 / NORM.target_scale)
    assert torch.equal(rep.truth_grid(batch), torch.from_numpy(images["truth"] * inv_t))
    # the per-point target is the target image read at the points
    assert torch.equal(rep.target(batch), grid_to_points(rep.truth_grid(batch), batch.batch, ieta, iphi))


def test_graph_predictions_are_zero_without_a_point(events_file: Path) -> None:
    store = load_points(EventFiles(events_file), np.arange(10), NORM)
    batch = store.batch(np.arange(10))
    out = torch.rand(batch.pix.numel()) + 0.5
    rep = GraphRepresentation()
    for grid in (rep.to_grid(out, batch), to_grid(out, batch), to_grid(out[:, None], batch, "graph"),
                 to_grid(out, batch, rep)):
        mask = torch.zeros(10 * NPIX, dtype=torch.bool)
        mask[batch.batch * NPIX + batch.pix.long()] = True
        flat = grid.reshape(-1)
        assert bool((flat[~mask] == 0).all())
        assert torch.equal(flat[batch.batch * NPIX + batch.pix.long()], out)
    with pytest.raises(ValueError, match="values for"):
        rep.to_grid(out[:-1], batch)


def test_out_of_reach_fraction_small_example() -> None:
    truth = np.zeros((1, 56, 56), dtype=np.float32)
    inputs = np.zeros((1, 4, 56, 56), dtype=np.float32)
    truth[0, 0, :4] = [1.0, 2.0, 3.0, 4.0]
    inputs[0, 1, 0, 0] = 0.5  # hcal under the first truth pixel
    inputs[0, 3, 0, 2] = 0.1  # a track under the third
    inputs[0, 0, 5, 5] = 1.0  # a point without truth
    r = out_of_reach_fraction(truth, inputs)
    assert (r["truth_pixels"], r["out_pixels"]) == (4, 2)
    assert r["pixel_fraction"] == 0.5 and r["energy_fraction"] == pytest.approx(6.0 / 10.0)
    mask = (inputs != 0).any(axis=1)
    assert out_of_reach_fraction(torch.from_numpy(truth), torch.from_numpy(mask)) == r
    with pytest.raises(ValueError, match="truth must be"):
        out_of_reach_fraction(truth[0], inputs)
    with pytest.raises(ValueError, match="inputs must be"):
        out_of_reach_fraction(truth, inputs[:, 0])


def test_out_of_reach_on_paper_events(events_file: Path) -> None:
    """About 3 % of truth pixels and 0.1 % of the truth energy have no input (DESIGN §2, §5)."""
    images = dense(events_file)
    inputs = np.stack([images[c] for c in schema.INPUT_CHANNELS], axis=1)
    r = out_of_reach_fraction(images["truth"], inputs)
    assert 0.015 < r["pixel_fraction"] < 0.06
    assert 0.0002 < r["energy_fraction"] < 0.005
    store = load_points(EventFiles(events_file), None, NORM)
    g = GraphRepresentation().out_of_reach(store.batch(np.arange(store.num_events)))
    assert (g["truth_pixels"], g["out_pixels"]) == (r["truth_pixels"], r["out_pixels"])
    assert g["energy_fraction"] == pytest.approx(r["energy_fraction"], rel=1e-5)
