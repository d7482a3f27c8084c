"""Read pfgraph ROOT files (TTree or RNTuple) with uproot; the writing side is :mod:`pfgraph.io.writing`.

Readers validate every file against :mod:`pfgraph.io.schema` before any data is used and
turn every failure into one :class:`~pfgraph.errors.DataError` line naming file, entry and
field; older schema versions are read through :class:`FileMigration` steps.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from pfgraph import geometry
from pfgraph.errors import DataError
from pfgraph.io import schema
from pfgraph.io.plausible import Bounds, bounds_from_meta, check_plausible


def expand_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """A file, a glob or a list of either -> sorted existing files; a clear error otherwise."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out: list[Path] = []
    for item in items:
        text = str(item)
        if any(c in text for c in "*?["):
            matches = sorted(glob.glob(text))
            if not matches:
                raise DataError(f"{text}: no files match this pattern")
            out.extend(Path(m) for m in matches)
        else:
            p = Path(text)
            if not p.exists():
                raise DataError(f"{p}: no such file")
            if p.is_dir():
                raise DataError(f"{p}: is a folder, expected a ROOT file")
            out.append(p)
    if not out:
        raise DataError("no input files given")
    return out


def read_meta(file: Any, path: Path) -> dict[str, Any]:
    """Parse and check ``pfgraph_meta`` of an open uproot file."""
    try:
        keys = [k.split(";")[0] for k in file.keys(recursive=False)]
    except Exception as exc:
        raise corrupt(path, f"its list of objects: {reason(exc)}") from None
    if not keys:
        raise corrupt(path, "it lists no objects")
    if schema.META_KEY not in keys:
        raise DataError(f"{path}: field '{schema.META_KEY}' missing: not a pfgraph file")
    try:
        text = str(file[schema.META_KEY])
    except Exception as exc:
        raise corrupt(path, f"field '{schema.META_KEY}': {reason(exc)}") from None
    try:
        meta = json.loads(text)
    except Exception as exc:
        raise DataError(f"{path}: field '{schema.META_KEY}' is not valid JSON ({reason(exc)})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: field '{schema.META_KEY}' is not a JSON object")
    version = meta.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise DataError(f"{path}: field '{schema.META_KEY}' has no integer schema_version")
    if version > schema.SCHEMA_VERSION:
        raise DataError(
            f"{path}: schema version {version} is newer than this pfgraph supports "
            f"({schema.SCHEMA_VERSION}); upgrade pfgraph"
        )
    migration_for(version, path)
    if meta.get("imsize", geometry.PAPER_GRID_SIZE) not in geometry.GRID_SIZES:
        raise DataError(f"{path}: grid size {meta.get('imsize')} (imsize of '{schema.META_KEY}') is not one pfgraph "
                        f"supports ({', '.join(map(str, geometry.GRID_SIZES))})")
    return meta


@dataclass(frozen=True)
class FileMigration:
    """How to read a file of schema ``version`` as the current version.

    ``steps`` are the :class:`schema.Migration` records from the current version down to the
    file's, newest first; empty for current files.
    """

    version: int
    steps: tuple[schema.Migration, ...] = ()

    def file_name(self, name: str) -> str:
        """The name a current branch has inside the file."""
        for step in self.steps:
            name = dict(step.renamed).get(name, name)
        return name

    def added_value(self, name: str) -> float | None:
        """The constant a branch the file predates takes; None if the file has the branch."""
        for step in self.steps:
            added = dict(step.added)
            if name in added:
                return added[name]
            name = dict(step.renamed).get(name, name)
        return None


