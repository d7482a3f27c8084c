"""Write pfgraph ROOT files with uproot: TTree (``mktree`` + chunked ``extend``, the default) or
RNTuple (``format="rntuple"``, same column names and values); the reading side is
:mod:`pfgraph.io.reading` (kept apart as uproot keeps ``reading.py`` apart from ``writing/``).

Writers are atomic (temporary file in the same folder, fsync, rename) and reproducible: with
the same content they produce byte-identical files (fixed header clock, content-derived UUID),
following the reproducible-builds ``SOURCE_DATE_EPOCH`` convention. :class:`EventWriter`
compresses the next chunk's baskets on worker threads while the current one is written.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
import os
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from pfgraph import __version__, geometry
from pfgraph.errors import PfgraphError
from pfgraph.io import schema
from pfgraph.utils.atomic import atomic_path

COMPRESSIONS = {"lz4": uproot.LZ4, "zstd": uproot.ZSTD, "zlib": uproot.ZLIB, "lzma": uproot.LZMA}
DEFAULT_COMPRESSION = "lz4:1"
#: On-disk layouts: ROOT's TTree (default) or RNTuple (ROOT 6.34+ reads it; uproot writes RNTuple 1.0).
FORMATS = ("ttree", "rntuple")
DEFAULT_FORMAT = "ttree"

_CLOCK_LOCK = threading.Lock()


def parse_compression(spec: str | None) -> Any:
    """``"lz4:1"`` -> ``uproot.LZ4(1)``; ``"none"`` -> None."""
    if spec is None or spec.lower() in ("none", "off", ""):
        return None
    name, _, level = spec.lower().partition(":")
    if name not in COMPRESSIONS:
        raise PfgraphError(f"unknown compression '{spec}': use one of {', '.join(COMPRESSIONS)} (e.g. lz4:1)")
    try:
        lvl = int(level) if level else 1
    except ValueError:
        raise PfgraphError(f"compression level in '{spec}' must be an integer") from None
    return COMPRESSIONS[name](lvl)


def check_format(fmt: str) -> str:
    """``"TTree"``/``"ttree"`` -> ``"ttree"``; an unknown layout is a one-line PfgraphError."""
    low = str(fmt).lower()
    if low not in FORMATS:
        raise PfgraphError(f"unknown output format '{fmt}': use one of {', '.join(FORMATS)}")
    return low


class _FixedClock:
    """Stands in for the ``datetime`` module inside uproot's writer: ``now()`` is fixed."""

    def __init__(self, when: _dt.datetime) -> None:
        self._when = when

        class _DT(_dt.datetime):
            @classmethod
            def now(cls, tz: Any = None) -> _dt.datetime:  # noqa: ARG003
                return when

        self.datetime = _DT

    def __getattr__(self, name: str) -> Any:
        return getattr(_dt, name)


def _fixed_time() -> _dt.datetime:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None and epoch.isdigit():
        return _dt.datetime.fromtimestamp(int(epoch), tz=_dt.UTC).replace(tzinfo=None)
    return _dt.datetime(2020, 1, 1, 0, 0, 0)


@contextlib.contextmanager
def _reproducible_headers() -> Iterator[None]:
    """While writing, uproot stamps a fixed time instead of ``now()`` into ROOT headers."""
    import importlib

    modules = []
    for name in ("_cascade", "_cascadetree", "_cascadentuple", "writable"):
        with contextlib.suppress(ImportError):
            mod = importlib.import_module(f"uproot.writing.{name}")
            if hasattr(mod, "datetime"):
                modules.append(mod)
    with _CLOCK_LOCK:
        saved = [mod.datetime for mod in modules]
        clock = _FixedClock(_fixed_time())
        for mod in modules:
            mod.datetime = clock
        try:
            yield
        finally:
            for mod, orig in zip(modules, saved):
                mod.datetime = orig


def _uuid_function(meta: Mapping[str, Any]) -> Any:
    digest = uuid.uuid5(uuid.NAMESPACE_URL, "pfgraph:" + json.dumps(meta, sort_keys=True, default=str))

    def make() -> uuid.UUID:
        return digest

    return make


