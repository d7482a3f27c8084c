"""Point clouds: events -> torch-geometric batches of their non-zero pixels.

An event's point cloud is every pixel where any input channel is non-zero (the ``pix_*``
branches of the data contract). Per point the batch carries:

* ``x`` (N, 4) float32: [emcal, hcal, trk_neg, trk_pos] divided by the checkpoint's input
  scales (the same :class:`~pfgraph.repr.base.Normalisation` as the image models; stored
  channel-major, so ``x`` is a transposed view);
* ``y`` (N,) float32: the target channel (``pix_truth`` by default) / target scale;
* ``pix`` (N,) int16 (int32 on grids of more than 32767 pixels): flat pixel index
  ``ieta * G + iphi``, kept for the grid; the batch's ``grid_size`` is G (the data's grid);
* ``batch`` (N,) int64 and ``ptr`` (B+1,): torch-geometric's event vector and offsets;
* ``miss_pix``, ``miss_val``, ``miss_batch``: the target pixels *without* a point (out of
  reach of any point model, about 3 % of truth pixels), so :meth:`GraphRepresentation.truth_grid`
  rebuilds the full target image exactly;
* ``nbr`` (N, :data:`STATIC_K`) int32: the static (eta, phi) graph, each point's nearest points of
  its event ordered by distance (itself first), as batch-global indices, ``-1`` where the event
  has fewer points. It is built once per event when the events are loaded
  (the table of :func:`pfgraph.repr.knn.grid_knn`, phi periodic as in the evaluation, read off a
  cached per-pixel order of the other pixels by distance: :func:`static_neighbours`) and stored
  with the points (int16, local to the event), so an epoch never recomputes it; models take its
  first k columns.

The model features (N, 8) = [x, eta, phi, ieta/G, iphi/G] and the positions used for the
fixed (eta, phi) graph are derived from ``pix`` on the model's device
(:func:`point_features`, :func:`point_positions`), so a batch in memory stays smaller than
the dense images of the same events.

Loading reads whole ROOT chunks of the jagged branches with awkward and works on flat numpy
arrays (no per-event Python work); events are stored compactly (:class:`PointStore`) and a
batch is one vectorised gather (:meth:`PointStore.batch`).
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import awkward as ak
import numpy as np
import torch
from torch import nn

with warnings.catch_warnings():  # torch-geometric's import-time notices (torch.jit.script, torch-cluster)
    warnings.simplefilter("ignore", DeprecationWarning)
    from torch_geometric.data import Batch, Data

from pfgraph import geometry
from pfgraph.errors import DataError
from pfgraph.io import schema
from pfgraph.io.reading import sparse_offsets
from pfgraph.io.root import EventFiles
from pfgraph.repr.base import Normalisation, Representation
from pfgraph.repr.features import FEATURES, N_FEATURES, STATIC_K, STATIC_PHI_WRAP  # noqa: F401 (re-exported)
from pfgraph.repr.grid import graph_to_grid, reach_summary, split_pixel
from pfgraph.repr.knn import GRID_TIE_BREAK, grid_knn_ordered_numpy, grid_pixel_order
from pfgraph.repr.registry import register_representation

#: Fixed sub-pixel offset (in pixels, at most) added to the positions of the (eta, phi) graph:
#: on a regular grid many neighbours are exactly equidistant, and this makes the k nearest
#: well defined, hence identical for every kNN backend and device.
TIE_BREAK = GRID_TIE_BREAK

#: Seed of the fixed tie-break offsets (one draw per grid: the same generator, as many pixels as the grid has).
_JITTER_SEED = 20240556
_TABLES: dict[tuple[torch.device, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def pixel_dtype(size: int) -> np.dtype:
    """The integer dtype of flat pixel indices on the ``size`` grid: int16 where it holds them, else int32."""
    return np.dtype(np.int16) if size * size <= np.iinfo(np.int16).max + 1 else np.dtype(np.int32)


def _tables(device: torch.device, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    key = (device, size)
    if key not in _TABLES:
        g = geometry.grid(size)
        rng = np.random.default_rng(_JITTER_SEED)
        jitter = (rng.uniform(-TIE_BREAK, TIE_BREAK, size=(g.npix, 2))
                  * np.array([g.eta_pixel, g.phi_pixel])).astype(np.float32)
        _TABLES[key] = (torch.from_numpy(g.eta_centres.astype(np.float32)).to(device),
                        torch.from_numpy(g.phi_centres.astype(np.float32)).to(device),
                        torch.from_numpy(jitter).to(device))
    return _TABLES[key]


def point_features(x: torch.Tensor, pix: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 4) normalised energies + (N,) pixel indices of the ``size`` grid -> (N, 8) features (see :data:`FEATURES`)."""
    eta_t, phi_t, _ = _tables(x.device, size)
    ieta, iphi = split_pixel(pix, size)
    return torch.cat([x, eta_t[ieta, None].to(x.dtype), phi_t[iphi, None].to(x.dtype),
                      (ieta[:, None] / size).to(x.dtype), (iphi[:, None] / size).to(x.dtype)], dim=1)


