"""Fast ROOT -> tensor loading and the torch datasets/samplers of the image representation.

:func:`read_images` decompresses the baskets of the dense image branches in a thread pool and
writes each one, byte-swapped and normalised, straight into a preallocated float32 array: no
per-event Python work, no intermediate concatenation (uproot's own ``arrays`` concatenates and
byte-swaps in separate passes, ~2x slower). The files are opened with uproot's memory-mapped
source: its default (fsspec) source re-opens the file and copies every basket into a fresh
buffer, which is slower end to end (``scripts/bench_train.py`` measures both). RNTuple files,
files of an older schema (migrated on read) and anything unusual about a file's baskets go
through :meth:`EventFiles.read` instead.

:class:`ImageDataset` holds the selected events in memory as normalised tensors, or, when they
do not fit the memory budget, in blocks of events loaded on demand; :class:`BlockBatchSampler`
shuffles blocks and events within a block, so a larger-than-RAM dataset streams with one block
in memory. Both are deterministic given (seed, epoch).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import torch
import uproot

from pfgraph import geometry
from pfgraph.errors import DataError
from pfgraph.io import schema
from pfgraph.io.root import EventFiles, corrupt, open_root, reason


def image_event_bytes(grid: geometry.Grid) -> int:
    """Bytes of one event in an image dataset on ``grid``: 4 inputs + 1 target, float32 G x G."""
    return 5 * grid.npix * 4


#: uproot source of the basket reads (None: uproot's default); scripts/bench_train.py compares both.
_SOURCE: Any = uproot.source.file.MemmapSource
#: Events per piece when converting a basket (0.8 MB in, 0.8 MB out). On the 2-core reference
#: machine 64 and 128 were ~13 % faster than whole baskets, 16 and 32 in between (read_images of
#: 2000 events, all and a random 80 %, medians of 10 alternating repeats).
_PIECE = 64

#: Entries per job when rebuilding images from a sparse-first file (its points and sparse truth are read
#: once per window of this many entries).
_SPARSE_WINDOW = 512

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_POOL_PID = -1


def _pool() -> ThreadPoolExecutor:
    """A process-wide thread pool for basket decompression (re-created after fork)."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL = ThreadPoolExecutor(max(2, min(8, os.cpu_count() or 2)), thread_name_prefix="pfgraph-read")
            _POOL_PID = os.getpid()
        return _POOL


class _Trees:
    """Open ``events`` trees of a set of files, per process (safe across DataLoader forks)."""

    def __init__(self, files: EventFiles) -> None:
        self.files = files
        self._pid = -1
        self._trees: dict[int, Any] = {}

    def __call__(self, i: int) -> Any:
        if self._pid != os.getpid():
            self._trees, self._pid = {}, os.getpid()
        if i not in self._trees:
            options = {} if _SOURCE is None else {"handler": _SOURCE}
            self._trees[i] = open_root(self.files.paths[i], **options)[schema.EVENTS_TREE]
        return self._trees[i]

    def __getstate__(self) -> dict[str, Any]:
        return {"files": self.files, "_pid": -1, "_trees": {}}


def _plain_ttree(files: EventFiles, i: int) -> bool:
    """File ``i`` is a current-schema TTree (its baskets can be decoded directly)."""
    formats = getattr(files, "formats", None)
    migrations = getattr(files, "migrations", None)
    if formats is not None and formats[i] != "ttree":
        return False
    return not (migrations is not None and migrations[i].steps)


def _contiguous(sel: np.ndarray) -> bool:
    return len(sel) == 0 or int(sel[-1]) - int(sel[0]) + 1 == len(sel)