def make_meta(kind: str, config: Mapping[str, Any] | None = None, imsize: int | None = None,
              **extra: Any) -> dict[str, Any]:
    """The ``pfgraph_meta`` record: schema version, package version, kind, grid size, config and extras.

    ``imsize`` (the grid size of the file's images) defaults to the config's ``detector.grid``, and to
    the paper's grid for a config without one.
    """
    if imsize is None:
        det = (config or {}).get("detector")
        imsize = det.get("grid", geometry.PAPER_GRID_SIZE) if isinstance(det, Mapping) else geometry.PAPER_GRID_SIZE
    meta: dict[str, Any] = {
        "schema_version": schema.SCHEMA_VERSION,
        "pfgraph_version": __version__,
        "kind": kind,
        "imsize": geometry.check_grid_size(imsize, "imsize"),
        "max_eta": geometry.MAX_ETA,
    }
    if config is not None:
        meta["config"] = dict(config)
    meta.update(extra)
    return meta


class RootWriter:
    """Atomic, reproducible ROOT writer for one or more trees plus the ``pfgraph_meta`` string.

    Use as a context manager; trees are created with :meth:`tree` and filled with
    :meth:`extend`. Nothing appears under ``path`` unless the ``with`` block completes.

    ``format="ttree"`` (default) writes TTrees; a jagged record field ``x`` (see
    :func:`jagged_record`) becomes the counter branch ``nx`` plus one ``x_<field>`` branch per
    field (uproot's convention). ``format="rntuple"`` writes RNTuples with the same column
    names: ``nx`` (int32) and ``x_<field>`` (``std::vector``), fixed-size arrays as
    ``std::array``; the metadata string is a TObjString in both.
    """

    def __init__(self, path: str | os.PathLike[str], meta: Mapping[str, Any], compression: str | None = DEFAULT_COMPRESSION,
                 format: str = DEFAULT_FORMAT) -> None:
        self.path = Path(path)
        self.meta = dict(meta)
        self.compression = parse_compression(compression)
        self.format = check_format(format)
        self._trees: dict[str, Any] = {}
        self._records: dict[str, dict[str, tuple[str, ...]]] = {}
        self._stack = contextlib.ExitStack()
        self._file: Any = None

    def __enter__(self) -> RootWriter:
        try:
            tmp = self._stack.enter_context(atomic_path(self.path, same_name=True))
            self._stack.enter_context(_reproducible_headers())
            self._file = self._stack.enter_context(
                uproot.recreate(tmp, compression=self.compression, uuid_function=_uuid_function(self.meta))
            )
        except BaseException:
            self._stack.__exit__(None, None, None)
            raise
        return self

    def tree(self, name: str, branch_types: Mapping[str, Any]) -> Any:
        """Create tree ``name`` with ``branch_types`` (numpy dtypes or awkward types)."""
        if self.format == "ttree":
            self._trees[name] = self._file.mktree(name, dict(branch_types))
            return self._trees[name]
        types: dict[str, Any] = {}
        records: dict[str, tuple[str, ...]] = {}
        for key, typ in branch_types.items():
            record = _jagged_record_type(typ)
            if record is None:
                types[key] = typ
                continue
            records[key] = tuple(record.fields)
            types[f"n{key}"] = np.dtype(np.int32)
            for field, content in zip(record.fields, record.contents):
                types[f"{key}_{field}"] = ak.types.ListType(content)
        self._records[name] = records
        self._trees[name] = self._file.mkrntuple(name, types)
        return self._trees[name]

    def extend(self, name: str, data: Mapping[str, Any]) -> None:
        """Append one chunk of entries to tree ``name``."""
        if self.format == "ttree":
            self._trees[name].extend(dict(data))
            return
        out: dict[str, Any] = {}
        records = self._records[name]
        for key, value in data.items():
            if key not in records:
                out[key] = value
                continue
            arr = value if isinstance(value, ak.Array) else ak.Array(value)
            out[f"n{key}"] = ak.to_numpy(ak.num(arr, axis=1)).astype(np.int32)
            for field in records[key]:
                out[f"{key}_{field}"] = arr[field]
        self._trees[name].extend(out)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            try:
                self._file[schema.META_KEY] = json.dumps(self.meta, sort_keys=True, default=str)
            except BaseException as err:  # e.g. a full disk: still unwind (the temporary file goes)
                if not self._stack.__exit__(type(err), err, err.__traceback__):
                    raise
                return False
        return bool(self._stack.__exit__(exc_type, exc, tb))


