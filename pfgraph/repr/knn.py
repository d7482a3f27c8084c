"""k-nearest-neighbour graphs for point clouds: torch-cluster or pure torch, same edge sets; and
the static (eta, phi) graph of grid points read off the occupancy map (:func:`grid_knn`).

Two backends build the same graph (``edge_index`` of shape (2, E), row 0 = the neighbour
``j`` (source), row 1 = the centre ``i`` (target): the ``source_to_target`` flow of
torch-geometric's message passing):

* ``torch_cluster``: :func:`torch_cluster.knn_graph`, called directly. torch-geometric >= 2.8
  routes its own ``knn_graph``/``DynamicEdgeConv`` to ``pyg-lib`` (not on PyPI) and ignores
  torch-cluster, so we never go through torch-geometric here.
* ``torch``: padded per-event distance blocks (``matmul`` distances, ``topk`` with padding
  masks), then an exact re-ranking of a few extra candidates by explicit differences, so the
  result does not depend on matmul rounding. Same code on CPU and CUDA; memory is bounded by
  processing events in groups.

``auto`` picks torch-cluster when it is importable (:data:`WITH_TORCH_CLUSTER`), else torch.
On the CPU torch-cluster is a KD-tree: measured on real events (16 x 1580 points, k=12, 2
shared cores) it is 3-9x faster than brute force both on (eta, phi) and on the model's
32-wide features, whose intrinsic dimension is low; only on isotropic random 32-D points
does brute force win (docs/BENCHMARKS.md, "Graph representation").
Semantics (both backends): ``loop=False`` gives each point its ``k`` nearest *other* points
of the same event, ``loop=True`` its ``k`` nearest points including itself; an event with
fewer points gives every point all the others; empty events give no edges. Exact distance
ties are broken differently by the two backends; callers that need identical graphs must
avoid ties (the graph representation adds a fixed sub-pixel offset to pixel centres).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from pfgraph.errors import ConfigError
from pfgraph.utils.optional import has_module, optional_import

#: True when torch-cluster can be imported (capability flag, PyG style).
WITH_TORCH_CLUSTER: bool = has_module("torch_cluster")

Backend = Literal["auto", "torch_cluster", "torch"]
BACKENDS: tuple[str, ...] = ("auto", "torch_cluster", "torch")

#: Extra candidates re-ranked with exact distances by the torch backend.
_RERANK_MARGIN = 8
#: Primes for the slot scramble of the torch backend (one is coprime with any block size).
_SCRAMBLE = (7919, 7907, 7901)


def resolve_backend(backend: str = "auto") -> str:
    """``auto`` -> ``torch_cluster`` if importable, else ``torch``; explicit names are validated."""
    if backend not in BACKENDS:
        raise ConfigError(f"knn_backend '{backend}' is not one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "torch_cluster" if WITH_TORCH_CLUSTER else "torch"
    if backend == "torch_cluster":
        optional_import("torch_cluster")  # a clear "pip install ..." error if missing
    return backend


def knn_graph(x: torch.Tensor, k: int, batch: torch.Tensor | None = None, loop: bool = False,
              backend: str = "auto", max_elements: int = 1 << 25) -> torch.Tensor:
    """k-NN graph of the points ``x`` (N, D) grouped by the sorted event vector ``batch`` (N,).

    Returns ``edge_index`` (2, E) int64: ``[neighbour, centre]``. ``max_elements`` bounds the
    distance block of the torch backend (events x points x points per group).
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    if x.dim() == 1:
        x = x.unsqueeze(1)
    if batch is not None and batch.numel() != x.size(0):
        raise ValueError(f"batch has {batch.numel()} entries for {x.size(0)} points")
    name = resolve_backend(backend)
    if x.size(0) == 0:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    xf = x.detach().float()
    if name == "torch_cluster":
        tc = optional_import("torch_cluster")
        b = None if batch is None else batch.long()
        return tc.knn_graph(xf, k, b, loop=loop)
    return knn_graph_torch(xf, k, batch, loop=loop, max_elements=max_elements)


def knn_graph_torch(x: torch.Tensor, k: int, batch: torch.Tensor | None = None, loop: bool = False,
                    max_elements: int = 1 << 25) -> torch.Tensor:
    """Pure-torch backend of :func:`knn_graph` (batched distances + ``topk`` with padding masks)."""
    n = x.size(0)
    device = x.device
    if n == 0:
        return torch.empty(2, 0, dtype=torch.long, device=device)
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=device)
    batch = batch.long()
    if n > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch vector must be sorted (points grouped by event)")
    counts = torch.bincount(batch)
    ptr = torch.zeros(counts.numel() + 1, dtype=torch.long, device=device)
    torch.cumsum(counts, 0, out=ptr[1:])
    counts_cpu = counts.tolist()
    ptr_cpu = ptr.tolist()
    sources: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    e0 = 0
    n_events = len(counts_cpu)
    while e0 < n_events:
        # grow the group while its padded distance block stays within max_elements
        e1, nmax = e0 + 1, max(counts_cpu[e0], 1)
        while e1 < n_events:
            m = max(nmax, counts_cpu[e1])
            if (e1 + 1 - e0) * m * m > max_elements:
                break
            nmax, e1 = m, e1 + 1
        lo, hi = ptr_cpu[e0], ptr_cpu[e1]
        if hi > lo:
            src, dst = _knn_group(x[lo:hi], batch[lo:hi] - e0, ptr[e0:e1 + 1] - lo, nmax, k, loop)
            sources.append(src + lo)
            targets.append(dst + lo)
        e0 = e1
    if not sources:
        return torch.empty(2, 0, dtype=torch.long, device=device)
    return torch.stack([torch.cat(sources), torch.cat(targets)])


