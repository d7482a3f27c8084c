"""The graph representation: point clouds from ROOT into torch-geometric batches."""

from __future__ import annotations

import pickle
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch

from pfgraph import geometry
from pfgraph.errors import DataError
from pfgraph.io import schema
from pfgraph.io.root import EventFiles
from pfgraph.repr.base import Normalisation, Representation
from pfgraph.repr.graph import (
    FEATURES,
    STATIC_K,
    GraphDataset,
    GraphRepresentation,
    chunk_points,
    collate_graphs,
    graph_branches,
    load_points,
    point_features,
    point_positions,
    stream_batches,
)
from pfgraph.repr.knn import grid_knn
from pfgraph.repr.registry import get_representation
from pfgraph.utils.memory import reuse_cpu_memory

NORM = Normalisation([8.0, 9.0, 10.0, 11.0], 20.0)


def test_registered_behind_the_representation_interface() -> None:
    rep = get_representation("graph")
    assert isinstance(rep, GraphRepresentation) and isinstance(rep, Representation)
    assert rep.name == "graph"
    assert rep.branches("truth_neutral")[-2:] == ["pix_truth_neutral", "truth_neutral"]
    with pytest.raises(DataError, match="target 'jet' is not one of"):
        rep.branches("jet")


def test_batch_contents_match_the_file(events_file: Path) -> None:
    files = EventFiles(events_file)
    raw = files.read(["pix_ieta", "pix_iphi", "pix_eta", "pix_phi", *(f"pix_{c}" for c in schema.IMAGE_CHANNELS)])
    rep = GraphRepresentation()
    ds = rep.make_dataset(files, np.array([7, 2, 7, 90]), NORM)  # any order, repeats allowed
    assert len(ds) == 4
    batch = rep.collate([ds[i] for i in range(4)]).to("cpu")
    assert batch.num_events == 4 and batch.num_graphs == 4
    assert batch.entry.tolist() == [7, 2, 7, 90]
    n = [len(raw["pix_ieta"][e]) for e in (7, 2, 7, 90)]
    assert batch.ptr.tolist() == np.concatenate([[0], np.cumsum(n)]).tolist()
    assert batch.batch.tolist() == np.repeat(np.arange(4), n).tolist()
    assert batch.x.shape == (sum(n), 4) and batch.x.dtype == torch.float32 and batch.pix.dtype == torch.int16
    flat = {b: np.concatenate([ak.to_numpy(raw[b][e]) for e in (7, 2, 7, 90)]) for b in raw if b.startswith("pix_")}
    for k, c in enumerate(schema.INPUT_CHANNELS):
        np.testing.assert_array_equal(batch.x[:, k].numpy(), flat[f"pix_{c}"] * np.float32(1 / NORM.input_scale[k]))
    np.testing.assert_array_equal(batch.y.numpy(), flat["pix_truth"] * np.float32(1 / NORM.target_scale))
    np.testing.assert_array_equal(batch.pix.numpy(), flat["pix_ieta"] * 56 + flat["pix_iphi"])
    feats = point_features(batch.x, batch.pix, 56)
    assert feats.shape == (sum(n), len(FEATURES))
    np.testing.assert_array_equal(feats[:, 4].numpy(), flat["pix_eta"])
    np.testing.assert_array_equal(feats[:, 5].numpy(), flat["pix_phi"])
    np.testing.assert_allclose(feats[:, 6].numpy() * 56, flat["pix_ieta"], atol=1e-5)
    pos = point_positions(batch.pix, 56)
    assert float((pos[:, 0] - feats[:, 4]).abs().max()) <= 0.01 * geometry.ETA_PIXEL  # tie-break offset only
    assert len(set(map(tuple, pos[: n[0]].tolist()))) == n[0]


