"""Fast ROOT -> tensor loading and the torch datasets/samplers of the image representation.

:func:`read_images` decompresses the baskets of the dense image branches in a thread pool and
writes each one, byte-swapped and normalised in a single numpy pass, straight into a
preallocated float32 array: no per-event Python work, no intermediate concatenation (uproot's
own ``arrays`` concatenates and byte-swaps in separate passes, ~2x slower). RNTuple files,
files of an older schema (migrated on read) and anything unusual about a file's baskets go
through :meth:`EventFiles.read` instead.

:class:`ImageDataset` holds the selected events in memory as normalised tensors, or, when they
do not fit the memory budget, in blocks of events loaded on demand; :class:`BlockBatchSampler`
shuffles blocks and events within a block, so a larger-than-RAM dataset streams with one block
in memory. Both are deterministic given (seed, epoch).
"""

from __future__ import annotations

import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import cramjam
import numpy as np
import torch
import xxhash

from pfgraph.errors import DataError
from pfgraph.io import schema
from pfgraph.io.root import EventFiles, open_root

NPIX = schema.IMSIZE * schema.IMSIZE
#: Bytes of one event in an image dataset: 4 inputs + 1 target, float32 56x56.
IMAGE_EVENT_BYTES = 5 * NPIX * 4

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
        self._fds: dict[int, int] = {}

    def _this_process(self) -> None:
        if self._pid != os.getpid():  # a forked child: its parent's descriptors are not its own to close
            self._trees, self._fds, self._pid = {}, {}, os.getpid()

    def __call__(self, i: int) -> Any:
        self._this_process()
        if i not in self._trees:
            self._trees[i] = open_root(self.files.paths[i])[schema.EVENTS_TREE]
        return self._trees[i]

    def fd(self, i: int) -> int:
        """A read-only descriptor of file ``i`` for ``os.preadv`` (thread-safe: no file position)."""
        self._this_process()
        if i not in self._fds:
            self._fds[i] = os.open(self.files.paths[i], os.O_RDONLY)
        return self._fds[i]

    def __getstate__(self) -> dict[str, Any]:
        return {"files": self.files, "_pid": -1, "_trees": {}, "_fds": {}}

    def __del__(self) -> None:
        try:
            if self._pid == os.getpid():
                for fd in self._fds.values():
                    os.close(fd)
        except Exception:  # interpreter shutdown or an already closed descriptor: nothing to release
            pass


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
    """Fill ``out[n, k]`` with ``branch_k[indices[n]] / scales[k]`` (float32 (N, K, 56, 56)).

    ``indices`` are sorted global entry numbers. Raises DataError naming file, event and branch
    for NaN/Inf values or unreadable baskets.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) and np.any(np.diff(indices) <= 0):
        raise ValueError("read_images needs strictly increasing indices")
    if out.shape != (len(indices), len(branches), schema.IMSIZE, schema.IMSIZE) or out.dtype != np.float32:
        raise ValueError(f"read_images: out has shape {out.shape} {out.dtype}, expected "
                         f"({len(indices)}, {len(branches)}, {schema.IMSIZE}, {schema.IMSIZE}) float32")
    trees = trees or _Trees(files)
    inv = [np.float32(1.0 / float(s)) for s in scales]
    jobs: list[Any] = []
    for i in range(len(files.paths)):
        lo, hi = int(files.offsets[i]), int(files.offsets[i + 1])
        a, b = (int(v) for v in np.searchsorted(indices, [lo, hi]))
        if a == b:
            continue
        local = indices[a:b] - lo
        if not _plain_ttree(files, i):  # RNTuple or an older schema: the reader handles those
            for k, name in enumerate(branches):
                jobs.append((_read_slow, (files, i, name, local, a, k, inv[k], out)))
            continue
        tree = trees(i)
        fd = trees.fd(i) if _PREADV else None
        for k, name in enumerate(branches):
            if name not in tree:
                raise DataError(f"{files.paths[i]}: branch '{name}' missing from tree '{schema.EVENTS_TREE}'")
            branch = tree[name]
            try:
                starts = np.asarray(branch.entry_offsets, dtype=np.int64)
                nb = int(branch.num_baskets)
                seeks = np.asarray(branch.member("fBasketSeek"), dtype=np.int64)
                sizes = np.asarray(branch.member("fBasketBytes"), dtype=np.int64)
                written = min(int(branch.member("fWriteBasket")), len(seeks), len(sizes))
            except Exception:  # unusual layout: read the whole selection the slow way
                jobs.append((_read_slow, (files, i, name, local, a, k, inv[k], out)))
                continue
            first = max(int(np.searchsorted(starts, local[0], side="right")) - 1, 0)
            last = min(int(np.searchsorted(starts, local[-1], side="right")) - 1, nb - 1)
            for j in range(first, last + 1):
                s, e = int(starts[j]), int(starts[j + 1])
                u, v = (int(x) for x in np.searchsorted(local, [s, e]))
                if u < v:
                    # a free basket on disk is read directly; embedded ones only through uproot
                    direct = fd is not None and j < written and seeks[j] > 0 and sizes[j] > 0
                    where = (fd, int(seeks[j]), int(sizes[j])) if direct else None
                    jobs.append((_read_basket, (files, i, branch, name, j, s, e, local[u:v] - s, a + u, k, inv[k], out,
                                                where)))
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


def _read_basket(files: EventFiles, i: int, branch: Any, name: str, j: int, s: int, e: int, sel: np.ndarray,
                 dest: int, k: int, inv: np.float32, out: np.ndarray, where: tuple[int, int, int] | None = None) -> None:
    """Decompress basket ``j`` (entries [s, e) of file ``i``) and write the ``sel`` entries
    (relative to ``s``), scaled, to ``out[dest:dest + len(sel), k]``.

    ``where`` = (descriptor, seek, bytes) of the basket's key in the file: it is then decoded by
    :func:`_decode_basket`, else (or when that declines the basket) by uproot.
    """
    path = files.paths[i]
    dst = out[dest:dest + len(sel), k]
    try:
        data = _decode_basket(*where, nev=e - s) if where is not None else None
        if data is None:
            data = branch.basket(j).data
        if len(data) != (e - s) * NPIX * 4:
            _read_slow(files, i, name, sel + s, dest, k, inv, out)
            return
        arr = np.frombuffer(data, dtype=">f4").reshape(e - s, schema.IMSIZE, schema.IMSIZE)
        src = arr[sel[0]:sel[-1] + 1] if _contiguous(sel) else arr[sel]
        np.copyto(dst, src)  # the byte swap as a plain cast: ~3x faster than multiplying big-endian input
        dst *= inv
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: entries {s}-{e}, branch '{name}' unreadable ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    _check_finite(path, sel + s, dst, name)


#: TKey header: fNbytes, fVersion, fObjlen, fDatime, fKeylen, fCycle (ROOT's TKey::Streamer).
_KEY = struct.Struct(">ihiIhh")
#: The TBasket fields that end its key: fVersion, fBufferSize, fNevBufSize, fNevBuf, fLast (+ 1 flag byte).
_BASKET = struct.Struct(">hiiii")
_CHECKSUM = struct.Struct(">Q")
_LOCAL = threading.local()
_PREADV = hasattr(os, "preadv")  # POSIX; elsewhere every basket goes through uproot


def _scratch(name: str, size: int) -> memoryview:
    """A per-thread buffer of at least ``size`` bytes, kept for the next basket (no page faults)."""
    buf = getattr(_LOCAL, name, None)
    if buf is None or len(buf) < size:
        buf = bytearray(size)
        setattr(_LOCAL, name, buf)
    return memoryview(buf)[:size]


def _decode_basket(fd: int, seek: int, nbytes: int, nev: int) -> memoryview | None:
    """The uncompressed data of a fixed-size image basket (``nev`` entries of 56x56 big-endian
    floats) whose key starts at byte ``seek`` and spans ``nbytes``; None for a basket of any
    other shape or codec, which the caller hands to uproot.

    The key and payload are read with one ``os.preadv`` into a per-thread buffer and decompressed
    with cramjam into another (both reused). ROOT's compressed payload is a sequence of blocks,
    each with a 9-byte header: 2-byte algorithm, 1 method byte, 3-byte little-endian compressed
    and uncompressed sizes; LZ4 blocks start with the xxhash64 of the compressed bytes, which is
    verified (uproot does the same). The returned view is only valid until this thread's next call.
    """
    if nbytes <= _KEY.size + _BASKET.size + 1:
        return None
    raw = _scratch("raw", nbytes)
    if os.preadv(fd, [raw], seek) != nbytes:
        raise ValueError(f"file ends inside the basket at byte {seek}")
    fnbytes, _, objlen, _, keylen, _ = _KEY.unpack_from(raw, 0)
    if fnbytes != nbytes or not _KEY.size + _BASKET.size + 1 <= keylen <= nbytes:
        return None
    _, _, entry_bytes, entries, last = _BASKET.unpack_from(raw, keylen - _BASKET.size - 1)
    size = nev * NPIX * 4
    if entry_bytes != NPIX * 4 or entries != nev or objlen != size or last - keylen != size:
        return None  # not a basket of fixed-size 56x56 float entries without an offsets table
    payload = raw[keylen:nbytes]
    if len(payload) == objlen:  # stored uncompressed
        return payload
    out = _scratch("out", objlen)
    pos = filled = 0
    while pos < len(payload):
        head = bytes(payload[pos:pos + 9])
        if len(head) < 9:
            return None
        algo = head[:2]
        c, u = int.from_bytes(head[3:6], "little"), int.from_bytes(head[6:9], "little")
        block = payload[pos + 9:pos + 9 + c]
        if len(block) != c or filled + u > objlen:
            return None
        dst = out[filled:filled + u]
        if algo == b"L4" and c > _CHECKSUM.size:
            data = block[_CHECKSUM.size:]
            if xxhash.xxh64(data).intdigest() != _CHECKSUM.unpack_from(block)[0]:
                raise ValueError("LZ4 block checksum mismatch (corrupt basket)")
            got = cramjam.lz4.decompress_block_into(data, dst)
        elif algo == b"ZS":
            got = cramjam.zstd.decompress_into(block, dst)
        elif algo == b"ZL":
            got = cramjam.zlib.decompress_into(block, dst)
        else:  # LZMA and older codecs: uproot's decoders
            return None
        if got != u:
            raise ValueError(f"a block decompressed to {got} bytes, its header says {u}")
        pos += 9 + c
        filled += u
    return out if filled == objlen else None


def _read_slow(files: EventFiles, i: int, name: str, local: np.ndarray, dest: int, k: int,
               inv: np.float32, out: np.ndarray) -> None:
    """Read entries ``local`` of file ``i`` through :meth:`EventFiles.read` (checks NaN/Inf itself)."""
    lo = int(files.offsets[i])
    chunk = files.read([name], lo + int(local[0]), lo + int(local[-1]) + 1)
    arr = np.asarray(chunk[name])
    np.multiply(arr[local - local[0]], inv, out=out[dest:dest + len(local), k])


def _check_finite(path: Any, entries: np.ndarray, values: np.ndarray, name: str) -> None:
    """DataError naming file, event and branch if ``values`` (n, 56, 56) holds NaN or Inf."""
    if not len(values) or (np.isfinite(values.max()) and np.isfinite(values.min())):  # NaN propagates through max
        return
    bad = int(np.flatnonzero(~np.isfinite(values).all(axis=(1, 2)))[0]) if len(values) else 0
    raise DataError(f"{path}: event {int(entries[bad])}, branch '{name}': NaN or Inf value, expected finite numbers")


class ImageItem(NamedTuple):
    """A group of events: inputs (n, 4, 56, 56), target (n, 1, 56, 56), global entries (n,)."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor


class ImageDataset(torch.utils.data.Dataset):
    """Normalised image tensors of the events ``indices`` of ``files`` (held sorted, file order).

    With ``block_events`` smaller than the number of events, blocks of that many events are
    loaded on demand and the two most recent are kept (pair it with :class:`BlockBatchSampler`).
    """

    def __init__(self, files: EventFiles, indices: np.ndarray, input_scale: Sequence[float], target_scale: float,
                 target: str = "truth", block_events: int | None = None) -> None:
        self.files = files
        self.indices = np.unique(np.asarray(indices, dtype=np.int64))
        if len(self.indices) and (self.indices[0] < 0 or self.indices[-1] >= files.num_events):
            raise DataError(f"event index {int(self.indices[-1])} out of range: the data has {files.num_events} events")
        self.branches = [*schema.INPUT_CHANNELS, target]
        self.scales = [*map(float, input_scale), float(target_scale)]
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
            data = torch.empty((hi - lo, len(self.branches), schema.IMSIZE, schema.IMSIZE), dtype=torch.float32)
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
            out = np.empty((len(pos_np), len(self.branches), schema.IMSIZE, schema.IMSIZE), dtype=np.float32)
            for b in present:
                mask = blocks == b
                out[mask] = self._block(int(b)).numpy()[pos_np[mask] - b * self.block_size]
            data = torch.from_numpy(out)
        index = torch.from_numpy(self.indices[pos_np])
        return [ImageItem(data[:, :4], data[:, 4:5], index)]


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