def point_positions(pix: torch.Tensor, size: int) -> torch.Tensor:
    """(N,) pixel indices of the ``size`` grid -> (N, 2) (eta, phi) of the pixel centres plus the fixed tie-break offset."""
    eta_t, phi_t, jitter = _tables(pix.device, size)
    p = pix.long()
    ieta, iphi = split_pixel(p, size)
    return torch.stack([eta_t[ieta], phi_t[iphi]], dim=1) + jitter[p]


def graph_branches(target: str = "truth", with_target: bool = True, layout: str = "dense") -> list[str]:
    """Branches the graph representation reads for ``target`` (``with_target=False``: the inputs only) from
    files of ``layout``: the target image of dense files, the sparse truth of sparse-first ones (for the
    target pixels without a point)."""
    if target not in schema.TARGET_CHANNELS:
        raise DataError(f"target '{target}' is not one of {', '.join(schema.TARGET_CHANNELS)}")
    whole = [target] if layout != "sparse" else list(schema.sparse_source(target) or ())
    return ["event_id", schema.POINT_COUNTER, "pix_ieta", "pix_iphi", *(f"pix_{c}" for c in schema.INPUT_CHANNELS),
            *([f"pix_{target}", *whole] if with_target else [])]


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for every (s, c), vectorised."""
    counts = counts.astype(np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    begin = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=begin[1:])
    return np.arange(total, dtype=np.int64) + np.repeat(starts.astype(np.int64) - begin, counts)


def _offsets(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def _flat(array: Any, path: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Jagged awkward array -> (offsets starting at 0, flat numpy content)."""
    layout = array.layout if isinstance(array, ak.Array) else None
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray):
        offsets = np.asarray(layout.offsets, dtype=np.int64)
        content = np.asarray(layout.content.data)[offsets[0]:offsets[-1]]
        return offsets - offsets[0], content
    try:
        counts = np.asarray(ak.num(array, axis=1), dtype=np.int64)
        return _offsets(counts), np.asarray(ak.to_numpy(ak.flatten(array, axis=1)))
    except Exception as exc:
        raise DataError(f"{path}: branch '{name}' is not a jagged array of numbers ({exc})") from None