def test_data_items_collate_like_dataset_items(events_file: Path) -> None:
    ds = GraphDataset(EventFiles(events_file), np.arange(5), NORM)
    a = collate_graphs([ds[i] for i in range(5)])
    b = collate_graphs([ds[i].to_data() for i in range(5)])
    for key in ("x", "y", "pix", "batch", "ptr", "nbr", "miss_pix", "miss_val", "miss_batch", "entry"):
        assert torch.equal(a[key], b[key]), key
    assert a.num_events == b.num_events == 5
    bare = [ds[i].to_data() for i in range(5)]
    for d in bare:
        del d.nbr  # events built by hand get their static graph at collation
    assert torch.equal(collate_graphs(bare).nbr, a.nbr)
    c = pickle.loads(pickle.dumps(a))  # DataLoader workers send batches between processes
    assert torch.equal(c.x, a.x) and c.num_events == 5


def test_truth_neutral_target(events_file: Path) -> None:
    files = EventFiles(events_file)
    norm = Normalisation(NORM.input_scale, 5.0, target="truth_neutral")
    batch = load_points(files, [3], norm).batch([0])
    truth = files.read(["truth_neutral"], 3, 4)["truth_neutral"]
    assert torch.equal(GraphRepresentation().truth_grid(batch), torch.from_numpy(truth * np.float32(1 / 5.0)))


def test_empty_and_tiny_events(small_events_files: list[Path]) -> None:
    files = EventFiles(small_events_files)
    rep = GraphRepresentation()
    ds = rep.make_dataset(files, np.arange(files.num_events), NORM)
    batch = rep.collate([ds[i] for i in range(len(ds))])
    sizes = torch.bincount(batch.batch, minlength=batch.num_events)
    assert sizes[:5].tolist() == [0] * 5 and bool((sizes[5:] > 0).all())
    truth = files.read(["truth"])["truth"]
    assert torch.equal(rep.truth_grid(batch), torch.from_numpy(truth * np.float32(1 / NORM.target_scale)))
    per_event = rep.per_point(torch.arange(batch.x.shape[0], dtype=torch.float32), batch)
    assert [len(p) for p in per_event] == sizes.tolist()


def test_stream_batches_cover_every_event_in_order(events_file: Path) -> None:
    files = EventFiles(events_file)
    store = load_points(files, None, NORM)
    batches = list(stream_batches(files, NORM, 32, step=50))  # chunk ends fall inside batches
    assert [b.num_events for b in batches] == [32, 32, 32, 24]
    assert torch.cat([b.entry for b in batches]).tolist() == list(range(120))
    whole = store.batch(np.arange(120))
    assert torch.equal(torch.cat([b.x for b in batches]), whole.x)
    assert torch.equal(torch.cat([b.miss_val for b in batches]), whole.miss_val)
    picked = list(stream_batches(files, NORM, 4, indices=[100, 3, 60, 61, 3]))
    assert [b.entry.tolist() for b in picked] == [[3, 60, 61, 100]]
    with pytest.raises(DataError, match="outside 0..119"):
        list(stream_batches(files, NORM, 4, indices=[120]))


def test_inconsistent_chunks_are_refused(events_file: Path) -> None:
    chunk = EventFiles(events_file).read(graph_branches(), 0, 3)
    bad = dict(chunk, pix_hcal=chunk["pix_hcal"][[1, 0, 2]])
    with pytest.raises(DataError, match="branch 'pix_hcal' has other point counts"):
        chunk_points(bad, np.arange(3), NORM)
    bad = dict(chunk, npix=chunk["npix"] + 1)
    with pytest.raises(DataError, match="event 0, branch 'npix' disagrees"):
        chunk_points(bad, np.arange(3), NORM)
    bad = dict(chunk, pix_iphi=chunk["pix_iphi"] + 56)
    with pytest.raises(DataError, match="pixel index outside 0..55"):
        chunk_points(bad, np.arange(3), NORM)
    iphi = ak.to_list(chunk["pix_iphi"])
    ieta = ak.to_list(chunk["pix_ieta"])
    iphi[1][1], ieta[1][1] = iphi[1][0], ieta[1][0]  # event 1: its second point on the first one's pixel
    bad = dict(chunk, pix_iphi=ak.Array(iphi), pix_ieta=ak.Array(ieta))
    with pytest.raises(DataError, match=r"event 1: two points on pixel \d+ in 'pix_ieta'/'pix_iphi'"):
        chunk_points(bad, np.arange(3), NORM)