def read_images(files: EventFiles, branches: Sequence[str], indices: np.ndarray, scales: Sequence[float],
                out: np.ndarray, trees: _Trees | None = None) -> np.ndarray:
    """Fill ``out[n, k]`` with ``branch_k[indices[n]] / scales[k]`` (float32 (N, K, G, G) on the files' grid).

    ``indices`` are sorted global entry numbers. Raises DataError naming file, event and branch
    for NaN/Inf values, values outside the file's plausibility bounds
    (:mod:`pfgraph.io.plausible`) or unreadable baskets.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) and np.any(np.diff(indices) <= 0):
        raise ValueError("read_images needs strictly increasing indices")
    g = files.grid
    if out.shape != (len(indices), len(branches), g.size, g.size) or out.dtype != np.float32:
        raise ValueError(f"read_images: out has shape {out.shape} {out.dtype}, expected "
                         f"({len(indices)}, {len(branches)}, {g.size}, {g.size}) float32")
    trees = trees or _Trees(files)
    inv = [np.float32(1.0 / float(s)) for s in scales]
    jobs: list[Any] = []
    for i in range(len(files.paths)):
        lo, hi = int(files.offsets[i]), int(files.offsets[i + 1])
        a, b = (int(v) for v in np.searchsorted(indices, [lo, hi]))
        if a == b:
            continue
        local = indices[a:b] - lo
        if getattr(files, "layouts", None) and files.layouts[i] == "sparse":  # images rebuilt from the points
            for u in range(0, len(local), _SPARSE_WINDOW):
                sel = local[u:u + _SPARSE_WINDOW]
                jobs.append((_read_sparse, (files, i, branches, sel, a + u, inv, out)))
            continue
        if not _plain_ttree(files, i):  # RNTuple or an older schema: the reader handles those
            for k, name in enumerate(branches):
                jobs.append((_read_slow, (files, i, name, local, a, k, inv[k], out)))
            continue
        tree = trees(i)
        for k, name in enumerate(branches):
            if name not in tree:
                raise DataError(f"{files.paths[i]}: branch '{name}' missing from tree '{schema.EVENTS_TREE}'")
            branch = tree[name]
            try:
                starts = np.asarray(branch.entry_offsets, dtype=np.int64)
                nb = int(branch.num_baskets)
            except Exception:  # unusual layout: read the whole selection the slow way
                jobs.append((_read_slow, (files, i, name, local, a, k, inv[k], out)))
                continue
            first = max(int(np.searchsorted(starts, local[0], side="right")) - 1, 0)
            last = min(int(np.searchsorted(starts, local[-1], side="right")) - 1, nb - 1)
            for j in range(first, last + 1):
                s, e = int(starts[j]), int(starts[j + 1])
                u, v = (int(x) for x in np.searchsorted(local, [s, e]))
                if u < v:
                    jobs.append((_read_basket, (files, i, branch, name, j, s, e, local[u:v] - s, a + u, k, inv[k], out)))
    futures = [_pool().submit(fn, *args) for fn, args in jobs]
    errors = []
    for f in futures:
        try:
            f.result()
        except DataError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
    return out


def _scaled_limits(files: EventFiles, i: int, name: str, inv: np.float32) -> tuple[float, float]:
    """The plausibility bounds of branch ``name`` of file ``i`` in the scaled units of ``out``
    (``(-inf, inf)`` when the branch has none: then only NaN/Inf fail)."""
    bounds = getattr(files, "bounds", None)
    limits = bounds[i].limits(name) if bounds else None
    if limits is None:
        return -np.inf, np.inf
    a, b = limits[0] * float(inv), limits[1] * float(inv)
    return min(a, b), max(a, b)


def _read_basket(files: EventFiles, i: int, branch: Any, name: str, j: int, s: int, e: int, sel: np.ndarray,
                 dest: int, k: int, inv: np.float32, out: np.ndarray) -> None:
    """Decompress basket ``j`` (entries [s, e) of file ``i``) and write the ``sel`` entries
    (relative to ``s``), scaled, to ``out[dest:dest + len(sel), k]``."""
    path = files.paths[i]
    dst = out[dest:dest + len(sel), k]
    lo, hi = _scaled_limits(files, i, name, inv)
    try:
        data = branch.basket(j).data
        g = files.grid
        if len(data) != (e - s) * g.npix * 4:
            _read_slow(files, i, name, sel + s, dest, k, inv, out)
            return
        arr = np.frombuffer(data, dtype=">f4").reshape(e - s, g.size, g.size)
        plausible = True
        # In pieces that stay in cache: the byte swap (as a plain cast, ~3x faster than arithmetic
        # on big-endian input), the scaling and the bounds test then share one trip to memory.
        # NaN propagates through max/min and fails the comparisons, so this is the NaN/Inf test too.
        for c in range(0, len(sel), _PIECE):
            part, piece = sel[c:c + _PIECE], dst[c:c + _PIECE]
            np.copyto(piece, arr[part[0]:part[-1] + 1] if _contiguous(part) else arr[part])
            piece *= inv
            plausible = plausible and bool(lo <= piece.min() and piece.max() <= hi)
    except DataError:
        raise
    except Exception as exc:
        raise corrupt(path, f"entries {s}-{e}, branch '{name}': {reason(exc)}") from None
    if not plausible:
        _raise_implausible(files, i, sel + s, dst, name, inv)


def _read_sparse(files: EventFiles, i: int, branches: Sequence[str], local: np.ndarray, dest: int,
                 inv: Sequence[np.float32], out: np.ndarray) -> None:
    """Entries ``local`` of sparse-first file ``i``: read the point cloud and the sparse truth of their
    range once and scatter each branch's values, scaled, into ``out[dest:dest + len(local), k]``
    (bit-identical to the dense branches: the values at their pixels, zero elsewhere). The target
    indices are computed once per sparse collection and shared by its channels."""
    from pfgraph.io.reading import dense_from_sparse, flat_jagged, sparse_offsets, stored_branches

    path = files.paths[i]
    lo = int(files.offsets[i])
    first, last = int(local[0]), int(local[-1]) + 1
    chunk = files.read(stored_branches(branches, "sparse"), lo + first, lo + last)
    size = files.grid.size
    npx = size * size
    block = out[dest:dest + len(local)]
    if not block.flags.c_contiguous:  # a caller's strided array: one channel at a time
        for k, name in enumerate(branches):
            counter, ieta, iphi, values = _source(files, i, name)
            dense_from_sparse(chunk[counter], chunk[ieta], chunk[iphi], chunk[values], size, path, first,
                              rows=local - first, out=block[:, k], scale=inv[k])
        return
    block[...] = 0.0
    flat_out = block.reshape(-1)
    rows = local - first
    where: dict[str, tuple[Any, np.ndarray]] = {}
    for k, name in enumerate(branches):
        counter, ieta, iphi, values = _source(files, i, name)
        if counter not in where:
            offsets, ie = sparse_offsets(chunk[counter], chunk[ieta], path, first)
            ip = flat_jagged(chunk[iphi])[1]
            if len(rows) == len(offsets) - 1:
                sel: Any = slice(None)
                counts = np.diff(offsets)
            else:
                counts = offsets[rows + 1] - offsets[rows]
                starts = np.zeros(len(rows), dtype=np.int64)
                np.cumsum(counts[:-1], out=starts[1:])
                sel = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(offsets[rows] - starts, counts)
            e, p = ie[sel].astype(np.int64), ip[sel].astype(np.int64)
            if len(e) and (e.min() < 0 or e.max() >= size or p.min() < 0 or p.max() >= size):
                raise corrupt(path, f"entries from {first}: a sparse pixel index outside 0..{size - 1}")
            e *= size
            e += p
            e += np.repeat(np.arange(len(rows), dtype=np.int64) * (len(branches) * npx), counts)
            where[counter] = (sel, e)
        sel, index = where[counter]
        flat_out[index + k * npx] = flat_jagged(chunk[values])[1][sel] * inv[k]


def _source(files: EventFiles, i: int, name: str) -> tuple[str, str, str, str]:
    """The sparse branches image ``name`` is rebuilt from (a DataError for a name that is not an image)."""
    source = schema.sparse_source(name)
    if source is None:
        raise DataError(f"{files.paths[i]}: '{name}' is not an image: cannot rebuild it from the sparse branches")
    return source


def _read_slow(files: EventFiles, i: int, name: str, local: np.ndarray, dest: int, k: int,
               inv: np.float32, out: np.ndarray) -> None:
    """Read entries ``local`` of file ``i`` through :meth:`EventFiles.read` (checks NaN/Inf itself)."""
    lo = int(files.offsets[i])
    chunk = files.read([name], lo + int(local[0]), lo + int(local[-1]) + 1)
    arr = np.asarray(chunk[name])
    np.multiply(arr[local - local[0]], inv, out=out[dest:dest + len(local), k])


def _raise_implausible(files: EventFiles, i: int, entries: np.ndarray, values: np.ndarray, name: str,
                       inv: np.float32) -> None:
    """DataError naming file, event, branch and value of the first event of ``values`` (n, G, G,
    scaled by ``inv``) that holds NaN/Inf or a value outside the file's bounds (the caller found one)."""
    from pfgraph.io.plausible import out_of_bounds, raise_implausible

    path = files.paths[i]
    lo, hi = _scaled_limits(files, i, name, inv)
    bad = out_of_bounds(values, lo, hi)
    if bad is None:  # cannot happen: the caller saw one
        raise DataError(f"{path}: branch '{name}': implausible value (bounds check)")
    first = int(np.flatnonzero(bad)[0])
    row = values[first].reshape(-1)
    with np.errstate(invalid="ignore"):
        scaled = float(row[np.flatnonzero(~((row >= lo) & (row <= hi)))[0]])
    value = scaled / float(inv) if float(inv) != 0 else scaled
    bounds = getattr(files, "bounds", None)
    limits = bounds[i].limits(name) if bounds else None
    raw_lo, raw_hi = limits if limits is not None else (-np.inf, np.inf)
    source = bounds[i].source if bounds else ""
    raise_implausible(path, int(entries[first]), name, value, raw_lo, raw_hi, source)