@dataclass
class PointStore:
    """Compact point clouds of many events (flat arrays + offsets); see the module docstring."""

    entries: np.ndarray  # (E,) int64 global entry numbers
    offsets: np.ndarray  # (E+1,) int64 into the point arrays
    energy: np.ndarray  # (4, P) float32, normalised (channel-major)
    pix: np.ndarray  # (P,) int16
    target: np.ndarray  # (P,) float32, normalised
    miss_offsets: np.ndarray  # (E+1,) int64 into the miss arrays
    miss_pix: np.ndarray  # (M,) int16
    miss_val: np.ndarray  # (M,) float32, normalised
    nbr: np.ndarray  # (P, STATIC_K) int16 event-local indices of the static graph, -1 = none
    event_id: np.ndarray  # (E,) int64 the events' ids
    grid_size: int = geometry.PAPER_GRID_SIZE  # G of the events' G x G grid (the data's)

    @property
    def num_events(self) -> int:
        """Number of events held."""
        return len(self.entries)

    @property
    def num_points(self) -> int:
        """Number of points over all events."""
        return int(self.offsets[-1])

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        return sum(a.nbytes for a in (self.entries, self.offsets, self.energy, self.pix, self.target,
                                      self.miss_offsets, self.miss_pix, self.miss_val, self.nbr, self.event_id))

    @staticmethod
    def concat(stores: Sequence[PointStore], grid_size: int | None = None) -> PointStore:
        """Join stores event-wise (in order); all on one grid (``grid_size`` names it for no stores)."""
        if not stores:
            size = geometry.PAPER_GRID_SIZE if grid_size is None else grid_size
            return PointStore(np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros((4, 0), np.float32),
                              np.zeros(0, pixel_dtype(size)), np.zeros(0, np.float32), np.zeros(1, np.int64),
                              np.zeros(0, pixel_dtype(size)), np.zeros(0, np.float32), np.zeros((0, STATIC_K), pixel_dtype(size)),
                              np.zeros(0, np.int64), size)
        if len({s.grid_size for s in stores}) != 1:
            raise ValueError(f"cannot join point stores of grids {sorted({s.grid_size for s in stores})}")
        if len(stores) == 1:
            return stores[0]
        counts = np.concatenate([np.diff(s.offsets) for s in stores])
        miss_counts = np.concatenate([np.diff(s.miss_offsets) for s in stores])
        return PointStore(
            entries=np.concatenate([s.entries for s in stores]), offsets=_offsets(counts),
            energy=np.concatenate([s.energy for s in stores], axis=1), pix=np.concatenate([s.pix for s in stores]),
            target=np.concatenate([s.target for s in stores]), miss_offsets=_offsets(miss_counts),
            miss_pix=np.concatenate([s.miss_pix for s in stores]),
            miss_val=np.concatenate([s.miss_val for s in stores]),
            nbr=np.concatenate([s.nbr for s in stores]),
            event_id=np.concatenate([s.event_id for s in stores]), grid_size=stores[0].grid_size,
        )

    def batch(self, rows: Sequence[int] | np.ndarray) -> Batch:
        """The events ``rows`` as one torch-geometric :class:`Batch` (see the module docstring)."""
        rows = np.asarray(rows, dtype=np.int64)
        counts = self.offsets[rows + 1] - self.offsets[rows]
        pidx = _ranges(self.offsets[rows], counts)
        mcounts = self.miss_offsets[rows + 1] - self.miss_offsets[rows]
        midx = _ranges(self.miss_offsets[rows], mcounts)
        n_events = len(rows)
        ev = np.arange(n_events, dtype=np.int64)
        ptr = _offsets(counts)
        out = Batch(
            x=torch.from_numpy(np.take(self.energy, pidx, axis=1)).T,
            y=torch.from_numpy(self.target.take(pidx)),
            pix=torch.from_numpy(self.pix.take(pidx)),
            batch=torch.from_numpy(np.repeat(ev, counts)),  # numpy: torch.repeat_interleave is slow on CPU
            ptr=torch.from_numpy(ptr),
            nbr=_global_neighbours(self.nbr[pidx], ptr, counts),
            miss_pix=torch.from_numpy(self.miss_pix.take(midx)),
            miss_val=torch.from_numpy(self.miss_val.take(midx)),
            miss_batch=torch.from_numpy(np.repeat(ev, mcounts)),
            entry=torch.from_numpy(self.entries[rows]),
            event_id=torch.from_numpy(self.event_id[rows]),
        )
        out.num_events = n_events
        out.grid_size = self.grid_size
        return out

    def event(self, row: int) -> Data:
        """One event as a torch-geometric :class:`Data` (same fields as a batch, no event vector)."""
        a, b = int(self.offsets[row]), int(self.offsets[row + 1])
        ma, mb = int(self.miss_offsets[row]), int(self.miss_offsets[row + 1])
        return Data(x=torch.from_numpy(self.energy[:, a:b]).T, y=torch.from_numpy(self.target[a:b]),
                    pix=torch.from_numpy(self.pix[a:b]), nbr=torch.from_numpy(self.nbr[a:b]), miss_pix=torch.from_numpy(self.miss_pix[ma:mb]),
                    miss_val=torch.from_numpy(self.miss_val[ma:mb]), entry=int(self.entries[row]),
                    event_id=int(self.event_id[row]), num_nodes=b - a, grid_size=self.grid_size)


def _global_neighbours(local: np.ndarray, ptr: np.ndarray, counts: np.ndarray) -> torch.Tensor:
    """Event-local neighbour indices (P, K) -> batch-global int32 tensor (``-1`` kept)."""
    out = local.astype(np.int32)
    out += np.repeat(ptr[:-1].astype(np.int32), counts)[:, None]
    np.putmask(out, local < 0, -1)
    return torch.from_numpy(out)


_PIXEL_ORDER: dict[tuple[bool, torch.device, int], tuple[torch.Tensor, torch.Tensor]] = {}
_PIXEL_ORDER_LOCK = threading.Lock()


