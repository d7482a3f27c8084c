"""kNN graphs: torch-cluster and the pure-torch backend give identical edge sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pfgraph.errors import ConfigError
from pfgraph.io.root import EventFiles
from pfgraph.repr import knn as knn_mod
from pfgraph.repr.base import Normalisation
from pfgraph.repr.graph import load_points, pixel_order, point_features, point_positions, static_neighbours
from pfgraph.repr.knn import (
    edges_to_table,
    grid_knn,
    grid_knn_ordered,
    grid_knn_ordered_numpy,
    grid_pixel_order,
    knn_graph,
    knn_graph_torch,
    resolve_backend,
    table_to_edges,
)

#: Event sizes covering empty events, fewer points than k, exactly k and k+1, and large ones.
COUNTS = [0, 1, 2, 5, 12, 13, 0, 40, 300, 3, 0]


def edge_set(edges: torch.Tensor) -> set[tuple[int, int]]:
    """Edges as a set of (neighbour, centre)."""
    return set(map(tuple, edges.t().tolist()))


def batch_of(counts: list[int]) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))


def reference(x: np.ndarray, batch: np.ndarray, k: int, loop: bool) -> set[tuple[int, int]]:
    """Brute force in float64 with numpy: the k nearest (others, or including self) per point."""
    out: set[tuple[int, int]] = set()
    for ev in np.unique(batch):
        idx = np.flatnonzero(batch == ev)
        pts = x[idx].astype(np.float64)
        d = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
        if not loop:
            np.fill_diagonal(d, np.inf)
        for i in range(len(idx)):
            order = np.argsort(d[i], kind="stable")[:k]
            out.update((int(idx[j]), int(idx[i])) for j in order if np.isfinite(d[i, j]))
    return out


def random_points(counts: list[int], dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(counts), dim, generator=g) * 2.0 + 3.0  # off-centre: tests the precision handling
    return x, batch_of(counts)


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("dim", [1, 2, 3, 8, 32])
def test_torch_backend_matches_brute_force_reference(dim: int, loop: bool) -> None:
    x, batch = random_points(COUNTS, dim, seed=dim)
    edges = knn_graph_torch(x, 12, batch, loop=loop)
    assert edge_set(edges) == reference(x.numpy(), batch.numpy(), 12, loop)
    assert edges.dtype == torch.long and edges.shape[1] == len(edge_set(edges))  # no duplicate edges


@pytest.mark.parametrize("loop", [False, True])
def test_edge_counts_self_loops_and_events(loop: bool) -> None:
    x, batch = random_points(COUNTS, 3, seed=1)
    k = 12
    src, dst = knn_graph(x, k, batch, loop=loop, backend="torch")
    assert torch.equal(batch[src], batch[dst])  # never across events
    assert bool((src == dst).any()) == loop
    if loop:
        assert edge_set(torch.stack([torch.arange(len(x))] * 2)) <= edge_set(torch.stack([src, dst]))
    per_centre = torch.bincount(dst, minlength=len(x))
    n_event = torch.tensor(COUNTS)[batch]
    expected = torch.clamp(n_event if loop else n_event - 1, max=k)
    assert torch.equal(per_centre, expected)
    assert bool((dst[1:] >= dst[:-1]).all())  # sorted by centre


def test_small_groups_give_the_same_graph() -> None:
    x, batch = random_points(COUNTS, 4, seed=2)
    big = knn_graph_torch(x, 7, batch)
    small = knn_graph_torch(x, 7, batch, max_elements=1000)  # one event per group (and the 700 alone)
    assert edge_set(big) == edge_set(small)


def test_empty_inputs_and_bad_arguments() -> None:
    for backend in ("torch", "auto"):
        e = knn_graph(torch.zeros(0, 2), 4, torch.zeros(0, dtype=torch.long), backend=backend)
        assert e.shape == (2, 0) and e.dtype == torch.long
    e = knn_graph(torch.zeros(3, 2) + torch.arange(3.0)[:, None], 4, torch.tensor([0, 0, 0]), backend="torch")
    assert edge_set(e) == {(j, i) for i in range(3) for j in range(3) if i != j}
    with pytest.raises(ConfigError, match="k must be >= 1"):
        knn_graph(torch.zeros(3, 2), 0)
    with pytest.raises(ConfigError, match="knn_backend 'kd' is not one of"):
        knn_graph(torch.zeros(3, 2), 2, backend="kd")
    with pytest.raises(ValueError, match="sorted"):
        knn_graph(torch.rand(3, 2), 1, torch.tensor([1, 0, 1]), backend="torch")
    with pytest.raises(ValueError, match="batch has 2 entries for 3 points"):
        knn_graph(torch.rand(3, 2), 1, torch.tensor([0, 0]), backend="torch")


def test_auto_backend_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(knn_mod, "WITH_TORCH_CLUSTER", False)
    assert resolve_backend("auto") == "torch"
    x, batch = random_points([5, 7], 3, seed=3)
    assert edge_set(knn_graph(x, 3, batch, backend="auto")) == edge_set(knn_graph_torch(x, 3, batch))
    monkeypatch.setattr(knn_mod, "WITH_TORCH_CLUSTER", True)
    assert resolve_backend("auto") == "torch_cluster"
    assert resolve_backend("torch") == "torch"


# --------------------------------------------------------------- parity with torch-cluster


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("dim", [1, 2, 3, 8, 32])
def test_parity_random_points(dim: int, loop: bool) -> None:
    pytest.importorskip("torch_cluster", reason="torch-cluster is not installed: parity needs both backends")
    for seed in range(2):
        x, batch = random_points(COUNTS, dim, seed=100 * dim + seed)
        for k in (1, 12):
            a = knn_graph(x, k, batch, loop=loop, backend="torch_cluster")
            b = knn_graph(x, k, batch, loop=loop, backend="torch")
            assert edge_set(a) == edge_set(b), (dim, loop, k, seed)


def test_parity_on_real_events(events_file: Path, small_events_files: list[Path]) -> None:
    """Pixel positions (with the fixed tie-break) and feature space, real events incl. empty/tiny ones."""
    pytest.importorskip("torch_cluster", reason="torch-cluster is not installed: parity needs both backends")
    norm = Normalisation([10.0, 10.0, 10.0, 10.0], 20.0)
    for files, rows in ((EventFiles(events_file), [3, 50, 111]), (EventFiles(small_events_files), np.arange(45))):
        batch = load_points(files, rows, norm).batch(np.arange(len(rows)))
        sizes = torch.bincount(batch.batch, minlength=batch.num_events)
        if len(rows) == 45:
            assert int((sizes == 0).sum()) == 5 and int(((sizes > 0) & (sizes < 12)).sum()) == 40
        pos = point_positions(batch.pix, 56)
        feats = point_features(batch.x, batch.pix, 56) @ torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
        for points in (pos, feats):
            for loop in (False, True):
                a = knn_graph(points, 12, batch.batch, loop=loop, backend="torch_cluster")
                b = knn_graph(points, 12, batch.batch, loop=loop, backend="torch")
                assert edge_set(a) == edge_set(b)


@pytest.mark.gpu
def test_parity_on_cuda() -> None:
    pytest.importorskip("torch_cluster", reason="torch-cluster is not installed: parity needs both backends")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x, batch = random_points(COUNTS, 16, seed=7)
    a = knn_graph(x.cuda(), 12, batch.cuda(), backend="torch_cluster").cpu()
    b = knn_graph(x.cuda(), 12, batch.cuda(), backend="torch").cpu()
    c = knn_graph(x, 12, batch, backend="torch")
    assert edge_set(a) == edge_set(b) == edge_set(c)


# --------------------------------------------------------------- static grid neighbourhoods


def table_set(table: torch.Tensor) -> set[tuple[int, int]]:
    """Neighbour table (N, k), -1 = none -> set of (neighbour, centre)."""
    return edge_set(table_to_edges(table))


def ghost_knn(pos: torch.Tensor, batch: torch.Tensor, k: int, loop: bool) -> set[tuple[int, int]]:
    """Periodic-phi reference: torch-cluster's kNN of each point among its event's points and their
    copies at phi +- 2 pi (a copy maps back to its original)."""
    tc = pytest.importorskip("torch_cluster", reason="torch-cluster is not installed: parity needs it")
    n = pos.size(0)
    two_pi = torch.tensor(2 * np.pi, dtype=torch.float32)
    ext = torch.cat([pos, pos + torch.stack([torch.tensor(0.0), two_pi]), pos - torch.stack([torch.tensor(0.0), two_pi])])
    ext_batch = torch.cat([batch, batch, batch])
    order = torch.argsort(ext_batch * 3 + torch.arange(3).repeat_interleave(n), stable=True)
    ext, ext_batch, orig = ext[order], ext_batch[order], torch.arange(3 * n)[order] % n
    centre, nb = tc.knn(ext, pos, k + (0 if loop else 1), ext_batch, batch)
    nb = orig[nb]
    out: dict[int, list[int]] = {}
    for c, j in zip(centre.tolist(), nb.tolist()):
        if loop or j != c:
            out.setdefault(c, []).append(j)
    return {(j, c) for c, js in out.items() for j in js[:k]}


@pytest.mark.parametrize("loop", [False, True])
def test_grid_graph_matches_torch_cluster_on_real_events(events_file: Path, small_events_files: list[Path],
                                                         loop: bool) -> None:
    """Same neighbour sets as torch_cluster.knn_graph on the pixel positions (phi not periodic), and as
    torch-cluster on the points plus their phi +- 2 pi copies (periodic), on real events incl. empty/tiny ones."""
    tc = pytest.importorskip("torch_cluster", reason="torch-cluster is not installed: parity needs it")
    norm = Normalisation([10.0, 10.0, 10.0, 10.0], 20.0)
    for files, rows in ((EventFiles(events_file), [3, 50, 111, 7]), (EventFiles(small_events_files), np.arange(45))):
        batch = load_points(files, rows, norm).batch(np.arange(len(rows)))
        pos = point_positions(batch.pix, 56)
        for k in (12, 16):
            flat = grid_knn(pos, k, batch.batch, loop=loop, phi_wrap=False)
            assert table_set(flat) == edge_set(tc.knn_graph(pos, k, batch.batch, loop=loop)), (k, loop)
            wrapped = grid_knn(pos, k, batch.batch, loop=loop, phi_wrap=True)
            assert table_set(wrapped) == ghost_knn(pos, batch.batch, k, loop), (k, loop)
            # rows come ordered by (periodic) distance, gaps last, the point itself first with loop
            nb = wrapped.clamp(min=0)
            dphi = torch.remainder(pos[nb, 1] - pos[:, None, 1] + np.pi, 2 * np.pi) - np.pi
            d = ((pos[nb, 0] - pos[:, None, 0]).square() + dphi.square()).masked_fill(wrapped < 0, np.inf)
            assert bool((d[:, 1:] >= d[:, :-1] - 1e-6).all())
            if loop:
                assert torch.equal(wrapped[:, 0], torch.arange(pos.size(0)))


def test_grid_graph_sparse_and_synthetic_events_match_brute_force() -> None:
    """Occupancies from 1 % to 90 % (the wider windows and the brute-force rest), against the
    pure-torch brute force (no torch-cluster needed); seam neighbours only with phi_wrap."""
    g = np.random.default_rng(5)
    counts = [30, 300, 1500, 2800, 1, 0, 5]
    pix = np.concatenate([np.sort(g.choice(3136, c, replace=False)) for c in counts]).astype(np.int16)
    batch = batch_of(counts)
    pos = point_positions(torch.from_numpy(pix), 56)
    for loop in (False, True):
        flat = grid_knn(pos, 12, batch, loop=loop, phi_wrap=False)
        assert table_set(flat) == edge_set(knn_graph_torch(pos, 12, batch, loop=loop))
    # two points on either side of the phi seam are neighbours only when phi wraps
    pair = point_positions(torch.tensor([20 * 56 + 0, 20 * 56 + 55, 20 * 56 + 5], dtype=torch.int16), 56)
    assert grid_knn(pair, 2, None, phi_wrap=True)[0].tolist() == [0, 1]
    assert grid_knn(pair, 2, None, phi_wrap=False)[0].tolist() == [0, 2]


def test_grid_graph_bad_input() -> None:
    with pytest.raises(ValueError, match="not pixel centres"):
        grid_knn(torch.zeros(3, 2), 4)
    with pytest.raises(ValueError, match="sorted"):
        grid_knn(point_positions(torch.tensor([1, 2, 3], dtype=torch.int16), 56), 2, torch.tensor([1, 0, 1]))
    with pytest.raises(ConfigError, match="k must be >= 1"):
        grid_knn(point_positions(torch.tensor([1], dtype=torch.int16), 56), 0)
    assert grid_knn(torch.zeros(0, 2), 3).shape == (0, 3)


# --------------------------------------------------------------- static graph read off the pixel order


def test_pixel_order_is_the_exact_distance_order() -> None:
    """Rows hold the nearest other pixels sorted by the float32 distances grid_knn uses (its arithmetic:
    deta^2 + min over the phi +- 2 pi copies of dphi^2), strictly before the first float32 tie."""
    pos = point_positions(torch.arange(3136), 56)
    two_pi = torch.tensor(2 * np.pi, dtype=torch.float32)
    for wrap in (True, False):
        order, strict = pixel_order(wrap)
        assert order.shape == (3136, 256) and order.dtype == torch.int32
        dphi = (pos[None, :, 1] - pos[:, None, 1]).square()
        if wrap:
            for shift in (-two_pi, two_pi):
                dphi = torch.minimum(dphi, (pos[None, :, 1] + shift - pos[:, None, 1]).square())
        full = (pos[None, :, 0] - pos[:, None, 0]).square() + dphi
        full.fill_diagonal_(np.inf)
        d = torch.gather(full, 1, order.long())
        assert bool((d[:, 1:] >= d[:, :-1]).all())
        assert bool((full.sort(1).values[:, 256] >= d[:, -1]).all())  # every pixel left out is not nearer
        strict_pairs = torch.arange(255)[None, :] < strict[:, None]
        assert bool((d[:, 1:] > d[:, :-1])[strict_pairs].all())
        # float32 rounding ties are rare and far out (none among the first 40 candidates)
        assert int((strict < 256).sum()) <= 12 and int(strict.min()) >= 40


@pytest.mark.parametrize("wrap", [True, False])
def test_ordered_grid_graph_is_grid_knn_on_real_events(events_file: Path, small_events_files: list[Path],
                                                       wrap: bool) -> None:
    """The table read off the pixel order is grid_knn's, entry for entry (same order within rows), on real
    events incl. empty and tiny ones, and has torch-cluster's neighbour sets."""
    tc = pytest.importorskip("torch_cluster", reason="torch-cluster is not installed: parity needs it")
    norm = Normalisation([10.0, 10.0, 10.0, 10.0], 20.0)
    order = pixel_order(wrap)
    for files, rows in ((EventFiles(events_file), [3, 50, 111, 7, 0]), (EventFiles(small_events_files), np.arange(45))):
        batch = load_points(files, rows, norm).batch(np.arange(len(rows)))
        pos = point_positions(batch.pix, 56)
        for k in (1, 12, 16):
            for loop in (False, True):
                fast = grid_knn_ordered(batch.pix, k, order, batch.batch, loop=loop, pos=pos, phi_wrap=wrap)
                assert torch.equal(fast, grid_knn(pos, k, batch.batch, loop=loop, phi_wrap=wrap)), (k, loop)
                want = ghost_knn(pos, batch.batch, k, loop) if wrap else edge_set(tc.knn_graph(pos, k, batch.batch, loop=loop))
                assert table_set(fast) == want, (k, loop)
        if wrap:  # the stored graph (built at load time) is grid_knn's table, event-local
            want = grid_knn(pos, 16, batch.batch)
            want = want - torch.where(want >= 0, batch.ptr[batch.batch][:, None], 0)
            local = static_neighbours(batch.pix.numpy().astype(np.int16), batch.ptr.numpy(), 56)
            assert torch.equal(torch.from_numpy(local).long(), want)