def migration_for(version: int, path: Path | str = "") -> FileMigration:
    """The chain of :data:`schema.MIGRATIONS` from ``version`` up to :data:`schema.SCHEMA_VERSION`.

    Raises a one-line DataError for versions below :data:`schema.MIN_SCHEMA_VERSION` or when a
    step of the chain has no migration.
    """
    where = f"{path}: " if str(path) else ""
    if version < schema.MIN_SCHEMA_VERSION:
        raise DataError(f"{where}schema version {version} is older than the oldest this pfgraph reads "
                        f"({schema.MIN_SCHEMA_VERSION}); re-create the file with this pfgraph")
    known = {m.to_version: m for m in schema.MIGRATIONS}
    steps = []
    for to in range(schema.SCHEMA_VERSION, version, -1):  # newest step first
        if to not in known:
            raise DataError(f"{where}schema version {version} has no migration to version {to} in this pfgraph; "
                            "re-create the file with this pfgraph")
        steps.append(known[to])
    return FileMigration(version, tuple(steps))


def reason(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line: ``Type: message`` with whitespace collapsed."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


#: ROOT's ``kBEGIN``: where the first record of every TFile starts.
_ROOT_BEGIN = 100


def corrupt(path: Path | str, what: str) -> DataError:
    """The one error for a file whose bytes do not make sense: ``PATH: corrupt or unreadable ROOT file (what)``."""
    return DataError(f"{path}: corrupt or unreadable ROOT file ({what})")


def check_header(file: Any, path: Path) -> None:
    """The TFile header's fields agree with each other and with the file's size.

    A flipped byte in the header would otherwise show up later as a misleading error (a
    directory read at the wrong place looks empty: "not a pfgraph file") or as an unknown
    compression code; here it is one "corrupt or unreadable" line naming the field.
    """
    h = file.file
    size = path.stat().st_size
    if h.fBEGIN != _ROOT_BEGIN:
        raise corrupt(path, f"header: first record at byte {h.fBEGIN}, expected {_ROOT_BEGIN}")
    if h.fEND > size:
        raise corrupt(path, f"truncated: the header says {h.fEND} bytes, the file has {size}")
    if h.fEND != size:
        raise corrupt(path, f"header: end of file at byte {h.fEND}, the file has {size} bytes")
    for name in ("fSeekFree", "fSeekInfo"):
        seek = getattr(h, name)
        if seek and not _ROOT_BEGIN <= seek < h.fEND:
            raise corrupt(path, f"header: {name} {seek} outside the file's {h.fEND} bytes")
    if h.fUnits not in (4, 8):
        raise corrupt(path, f"header: pointer size {h.fUnits}, expected 4 or 8")
    try:
        uproot.compression.Compression.from_code(h.fCompress)
    except Exception:
        raise corrupt(path, f"header: unknown compression code {h.fCompress}") from None


def open_root(path: Path, **options: Any) -> Any:
    """``uproot.open(path, **options)`` with its header checked (:func:`check_header`); a
    corrupt, truncated or non-ROOT file is one DataError line naming it."""
    try:
        f = uproot.open(path, **options)
    except Exception as exc:  # uproot raises many types for broken files
        raise corrupt(path, reason(exc)) from None
    check_header(f, path)
    return f


def is_rntuple(tree: Any) -> bool:
    """True for an uproot RNTuple (``--format rntuple`` files), False for a TTree."""
    return isinstance(tree, uproot.behaviors.RNTuple.RNTuple)


def _check_branch(tree: Any, path: Path, spec: schema.Branch, file_name: str | None, size: int) -> None:
    name = file_name or spec.name
    if name not in tree:
        raise DataError(f"{path}: branch '{name}' missing from tree '{tree.name}'")
    if is_rntuple(tree):
        typename = str(tree[name].typename)
        if typename.replace(" ", "") != spec.rntuple_type_for(size):
            raise DataError(f"{path}: field '{name}' of RNTuple '{tree.name}' is {typename}, "
                            f"expected {spec.rntuple_type_for(size)}")
        return
    interp = tree[name].interpretation
    if spec.kind in ("scalar", "image", "counter"):
        dtype = getattr(interp, "to_dtype", None)
        if dtype is None:
            raise DataError(f"{path}: branch '{name}' has interpretation {interp}, expected {spec.root_type_for(size)}")
        base = dtype.base if dtype.shape else dtype
        if base != spec.np_dtype or tuple(dtype.shape) != spec.shape_for(size):
            raise DataError(
                f"{path}: branch '{name}' is {base}{list(dtype.shape) or ''}, expected {spec.root_type_for(size)}"
            )
    elif spec.kind == "jagged":
        content = getattr(interp, "content", None)
        dtype = getattr(content, "to_dtype", None)
        if dtype is None or dtype != spec.np_dtype:
            raise DataError(f"{path}: branch '{name}' has interpretation {interp}, expected {spec.root_type}")


def check_tree(tree: Any, path: Path, branches: Sequence[schema.Branch], migration: FileMigration | None = None,
               require: Sequence[str] | None = None, *, size: int) -> list[str]:
    """Validate ``tree`` against branch specs; returns the names of the optional ones present.

    Required branches (or exactly ``require``) must exist with the contract's dtype and shape
    (images ``size`` x ``size``: the grid of the file's meta, :func:`pfgraph.geometry.grid_of_meta`);
    optional ones are checked when present. Migrated (added) branches are skipped.
    """
    mig = migration or FileMigration(schema.SCHEMA_VERSION)
    needed = {b.name for b in branches if not b.optional} if require is None else set(require)
    present = []
    for spec in branches:
        if mig.added_value(spec.name) is not None:
            continue
        fname = mig.file_name(spec.name)
        if spec.name in needed:
            _check_branch(tree, path, spec, fname, size)
        elif fname in tree:
            _check_branch(tree, path, spec, fname, size)
            present.append(spec.name)
    return present


def tree_names(file: Any) -> dict[str, str]:
    """Top-level trees/RNTuples of an open uproot file: name -> class name."""
    try:
        names = file.classnames(recursive=False)
    except Exception as exc:
        raise corrupt(file.file_path, f"its list of objects: {reason(exc)}") from None
    return {k.split(";")[0]: v for k, v in names.items() if v in ("TTree", "ROOT::RNTuple")}


class EventFiles:
    """One or more validated pfgraph event files, read as one dataset.

    ``EventFiles("data/b050*.root")`` checks every file (readable, ``pfgraph_meta`` present,
    schema version, every required branch with its dtype and shape) before returning.
    ``bounds`` holds each file's plausibility bounds (:mod:`pfgraph.io.plausible`, from its own
    generation config), which every read applies.
    """

    def __init__(self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                 require: Sequence[str] | None = None) -> None:
        self.paths = expand_paths(paths)
        self.metas: list[dict[str, Any]] = []
        self.entries: list[int] = []
        self.migrations: list[FileMigration] = []
        self.formats: list[str] = []
        self.bounds: list[Bounds] = []
        #: Each file's layout (:data:`schema.LAYOUTS`): ``sparse`` files hold no image branches and
        #: :meth:`read` rebuilds any image asked for from the point cloud and the sparse truth.
        self.layouts: list[str] = []
        self.has_jet = True
        #: Every file carries the ``oracle`` image (simulated with ``output.oracle``).
        self.has_oracle = True
        for path in self.paths:
            f = open_root(path)
            meta = read_meta(f, path)
            mig = migration_for(meta["schema_version"], path)
            size = geometry.grid_of_meta(meta).size
            if self.metas and size != self.grid.size:
                raise DataError(f"{path}: grid {size} x {size}, but {self.paths[0]} is on the "
                                f"{self.grid.size} x {self.grid.size} grid (one data set, one grid)")
            layout = schema.file_layout(meta)
            if layout not in schema.LAYOUTS:
                raise DataError(f"{path}: layout '{layout}' (of '{schema.META_KEY}') is not one of "
                                f"{', '.join(schema.LAYOUTS)}")
            if self.layouts and layout != self.layout:
                raise DataError(f"{path}: {layout} layout, but {self.paths[0]} is {self.layout} "
                                "(one data set, one layout: simulate them with the same output.dense_images)")
            if schema.EVENTS_TREE not in tree_names(f):
                raise DataError(f"{path}: tree '{schema.EVENTS_TREE}' missing")
            try:
                tree = f[schema.EVENTS_TREE]
                if require is None:
                    check_tree(tree, path, schema.EVENT_BRANCHES, mig, require=schema.required_event_branches(layout),
                               size=size)
                else:
                    need = stored_branches(require, layout)
                    check_tree(tree, path, [schema.EVENT_BRANCH_MAP[n] for n in need], mig, require=need, size=size)
                n = int(tree.num_entries)
            except DataError:
                raise
            except Exception as exc:
                raise corrupt(path, f"tree '{schema.EVENTS_TREE}': {reason(exc)}") from None
            self.has_jet &= all(mig.file_name(n) in tree for n in stored_branches([schema.JET_IMAGE], layout))
            self.has_oracle &= all(mig.file_name(n) in tree for n in stored_branches([schema.ORACLE_IMAGE], layout))
            self.layouts.append(layout)
            self.metas.append(meta)
            self.bounds.append(bounds_from_meta(meta))
            self.entries.append(n)
            self.migrations.append(mig)
            self.formats.append("rntuple" if is_rntuple(tree) else "ttree")
        self.offsets = np.concatenate([[0], np.cumsum(self.entries)]).astype(np.int64)

    @property
    def num_events(self) -> int:
        """Total number of events over all files."""
        return int(self.offsets[-1])

    @property
    def meta(self) -> dict[str, Any]:
        """Metadata of the first file."""
        return self.metas[0]

    @property
    def grid(self) -> geometry.Grid:
        """The grid of the files' images (``imsize`` of their meta; every file has the same)."""
        return geometry.grid_of_meta(self.metas[0])

    @property
    def layout(self) -> str:
        """The files' layout, ``dense`` or ``sparse`` (every file has the same)."""
        return self.layouts[0] if self.layouts else "dense"

    def iterate(self, branches: Sequence[str], step: int = 1000, start: int = 0,
                stop: int | None = None) -> Iterator[dict[str, Any]]:
        """Yield chunks (dicts branch -> array) over global entries [start, stop).

        Fixed-size branches come as numpy arrays, jagged ones as awkward arrays; every float
        branch is checked for NaN/Inf and energies against the file's plausibility bounds.
        Each chunk also has ``_file`` and ``_entry_start``.
        """
        stop = self.num_events if stop is None else min(stop, self.num_events)
        for i, path in enumerate(self.paths):
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            a, b = max(start, lo), min(stop, hi)
            if a >= b:
                continue
            tree = open_root(path)[schema.EVENTS_TREE]
            for s in range(a - lo, b - lo, step):
                e = min(s + step, b - lo)
                chunk = self._read(tree, path, branches, s, e, self.migrations[i], self.bounds[i],
                                   geometry.grid_of_meta(self.metas[i]).size)
                if "event_id" in chunk:
                    check_event_ids(chunk["event_id"], path, s, self.metas[i])
                yield chunk

    def read(self, branches: Sequence[str], start: int = 0, stop: int | None = None) -> dict[str, Any]:
        """Read global entries [start, stop) of ``branches`` into one chunk."""
        chunks = list(self.iterate(branches, step=1 << 30, start=start, stop=stop))
        if not chunks:
            return {b: np.zeros((0,)) for b in branches}
        if len(chunks) == 1:
            return chunks[0]
        out: dict[str, Any] = {}
        for b in branches:
            parts = [c[b] for c in chunks]
            out[b] = ak.concatenate(parts) if isinstance(parts[0], ak.Array) else np.concatenate(parts)
        out["_file"], out["_entry_start"] = chunks[0]["_file"], chunks[0]["_entry_start"]
        return out

    @staticmethod
    def _read(tree: Any, path: Path, branches: Sequence[str], start: int, stop: int,
              migration: FileMigration | None = None, bounds: Bounds | None = None,
              size: int = geometry.PAPER_GRID_SIZE) -> dict[str, Any]:
        mig = migration or FileMigration(schema.SCHEMA_VERSION)
        added = {b: v for b in branches if (v := mig.added_value(b)) is not None}
        names = {b: mig.file_name(b) for b in branches if b not in added}
        # images a sparse-first file does not hold: rebuilt from their sparse source (read alongside)
        rebuilt = {b: src for b in names if names[b] not in tree and (src := schema.sparse_source(b)) is not None
                   and all(n in tree for n in src)}
        for b in rebuilt:
            del names[b]
        for src in rebuilt.values():
            for n in src:
                names.setdefault(n, n)
        for fname in names.values():
            if fname not in tree:
                raise DataError(f"{path}: branch '{fname}' missing from tree '{schema.EVENTS_TREE}'")
        fixed = [b for b in names if not _is_jagged(b)]
        jagged = [b for b in names if _is_jagged(b)]
        out: dict[str, Any] = {"_file": str(path), "_entry_start": start}
        try:
            if fixed:
                arrays = tree.arrays([names[b] for b in fixed], entry_start=start, entry_stop=stop, library="np")
                out.update({b: np.asarray(arrays[names[b]]) for b in fixed})
            if jagged:
                arrays = tree.arrays([names[b] for b in jagged], entry_start=start, entry_stop=stop, library="ak")
                out.update({b: arrays[names[b]] for b in jagged})
        except Exception as exc:
            raise corrupt(path, f"entries {start}-{stop}: {reason(exc)}") from None
        for name, (counter, ieta, iphi, values) in rebuilt.items():
            out[name] = dense_from_sparse(out[counter], out[ieta], out[iphi], out[values], size, path, start)
        for name, value in added.items():
            spec = schema.EVENT_BRANCH_MAP.get(name)
            dtype = spec.np_dtype if spec is not None else np.float32
            shape = spec.shape_for(size) if spec is not None else ()
            out[name] = np.full((stop - start, *shape), value, dtype=dtype)
        for name in branches:
            if bounds is not None and bounds.limits(name) is not None:
                check_plausible(out[name], path, name, start, bounds)  # NaN/Inf included
            else:
                check_finite(out[name], path, name, start)
        return out


def stored_branches(names: Sequence[str], layout: str) -> list[str]:
    """The branches a file of ``layout`` stores for the branches ``names``: in a sparse-first file an
    image is its sparse source (:func:`schema.sparse_source`), every other branch itself."""
    out: list[str] = []
    for name in names:
        src = schema.sparse_source(name) if layout == "sparse" else None
        for n in (src or (name,)):
            if n not in out:
                out.append(n)
    return out


def flat_jagged(array: Any) -> tuple[np.ndarray, np.ndarray]:
    """A jagged awkward array -> (offsets from 0, flat numpy content), without copies where the layout allows."""
    layout = array.layout if isinstance(array, ak.Array) else None
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray):
        offsets = np.asarray(layout.offsets, dtype=np.int64)
        return offsets - offsets[0], np.asarray(layout.content.data)[offsets[0]:offsets[-1]]
    counts = np.asarray(ak.num(array, axis=1), dtype=np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, np.asarray(ak.to_numpy(ak.flatten(array, axis=1)))


def sparse_offsets(counter: Any, ieta: Any, path: Path | str, entry_start: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets (n+1,) from 0, flat ieta) of a jagged sparse collection, checked against its counter."""
    offsets, flat = flat_jagged(ieta)
    counts = np.asarray(counter, dtype=np.int64)
    if len(counts) != len(offsets) - 1 or not np.array_equal(counts, np.diff(offsets)):
        raise corrupt(path, f"entries from {entry_start}: a counter disagrees with its jagged branches")
    return offsets, flat


def dense_from_sparse(counter: Any, ieta: Any, iphi: Any, values: Any, size: int, path: Path | str = "?",
                      entry_start: int = 0, rows: np.ndarray | None = None, out: np.ndarray | None = None,
                      scale: np.float32 | None = None) -> np.ndarray:
    """G x G images (float32 (n, size, size)) from one jagged sparse collection of a chunk: ``values`` at
    (``ieta``, ``iphi``), 0 elsewhere. Vectorised (one scatter for the whole chunk).

    ``rows`` picks chunk events (all by default); ``out`` (float32 (len(rows), size, size)) is filled in
    place instead of a new array (it must be zero where no value lands: it is cleared first), ``scale``
    multiplies the values (float32, as the dense readers scale: bit-identical to scaling the image).
    """
    offsets, ie = sparse_offsets(counter, ieta, path, entry_start)
    _, ip = flat_jagged(iphi)
    _, val = flat_jagged(values)
    if not (len(ip) == len(val) == len(ie)):
        raise corrupt(path, f"entries from {entry_start}: sparse branches of different lengths")
    n_chunk = len(offsets) - 1
    rows = np.arange(n_chunk, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    if out is None:
        out = np.zeros((len(rows), size, size), dtype=np.float32)
    else:
        out[...] = 0.0
    if len(rows) == n_chunk and np.array_equal(rows, np.arange(n_chunk)):
        sel: Any = slice(None)
        counts = np.diff(offsets)
    else:
        counts = offsets[rows + 1] - offsets[rows]
        sel = np.repeat(offsets[rows] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) \
            + np.arange(int(counts.sum()), dtype=np.int64)
    e, p_eta, p_phi, v = np.repeat(np.arange(len(rows), dtype=np.int64), counts), ie[sel], ip[sel], val[sel]
    if len(p_eta) and (p_eta.min() < 0 or p_eta.max() >= size or p_phi.min() < 0 or p_phi.max() >= size):
        raise corrupt(path, f"entries from {entry_start}: a sparse pixel index outside 0..{size - 1}")
    out[e, p_eta, p_phi] = v if scale is None else v * scale  # any view of out (no reshape copy)
    return out


def check_event_ids(ids: Any, path: Path | str, entry_start: int, meta: Mapping[str, Any]) -> None:
    """Event ids must rise strictly and lie in the range the file's meta describes
    (``[first_event, first_event + events)``): a flipped bit in an uncompressed file (which no
    checksum sees) is one "corrupt or unreadable" line naming the entry, not a silent read."""
    arr = np.asarray(ids)
    if arr.size == 0 or arr.dtype.kind not in "iu":
        return
    first, events = meta.get("first_event"), meta.get("events")
    bad = None
    if arr.size > 1:
        steps = np.flatnonzero(np.diff(arr) <= 0)
        if steps.size:
            bad = int(steps[0]) + 1
    if isinstance(first, int) and isinstance(events, int) and not isinstance(first, bool):
        outside = np.flatnonzero((arr < first) | (arr >= first + events))
        if outside.size and (bad is None or int(outside[0]) < bad):
            bad = int(outside[0])
        what = f"outside the file's range [{first}, {first + events})"
    else:
        what = "not above the previous entry's"
    if bad is None:
        return
    if bad > 0 and arr[bad] <= arr[bad - 1]:
        what = f"not above the previous entry's {int(arr[bad - 1])} (duplicated or out of order)"
    raise corrupt(path, f"entry {entry_start + bad}: event_id {int(arr[bad])} {what}")


def _is_jagged(name: str) -> bool:
    spec = schema.EVENT_BRANCH_MAP.get(name)
    return spec is not None and spec.kind == "jagged"


def check_finite(values: Any, path: Path | str, name: str, entry_start: int) -> None:
    """Raise a DataError naming file, event and branch if ``values`` holds NaN or Inf."""
    if isinstance(values, ak.Array):
        flat = ak.to_numpy(ak.flatten(values, axis=None))
        if flat.dtype.kind != "f" or np.isfinite(flat).all():
            return
        counts = ak.to_numpy(ak.num(values, axis=1))
        bad_flat = int(np.flatnonzero(~np.isfinite(flat))[0])
        bad = int(np.searchsorted(np.cumsum(counts), bad_flat, side="right"))
    else:
        arr = np.asarray(values)
        if arr.dtype.kind != "f":
            return
        finite = np.isfinite(arr.reshape(len(arr), -1)).all(axis=1) if arr.ndim > 1 else np.isfinite(arr)
        if finite.all():
            return
        bad = int(np.flatnonzero(~finite)[0])
    raise DataError(f"{path}: event {entry_start + bad}, branch '{name}': NaN or Inf value, expected finite numbers")