def _jagged_record_type(typ: Any) -> Any:
    """The record type inside ``var * {...}`` (a jagged record branch type), else None."""
    if isinstance(typ, ak.types.ArrayType):
        typ = typ.content
    if isinstance(typ, ak.types.ListType) and isinstance(typ.content, ak.types.RecordType):
        return typ.content
    return None


def jagged_record(counts: np.ndarray, fields: Mapping[str, np.ndarray]) -> ak.Array:
    """A jagged array of records sharing one offsets array (written as ``n<name>`` + branches)."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    contents = [ak.contents.NumpyArray(np.ascontiguousarray(v)) for v in fields.values()]
    record = ak.contents.RecordArray(contents, list(fields), length=int(offsets[-1]))
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))


def point_cloud(images: Mapping[str, np.ndarray], with_oracle: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every pixel where any input channel is non-zero, per event.

    Returns ``(npix, fields)`` with ``fields`` the flat point arrays (``ieta``, ``iphi``,
    ``eta``, ``phi`` and one per image channel, then ``oracle`` ``with_oracle``), events
    concatenated in order and points within an event in row-major (eta, phi) order.
    """
    mask = images[schema.INPUT_CHANNELS[0]] != 0
    for ch in schema.INPUT_CHANNELS[1:]:
        mask |= images[ch] != 0
    npix = mask.sum(axis=(1, 2), dtype=np.int32)
    flat = np.flatnonzero(mask)
    g = geometry.grid_of_shape(mask.shape)
    pixel = flat % g.npix
    fields: dict[str, np.ndarray] = {name: table.take(pixel) for name, table in pixel_tables(g.size).items()}
    for ch in schema.IMAGE_CHANNELS + ((schema.ORACLE_IMAGE,) if with_oracle else ()):
        fields[ch] = np.ascontiguousarray(images[ch]).reshape(-1).take(flat)
    return npix, fields


@functools.cache
def pixel_tables(size: int) -> dict[str, np.ndarray]:
    """Per flat pixel (``ieta * size + iphi``) of the ``size`` grid: its bins and bin centres, as the
    point-cloud branches hold them."""
    g = geometry.grid(size)
    return {
        "ieta": np.repeat(np.arange(g.size, dtype=np.int16), g.size),
        "iphi": np.tile(np.arange(g.size, dtype=np.int16), g.size),
        "eta": np.repeat(g.eta_centres.astype(np.float32), g.size),
        "phi": np.tile(g.phi_centres.astype(np.float32), g.size),
    }


def truth_side_images(with_jet: bool, with_oracle: bool) -> tuple[str, ...]:
    """The truth-side images a file holds (the sparse truth's fields, in the contract's order)."""
    return tuple(c for c in schema.TRUTH_SIDE_IMAGES if c in schema.TARGET_CHANNELS
                 or (c == schema.ORACLE_IMAGE and with_oracle) or (c == schema.JET_IMAGE and with_jet))


