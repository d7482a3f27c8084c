"""The static (eta, phi) neighbour table of the graph models, in plain numpy (no other import).

This file depends on numpy alone, so it can be copied next to any program that runs an exported
graph model (``pfgraph export``) and needs the model's ``nbr`` input. pfgraph's own loader builds
the same table with a faster method (:func:`pfgraph.repr.graph.static_neighbours`); a test checks
that both agree.

Definition. An event's points are its pixels with any non-zero input (at most one point per
pixel). Point ``i`` on pixel ``(ieta, iphi)`` sits at::

    eta_i = eta_centres[ieta] + jitter[ieta * G + iphi, 0]
    phi_i = phi_centres[iphi] + jitter[ieta * G + iphi, 1]

with the pixel centres of the G x G grid (eta in [-2.5, 2.5], phi in [-pi, pi]; G the grid size, the
events file's ``imsize`` and an exported model's ``grid`` metadata, :data:`PAPER_GRID_SIZE` by default)
and a fixed sub-pixel offset ``jitter`` (at most 1 % of a pixel, drawn once per grid with numpy's PCG64
seeded 20240556, G * G rows) (:func:`grid_tables`)
that makes the k nearest points well defined on the regular grid. The distance is computed in
float32 as ``(eta_j - eta_i)**2 + min((phi_j - phi_i)**2, (phi_j + 2 pi - phi_i)**2,
(phi_j - 2 pi - phi_i)**2)`` (phi is periodic). Row ``i`` of the table is the point itself, then
the other points of its event in increasing distance, ``K = 16`` columns, ``-1`` where the event
has fewer than ``K`` points. Indices are global over the batch (the rows of the ``energy`` input:
events one after the other, ``npix`` points each). Where two distances are equal in float32 (rare)
their order is unspecified; a model's output does not depend on it except through which of two
equidistant points is the K-th.
"""

from __future__ import annotations

import numpy as np

#: The paper's grid size, the default G (this file imports nothing of pfgraph, whose geometry defines it:
#: a test checks they agree); the eta range and the neighbours per point of the stored table.
PAPER_GRID_SIZE = 56
MAX_ETA = 2.5
K = 16
#: Maximum sub-pixel offset, as a fraction of a pixel, and the seed of the offsets.
TIE_BREAK = 0.01
JITTER_SEED = 20240556

_TABLES: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def grid_tables(size: int = PAPER_GRID_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eta_centres (G,), phi_centres (G,) float64, jitter (G * G, 2) float32) of the ``size`` grid:
    the pixel centres as pfgraph's geometry defines them and the sub-pixel offset of every flat pixel
    ``ieta * G + iphi`` (eta, phi)."""
    if size not in _TABLES:
        eta_edges = np.linspace(-MAX_ETA, MAX_ETA, size + 1)
        phi_edges = np.linspace(-np.pi, np.pi, size + 1)
        jitter = (np.random.default_rng(JITTER_SEED).uniform(-TIE_BREAK, TIE_BREAK, size=(size * size, 2))
                  * np.array([2 * MAX_ETA / size, 2 * np.pi / size])).astype(np.float32)
        _TABLES[size] = (0.5 * (eta_edges[:-1] + eta_edges[1:]), 0.5 * (phi_edges[:-1] + phi_edges[1:]), jitter)
    return _TABLES[size]


def point_positions(ieta: np.ndarray, iphi: np.ndarray, size: int = PAPER_GRID_SIZE) -> np.ndarray:
    """(N, 2) float32 (eta, phi) of points on pixels ``(ieta, iphi)`` of the ``size`` grid (pixel centre + fixed offset)."""
    eta_c, phi_c, jitter = grid_tables(size)
    ieta = np.asarray(ieta, dtype=np.int64)
    iphi = np.asarray(iphi, dtype=np.int64)
    pos = np.stack([eta_c[ieta].astype(np.float32), phi_c[iphi].astype(np.float32)], axis=1)
    return pos + jitter[ieta * size + iphi]


def neighbour_table(ieta: np.ndarray, iphi: np.ndarray, npix: np.ndarray, k: int = K,
                    size: int = PAPER_GRID_SIZE) -> np.ndarray:
    """The ``nbr`` input of an exported graph model: (N, k) int64 global point indices.

    ``ieta``, ``iphi`` (N,) pixel indices of the points of all events on the ``size`` grid (the
    model's ``grid`` metadata), event after event; ``npix`` (B,) points per event (``sum(npix) == N``).
    See the module docstring for the definition (self first, then by distance, ``-1`` padding).
    """
    ieta = np.asarray(ieta, dtype=np.int64).reshape(-1)
    iphi = np.asarray(iphi, dtype=np.int64).reshape(-1)
    npix = np.asarray(npix, dtype=np.int64).reshape(-1)
    if len(ieta) != len(iphi) or int(npix.sum()) != len(ieta):
        raise ValueError(f"neighbour_table: {len(ieta)} ieta, {len(iphi)} iphi values for {int(npix.sum())} points")
    if len(ieta) and (ieta.min() < 0 or ieta.max() >= size or iphi.min() < 0 or iphi.max() >= size):
        raise ValueError(f"neighbour_table: pixel indices outside 0..{size - 1}")
    pos = point_positions(ieta, iphi, size)
    two_pi = np.float32(2 * np.pi)
    out = np.full((len(ieta), k), -1, dtype=np.int64)
    start = 0
    for n in npix.tolist():
        if n == 0:
            continue
        p = pos[start:start + n]
        deta = (p[None, :, 0] - p[:, None, 0]) ** 2
        dphi = (p[None, :, 1] - p[:, None, 1]) ** 2
        for shift in (-two_pi, two_pi):
            dphi = np.minimum(dphi, ((p[None, :, 1] + shift) - p[:, None, 1]) ** 2)
        dist = deta + dphi
        np.fill_diagonal(dist, -1.0)  # the point itself first
        m = min(k, n)
        if m < n:
            part = np.argpartition(dist, m - 1, axis=1)[:, :m]
        else:
            part = np.broadcast_to(np.arange(n), (n, n))
        d = np.take_along_axis(dist, part, axis=1)
        order = np.take_along_axis(part, np.argsort(d, axis=1, kind="stable"), axis=1)
        out[start:start + n, :m] = order + start
        start += n
    return out
