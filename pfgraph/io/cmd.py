"""``pfgraph inspect`` (summary, schema check, event display of a pfgraph ROOT file) and
``pfgraph schema`` (the data contract as text or Markdown)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

#: Entries read at a time while summarising a file.
CHUNK = 1000


def register(sub: Any) -> None:
    """Add the ``inspect`` and ``schema`` sub-commands."""
    p = sub.add_parser("inspect", help="summarise a pfgraph ROOT file, check its schema, draw an event",
                       description="Print every tree and branch of a pfgraph file (type, shape, statistics), "
                       "check it against the data contract and optionally draw one event.")
    p.add_argument("file", help="a pfgraph ROOT file (events or predictions; TTree or RNTuple)")
    p.add_argument("--event", type=int, default=None,
                   help="entry number within the file to print (and draw with --display); default 0")
    p.add_argument("--display", metavar="PNG", default=None,
                   help="write an event display of --event to this PNG file (never over the file inspected; "
                   "over an existing file only if pfgraph drew it, or with --force)")
    p.add_argument("--force", action="store_true", help="let --display replace a file pfgraph did not write")
    p.add_argument("--max-events", type=int, default=None,
                   help="summarise only the first N entries of each tree (default: all)")
    p.set_defaults(func=run)

    s = sub.add_parser("schema", help="print every tree and branch of pfgraph's files (the data contract)",
                       description="Print the data contract (trees, branches, types, shapes, units, meaning) "
                       "from pfgraph/io/schema.py; --markdown gives docs/SCHEMA.md.")
    s.add_argument("--markdown", action="store_true", help="Markdown (the content of docs/SCHEMA.md)")
    s.add_argument("--out", default=None, help="write to this file (atomically) instead of printing")
    s.set_defaults(func=run_schema)


def run_schema(args: argparse.Namespace) -> int:
    """Run ``pfgraph schema``."""
    from pfgraph.io.schema_doc import render
    from pfgraph.utils.atomic import atomic_write_text

    text = render(markdown=args.markdown)
    if args.out:
        atomic_write_text(args.out, text)
        print(f"schema: wrote {args.out}")
    else:
        print(text, end="")
    return 0


# ------------------------------------------------------------------------------ inspect


def run(args: argparse.Namespace) -> int:
    """Run ``pfgraph inspect``."""
    from pfgraph.errors import DataError, PfgraphError
    from pfgraph.io import schema
    from pfgraph.io.root import expand_paths, open_root, tree_names

    if args.max_events is not None and args.max_events <= 0:
        raise PfgraphError(f"--max-events {args.max_events}: expected a positive number of entries")
    if args.event is not None and args.event < 0:
        raise PfgraphError(f"--event {args.event}: expected an entry number >= 0")
    paths = expand_paths(args.file)
    if len(paths) != 1:
        raise PfgraphError(f"{args.file}: matches {len(paths)} files; inspect one file at a time")
    path = paths[0]
    if args.display:
        from pfgraph.utils.atomic import ensure_writable_dir
        from pfgraph.utils.ownership import check_not_input, check_replaceable

        check_not_input(args.display, [path], "the file being inspected")
        check_replaceable(args.display, args.force)
        ensure_writable_dir(Path(args.display).parent)
    f = open_root(path)
    meta, checked, feeds = _check(f, path)
    trees = tree_names(f)
    size = path.stat().st_size
    fmt = ", ".join(sorted({"RNTuple" if c == "ROOT::RNTuple" else "TTree" for c in trees.values()})) or "no trees"
    print(f"file: {path} ({_size(size)}, {fmt}, compression {_compression(f)})")
    print("meta: " + _meta_line(meta))
    print(f"schema check: OK ({checked})")
    if feeds:
        print(f"feeds: {feeds}")
    from pfgraph.io.plausible import bounds_from_meta

    bounds = bounds_from_meta(meta) if schema.EVENTS_TREE in trees else None
    checked_values = 0
    for name in trees:
        tree = f[name]
        n = int(tree.num_entries)
        stop = n if args.max_events is None else min(n, args.max_events)
        spec = schema.TREE_MAP.get(name)
        note = "" if spec else " (not part of the pfgraph schema)"
        part = f", first {stop} summarised" if stop < n else ""
        print(f"\ntree '{name}': {n} entries{part}{note}")
        _summarise(tree, path, spec, stop, bounds if name == schema.EVENTS_TREE else None,
                   meta if name == schema.EVENTS_TREE else None)
        if name == schema.EVENTS_TREE:
            checked_values = stop
    if bounds is not None:
        print(f"\nvalue check: OK ({checked_values} events within {bounds.describe()})")
    if args.event is not None or args.display:
        event = args.event or 0
        tree_name = schema.EVENTS_TREE if schema.EVENTS_TREE in trees else (
            schema.PREDICTIONS_TREE if schema.PREDICTIONS_TREE in trees else None)
        if tree_name is None:
            raise DataError(f"{path}: no '{schema.EVENTS_TREE}' or '{schema.PREDICTIONS_TREE}' tree to show an event of")
        tree = f[tree_name]
        if event >= tree.num_entries:
            raise DataError(f"{path}: --event {event} out of range: tree '{tree_name}' has {tree.num_entries} entries")
        data = _read_event(tree, path, event, bounds_from_meta(meta) if tree_name == schema.EVENTS_TREE else None)
        if tree_name == schema.EVENTS_TREE and schema.file_layout(meta) == "sparse":
            _rebuild_images(data, meta)
        _print_event(tree_name, event, data)
        if args.display:
            out = _display(tree_name, data, event, path, Path(args.display))
            print(f"display: wrote {out}")
    return 0


def _rebuild_images(data: dict[str, Any], meta: dict[str, Any]) -> None:
    """Add the images of one sparse-first entry (read by :func:`_read_event`) rebuilt from its point cloud
    and sparse truth (:func:`pfgraph.io.schema.sparse_source`), as the readers do."""
    import numpy as np

    from pfgraph import geometry
    from pfgraph.io import schema

    size = geometry.grid_of_meta(meta).size
    for name in (*schema.IMAGE_CHANNELS, schema.JET_IMAGE, schema.ORACLE_IMAGE):
        src = schema.sparse_source(name)
        if src is None or not all(n in data for n in src[1:]):
            continue
        image = np.zeros((size, size), dtype=np.float32)
        image[np.asarray(data[src[1]], dtype=np.int64), np.asarray(data[src[2]], dtype=np.int64)] = data[src[3]]
        data[name] = image


def _input_layouts(tree: Any, path: Path, mig: Any, size: int, layout: str = "dense") -> list[str]:
    """The representations whose input-only layout (:data:`pfgraph.io.schema.INPUT_LAYOUTS`) ``tree`` holds
    (images on the ``size`` grid of the file's meta; in a sparse-first file as their sparse source)."""
    from pfgraph.errors import DataError
    from pfgraph.io import schema
    from pfgraph.io.reading import stored_branches
    from pfgraph.io.root import check_tree

    found = []
    for repr_name, wanted in schema.INPUT_LAYOUTS.items():
        names = stored_branches(wanted, layout)
        try:
            check_tree(tree, path, [schema.EVENT_BRANCH_MAP[n] for n in names], mig, require=names, size=size)
        except DataError:
            continue
        found.append(repr_name)
    return found


def _feeds(layouts: list[str], truth: bool) -> str:
    """Which commands an events file with these input layouts can feed (one line)."""
    models = " and ".join(f"{r} models" for r in layouts)
    if truth:
        return f"simulate output: train, evaluate, predict ({models})"
    missing = [r for r in ("image", "graph") if r not in layouts]
    note = f"; not {' or '.join(missing)} models (no {'dense channels' if missing == ['image'] else 'point cloud' if missing == ['graph'] else 'inputs'})" if missing else ""
    return f"input-only file: predict ({models}){note}; not train or evaluate (no truth branches)"


def _check(f: Any, path: Path) -> tuple[dict[str, Any], str, str]:
    """Validate the file against the contract; returns (meta, one-line description, the commands it feeds).

    An events tree is a full ``pfgraph simulate`` file or an input-only file (the minimal layout
    of :data:`pfgraph.io.schema.INPUT_LAYOUTS`: ``pfgraph predict`` reads it without truth)."""
    from pfgraph import geometry
    from pfgraph.errors import DataError
    from pfgraph.io import schema
    from pfgraph.io.root import EventFiles, check_tree, corrupt, migration_for, read_meta, reason, tree_names

    meta = read_meta(f, path)
    mig = migration_for(meta["schema_version"], path)
    trees = tree_names(f)
    known = [t for t in trees if t in schema.TREE_MAP]
    if not known:
        raise DataError(f"{path}: no pfgraph tree (expected one of {', '.join(schema.TREE_MAP)}), found "
                        f"{', '.join(trees) or 'none'}")
    parts = []
    feeds = ""
    for name in known:
        if name == schema.EVENTS_TREE:
            try:
                files = EventFiles(path)
            except DataError as exc:
                # a tree with the truth image claims to be a full simulate file: its missing branch is
                # an error, not an input-only layout
                claims_full = bool({"truth", f"{schema.TRUTH_PREFIX}_truth"} & set(f[name].keys()))
                layouts = (_input_layouts(f[name], path, mig, geometry.grid_of_meta(meta).size, schema.file_layout(meta))
                           if "missing" in str(exc) and not claims_full else [])
                if not layouts:
                    raise
                files = EventFiles(path, require=sorted({b for r in layouts for b in schema.INPUT_LAYOUTS[r]}))
                parts.append(f"{name}: input-only layout ({', '.join(layouts)} inputs, no truth)")
                feeds = _feeds(layouts, truth=False)
                continue
            layout = schema.file_layout(meta)
            feeds = _feeds(_input_layouts(f[name], path, mig, geometry.grid_of_meta(meta).size, layout), truth=True)
            required = set(schema.required_event_branches(layout))
            optional = [b.name for b in schema.EVENT_BRANCHES if b.name not in required and b.name in f[name]]
            parts.append(f"{name}: {len(required)} required branches"
                         + (f" + optional {', '.join(optional)}" if optional else "")
                         + (", sparse-first layout (no image branches: the images are rebuilt from the point cloud "
                            "and the sparse truth)" if layout == "sparse" else ", dense layout (image branches)"))
            if files.migrations[0].steps:
                parts[-1] += f", migrated from schema version {files.migrations[0].version}"
            continue
        else:
            try:
                optional = check_tree(f[name], path, schema.TREE_MAP[name].branches, mig,
                                      size=geometry.grid_of_meta(meta).size)
            except DataError:
                raise
            except Exception as exc:
                raise corrupt(path, f"tree '{name}': {reason(exc)}") from None
            files = None
        required = sum(not b.optional for b in schema.TREE_MAP[name].branches)
        extra = f" + optional {', '.join(optional)}" if optional else ""
        parts.append(f"{name}: {required} required branches{extra}")
        if files is not None and files.migrations[0].steps:
            parts[-1] += f", migrated from schema version {files.migrations[0].version}"
    return meta, "; ".join(parts), feeds


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB" if nbytes >= 2**20 else f"{nbytes / 1024:.1f} KiB"


def _compression(f: Any) -> str:
    comp = getattr(f.file, "compression", None)
    if comp is None:
        return "none"
    return f"{type(comp).__name__.lower()}:{comp.level}"


def _meta_line(meta: dict[str, Any]) -> str:
    from pfgraph.io import schema

    cfg = meta.get("config") or {}
    items = [f"kind {meta.get('kind', '?')}",
             f"schema version {meta['schema_version']} (this pfgraph reads {schema.MIN_SCHEMA_VERSION}-{schema.SCHEMA_VERSION})",
             f"pfgraph {meta.get('pfgraph_version', '?')}"]
    if isinstance(cfg, dict) and cfg.get("name"):
        items.append(f"config {cfg['name']}")
    for key in ("model", "dataset"):
        if meta.get(key) is not None:
            items.append(f"{key} {meta[key]}")
    if meta.get("seed") is not None:
        items.append(f"seed {meta['seed']}")
    if meta.get("shards") is not None and meta.get("first_event") is not None:
        first, n = int(meta["first_event"]), int(meta.get("events", 0))
        items.append(f"events {first}..{first + n - 1} (shard {meta.get('shard', 0)} of {meta['shards']})")
    if meta.get("with_jet"):
        items.append("jet sample")
    return ", ".join(items)


def _is_jagged(tree: Any, name: str) -> bool:
    from pfgraph.io.root import is_rntuple

    if is_rntuple(tree):
        return str(tree[name].typename).startswith("std::vector")
    import uproot

    return isinstance(tree[name].interpretation, uproot.AsJagged)


def _type_name(tree: Any, name: str) -> str:
    from pfgraph.io.root import is_rntuple

    if is_rntuple(tree):
        return str(tree[name].typename).replace("std::", "")
    return str(tree[name].typename)


class _Stats:
    """Running statistics of one branch over chunks."""

    def __init__(self) -> None:
        self.n = 0  # values
        self.total = 0.0
        self.lo = math.inf
        self.hi = -math.inf
        self.nonzero = 0
        self.per_event: list[Any] = []  # per-event sums (images) or counts (jagged)

    def add(self, values: Any) -> None:
        import numpy as np

        v = np.asarray(values).reshape(-1)
        if v.size == 0:
            return
        self.n += v.size
        self.total += float(v.sum(dtype=np.float64))
        self.lo = min(self.lo, float(v.min()))
        self.hi = max(self.hi, float(v.max()))
        self.nonzero += int(np.count_nonzero(v))

    def line(self) -> str:
        if self.n == 0:
            return "no values"
        return f"min {_num(self.lo)}  mean {_num(self.total / self.n)}  max {_num(self.hi)}"


def _num(x: float) -> str:
    if x == 0:
        return "0"
    if float(x).is_integer() and abs(x) < 1e9:
        return str(int(x))
    return f"{x:.4g}"


def _summarise(tree: Any, path: Path, spec: Any, stop: int, bounds: Any = None, meta: Any = None) -> None:
    """Print one line per branch: type, shape, statistics (streams ``CHUNK`` entries at a time).

    Every float branch is checked for NaN/Inf and, with ``bounds`` (events trees), energies
    against the file's plausibility bounds (:mod:`pfgraph.io.plausible`); with ``meta`` (events
    trees) the event ids against the file's range (:func:`pfgraph.io.root.check_event_ids`).
    """
    import awkward as ak
    import numpy as np

    from pfgraph.io.plausible import check_plausible
    from pfgraph.io.root import check_event_ids, check_finite, corrupt, reason

    names = list(tree.keys())
    last_id: Any = None
    jagged = {n for n in names if _is_jagged(tree, n)}
    stats = {n: _Stats() for n in names}
    for start in range(0, stop, CHUNK):
        end = min(start + CHUNK, stop)
        try:
            fixed = tree.arrays([n for n in names if n not in jagged], entry_start=start, entry_stop=end, library="np") \
                if len(jagged) < len(names) else {}
            jag = tree.arrays(sorted(jagged), entry_start=start, entry_stop=end, library="ak") if jagged else {}
        except Exception as exc:
            raise corrupt(path, f"tree '{tree.name}' entries {start}-{end}: {reason(exc)}") from None
        for n in names:
            if n in jagged:
                arr = jag[n]
                check_finite(arr, path, n, start)
                check_plausible(arr, path, n, start, bounds)
                stats[n].per_event.append(ak.to_numpy(ak.num(arr, axis=1)))
                stats[n].add(ak.to_numpy(ak.flatten(arr, axis=None)))
            else:
                arr = np.asarray(fixed[n])
                if n == "event_id" and meta is not None:
                    joined = arr if last_id is None else np.concatenate([[last_id], arr])
                    check_event_ids(joined, path, start - (last_id is not None), meta)
                    last_id = arr[-1] if arr.size else last_id
                check_finite(arr, path, n, start)
                check_plausible(arr, path, n, start, bounds)
                if arr.ndim > 1:
                    stats[n].per_event.append(arr.reshape(len(arr), -1).sum(axis=1, dtype=np.float64))
                stats[n].add(arr)
    width = max((len(n) for n in names), default=0)
    types = {n: _type_name(tree, n) for n in names}
    twidth = max((len(t) for t in types.values()), default=0)
    for n in names:
        s = stats[n]
        doc = ""
        if spec is not None:
            b = next((b for b in spec.branches if b.name == n), None)
            doc = f" [{b.unit}]" if b is not None and b.unit else ""
        line = f"  {n:<{width}}  {types[n]:<{twidth}}  "
        if s.per_event:
            per = np.concatenate(s.per_event) if s.per_event else np.zeros(0)
            if n in jagged:
                line += (f"per event n: mean {per.mean():.1f} min {per.min()} max {per.max()}"
                         f" ({int((per == 0).sum())} empty);  values{doc}: {s.line()}") if per.size else "no entries"
            else:
                frac = s.nonzero / s.n if s.n else 0.0
                line += (f"per-event sum{doc}: mean {_num(per.mean())} min {_num(per.min())} max {_num(per.max())};"
                         f"  pixels: max {_num(s.hi)}, {100 * frac:.1f}% non-zero") if per.size else "no entries"
        else:
            line += f"{s.line()}{doc}"
        print(line.rstrip())


def _read_event(tree: Any, path: Path, event: int, bounds: Any = None) -> dict[str, Any]:
    """All branches of one entry: numpy arrays (images as (G, G)), jagged as numpy 1-D."""
    import awkward as ak
    import numpy as np

    from pfgraph.errors import DataError
    from pfgraph.io.plausible import check_plausible
    from pfgraph.io.root import check_finite, corrupt, reason

    names = list(tree.keys())
    jagged = [n for n in names if _is_jagged(tree, n)]
    fixed = [n for n in names if n not in jagged]
    try:
        out: dict[str, Any] = {}
        if fixed:
            arrs = tree.arrays(fixed, entry_start=event, entry_stop=event + 1, library="np")
            for n in fixed:
                check_finite(np.asarray(arrs[n]), path, n, event)
                check_plausible(np.asarray(arrs[n]), path, n, event, bounds)
                out[n] = np.asarray(arrs[n])[0]
        if jagged:
            arrs = tree.arrays(jagged, entry_start=event, entry_stop=event + 1, library="ak")
            for n in jagged:
                check_finite(arrs[n], path, n, event)
                check_plausible(arrs[n], path, n, event, bounds)
                out[n] = ak.to_numpy(arrs[n][0])
    except DataError:
        raise
    except Exception as exc:
        raise corrupt(path, f"entry {event}: {reason(exc)}") from None
    return out


def _print_event(tree_name: str, event: int, data: dict[str, Any]) -> None:
    import numpy as np

    print(f"\n{tree_name} entry {event}:")
    parts = []
    for n, v in data.items():
        v = np.asarray(v)
        if v.ndim == 0:
            parts.append(f"{n} = {_num(float(v))}")
    print("  " + ", ".join(parts))
    for n, v in data.items():
        v = np.asarray(v)
        if v.ndim == 2:
            print(f"  {n:<14} sum {_num(float(v.sum(dtype=np.float64)))} GeV in {int(np.count_nonzero(v))} pixels, "
                  f"max {_num(float(v.max()))} GeV")


def _display(tree_name: str, data: dict[str, Any], event: int, path: Path, out: Path) -> Path:
    """Event display: every image of the entry on the eta-phi grid (log colour scale), PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm, SymLogNorm

    from pfgraph import geometry
    from pfgraph.io import schema
    from pfgraph.utils.atomic import atomic_path
    from pfgraph.utils.ownership import PNG_METADATA

    titles = {"emcal": "ECAL", "hcal": "HCAL", "trk_neg": "tracker, negative", "trk_pos": "tracker, positive",
              "truth": "truth (all particles)", "truth_neutral": "truth (neutral)", "jet": "Pythia jet particles",
              "oracle": "oracle (each particle's own measurements)", "pred": "prediction"}
    if tree_name == schema.EVENTS_TREE:
        panels = [c for c in (*schema.IMAGE_CHANNELS, schema.JET_IMAGE, schema.ORACLE_IMAGE) if c in data]
    else:
        panels = [c for c in ("pred", "truth") if c in data]
    images = {c: np.asarray(data[c], dtype=np.float64) for c in panels}
    residual = tree_name == schema.PREDICTIONS_TREE and len(panels) == 2
    if residual:
        images["pred - truth"] = images["pred"] - images["truth"]
    positive = np.concatenate([im[im > 0] for c, im in images.items() if c != "pred - truth"] or [np.zeros(0)])
    vmax = float(positive.max()) if positive.size else 1.0
    vmin = max(float(positive.min()) if positive.size else 1e-3, vmax * 1e-5)
    if vmin >= vmax:
        vmin = vmax / 10
    ncol = 4 if len(images) > 6 else 3
    nrow = math.ceil(len(images) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.9 * nrow), squeeze=False, constrained_layout=True)
    extent = (-math.pi, math.pi, -geometry.MAX_ETA, geometry.MAX_ETA)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    mappable = None
    for ax, (name, im) in zip(axes.flat, images.items()):
        if name == "pred - truth":
            lim = float(np.abs(im).max()) or 1.0
            m = ax.imshow(im, origin="lower", extent=extent, aspect="equal", cmap="RdBu_r", interpolation="nearest",
                          norm=SymLogNorm(linthresh=max(vmin, lim * 1e-3), vmin=-lim, vmax=lim))
            fig.colorbar(m, ax=ax, label="pred - truth [GeV]")
        else:
            masked = np.ma.masked_less_equal(im, 0)
            mappable = ax.imshow(masked, origin="lower", extent=extent, aspect="equal", cmap=cmap,
                                 interpolation="nearest", norm=LogNorm(vmin=vmin, vmax=vmax))
        ax.set_title(f"{titles.get(name, name)}: {im.sum():.1f} GeV", fontsize=10)
        ax.set_xlabel(r"$\phi$ [rad]")
        ax.set_ylabel(r"$\eta$")
    for ax in list(axes.flat)[len(images):]:
        ax.axis("off")
    if mappable is not None:
        fig.colorbar(mappable, ax=[a for a, n in zip(axes.flat, images) if n != "pred - truth"],
                     label="energy per pixel [GeV]", shrink=0.9)
    eid = data.get("event_id")
    label = f"event_id {int(eid)}" if eid is not None else f"entry {event}"
    fig.suptitle(f"{path.name}: {label} (entry {event})")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=PNG_METADATA)
    plt.close(fig)
    return out