def read_event_ids(files: EventFiles, indices: np.ndarray) -> np.ndarray:
    """``event_id`` (int64) of the sorted global entries ``indices``."""
    idx = np.asarray(indices, dtype=np.int64)
    if not len(idx):
        return np.zeros(0, dtype=np.int64)
    lo, hi = int(idx.min()), int(idx.max()) + 1
    return np.asarray(files.read(["event_id"], lo, hi)["event_id"], dtype=np.int64)[idx - lo]


class ImageItem(NamedTuple):
    """A group of events: inputs (n, 4, G, G), target (n, 1, G, G), global entries (n,), event ids (n,)."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    event_id: torch.Tensor


class ImageDataset(torch.utils.data.Dataset):
    """Normalised image tensors of the events ``indices`` of ``files`` (held sorted, file order).

    With ``block_events`` smaller than the number of events, blocks of that many events are
    loaded on demand and the two most recent are kept (pair it with :class:`BlockBatchSampler`).
    """

    def __init__(self, files: EventFiles, indices: np.ndarray, input_scale: Sequence[float], target_scale: float,
                 target: str | None = "truth", block_events: int | None = None) -> None:
        self.files = files
        self.indices = np.unique(np.asarray(indices, dtype=np.int64))
        if len(self.indices) and (self.indices[0] < 0 or self.indices[-1] >= files.num_events):
            raise DataError(f"event index {int(self.indices[-1])} out of range: the data has {files.num_events} events")
        # target None: inputs only (files without truth, ``pfgraph predict``); the target reads as zeros
        self.branches = [*schema.INPUT_CHANNELS, *([target] if target is not None else [])]
        self.scales = [*map(float, input_scale), *([float(target_scale)] if target is not None else [])]
        self.event_ids = read_event_ids(files, self.indices)
        n = len(self.indices)
        self.block_size = n if not block_events or block_events >= n else int(block_events)
        self._trees = _Trees(files)
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()
        if self.block_size == n and n:
            self._block(0)

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (spawned DataLoader workers): the lock is re-created, in-memory data kept."""
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def num_blocks(self) -> int:
        """Number of blocks (1 when everything is in memory)."""
        return max(1, -(-len(self) // max(self.block_size, 1)))

    def _block(self, b: int) -> torch.Tensor:
        with self._lock:
            if b in self._cache:
                self._cache.move_to_end(b)
                return self._cache[b]
            lo, hi = b * self.block_size, min((b + 1) * self.block_size, len(self))
            g = self.files.grid
            data = torch.empty((hi - lo, len(self.branches), g.size, g.size), dtype=torch.float32)
            read_images(self.files, self.branches, self.indices[lo:hi], self.scales, data.numpy(), self._trees)
            self._cache[b] = data
            while len(self._cache) > 2:
                self._cache.popitem(last=False)
            return data

    def __getitem__(self, i: int) -> ImageItem:
        return self.__getitems__([i])[0]

    def __getitems__(self, positions: Sequence[int]) -> list[ImageItem]:
        """All requested events as one :class:`ImageItem` (one gather per block, no per-event work)."""
        pos = torch.as_tensor(np.asarray(positions, dtype=np.int64))
        if len(pos) and (int(pos.min()) < 0 or int(pos.max()) >= len(self)):
            raise IndexError(f"position out of range for a dataset of {len(self)} events")
        # numpy gathers (single-threaded memcpy): torch's OpenMP index_select stalls badly when
        # the cores are shared with other processes.
        pos_np = pos.numpy()
        blocks = pos_np // self.block_size
        present = np.unique(blocks).tolist()
        if len(present) == 1:
            data = torch.from_numpy(self._block(int(present[0])).numpy()[pos_np - present[0] * self.block_size])
        else:  # a batch across blocks: gather each block's events into their places
            g = self.files.grid
            out = np.empty((len(pos_np), len(self.branches), g.size, g.size), dtype=np.float32)
            for b in present:
                mask = blocks == b
                out[mask] = self._block(int(b)).numpy()[pos_np[mask] - b * self.block_size]
            data = torch.from_numpy(out)
        index = torch.from_numpy(self.indices[pos_np])
        y = data[:, 4:5] if data.shape[1] > 4 else torch.zeros(()).expand(len(pos_np), 1, *data.shape[2:])
        return [ImageItem(data[:, :4], y, index, torch.from_numpy(self.event_ids[pos_np]))]


class BlockBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of dataset positions: shuffled (block order, then events within each block)
    with a generator seeded by (seed, epoch), or in order when ``shuffle`` is false.

    ``subset`` restricts the epoch to some positions (a progressive training stage, or one
    rank's share). ``block_size`` None or >= n means one block (a plain full shuffle); batches
    only span two blocks at block ends, so a streaming dataset keeps one block in memory.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool = True, seed: int = 0, epoch: int = 0,
                 block_size: int | None = None, drop_last: bool = False,
                 subset: np.ndarray | Sequence[int] | None = None) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size {batch_size}: expected a positive number")
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.block_size = int(block_size) if block_size and block_size < n else max(self.n, 1)
        self.drop_last = drop_last
        self.subset = (torch.arange(self.n) if subset is None
                       else torch.as_tensor(np.sort(np.asarray(subset, dtype=np.int64))))

    def order(self) -> torch.Tensor:
        """The positions of this epoch, in visiting order."""
        if not self.shuffle:
            return self.subset
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        blocks = self.subset // self.block_size
        nblocks = -(-self.n // self.block_size)
        parts = []
        for b in torch.randperm(nblocks, generator=g).tolist():
            members = self.subset[blocks == b]
            if len(members):
                parts.append(members[torch.randperm(len(members), generator=g)])
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)

    def __iter__(self) -> Iterator[list[int]]:
        order = self.order()
        for lo in range(0, len(order), self.batch_size):
            batch = order[lo:lo + self.batch_size]
            if self.drop_last and len(batch) < self.batch_size:
                return
            yield batch.tolist()

    def __len__(self) -> int:
        n = len(self.subset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