def sparse_truth(images: Mapping[str, np.ndarray], channels: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every pixel where any of the truth-side images ``channels`` is non-zero, per event (the
    sparse truth of sparse-first files): ``(ntpix, fields)``, fields ``ieta``, ``iphi`` and one per
    channel, events concatenated in order and cells within an event in row-major (eta, phi) order."""
    mask = images[channels[0]] != 0
    for ch in channels[1:]:
        mask |= images[ch] != 0
    count = mask.sum(axis=(1, 2), dtype=np.int32)
    flat = np.flatnonzero(mask)
    g = geometry.grid_of_shape(mask.shape)
    pixel = flat % g.npix
    tables = pixel_tables(g.size)
    fields: dict[str, np.ndarray] = {"ieta": tables["ieta"].take(pixel), "iphi": tables["iphi"].take(pixel)}
    for ch in channels:
        fields[ch] = np.ascontiguousarray(images[ch]).reshape(-1).take(flat)
    return count, fields


def event_branch_types(with_jet: bool, size: int, with_oracle: bool = False, dense: bool = True) -> dict[str, Any]:
    """``mktree`` types of the events tree on the ``size`` x ``size`` grid (``with_oracle``: the optional
    oracle image and point field; ``dense=False``: the sparse-first layout, no image branches and the
    sparse truth instead)."""
    img = np.dtype((np.float32, (size, size)))
    types: dict[str, Any] = {"event_id": np.int64}
    oracle = (schema.ORACLE_IMAGE,) if with_oracle else ()
    if dense:
        for ch in schema.IMAGE_CHANNELS:
            types[ch] = img
        if with_jet:
            types[schema.JET_IMAGE] = img
        for ch in oracle:
            types[ch] = img
    else:
        tfields = ", ".join(["ieta: int16", "iphi: int16",
                             *(f"{ch}: float32" for ch in truth_side_images(with_jet, with_oracle))])
        types[schema.TRUTH_PREFIX] = ak.types.from_datashape(f"var * {{{tfields}}}", highlevel=False)
    fields = ", ".join(
        f"{name}: {dt}" for name, dt in
        [("ieta", "int16"), ("iphi", "int16"), ("eta", "float32"), ("phi", "float32")]
        + [(ch, "float32") for ch in schema.IMAGE_CHANNELS + oracle]
    )
    types[schema.POINT_PREFIX] = ak.types.from_datashape(f"var * {{{fields}}}", highlevel=False)
    for b in schema.EVENT_BRANCHES:
        if b.kind == "scalar" and b.name != "event_id" and (with_jet or not b.optional):
            types[b.name] = b.np_dtype
    return types


#: Largest block ROOT's compression headers describe (3-byte sizes): uproot compresses each basket
#: in blocks of this many bytes.
ROOT_BLOCK = 2**24 - 1
#: Baskets smaller than this are compressed inline (scalars): not worth a thread hand-off.
_AHEAD_MIN_BYTES = 1 << 16


class _CompressAhead:
    """Serves uproot the compressed bytes of a TTree chunk's large baskets, computed ahead of time.

    uproot's ``extend`` compresses one basket after the other in the calling thread. Here the
    payload of a large basket (the exact bytes uproot will compress) is predicted and either
    handed to a thread pool (:meth:`submit`; compression releases the GIL) or paired with its
    compressed bytes made elsewhere (:meth:`provide`: by a simulation worker process).
    ``compression.compress`` is replaced on the instance (its class stays uproot's own, which
    the file header's code needs) by a look-up: a block equal byte for byte to a predicted one
    gets that prediction's result, which the same compressor gave for the same bytes; any other
    block (small baskets, metadata, or a prediction uproot does not confirm) is compressed
    inline as before. So the file's bytes do not depend on any of this.
    """

    def __init__(self, compression: Any, threads: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.compression = compression
        self._inline = compression.compress
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="pfgraph-compress") if threads > 0 else None
        self._pending: list[tuple[bytes | bytearray, Any]] = []
        self.matched = 0  # blocks served from predictions
        compression.compress = self._compress

    def submit(self, payload: bytes | bytearray) -> None:
        """Start compressing ``payload`` (the uncompressed bytes of one basket; not to be changed
        until the chunk is written) in the threads."""
        assert self._pool is not None
        blocks = [payload] if len(payload) <= ROOT_BLOCK else [
            bytes(payload[start:start + ROOT_BLOCK]) for start in range(0, len(payload), ROOT_BLOCK)]
        for block in blocks:
            self._pending.append((block, self._pool.submit(self._inline, block)))

    def provide(self, payload: bytes | bytearray, compressed: bytes) -> None:
        """``compressed``: what ``compression.compress`` returns for ``payload`` (one block)."""
        if len(payload) <= ROOT_BLOCK:
            self._pending.append((payload, _Done(compressed)))

    def _compress(self, data: bytes) -> bytes:
        for i, (block, future) in enumerate(self._pending):
            if len(block) == len(data) and block == data:
                del self._pending[i]
                self.matched += 1
                return future.result()
        return self._inline(data)

    def discard(self) -> None:
        """Forget predictions uproot did not ask for (none when the prediction holds); returns
        once no thread reads their payloads any more."""
        from concurrent.futures import wait

        running = [future for _, future in self._pending if not isinstance(future, _Done)]
        for future in running:
            future.cancel()
        wait(running)
        self._pending.clear()

    def close(self) -> None:
        """Stop the threads and give the compression object its own method back."""
        self.discard()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.compression.__dict__.pop("compress", None)


class _Done:
    """A result that is already there (the part of a Future that :class:`_CompressAhead` uses)."""

    def __init__(self, value: bytes) -> None:
        self._value = value

    def result(self) -> bytes:
        return self._value


def _basket_key_length(branch: str, tree: str) -> int:
    """``fKeylen`` of a TBasket of ``branch`` in ``tree``, as uproot's writer computes it: the
    jagged basket's stored offsets count from the start of the key."""
    from uproot.models.TBasket import _tbasket_format2
    from uproot.reading import _key_format_big
    from uproot.serialization import string

    return (_key_format_big.size + len(string("TBasket")) + len(string(branch)) + len(string(tree))
            + _tbasket_format2.size + 1)


def _hand(ahead: _CompressAhead, item: tuple[Any, ...]) -> None:
    """``(payload, compressed)``: provide the result made elsewhere, or compress in the threads."""
    payload, done = item
    if done is not None:
        ahead.provide(payload, done)
    else:
        ahead.submit(payload)


def _big_endian(value: Any, dtype: Any) -> tuple[np.ndarray, bytearray]:
    """``value`` as a big-endian ``dtype`` array (what a TTree basket holds) and the bytearray
    that holds it: uproot's basket bytes for a fixed-size branch, with no copy to make them."""
    src = np.asarray(value)
    be = np.dtype(dtype).newbyteorder(">")
    buf = bytearray(src.size * be.itemsize)
    arr = np.frombuffer(buf, dtype=be).reshape(src.shape)
    arr[...] = src
    return arr, buf


def _point_payloads(npix: np.ndarray, fields: Mapping[str, np.ndarray]) -> Iterator[bytearray]:
    """The uncompressed basket bytes of each large point-cloud branch, as uproot's
    writer lays out a jagged basket: the big-endian values, then the entry count + 1 and the
    entries' start offsets (big-endian int32, counted from the start of the basket's key)."""
    offsets = np.zeros(len(npix) + 1, dtype=np.int64)
    np.cumsum(npix, out=offsets[1:])
    for field, values in fields.items():
        if values.nbytes < _AHEAD_MIN_BYTES:
            continue
        branch = f"{schema.POINT_PREFIX}_{field}"
        size = values.nbytes
        buf = bytearray(size + 4 + 4 * len(offsets))
        np.frombuffer(buf, dtype=values.dtype.newbyteorder(">"), count=len(values))[:] = values
        buf[size:size + 4] = len(offsets).to_bytes(4, "big")
        starts = offsets * values.dtype.itemsize + _basket_key_length(branch, schema.EVENTS_TREE)
        np.frombuffer(buf, dtype=">i4", offset=size + 4)[:] = starts
        yield buf


class EventWriter(RootWriter):
    """Writes the ``events`` tree: dense images, the derived point cloud and bookkeeping scalars;
    with ``dense=False`` the sparse-first layout (no image branches; the sparse truth instead, and
    ``layout: sparse`` in the meta).

    With ``background=True`` each chunk is serialised, compressed and written by one
    background thread while the caller goes on (simulating or preparing the next chunk): LZ4
    compression and file writes release the GIL, so they overlap with the caller's work. At
    most one chunk is in flight; :meth:`write` copies what it needs (the byte-swapped arrays
    the TTree writer makes anyway), so the caller may reuse its batch memory as soon as
    :meth:`write` returns. An error of the background thread is raised by the next
    :meth:`write` or at the end of the ``with`` block; the file is then not created.

    With ``threads=N`` (TTree, compressed) ``N`` threads compress each chunk's large baskets
    (images, point-cloud branches) while uproot lays the chunk out (:class:`_CompressAhead`);
    the file is byte for byte the one ``threads=0`` writes. That pays where a core would
    otherwise be idle.
    """

    def __init__(self, path: str | os.PathLike[str], meta: Mapping[str, Any], with_jet: bool = False,
                 compression: str | None = DEFAULT_COMPRESSION, format: str = DEFAULT_FORMAT,
                 background: bool = False, threads: int = 0, with_oracle: bool = False, dense: bool = True) -> None:
        if not dense:
            meta = {**meta, "layout": "sparse"}
        super().__init__(path, meta, compression, format)
        self.dense = dense
        self.with_jet = with_jet
        self.with_oracle = with_oracle
        self.background = background
        self.threads = threads
        self.n_written = 0
        self._pool: Any = None
        self._pending: Any = None
        self._ahead: _CompressAhead | None = None

    def __enter__(self) -> EventWriter:
        super().__enter__()
        try:
            self.tree(schema.EVENTS_TREE, event_branch_types(self.with_jet, geometry.grid_of_meta(self.meta).size,
                                                             self.with_oracle, self.dense))
        except BaseException as exc:
            super().__exit__(type(exc), exc, exc.__traceback__)
            raise
        if self.format == "ttree" and self.compression is not None and self.compression.level > 0:
            self._ahead = _CompressAhead(self.compression, self.threads)
        if self.background:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="pfgraph-writer")
        return self

    def _array(self, value: Any, dtype: Any) -> np.ndarray:
        """``value`` as ``dtype``: a view when writing in this thread, else a private copy, big-endian
        for a TTree (the byte order its baskets hold, so the writer thread copies nothing more)."""
        arr = np.asarray(value, dtype=dtype)
        if self._pool is None:
            return arr
        if self.format == "ttree":
            return arr.astype(arr.dtype.newbyteorder(">"))
        return arr.copy()

    def write(self, batch: Mapping[str, np.ndarray], compressed: Mapping[str, bytes] | None = None) -> None:
        """Append a batch: ``event_id``, the six images (float32 (n, G, G) on the meta's grid), scalars[, jet].
        (The sparse-first layout writes the point cloud and the sparse truth made from the images.)

        ``compressed`` may hold, per image channel, the compressed bytes of its basket, made
        elsewhere (a simulation worker): the codec's output for the channel's big-endian float32
        bytes. They are used once uproot's own bytes are confirmed equal, and ignored otherwise.
        """
        ahead = self._ahead
        threads = ahead is not None and self.threads > 0
        later: list[tuple[Any, ...]] = []  # with a background thread, that thread hands the payloads over

        def hand(payload: bytearray, done: bytes | None) -> None:
            if self._pool is not None:
                later.append((payload, done))
            elif ahead is not None:  # at once: threads start compressing while this one goes on
                _hand(ahead, (payload, done))

        data: dict[str, Any] = {"event_id": self._array(batch["event_id"], np.int64)}
        dense_images = (*schema.IMAGE_CHANNELS, *((schema.JET_IMAGE,) if self.with_jet else ()),
                        *((schema.ORACLE_IMAGE,) if self.with_oracle else ())) if self.dense else ()
        for ch in dense_images:
            done = compressed.get(ch) if compressed and ahead is not None else None
            if done is not None or threads:
                data[ch], payload = _big_endian(batch[ch], np.float32)
                hand(payload, done)
            else:
                data[ch] = self._array(batch[ch], np.float32)
        npix, fields = point_cloud(batch, self.with_oracle)
        if threads:
            for payload in _point_payloads(npix, fields):
                hand(payload, None)
        data[schema.POINT_PREFIX] = jagged_record(npix, fields)
        if not self.dense:
            data[schema.TRUTH_PREFIX] = jagged_record(*sparse_truth(batch, truth_side_images(self.with_jet,
                                                                                            self.with_oracle)))
        for b in schema.EVENT_BRANCHES:
            if b.kind == "scalar" and b.name != "event_id" and (self.with_jet or not b.optional):
                data[b.name] = self._array(batch[b.name], b.np_dtype)
        if self._pool is None:
            self._extend(data, later)
        else:
            self._wait()
            self._pending = self._pool.submit(self._extend, data, later)
        self.n_written += len(data["event_id"])

    def _extend(self, data: Mapping[str, Any], later: Sequence[tuple[Any, ...]]) -> None:
        """Append one chunk (its large baskets served from compression done ahead, where there is)."""
        if self._ahead is None:
            self.extend(schema.EVENTS_TREE, data)
            return
        for item in later:
            _hand(self._ahead, item)
        try:
            self.extend(schema.EVENTS_TREE, data)
        finally:
            self._ahead.discard()

    def _wait(self) -> None:
        """Until the chunk in flight is written; raises its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        try:
            return self._exit(exc_type, exc, tb)
        finally:
            if self._ahead is not None:
                self._ahead.close()
                self._ahead = None

    def _exit(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if self._pool is not None:
            failed: BaseException | None = None
            try:
                if exc_type is None:
                    try:
                        self._wait()
                    except BaseException as err:  # the writer thread failed: unwind with its error
                        failed = err
                elif self._pending is not None:  # let the thread finish before the file goes
                    self._pending.exception()
            finally:
                self._pool.shutdown(wait=True)
                self._pool = self._pending = None
            if failed is not None:
                if not super().__exit__(type(failed), failed, failed.__traceback__):
                    raise failed
                return False
        return super().__exit__(exc_type, exc, tb)


# ----------------------------------------------------------------------------------- reading