def pixel_order(phi_wrap: bool = STATIC_PHI_WRAP, device: torch.device | str = "cpu",
                size: int = geometry.PAPER_GRID_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pixel's nearest other pixels of the ``size`` grid ordered by the distance of their points
    (fixed offsets included), :func:`pfgraph.repr.knn.grid_pixel_order`; computed once per device and
    grid and cached."""
    key = (phi_wrap, torch.device(device), size)
    with _PIXEL_ORDER_LOCK:
        if key not in _PIXEL_ORDER:
            every = torch.arange(size * size, device=key[1])
            _PIXEL_ORDER[key] = grid_pixel_order(point_positions(every, size), phi_wrap, size=size)
        return _PIXEL_ORDER[key]


def static_neighbours(pix: np.ndarray, offsets: np.ndarray, size: int) -> np.ndarray:
    """The static (eta, phi) graph of flat point arrays: (P, STATIC_K) int16 (int32 on finer grids) event-local indices.

    ``pix`` (P,) flat pixel indices of the ``size`` grid, ``offsets`` (E+1,) the events' point offsets. Neighbours
    ordered by distance, the point itself first, ``-1`` where an event has fewer points, phi
    periodic: the table of :func:`pfgraph.repr.knn.grid_knn`, read off the cached pixel order
    (:func:`pfgraph.repr.knn.grid_knn_ordered_numpy`, :func:`pixel_order`).
    """
    counts = np.diff(offsets)
    if len(pix) == 0:
        return np.zeros((0, STATIC_K), pixel_dtype(size))
    out = np.empty((len(pix), STATIC_K), pixel_dtype(size))  # event-local indices: < size * size
    order, strict = (t.numpy() for t in pixel_order(STATIC_PHI_WRAP, "cpu", size))
    every = point_positions(torch.arange(size * size), size)
    group = 512  # events per call: bounds the index maps
    for e0 in range(0, len(counts), group):
        e1 = min(e0 + group, len(counts))
        a, b = int(offsets[e0]), int(offsets[e1])
        if b == a:
            continue
        out[a:b] = grid_knn_ordered_numpy(pix[a:b], offsets[e0:e1 + 1] - a, STATIC_K, order, strict, every,
                                          loop=True, phi_wrap=STATIC_PHI_WRAP)
    return out


def chunk_points(chunk: dict[str, Any], rows: np.ndarray, norm: Normalisation, entry_start: int = 0,
                 with_target: bool = True, size: int = geometry.PAPER_GRID_SIZE) -> PointStore:
    """Point clouds of the events ``rows`` (chunk-local) of one chunk read with :func:`graph_branches`,
    on the ``size`` grid (the files' :attr:`~pfgraph.io.root.EventFiles.grid`; ``with_target=False``: a
    chunk without the target; it reads as zeros, with no missed pixels)."""
    path = str(chunk.get("_file", "?"))
    target = norm.target
    rows = np.asarray(rows, dtype=np.int64)
    offsets, ieta = _flat(chunk["pix_ieta"], path, "pix_ieta")
    n_chunk = len(offsets) - 1
    flat = {"pix_ieta": ieta}
    for name in ["pix_iphi", *(f"pix_{c}" for c in schema.INPUT_CHANNELS), *([f"pix_{target}"] if with_target else [])]:
        off, values = _flat(chunk[name], path, name)
        if len(off) != len(offsets) or not np.array_equal(off, offsets):
            raise DataError(f"{path}: entries from {entry_start}: branch '{name}' has other point counts than 'pix_ieta'")
        flat[name] = values
    npix = np.asarray(chunk.get(schema.POINT_COUNTER, np.diff(offsets)), dtype=np.int64)
    if not np.array_equal(npix, np.diff(offsets)):
        bad = int(np.flatnonzero(npix != np.diff(offsets))[0])
        raise DataError(f"{path}: event {entry_start + bad}, branch '{schema.POINT_COUNTER}' disagrees with the point arrays")
    counts = offsets[rows + 1] - offsets[rows]
    contiguous = len(rows) == n_chunk and (n_chunk == 0 or np.array_equal(rows, np.arange(n_chunk)))
    pidx = slice(None) if contiguous else _ranges(offsets[rows], counts)
    ie = flat["pix_ieta"][pidx]
    ip = flat["pix_iphi"][pidx]
    if len(ie) and (ie.min() < 0 or ie.max() >= size or ip.min() < 0 or ip.max() >= size):
        raise DataError(f"{path}: entries from {entry_start}: pixel index outside 0..{size - 1} in 'pix_ieta'/'pix_iphi'")
    pdt = pixel_dtype(size)
    npix_grid = size * size
    pix = ie.astype(pdt, copy=False) * pdt.type(size) + ip.astype(pdt, copy=False)  # < size * size
    inv_in = (1.0 / norm.inputs_array()).astype(np.float32)
    energy = np.empty((len(schema.INPUT_CHANNELS), len(pix)), dtype=np.float32)  # channel-major: fast writes
    for k, c in enumerate(schema.INPUT_CHANNELS):
        np.multiply(flat[f"pix_{c}"][pidx], inv_in[k], out=energy[k])
    inv_t = np.float32(1.0 / norm.target_scale)
    base = np.repeat(np.arange(0, len(rows) * npix_grid, npix_grid, dtype=np.int64 if pdt == np.int32 else np.int32),
                     counts)
    base += pix
    if with_target:
        y = flat[f"pix_{target}"][pidx] * inv_t
        if target not in chunk:  # sparse-first files: the sparse truth's non-zero cells minus every point pixel
            mev, mpix, miss_val = _missed_sparse(chunk, target, rows, base, size, path, entry_start, inv_t)
        else:
            mev, mpix, miss_val = _missed_dense(np.asarray(chunk[target]).reshape(n_chunk, npix_grid), rows,
                                                contiguous, base, inv_t)
    else:
        y = np.zeros(len(pix), np.float32)
        mev, mpix, miss_val = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    try:
        nbr = static_neighbours(pix, _offsets(counts), size)
    except ValueError as err:  # the static graph needs one point per pixel and event
        key = np.sort(base)
        dup = key[1:][key[1:] == key[:-1]]
        if not len(dup):
            raise
        raise DataError(f"{path}: event {entry_start + int(rows[dup[0] // npix_grid])}: two points on pixel "
                        f"{int(dup[0] % npix_grid)} in 'pix_ieta'/'pix_iphi'") from err
    return PointStore(
        entries=rows + entry_start, offsets=_offsets(counts), energy=energy, pix=pix,
        target=np.ascontiguousarray(y, dtype=np.float32),
        miss_offsets=_offsets(np.bincount(mev, minlength=len(rows))), miss_pix=mpix.astype(pdt),
        miss_val=miss_val.astype(np.float32), nbr=nbr,
        event_id=np.asarray(chunk["event_id"], dtype=np.int64)[rows], grid_size=size,
    )


def _missed_dense(dense: np.ndarray, rows: np.ndarray, contiguous: bool, base: np.ndarray,
                  inv_t: np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Target pixels without a point from the dense target (n_chunk, G*G): (event row, pixel, value * inv_t)."""
    npix_grid = dense.shape[1]
    if not contiguous:
        dense = dense[rows]
    rest = dense != 0  # then clear every point pixel
    rest.reshape(-1)[base] = False
    mev, mpix = np.divmod(np.flatnonzero(rest), npix_grid)
    return mev, mpix, dense[mev, mpix] * inv_t


def _missed_sparse(chunk: dict[str, Any], target: str, rows: np.ndarray, base: np.ndarray, size: int, path: str,
                   entry_start: int, inv_t: np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Target pixels without a point from the sparse truth of a sparse-first chunk, in the order and with the
    values :func:`_missed_dense` gives for the dense target: (event row, pixel, value * inv_t)."""
    counter, ieta, iphi, values = schema.sparse_source(target) or ("", "", "", "")
    offsets, ie = sparse_offsets(chunk[counter], chunk[ieta], path, entry_start)
    ip, val = _flat(chunk[iphi], path, iphi)[1], _flat(chunk[values], path, values)[1]
    counts = offsets[rows + 1] - offsets[rows]
    sel = _ranges(offsets[rows], counts)
    ie, ip, val = ie[sel].astype(np.int64), ip[sel].astype(np.int64), val[sel]
    if len(ie) and (ie.min() < 0 or ie.max() >= size or ip.min() < 0 or ip.max() >= size):
        raise DataError(f"{path}: entries from {entry_start}: pixel index outside 0..{size - 1} in '{ieta}'/'{iphi}'")
    npix_grid = size * size
    key = np.repeat(np.arange(len(rows), dtype=np.int64), counts) * npix_grid + ie * size + ip
    points = np.asarray(base, dtype=np.int64)  # sorted: events in order, points row-major within each
    at = np.minimum(np.searchsorted(points, key), max(len(points) - 1, 0))
    has_point = (points[at] == key) if len(points) else np.zeros(len(key), bool)
    keep = (val != 0) & ~has_point
    mev, mpix = np.divmod(key[keep], npix_grid)
    return mev, mpix, val[keep] * inv_t


def _chunk_start(files: EventFiles, chunk: dict[str, Any]) -> int:
    i = [str(p) for p in files.paths].index(chunk["_file"])
    return int(files.offsets[i]) + int(chunk["_entry_start"])


def iter_point_chunks(files: EventFiles, norm: Normalisation, indices: Sequence[int] | np.ndarray | None = None,
                      step: int = 2000, with_target: bool = True) -> Iterator[PointStore]:
    """Stream :class:`PointStore` chunks of the (sorted, unique) global entries ``indices`` (all if None)."""
    if indices is None:
        lo, hi, wanted = 0, files.num_events, None
    else:
        wanted = np.unique(np.asarray(indices, dtype=np.int64))
        if len(wanted) == 0:
            return
        if wanted[0] < 0 or wanted[-1] >= files.num_events:
            raise DataError(f"event index {int(wanted[-1] if wanted[-1] >= 0 else wanted[0])} outside 0..{files.num_events - 1}")
        lo, hi = int(wanted[0]), int(wanted[-1]) + 1
    for chunk in files.iterate(graph_branches(norm.target, with_target, files.layout), step=step, start=lo, stop=hi):
        start = _chunk_start(files, chunk)
        n = len(chunk[schema.POINT_COUNTER])
        if wanted is None:
            rows = np.arange(n, dtype=np.int64)
        else:
            a, b = np.searchsorted(wanted, [start, start + n])
            rows = wanted[a:b] - start
        if len(rows):
            yield chunk_points(chunk, rows, norm, entry_start=start, with_target=with_target, size=files.grid.size)


def load_points(files: EventFiles, indices: Sequence[int] | np.ndarray | None, norm: Normalisation,
                step: int = 2000, with_target: bool = True) -> PointStore:
    """Read the events ``indices`` (global entry numbers; all if None) into one :class:`PointStore`.

    Events are stored in increasing entry order, each once.
    """
    return PointStore.concat(list(iter_point_chunks(files, norm, indices, step, with_target)), files.grid.size)


def stream_batches(files: EventFiles, norm: Normalisation, batch_size: int,
                   indices: Sequence[int] | np.ndarray | None = None, step: int = 2000) -> Iterator[Batch]:
    """Batches of ``batch_size`` events straight from ROOT chunks (constant memory; last may be short)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    carry: PointStore | None = None
    for store in iter_point_chunks(files, norm, indices, step):
        start, n = 0, store.num_events
        if carry is not None:
            start = min(batch_size - carry.num_events, n)
            carry = PointStore.concat([carry, _subset(store, np.arange(start))])
            if carry.num_events < batch_size:
                continue
            yield carry.batch(np.arange(batch_size))
            carry = None
        end = start + (n - start) // batch_size * batch_size
        for s in range(start, end, batch_size):
            yield store.batch(np.arange(s, s + batch_size))
        if end < n:
            carry = _subset(store, np.arange(end, n))
    if carry is not None:
        yield carry.batch(np.arange(carry.num_events))


def _subset(store: PointStore, rows: np.ndarray) -> PointStore:
    counts = store.offsets[rows + 1] - store.offsets[rows]
    mcounts = store.miss_offsets[rows + 1] - store.miss_offsets[rows]
    pidx = _ranges(store.offsets[rows], counts)
    midx = _ranges(store.miss_offsets[rows], mcounts)
    return PointStore(store.entries[rows], _offsets(counts), np.take(store.energy, pidx, axis=1), store.pix.take(pidx),
                      store.target.take(pidx), _offsets(mcounts), store.miss_pix.take(midx), store.miss_val.take(midx),
                      store.nbr[pidx], store.event_id[rows], store.grid_size)


class GraphEvent(NamedTuple):
    """One dataset item: a reference to its store and row (collated without per-event copies)."""

    store: PointStore
    row: int

    def to_data(self) -> Data:
        """This event as a torch-geometric :class:`Data`."""
        return self.store.event(self.row)


#: Bytes per event of a :class:`PointStore` in paper mode (measured: ~1580 points x 22 B + the
#: out-of-reach target + the static graph, 1580 x 16 x 2 B), used to size streaming blocks.
GRAPH_EVENT_BYTES = 86_000
#: Points per event behind :data:`GRAPH_EVENT_BYTES` (paper mode).
GRAPH_EVENT_POINTS = 1580


def graph_event_bytes(files: EventFiles, indices: np.ndarray) -> int:
    """Bytes per event of a :class:`PointStore` of these events, for sizing streaming blocks: the paper-mode
    figure scaled by the events' mean point count (finer grids and spread showers hold many more points)."""
    idx = np.asarray(indices, dtype=np.int64)
    if not len(idx):
        return GRAPH_EVENT_BYTES
    lo, hi = int(idx.min()), int(idx.max()) + 1
    npix = np.asarray(files.read([schema.POINT_COUNTER], lo, min(hi, lo + 2000))[schema.POINT_COUNTER])
    mean = float(npix.mean()) if npix.size else 0.0
    return int(GRAPH_EVENT_BYTES * max(1.0, mean / GRAPH_EVENT_POINTS))


class GraphDataset(torch.utils.data.Dataset):
    """Map-style dataset of point clouds: item ``i`` is the event ``indices[i]`` of ``files``.

    ``indices`` are global entry numbers in any order (repeats allowed). With ``block_events``
    smaller than the number of items, blocks of that many consecutive items are read on demand
    and the two most recent are kept (pair it with
    :class:`~pfgraph.io.datasets.BlockBatchSampler`, which reads ``block_size``); otherwise
    everything is read once, chunk by chunk, at construction.
    """

    def __init__(self, files: EventFiles, indices: Sequence[int] | np.ndarray, norm: Normalisation,
                 block_events: int | None = None, step: int = 2000, with_target: bool = True) -> None:
        self.files = files
        self.norm = norm
        self.with_target = with_target
        self.step = step
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self.indices)
        if n and (self.indices.min() < 0 or self.indices.max() >= files.num_events):
            bad = int(self.indices.max() if self.indices.max() >= files.num_events else self.indices.min())
            raise DataError(f"event index {bad} out of range: the data has {files.num_events} events")
        self.block_size = n if not block_events or block_events >= n else int(block_events)
        self._cache: OrderedDict[int, tuple[PointStore, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        if self.block_size == n and n:
            self._block(0)

    @property
    def num_blocks(self) -> int:
        """Number of blocks (1 when everything is in memory)."""
        return max(1, -(-len(self) // max(self.block_size, 1)))

    @property
    def store(self) -> PointStore:
        """The events in memory (the whole dataset, or the most recent block when streaming)."""
        if not self._cache:
            return self._block(0)[0] if len(self) else PointStore.concat([], self.files.grid.size)
        return next(reversed(self._cache.values()))[0]

    def _block(self, b: int) -> tuple[PointStore, np.ndarray]:
        with self._lock:
            if b in self._cache:
                self._cache.move_to_end(b)
                return self._cache[b]
            sel = self.indices[b * self.block_size:(b + 1) * self.block_size]
            store = load_points(self.files, sel, self.norm, self.step, self.with_target)
            self._cache[b] = (store, np.searchsorted(store.entries, sel))
            while len(self._cache) > 2:
                self._cache.popitem(last=False)
            return self._cache[b]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> GraphEvent:
        if not -len(self) <= i < len(self):
            raise IndexError(f"position {i} out of range for a dataset of {len(self)} events")
        i = i % len(self)
        store, rows = self._block(i // self.block_size)
        return GraphEvent(store, int(rows[i % self.block_size]))


def collate_graphs(items: Sequence[GraphEvent | Data]) -> Batch:
    """Dataset items (or :class:`Data` events) -> one :class:`Batch` with ``num_events`` set."""
    if not items:
        raise ValueError("cannot collate an empty list of events")
    if all(isinstance(it, GraphEvent) for it in items):
        events: list[GraphEvent] = list(items)  # type: ignore[arg-type]
        rows = np.fromiter((it.row for it in events), dtype=np.int64, count=len(events))
        first = events[0].store
        if all(it.store is first for it in events):
            return first.batch(rows)
        # a batch across streaming blocks: join the runs of each store, in order
        parts, start = [], 0
        for i in range(1, len(events) + 1):
            if i == len(events) or events[i].store is not events[start].store:
                parts.append(_subset(events[start].store, rows[start:i]))
                start = i
        return PointStore.concat(parts).batch(np.arange(len(events)))
    datas = [it.to_data() if isinstance(it, GraphEvent) else it for it in items]
    sizes = {int(d.grid_size) for d in datas}
    if len(sizes) != 1:
        raise ValueError(f"cannot collate events of grids {sorted(sizes)} (each event carries its grid_size)")
    size = sizes.pop()
    counts = np.array([int(d.x.size(0)) for d in datas], dtype=np.int64)
    mcounts = np.array([int(d.miss_val.numel()) for d in datas], dtype=np.int64)
    ev = np.arange(len(datas), dtype=np.int64)
    ptr = _offsets(counts)
    if all("nbr" in d for d in datas):
        local = np.concatenate([np.asarray(d.nbr, dtype=pixel_dtype(size)) for d in datas])
    else:  # events built by hand: their static graph from the pixels
        local = static_neighbours(np.concatenate([np.asarray(d.pix, dtype=pixel_dtype(size)) for d in datas]), ptr, size)
    out = Batch(
        x=torch.cat([d.x for d in datas]), y=torch.cat([d.y for d in datas]), pix=torch.cat([d.pix for d in datas]),
        batch=torch.from_numpy(np.repeat(ev, counts)), ptr=torch.from_numpy(ptr),
        nbr=_global_neighbours(local, ptr, counts),
        miss_pix=torch.cat([d.miss_pix for d in datas]), miss_val=torch.cat([d.miss_val for d in datas]),
        miss_batch=torch.from_numpy(np.repeat(ev, mcounts)),
        entry=torch.tensor([int(d.entry) for d in datas], dtype=torch.long),
        event_id=torch.tensor([int(d.event_id if "event_id" in d else d.entry) for d in datas], dtype=torch.long),
    )
    out.num_events = len(datas)
    out.grid_size = size
    return out


def truth_grid(batch: Batch) -> torch.Tensor:
    """(B, G, G) normalised full target image of a batch, out-of-reach pixels included."""
    grid = graph_to_grid(batch.y, batch)
    ieta, iphi = split_pixel(batch.miss_pix, int(batch.grid_size))
    grid[batch.miss_batch, ieta, iphi] = batch.miss_val.to(grid.dtype)
    return grid


def out_of_reach(batch: Batch) -> dict[str, float]:
    """Out-of-reach sums and fractions of a batch (see :func:`pfgraph.repr.grid.out_of_reach_fraction`)."""
    y, miss = batch.y.double(), batch.miss_val.double()
    n_in = int((y != 0).sum())
    n_out = int((miss != 0).sum())
    e_out = float(miss.abs().sum())
    return reach_summary(n_in + n_out, n_out, float(y.abs().sum()) + e_out, e_out)


@register_representation("graph")
class GraphRepresentation(Representation):
    """The point-cloud representation (``--repr graph``): datasets, batches, forward and grid."""

    name: ClassVar[str] = "graph"
    point_outputs: ClassVar[bool] = True

    def branches(self, target: str = "truth") -> list[str]:
        """Branches read from the event files."""
        return graph_branches(target)

    def make_dataset(self, files: EventFiles, indices: np.ndarray, norm: Normalisation,
                     with_target: bool = True) -> GraphDataset:
        """Map-style dataset of the events ``indices``; streamed in blocks beyond the memory budget
        (``with_target=False``: inputs only, the target reads as zeros)."""
        per_event = graph_event_bytes(files, indices)
        block = max(256, int(self.memory_budget_gb * 2**30 / 2 / per_event))  # two blocks cached
        return GraphDataset(files, indices, norm, block_events=block, with_target=with_target)

    def collate(self, items: list[Any]) -> Batch:
        """Dataset items -> :class:`Batch` (``.to(device)``, ``.num_events``)."""
        return collate_graphs(items)

    def forward(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Per-point normalised predictions (N,)."""
        nbr = getattr(batch, "nbr", None)
        size = int(batch.grid_size)
        out = model(point_features(batch.x, batch.pix, size), point_positions(batch.pix, size), batch.batch, nbr=nbr)
        return out.reshape(-1)

    def target(self, batch: Batch) -> torch.Tensor:
        """Per-point normalised target (N,)."""
        return batch.y

    def to_grid(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Per-point outputs -> (B, G, G); exactly 0 where the event has no point."""
        return graph_to_grid(output, batch)

    def truth_grid(self, batch: Batch) -> torch.Tensor:
        """(B, G, G) normalised full target image (pixels without points included)."""
        return truth_grid(batch)

    def input_mask(self, batch: Batch) -> torch.Tensor:
        """(B, G, G) True at the points' pixels (the pixels with any non-zero input)."""
        size = int(batch.grid_size)
        mask = torch.zeros(int(batch.num_events) * size * size, dtype=torch.bool, device=batch.pix.device)
        mask[batch.batch.long() * (size * size) + batch.pix.long()] = True
        return mask.view(-1, size, size)

    def point_pixels(self, batch: Batch) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per event, the points' (ieta, iphi) in the event's point order (the file's ``pix_*`` order)."""
        ieta, iphi = (t.cpu().numpy() for t in split_pixel(batch.pix, int(batch.grid_size)))
        ptr = batch.ptr.cpu().numpy()
        return [(ieta[a:b], iphi[a:b]) for a, b in zip(ptr[:-1], ptr[1:])]

    def per_point(self, output: torch.Tensor, batch: Batch) -> list[np.ndarray]:
        """Per-event arrays of the per-point predictions (normalised), in each event's point order."""
        values = output.detach().reshape(-1).float().cpu().numpy()
        ptr = batch.ptr.cpu().numpy()
        return [values[a:b] for a, b in zip(ptr[:-1], ptr[1:])]

    def out_of_reach(self, batch: Batch) -> dict[str, float]:
        """Share of the target no point model can reach in this batch."""
        return out_of_reach(batch)