def test_ordered_grid_graph_every_path_matches_grid_knn() -> None:
    """Occupancies from 1 % to 90 %: short tables (the cumulative-count path, then brute force), a forced
    tie limit (every row by brute force) and the default levels all give grid_knn's table."""
    g = np.random.default_rng(11)
    counts = [30, 300, 1500, 2800, 1, 0, 5, 17]
    pix = torch.from_numpy(np.concatenate([np.sort(g.choice(3136, c, replace=False)) for c in counts]).astype(np.int16))
    batch = batch_of(counts)
    pos = point_positions(pix, 56)
    every = point_positions(torch.arange(3136), 56)
    for wrap in (True, False):
        full = grid_pixel_order(every, wrap)
        orders = [full, grid_pixel_order(every, wrap, columns=20), grid_pixel_order(every, wrap, columns=40),
                  (full[0], torch.zeros_like(full[1]))]
        for loop in (False, True):
            want = grid_knn(pos, 16, batch, loop=loop, phi_wrap=wrap)
            ptr = torch.tensor([0, *np.cumsum(counts)])
            local = want - torch.where(want >= 0, ptr[batch][:, None], 0)
            for order in orders:
                got = grid_knn_ordered(pix, 16, order, batch, loop=loop, pos=pos, phi_wrap=wrap, max_elements=5000)
                assert torch.equal(got, want), (wrap, loop, order[0].shape)
                got_np = grid_knn_ordered_numpy(pix.numpy(), ptr.numpy(), 16, order[0].numpy(), order[1].numpy(),
                                                every, loop=loop, phi_wrap=wrap, max_elements=5000)
                assert got_np.dtype == np.int16 and np.array_equal(got_np, local.numpy()), (wrap, loop, order[0].shape)