def _knn_group(x: torch.Tensor, ev: torch.Tensor, ptr: torch.Tensor, nmax: int, k: int,
               loop: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges of one group of events; indices local to the group."""
    n, d = x.shape
    b = ptr.numel() - 1
    device = x.device
    # Points sit in scrambled slots: topk on rows whose values follow the points' spatial order
    # (pixel order) is ~2x slower than on unordered rows, so slot = local * a mod nmax.
    a = next(p for p in _SCRAMBLE if math.gcd(p, nmax) == 1)
    slot_of_local = torch.arange(nmax, device=device) * a % nmax
    local_of_slot = torch.empty_like(slot_of_local)
    local_of_slot[slot_of_local] = torch.arange(nmax, device=device)
    slot = slot_of_local[torch.arange(n, device=device) - ptr[ev]]
    raw = x.new_zeros(b, nmax, d)
    raw[ev, slot] = x
    # centre each event: matmul distances lose precision far from the origin
    cnt = (ptr[1:] - ptr[:-1]).clamp(min=1).to(x.dtype)
    dense = raw - (raw.sum(1) / cnt[:, None])[:, None, :]
    valid = torch.zeros(b, nmax, dtype=torch.bool, device=device)
    valid[ev, slot] = True
    big = torch.finfo(x.dtype).max / 4  # "infinitely far", still finite after the arithmetic below
    # ranking key per row i: |x_j|^2 - 2 x_i.x_j (|x_i|^2 is constant along the row); padding columns
    # get a huge |x_j|^2 so no mask pass is needed
    sq = torch.where(valid, (dense * dense).sum(-1), torch.full_like(valid, big, dtype=x.dtype))
    key = torch.baddbmm(sq[:, None, :], dense, dense.transpose(1, 2), alpha=-2.0)
    diag = torch.arange(nmax, device=device)
    key[:, diag, diag] = -big if loop else big
    m = min(k + _RERANK_MARGIN, nmax)
    cand = key.topk(m, dim=-1, largest=False, sorted=False).indices  # (b, nmax, m)
    del key
    inf = torch.finfo(x.dtype).max
    # exact re-ranking of the candidates by explicit differences of the original coordinates
    gathered = torch.gather(raw, 1, cand.reshape(b, nmax * m, 1).expand(-1, -1, d)).reshape(b, nmax, m, d)
    exact = gathered.sub_(raw[:, :, None, :]).square_().sum(-1)
    cand_valid = torch.gather(valid, 1, cand.reshape(b, nmax * m)).reshape(b, nmax, m)
    is_self = cand == diag.view(1, nmax, 1)
    exact = exact.masked_fill(~cand_valid, inf)
    exact = torch.where(is_self, torch.full_like(exact, -1.0 if loop else inf), exact)
    kk = min(k, m)
    best_d, best_pos = exact.topk(kk, dim=-1, largest=False, sorted=True)
    nbr = torch.gather(cand, 2, best_pos)  # (b, nmax, kk) slots of the neighbours
    # rows back to the points' order, so the edges come out sorted by centre
    nbr, best_d, valid = nbr[:, slot_of_local], best_d[:, slot_of_local], valid[:, slot_of_local]
    keep = (best_d < inf) & valid[:, :, None]
    ev_idx, row, _ = keep.nonzero(as_tuple=True)
    col = local_of_slot[nbr[keep]]
    offset = ptr[ev_idx]
    return col + offset, row + offset


# ---------------------------------------------------------------------------------------------
# Static (eta, phi) neighbourhoods read off the G x G grid (no KD-tree)
# ---------------------------------------------------------------------------------------------

#: Largest sub-pixel offset of a point from its pixel centre, in pixels per coordinate (the
#: graph representation's tie-break, :data:`pfgraph.repr.graph.TIE_BREAK`).
GRID_TIE_BREAK = 0.01
#: Radii (in phi pixels) of the candidate windows tried in turn; rows whose k-th neighbour is not
#: provably inside a window go to the next one, the last pass covers the whole grid.
_GRID_RADII = (3.6, 8.0)
#: Bound on rows x candidates held at once by :func:`grid_knn` (int64 elements).
_GRID_MAX_ELEMENTS = 1 << 22
_OFFSET_CACHE: dict[tuple[bool, torch.device, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def grid_offsets(phi_wrap: bool, device: torch.device | str = "cpu",
                 size: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every pixel offset (deta, dphi) != (0, 0) of the ``size`` grid (default: the paper's), ordered by (eta, phi) distance.

    Returns ``deta`` (M,), ``dphi`` (M,) int64 and the centre-to-centre distance ``d0`` (M,)
    float64 in (eta, phi) units, sorted by (``d0``, ``deta``, ``dphi``). With ``phi_wrap``
    the azimuth is periodic (as the evaluation treats it: ``dphi`` wrapped to [-pi, pi]), so
    ``dphi`` runs over -(G/2 - 1)..G/2 only.
    """
    from pfgraph import geometry

    g = geometry.grid(geometry.PAPER_GRID_SIZE if size is None else size)
    key = (phi_wrap, torch.device(device), g.size)
    if key not in _OFFSET_CACHE:
        n = g.size
        de = torch.arange(-(n - 1), n, dtype=torch.int64)
        dp = torch.arange(-(n // 2) + 1, n // 2 + 1, dtype=torch.int64) if phi_wrap else de.clone()
        g_e, g_p = torch.meshgrid(de, dp, indexing="ij")
        g_e, g_p = g_e.reshape(-1), g_p.reshape(-1)
        d0 = torch.hypot(g_e.double() * g.eta_pixel, g_p.double() * g.phi_pixel)
        keep = d0 > 0
        g_e, g_p, d0 = g_e[keep], g_p[keep], d0[keep]
        # lexicographic (d0, deta, dphi): stable sorts from the last key to the first
        order = torch.argsort(g_p, stable=True)
        order = order[torch.argsort(g_e[order], stable=True)]
        order = order[torch.argsort(d0[order], stable=True)]
        _OFFSET_CACHE[key] = (g_e[order].to(device), g_p[order].to(device), d0[order].to(device))
    return _OFFSET_CACHE[key]


def grid_pixels(pos: torch.Tensor, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 2) positions on the ``size`` grid (default: the paper's; pixel centres + sub-pixel offsets) -> (ieta, iphi) int64."""
    from pfgraph import geometry

    g = geometry.grid(geometry.PAPER_GRID_SIZE if size is None else size)
    ue = (pos[:, 0].double() - float(g.eta_centres[0])) / g.eta_pixel
    up = (pos[:, 1].double() - float(g.phi_centres[0])) / g.phi_pixel
    ieta, iphi = ue.round(), up.round()
    if pos.numel() and float(torch.maximum((ue - ieta).abs(), (up - iphi).abs()).max()) > 0.25:
        raise ValueError(f"grid_knn: positions are not pixel centres of the {g.size}x{g.size} grid (offset above 1/4 pixel)")
    n = g.size
    ieta, iphi = ieta.long(), iphi.long()
    if pos.numel() and (int(ieta.min()) < 0 or int(ieta.max()) >= n or int(iphi.min()) < 0 or int(iphi.max()) >= n):
        raise ValueError(f"grid_knn: positions outside the {g.size}x{g.size} grid")
    return ieta, iphi


def _sorted_batch(k: int, n: int, batch: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """Checked arguments of the grid kNN builders: k >= 1 and a sorted (long) event vector of n points."""
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    if batch is None:
        return torch.zeros(n, dtype=torch.long, device=device)
    batch = batch.long()
    if n > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch vector must be sorted (points grouped by event)")
    return batch


def grid_knn(pos: torch.Tensor, k: int, batch: torch.Tensor | None = None, loop: bool = True,
             phi_wrap: bool = True, max_elements: int = _GRID_MAX_ELEMENTS,
             pixels: tuple[torch.Tensor, torch.Tensor] | None = None, size: int | None = None) -> torch.Tensor:
    """k nearest (eta, phi) neighbours of grid points, read off the occupancy map.

    ``pos`` (N, 2) are pixel centres of the ``size`` x ``size`` grid (default: the paper's) plus fixed sub-pixel offsets of at most
    :data:`GRID_TIE_BREAK` pixels (:func:`pfgraph.repr.graph.point_positions`); ``batch`` (N,) the
    sorted event vector. Returns the neighbour table (N, k) int64 of global point indices, each
    row ordered by distance (the point itself first with ``loop``), ``-1`` where an event has
    too few points. ``pixels``: the points' (ieta, iphi) when known (else derived from ``pos``).
    Same neighbour sets as :func:`knn_graph` on ``pos`` (the offsets break ties);
    with ``phi_wrap`` the azimuthal distance is periodic, as in the evaluation (the same sets as
    :func:`knn_graph` on the points and their copies at phi +- 2 pi).

    Method: a padded index map (event, pixel) -> point (phi padding filled with the copies across
    the seam); for each point the candidate pixels of a window of offsets ordered by distance
    (:func:`grid_offsets`) are one add and one gather away, their exact distances come from
    ``pos`` and the k smallest are kept. A row is final when its k-th distance is below the
    nearest pixel outside the window minus twice the largest sub-pixel offset; other rows try a
    wider window, and what is left (events with few points) is solved by brute force within the
    event. All steps are tensor operations: the same code on CPU and CUDA.
    """
    from pfgraph import geometry

    n, device = pos.size(0), pos.device
    batch = _sorted_batch(k, n, batch, device)
    if n == 0:
        return torch.empty(0, k, dtype=torch.long, device=device)
    g = geometry.grid(geometry.PAPER_GRID_SIZE if size is None else size)
    ieta, iphi = grid_pixels(pos, g.size) if pixels is None else (pixels[0].long(), pixels[1].long())
    posf = pos.detach().float()
    two_pi = torch.tensor(2 * math.pi, dtype=torch.float32, device=device)
    inf = torch.full((1,), math.inf, dtype=torch.float32, device=device)
    # coordinates of the points, their copies at phi - 2 pi / + 2 pi, and a sentinel "no point"
    eta_ext = torch.cat([posf[:, 0], posf[:, 0], posf[:, 0], inf])
    phi_ext = torch.cat([posf[:, 1] - two_pi, posf[:, 1], posf[:, 1] + two_pi, inf])
    none = 3 * n
    kk = k - 1 if loop else k  # neighbours other than the point itself
    out = torch.full((n, k), -1, dtype=torch.long, device=device)
    if loop:
        out[:, 0] = torch.arange(n, device=device)
    if kk == 0:
        return out
    side = g.size
    n_events = int(batch[-1]) + 1
    deta, dphi, d0 = grid_offsets(phi_wrap, device, g.size)
    eps = 2 * GRID_TIE_BREAK * math.hypot(g.eta_pixel, g.phi_pixel) * 1.01 + 1e-6
    todo = torch.arange(n, device=device)
    for radius in (r * g.phi_pixel for r in _GRID_RADII):
        m = int((d0 <= radius).sum())
        r_next = float(d0[m])
        pe, pp = int(deta[:m].abs().max()), int(dphi[:m].abs().max())
        h, w = side + 2 * pe, side + 2 * pp
        imap = torch.full((n_events, h, w), none, dtype=torch.int32, device=device)
        imap[batch, ieta + pe, iphi + pp] = torch.arange(n, n + n, dtype=torch.int32, device=device)
        if phi_wrap and pp:
            left, right = imap[:, :, side:side + pp], imap[:, :, pp:2 * pp]
            imap[:, :, :pp] = torch.where(left == none, none, left - n)  # left of the seam: phi - 2 pi
            imap[:, :, pp + side:] = torch.where(right == none, none, right + n)  # right of the seam: phi + 2 pi
        imap = imap.reshape(-1)
        code = (deta[:m] * w + dphi[:m]).int()
        base = ((batch * h + ieta + pe) * w + iphi + pp).int()
        t = min(kk, m)
        step = max(1, max_elements // m)
        undone = []
        for s in range(0, todo.numel(), step):
            rows = todo[s:s + step]
            cand = imap.index_select(0, (base.index_select(0, rows)[:, None] + code).view(-1))
            de_ = eta_ext.index_select(0, cand).view(-1, m) - posf[rows, 0, None]
            dp_ = phi_ext.index_select(0, cand).view(-1, m) - posf[rows, 1, None]
            best, where = (de_.square_() + dp_.square_()).topk(t, dim=1, largest=False, sorted=True)
            out[rows, k - kk:k - kk + t] = torch.remainder(torch.gather(cand.view(-1, m), 1, where), n).long()
            undone.append(rows[best[:, -1].sqrt() >= r_next - eps])  # not provably complete: wider window
        todo = torch.cat(undone)
        if todo.numel() == 0:
            return out
    # the rest: brute force over the whole event (few points, or sparse regions)
    _grid_brute_force(posf, batch, todo, out, k - kk, phi_wrap, max_elements)
    return out


def _grid_brute_force(posf: torch.Tensor, batch: torch.Tensor, todo: torch.Tensor, out: torch.Tensor, first: int,
                      phi_wrap: bool, max_elements: int) -> None:
    """Rows ``todo`` of ``out`` (columns ``first:``): nearest other points of the whole event, by brute force."""
    n_events = int(batch[-1]) + 1
    kk = out.size(1) - first
    device = posf.device
    two_pi = torch.tensor(2 * math.pi, dtype=torch.float32, device=device)
    counts = torch.bincount(batch, minlength=n_events)
    ptr = torch.zeros(n_events + 1, dtype=torch.long, device=device)
    torch.cumsum(counts, 0, out=ptr[1:])
    nmax = int(counts[batch[todo]].max())
    t = min(kk, nmax)
    step = max(1, max_elements // nmax)
    for s in range(0, todo.numel(), step):
        rows = todo[s:s + step]
        cand = ptr[batch[rows], None] + torch.arange(nmax, device=device)
        valid = (cand < ptr[batch[rows] + 1, None]) & (cand != rows[:, None])
        cand = torch.where(valid, cand, 0)
        dphi_c = (posf[cand, 1] - posf[rows, 1, None]).square()
        if phi_wrap:
            for shift in (-two_pi, two_pi):
                dphi_c = torch.minimum(dphi_c, (posf[cand, 1] + shift - posf[rows, 1, None]).square())
        dist = ((posf[cand, 0] - posf[rows, 0, None]).square() + dphi_c).masked_fill(~valid, math.inf)
        best, where = dist.topk(t, dim=1, largest=False, sorted=True)
        nbr = torch.gather(cand, 1, where).masked_fill(~torch.isfinite(best), -1)
        out[rows, first:] = -1  # the windows' guesses
        out[rows, first:first + t] = nbr


#: Candidate columns of :func:`grid_pixel_order` tried in turn by :func:`grid_knn_ordered` (the last
#: is the whole table); rows not complete within them are solved by brute force. On real events
#: (50 % occupancy) 72 % of the rows are complete within 32 columns, 95 % within 40, all but a few
#: within 7 x 8 columns; (40, 7 x 8) measured ~15 % faster than (32, 7 x 8), (32, 48) or (48,). (Column counts
#: of the pixel order, not the grid size.)
#: Columns up to which a row's occupancy is packed into one int64 (7 whole bytes, bit 63 stays clear).
_BITS = 7 * 8
_ORDER_COLUMNS = (40, _BITS)
#: Grids of at most this many pixels keep event-local point indices in int16 (the paper's 3136, 112 x 112's
#: 12544); finer grids use int32.
_INT16_POINTS = 1 << 15


#: Grids of more pixels than this (224 x 224 and finer) order each pixel's neighbours within a window of
#: offsets (:func:`_pixel_order_windowed`) instead of against every pixel (O(P^2): minutes at 224 x 224).
_FULL_ORDER_PIXELS = 1 << 14


def grid_pixel_order(pixel_pos: torch.Tensor, phi_wrap: bool = True,
                     columns: int = 256, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For every pixel, the ``columns`` nearest other pixels ordered by their exact distance.

    ``pixel_pos`` (P, 2) float32: the (eta, phi) position of each pixel's point (pixel centre plus
    its fixed sub-pixel offset, :func:`pfgraph.repr.graph.point_positions` of ``arange(P)``).
    Distances are computed exactly as :func:`grid_knn` does (float32, ``deta^2 + dphi^2``, with
    ``phi_wrap`` the nearest of the copies at phi +- 2 pi), so the order is the one its ``topk``
    sees. Returns ``order`` (P, columns) int32 and ``strict`` (P,) int32: the leading columns of
    each row whose order is strict. The sub-pixel offsets make every distance distinct in exact
    arithmetic, but float32 rounding still makes a few pairs equal (9 of the 3136 rows have one among
    their 257 nearest, the first at column 54 with phi wrap-around); there the order, like
    :func:`grid_knn`'s ``topk``, is arbitrary, and ``strict`` stops before the first such pair.
    """
    pos = pixel_pos.detach().float()
    p = pos.size(0)
    if not 0 < columns < p:
        raise ValueError(f"grid_pixel_order: columns must be in 1..{p - 1}, got {columns}")
    out = torch.empty(p, columns, dtype=torch.int32, device=pos.device)
    strict = torch.empty(p, dtype=torch.int32, device=pos.device)
    if size is not None and p > _FULL_ORDER_PIXELS:
        if size * size != p:
            raise ValueError(f"grid_pixel_order: {p} pixel positions for a {size} x {size} grid")
        rest = _pixel_order_windowed(pos, phi_wrap, columns, size, out, strict)
    else:
        rest = torch.arange(p, device=pos.device)
    _pixel_order_full(pos, rest, phi_wrap, columns, out, strict)
    return out, strict


def _pixel_order_full(pos: torch.Tensor, todo: torch.Tensor, phi_wrap: bool, columns: int, out: torch.Tensor,
                      strict: torch.Tensor) -> None:
    """Rows ``todo`` of :func:`grid_pixel_order` against every pixel."""
    two_pi = torch.tensor(2 * math.pi, dtype=torch.float32, device=pos.device)
    step = 512
    for s in range(0, todo.numel(), step):
        rows = todo[s:s + step]
        dphi = (pos[None, :, 1] - pos[rows, 1, None]).square()
        if phi_wrap:
            for shift in (-two_pi, two_pi):
                dphi = torch.minimum(dphi, (pos[None, :, 1] + shift - pos[rows, 1, None]).square())
        dist = (pos[None, :, 0] - pos[rows, 0, None]).square() + dphi
        dist[torch.arange(rows.numel(), device=pos.device), rows] = math.inf  # not the pixel itself
        best, where = dist.topk(columns + 1, dim=1, largest=False, sorted=True)
        tie = torch.cat([best[:, 1:] <= best[:, :-1], torch.ones_like(best[:, :1], dtype=torch.bool)], dim=1)
        strict[rows] = tie.int().argmax(1).int()  # first column tied with the next one
        out[rows] = where[:, :columns].int()


def _pixel_order_windowed(pos: torch.Tensor, phi_wrap: bool, columns: int, size: int, out: torch.Tensor,
                          strict: torch.Tensor) -> torch.Tensor:
    """:func:`grid_pixel_order` with each pixel's candidates the nearest offsets of the grid
    (:func:`grid_offsets`, four times ``columns + 1`` of them), distances computed as against every
    pixel. A row is final when its ``columns + 1``-th distance is below the nearest offset outside
    the window minus twice the largest sub-pixel offset (every other pixel is farther); returns the
    rows that are not (near the eta edges of small windows), for :func:`_pixel_order_full`."""
    from pfgraph import geometry

    g = geometry.grid(size)
    device = pos.device
    deta, dphi, d0 = grid_offsets(phi_wrap, device, size)
    m = min(int(d0.numel()) - 1, 4 * (columns + 1))
    eps = 2 * GRID_TIE_BREAK * math.hypot(g.eta_pixel, g.phi_pixel) * 1.01 + 1e-6
    bound = (float(d0[m]) - eps) ** 2
    de, dp = deta[:m], dphi[:m]
    two_pi = torch.tensor(2 * math.pi, dtype=torch.float32, device=device)
    p = pos.size(0)
    step = max(1, (1 << 21) // m)
    left = []
    for s in range(0, p, step):
        rows = torch.arange(s, min(s + step, p), device=device)
        ce = torch.div(rows, size, rounding_mode="floor")[:, None] + de
        cp = torch.remainder(rows, size)[:, None] + dp
        valid = (ce >= 0) & (ce < size)
        if phi_wrap:
            cp = torch.remainder(cp, size)
        else:
            valid &= (cp >= 0) & (cp < size)
        cand = torch.where(valid, ce * size + cp, torch.zeros_like(ce))
        dphi_c = (pos[cand, 1] - pos[rows, 1, None]).square()
        if phi_wrap:
            for shift in (-two_pi, two_pi):
                dphi_c = torch.minimum(dphi_c, (pos[cand, 1] + shift - pos[rows, 1, None]).square())
        dist = ((pos[cand, 0] - pos[rows, 0, None]).square() + dphi_c).masked_fill(~valid, math.inf)
        best, where = dist.topk(columns + 1, dim=1, largest=False, sorted=True)
        tie = torch.cat([best[:, 1:] <= best[:, :-1], torch.ones_like(best[:, :1], dtype=torch.bool)], dim=1)
        strict[rows] = tie.int().argmax(1).int()
        out[rows] = torch.gather(cand, 1, where[:, :columns]).int()
        left.append(rows[~(best[:, -1] < bound)])
    return torch.cat(left) if left else torch.zeros(0, dtype=torch.long, device=device)


def grid_knn_ordered(pix: torch.Tensor, k: int, order: tuple[torch.Tensor, torch.Tensor],
                     batch: torch.Tensor | None = None,
                     loop: bool = True, pos: torch.Tensor | None = None, phi_wrap: bool = True,
                     max_elements: int = _GRID_MAX_ELEMENTS) -> torch.Tensor:
    """:func:`grid_knn` for points given by their flat pixel indices, read off a precomputed pixel order.

    ``pix`` (N,) flat pixel indices (at most one point per pixel and event), ``batch`` (N,) the
    sorted event vector, ``order`` = :func:`grid_pixel_order` of the points' positions ``pos``
    (N, 2) (needed only for rows solved by brute force; the same positions and ``phi_wrap``
    as ``order``). Returns the same (N, k) table as :func:`grid_knn` on ``pos``: global point
    indices ordered by distance, the point itself first with ``loop``, ``-1`` where an event has
    too few points.

    Method: the distance between two pixels is a constant of the pair, so each point's
    neighbours are the first occupied pixels of its row of ``order``: one gather from an
    (event, pixel) -> point map per candidate, a cumulative count, and a mask keep the first
    ``k`` occupied candidates (no distances, no ``topk``). A row is exact when its last
    neighbour lies within the row's candidates (every other pixel is farther) and before the row's
    first float32 tie (else it goes to brute force, where ties fall as in :func:`grid_knn`); the first
    :data:`_ORDER_FIRST` columns are tried, then the whole row, and rows still short (events
    with few points, isolated points) are solved by brute force within the event, as in
    :func:`grid_knn`. Tensor operations only: the same code on CPU and CUDA.
    """
    n, device = pix.size(0), pix.device
    batch = _sorted_batch(k, n, batch, device)
    if n == 0:
        return torch.empty(0, k, dtype=torch.long, device=device)
    order, strict = order
    n_pix = order.size(0)
    p = pix.long()
    if int(p.min()) < 0 or int(p.max()) >= n_pix:
        raise ValueError(f"grid_knn_ordered: pixel indices outside 0..{n_pix - 1}")
    kk = k - 1 if loop else k
    out = torch.full((n, k), -1, dtype=torch.long, device=device)
    if loop:
        out[:, 0] = torch.arange(n, device=device)
    if kk == 0:
        return out
    n_events = int(batch[-1]) + 1
    if n_events * n_pix >= 2 ** 31:
        raise ValueError(f"grid_knn_ordered: {n_events} events at once is too many (int32 index map)")
    ptr = torch.zeros(n_events + 1, dtype=torch.long, device=device)
    torch.cumsum(torch.bincount(batch, minlength=n_events), 0, out=ptr[1:])
    local_dt = torch.int16 if n_pix <= _INT16_POINTS else torch.int32  # event-local: < n_pix points per event
    imap = torch.full((n_events * n_pix,), -1, dtype=local_dt, device=device)
    flat = (batch * n_pix + p).int()
    imap[flat] = (torch.arange(n, device=device) - ptr[batch]).to(local_dt)
    if int((imap >= 0).sum()) != n:
        raise ValueError("grid_knn_ordered: two points of one event on the same pixel")
    base = flat - p.int()
    first = k - kk
    todo = torch.arange(n, device=device)
    levels = sorted({min(c, order.size(1)) for c in _ORDER_COLUMNS} | {order.size(1)})
    for c in levels:
        if todo.numel() == 0:
            break
        table = order[:, :c].contiguous()
        step = max(1, max_elements // c)
        undone = []
        for s in range(0, todo.numel(), step):
            rows = todo[s:s + step]
            pr = p[rows]
            index = table.index_select(0, pr)
            index += base.index_select(0, rows)[:, None]
            cand = imap.index_select(0, index.view(-1)).view(-1, c)
            # the kk-th occupied candidate must come before the row's first float32 tie and the table's end
            last = strict.index_select(0, pr).clamp(max=c).long()
            if c <= _BITS and c % 8 == 0:
                nbr, done = _first_occupied_bits(cand, kk, last)
            else:
                nbr, done = _first_occupied_mask(cand, kk, last)
            out[rows[done], first:] = nbr.long() + ptr[batch[rows[done]], None]
            undone.append(rows[~done])
        todo = torch.cat(undone)
    if todo.numel():
        if pos is None:
            raise ValueError("grid_knn_ordered: positions are needed for the rows solved by brute force")
        _grid_brute_force(pos.detach().float(), batch, todo, out, k - kk, phi_wrap, max_elements)
    return out


def grid_knn_ordered_numpy(pix: np.ndarray, offsets: np.ndarray, k: int, order: np.ndarray, strict: np.ndarray,
                           pixel_pos: torch.Tensor, loop: bool = True, phi_wrap: bool = True,
                           max_elements: int = 1 << 20) -> np.ndarray:
    """:func:`grid_knn_ordered` in numpy for the loader: event-local int16 tables of flat point arrays
    (int32 on grids of more pixels than int16 counts).

    ``pix`` (N,) flat pixel indices of the points, ``offsets`` (E+1,) the events' point offsets,
    ``order``, ``strict`` = :func:`grid_pixel_order` of ``pixel_pos`` (P, 2) (as numpy arrays).
    Returns (N, k) int16: event-local point indices, the same table as :func:`grid_knn`
    (ordered by distance, the point itself first with ``loop``, ``-1`` where an event has too
    few points). Same method as :func:`grid_knn_ordered`; numpy because at load time it runs on
    one thread: on the shared 2-core CPU torch's version (many small OpenMP regions, which stall
    when the other core is busy) took 8 s for 512 events with 2 threads, this one 0.4 s.
    ``max_elements`` bounds the rows x candidates of one step (kept in cache).
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    pix = np.asarray(pix).astype(np.int64, copy=False)
    offsets = np.asarray(offsets, dtype=np.int64)
    n, n_pix = len(pix), order.shape[0]
    local_dt = np.int16 if n_pix <= _INT16_POINTS else np.int32
    out = np.full((n, k), -1, dtype=local_dt)
    if n == 0:
        return out
    if int(pix.min()) < 0 or int(pix.max()) >= n_pix:
        raise ValueError(f"grid_knn_ordered: pixel indices outside 0..{n_pix - 1}")
    counts = np.diff(offsets)
    n_events = len(counts)
    if n_events * n_pix >= 2 ** 31:
        raise ValueError(f"grid_knn_ordered: {n_events} events at once is too many (int32 index map)")
    event = np.repeat(np.arange(n_events, dtype=np.int64), counts)
    local = np.arange(n, dtype=np.int64) - offsets[event]
    kk = k - 1 if loop else k
    if loop:
        out[:, 0] = local
    if kk == 0:
        return out
    imap = np.full(n_events * n_pix, -1, dtype=local_dt)
    flat = event * n_pix + pix
    imap[flat] = local
    if int(np.count_nonzero(imap >= 0)) != n:
        raise ValueError("grid_knn_ordered: two points of one event on the same pixel")
    base = (flat - pix).astype(np.int32)
    first = k - kk
    todo = np.arange(n, dtype=np.int64)
    levels = sorted({min(c, order.shape[1]) for c in _ORDER_COLUMNS} | {order.shape[1]})
    for c in levels:
        if len(todo) == 0:
            break
        table = np.ascontiguousarray(order[:, :c])
        step = max(1, max_elements // c)
        undone = []
        for s in range(0, len(todo), step):
            rows = todo[s:s + step]
            pr = pix[rows]
            index = table[pr]
            index += base[rows, None]
            cand = np.take(imap, index)
            last = np.minimum(strict[pr], c)
            occ = cand >= 0
            if c <= 64 and c % 8 == 0:
                # occupancy as one unsigned word per row, lowest set bit peeled kk times, its column read
                # off the float32 exponent (exact for powers of two)
                packed = np.packbits(occ, axis=1, bitorder="little")
                word = np.uint32 if c <= 32 else np.uint64
                size = np.dtype(word).itemsize
                if packed.shape[1] < size:
                    packed = np.concatenate([packed, np.zeros((len(rows), size - packed.shape[1]), np.uint8)], axis=1)
                bits = np.ascontiguousarray(packed).view(word)[:, 0]
                lows = np.empty((kk, len(rows)), word)
                for j in range(kk):
                    low = bits & (word(0) - bits)
                    lows[j] = low
                    bits ^= low
                col = (lows.astype(np.float32).view(np.int32) >> 23) - 127  # -127 where no bit was left
                done = (col[-1] >= 0) & (col[-1] < last)
                hit = np.flatnonzero(done)
                nbr = np.take(cand, (hit * c)[:, None] + col[:, hit].T)
            else:
                count = np.cumsum(occ, axis=1, dtype=np.int16)
                done = (count[np.arange(len(rows)), np.maximum(last - 1, 0)] >= kk) & (last > 0)
                keep = occ & (count <= kk)
                keep &= done[:, None]
                nbr = cand.reshape(-1)[np.flatnonzero(keep)].reshape(-1, kk)
            out[rows[done], first:] = nbr
            undone.append(rows[~done])
        todo = np.concatenate(undone)
    if len(todo):
        # the rest (events with few points, isolated points, float32 ties): brute force within their events
        events = np.unique(event[todo])
        sub = _ranges_np(offsets[events], counts[events])
        sub_batch = np.repeat(np.arange(len(events), dtype=np.int64), counts[events])
        sub_ptr = np.zeros(len(events) + 1, dtype=np.int64)
        np.cumsum(counts[events], out=sub_ptr[1:])
        where = np.searchsorted(events, event[todo])
        sub_rows = sub_ptr[where] + local[todo]
        table_sub = torch.full((len(sub), k), -1, dtype=torch.long)
        pos = pixel_pos.detach().float().cpu()[torch.from_numpy(pix[sub])]
        _grid_brute_force(pos, torch.from_numpy(sub_batch), torch.from_numpy(sub_rows), table_sub, first,
                          phi_wrap, max_elements)
        nb = table_sub[torch.from_numpy(sub_rows), first:].numpy()
        out[todo, first:] = np.where(nb >= 0, nb - sub_ptr[where][:, None], -1)
    return out


def _ranges_np(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for every (s, c)."""
    total = int(counts.sum())
    begin = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=begin[1:])
    return np.arange(total, dtype=np.int64) + np.repeat(starts - begin, counts)


#: Multiplier gathering the low bits of 8 bytes of an int64 into its top byte (bit i <- byte i).
_PACK8 = sum(1 << (_BITS - 7 * j) for j in range(8))


def _first_occupied_bits(cand: torch.Tensor, kk: int, last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First ``kk`` non-negative entries of each row of ``cand`` (R, c), ``c`` a multiple of 8 up to ``_BITS``,
    for the rows where they all lie before column ``last``. The occupancy is packed into one int64
    per row (8 bool bytes at a time, one multiply), the lowest set bit is peeled ``kk`` times and
    its column read off the float32 exponent (exact for powers of two)."""
    r, c = cand.shape
    occ = (cand >= 0).view(torch.uint8).view(r, c // 8, 8).contiguous().view(torch.int64).view(r, c // 8)
    byte = torch.bitwise_right_shift(occ * _PACK8, _BITS) & 0xFF  # (r, c/8): bit i = column 8 g + i
    shift = torch.arange(0, c, 8, device=cand.device)
    bits = (byte << shift).sum(1)
    lows = []
    for _ in range(kk):
        low = bits & -bits
        lows.append(low)
        bits ^= low
    low = torch.stack(lows, 1).float()  # powers of two are exact; 0.0 where no bit was left
    col = (low.view(torch.int32) >> 23) - 127  # the exponent; -127 for 0.0
    done = (col[:, -1] >= 0) & (col[:, -1] < last)
    return torch.gather(cand[done], 1, col[done].long()), done


def _first_occupied_mask(cand: torch.Tensor, kk: int, last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """As :func:`_first_occupied_bits` for any number of columns: cumulative count and a mask."""
    occ = cand >= 0
    count = occ.cumsum(1, dtype=torch.int32)
    done = count.gather(1, (last - 1).clamp(min=0)[:, None])[:, 0] >= kk
    done &= last > 0
    keep = occ & (count <= kk) & done[:, None]
    return cand[keep].view(-1, kk), done


def edges_to_table(edges: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """``edge_index`` [neighbour, centre] with at most ``k`` edges per centre -> (n, k) table, ``-1`` padded."""
    src, dst = edges[0], edges[1]
    if dst.numel() > 1 and bool((dst[1:] < dst[:-1]).any()):
        order = torch.argsort(dst, stable=True)
        src, dst = src[order], dst[order]
    counts = torch.bincount(dst, minlength=n)
    start = torch.zeros(n + 1, dtype=torch.long, device=edges.device)
    torch.cumsum(counts, 0, out=start[1:])
    slot = torch.arange(dst.numel(), device=edges.device) - start[dst]
    table = torch.full((n, k), -1, dtype=torch.long, device=edges.device)
    table[dst, slot] = src
    return table


def table_to_edges(table: torch.Tensor) -> torch.Tensor:
    """(n, k) neighbour table (``-1`` = none) -> ``edge_index`` [neighbour, centre] sorted by centre."""
    n, k = table.shape
    centre = torch.arange(n, device=table.device).repeat_interleave(k)
    src = table.reshape(-1)
    keep = src >= 0
    return torch.stack([src[keep], centre[keep]])