def test_dataloader_and_memory(events_file: Path) -> None:
    rep = GraphRepresentation()
    ds = rep.make_dataset(EventFiles(events_file), np.arange(20), NORM)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, collate_fn=rep.collate)
    assert [b.num_events for b in loader] == [8, 8, 4]
    # points stay smaller than the dense inputs + target of the same events; the stored static graph
    # (16 int16 neighbours per point) comes on top
    dense_bytes = 20 * 5 * geometry.IMSIZE * geometry.IMSIZE * 4
    assert ds.store.nbytes - ds.store.nbr.nbytes < dense_bytes
    assert ds.store.nbr.nbytes == ds.store.num_points * STATIC_K * 2
    assert isinstance(reuse_cpu_memory(), bool) and reuse_cpu_memory() == reuse_cpu_memory()


def test_blocks_stream_and_give_the_same_batches(events_file: Path) -> None:
    files = EventFiles(events_file)
    idx = np.arange(10, 110)
    whole = GraphDataset(files, idx, NORM)
    blocks = GraphDataset(files, idx, NORM, block_events=30)
    assert (whole.block_size, blocks.block_size, blocks.num_blocks) == (100, 30, 4)
    assert len(blocks._cache) == 0  # nothing read until asked
    for positions in ([0, 1, 2], [28, 29, 30, 31], [99, 0, 45, 61]):  # within, across and over blocks
        a = collate_graphs([whole[i] for i in positions])
        b = collate_graphs([blocks[i] for i in positions])
        for key in ("x", "y", "pix", "batch", "nbr", "miss_val", "entry"):
            assert torch.equal(a[key], b[key]), (positions, key)
    assert len(blocks._cache) <= 2
    with pytest.raises(IndexError):
        blocks[100]
    with pytest.raises(DataError, match="event index 120 out of range"):
        GraphDataset(files, [3, 120], NORM)
    rep = GraphRepresentation(memory_budget_gb=30 * 36_000 * 2 / 2**30)
    assert rep.make_dataset(files, idx, NORM).block_size == 100  # at least 256 events per block
    with pytest.raises(DataError, match="memory_budget_gb"):
        GraphRepresentation(memory_budget_gb=0)


def test_static_graph_is_stored_with_the_points(events_file: Path, small_events_files: list[Path]) -> None:
    """Every batch carries the stored (eta, phi) graph: the grid kNN of its points (phi periodic), batch-global."""
    for files, rows in ((EventFiles(events_file), [4, 9, 77]), (EventFiles(small_events_files), np.arange(45))):
        store = load_points(files, rows, NORM)
        assert store.nbr.dtype == np.int16 and store.nbr.shape == (store.num_points, STATIC_K)
        batch = store.batch(np.arange(len(rows))[::-1].copy())  # any order of events
        want = grid_knn(point_positions(batch.pix, 56), STATIC_K, batch.batch, loop=True, phi_wrap=True)
        assert batch.nbr.dtype == torch.int32 and torch.equal(batch.nbr.long(), want)
    for b in stream_batches(EventFiles(events_file), NORM, 32, step=50):  # chunk ends fall inside batches
        assert torch.equal(b.nbr.long(), grid_knn(point_positions(b.pix, 56), STATIC_K, b.batch))


def test_streaming_blocks_are_sized_by_the_points_per_event(events_file: Path, tmp_path: Path) -> None:
    """Finer grids with spread showers hold several times the paper's points per event: the memory estimate
    behind the streaming blocks grows with them (and stays the paper figure in paper mode)."""
    from pfgraph.repr.graph import GRAPH_EVENT_BYTES, GRAPH_EVENT_POINTS, graph_event_bytes
    from tests.conftest import make_events

    paper = EventFiles(events_file)
    assert graph_event_bytes(paper, np.arange(20)) == pytest.approx(GRAPH_EVENT_BYTES, rel=0.05)
    fine = EventFiles(make_events(tmp_path / "g112.root", 3, "gauss_b050_g112"))
    npix = fine.read(["npix"])["npix"]
    assert graph_event_bytes(fine, np.arange(3)) == int(GRAPH_EVENT_BYTES * npix.mean() / GRAPH_EVENT_POINTS)
    assert graph_event_bytes(fine, np.arange(3)) > 4 * GRAPH_EVENT_BYTES