def test_ordered_grid_graph_bad_input() -> None:
    order = pixel_order(True)
    pix = torch.tensor([5, 6, 5], dtype=torch.int16)
    with pytest.raises(ValueError, match="same pixel"):
        grid_knn_ordered(pix, 2, order, torch.tensor([0, 0, 0]), pos=point_positions(pix, 56))
    with pytest.raises(ValueError, match="outside 0..3135"):
        grid_knn_ordered(torch.tensor([3136]), 2, order)
    with pytest.raises(ValueError, match="sorted"):
        grid_knn_ordered(pix, 2, order, torch.tensor([1, 0, 1]))
    with pytest.raises(ValueError, match="positions are needed"):
        grid_knn_ordered(torch.tensor([1, 2]), 4, order)  # too few points: brute force
    with pytest.raises(ConfigError, match="k must be >= 1"):
        grid_knn_ordered(pix, 0, order)
    assert grid_knn_ordered(torch.zeros(0, dtype=torch.int16), 3, order).shape == (0, 3)
    every = point_positions(torch.arange(3136), 56)
    np_order = (order[0].numpy(), order[1].numpy())
    with pytest.raises(ValueError, match="same pixel"):
        grid_knn_ordered_numpy(pix.numpy(), np.array([0, 3]), 2, *np_order, every)
    with pytest.raises(ValueError, match="outside 0..3135"):
        grid_knn_ordered_numpy(np.array([3136]), np.array([0, 1]), 2, *np_order, every)
    with pytest.raises(ConfigError, match="k must be >= 1"):
        grid_knn_ordered_numpy(pix.numpy(), np.array([0, 3]), 0, *np_order, every)
    assert grid_knn_ordered_numpy(np.zeros(0, np.int16), np.array([0, 0]), 3, *np_order, every).shape == (0, 3)


@pytest.mark.gpu
def test_ordered_grid_graph_on_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    g = np.random.default_rng(12)
    counts = [1500, 300, 3, 2800]
    pix = torch.from_numpy(np.concatenate([np.sort(g.choice(3136, c, replace=False)) for c in counts]).astype(np.int16))
    batch = batch_of(counts)
    cpu = grid_knn_ordered(pix, 16, pixel_order(True), batch, pos=point_positions(pix, 56))
    cuda = grid_knn_ordered(pix.cuda(), 16, pixel_order(True, "cuda"), batch.cuda(), pos=point_positions(pix.cuda(), 56))
    assert torch.equal(cuda.cpu(), cpu)
    assert torch.equal(cpu, grid_knn(point_positions(pix, 56), 16, batch))


def test_tables_and_edge_lists_round_trip() -> None:
    x, batch = random_points(COUNTS, 3, seed=9)
    edges = knn_graph_torch(x, 5, batch, loop=True)
    table = edges_to_table(edges, x.size(0), 5)
    assert edge_set(table_to_edges(table)) == edge_set(edges)


def test_windowed_pixel_order_equals_the_full_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fine grids order each pixel's neighbours within a window of offsets: the same table as against
    every pixel (up to each row's first float32 tie, where any order is right)."""
    from pfgraph.repr import knn
    from pfgraph.repr.graph import point_positions

    every = point_positions(torch.arange(56 * 56), 56)
    for wrap in (True, False):
        full, strict = knn.grid_pixel_order(every, wrap, columns=64)
        monkeypatch.setattr(knn, "_FULL_ORDER_PIXELS", 0)
        win, strict_w = knn.grid_pixel_order(every, wrap, columns=64, size=56)
        monkeypatch.undo()
        assert torch.equal(strict, strict_w)
        for r in range(full.shape[0]):
            k = int(strict[r])
            assert torch.equal(full[r, :k], win[r, :k]), (wrap, r)
