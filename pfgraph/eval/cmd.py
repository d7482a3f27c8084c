"""``pfgraph evaluate``: one evaluation for every model -> metrics.json, predictions.root, plots.

    pfgraph evaluate runs/unet_attn --data data/b050_jet.root --out evals/unet_attn_jet

``RUN`` is a run folder (its checkpoint is loaded; the normalisation always comes from it) or a
``predictions.root`` written earlier (re-evaluated against ``--data``, which must be the data
it was made from: its ``data_identity`` meta is compared). Outputs in ``--out``:
``metrics.json`` (schema :mod:`pfgraph.eval.metrics`), ``predictions.root``
(:mod:`pfgraph.eval.output`), ``residual.png``, ``residual_vs_etrue.png``, ``jets.png`` (jet
samples), ``config.yaml`` (the resolved evaluation settings and the run's config) and
``manifest.json`` (every file's hash, the model and the data identity). The folder changes as
one unit (:mod:`pfgraph.eval.folder`): a killed evaluation leaves the previous one intact.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Choices of ``--jet-backend`` (kept literal here so the CLI starts without torch).
JET_BACKENDS = ("torch", "fastjet", "auto")
#: Data-file entries read at a time for the inputs (out-of-reach share, graph points).
READ_BLOCK = 2048


def register(sub: Any) -> None:
    """Add the ``evaluate`` sub-command."""
    p = sub.add_parser(
        "evaluate", help="evaluate a trained run (or a predictions file) -> metrics.json, predictions.root, plots",
        description="Evaluate a model on one data set with the common metrics (DESIGN 5): per-pixel energy "
        "residuals with a Gaussian core fit and robust figures, fake energy, out-of-reach share, and on jet "
        "samples anti-kt jets of truth and prediction (position and energy deviations).")
    p.add_argument("run", metavar="RUN", help="run folder with a checkpoint (pfgraph train --out), or a predictions.root")
    p.add_argument("--data", nargs="+", required=True, help="event file(s), glob(s) or list")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--jet-backend", choices=JET_BACKENDS, default="auto",
                   help="anti-kt implementation: torch (CPU/CUDA), fastjet, auto = torch on CUDA, fastjet on CPU")
    p.add_argument("--jet-threshold", type=float, default=0.1,
                   help="pixels above this energy (GeV) enter the jet clustering, truth and prediction alike (0.1)")
    p.add_argument("--radius", type=float, default=0.4, help="anti-kt radius R (0.4)")
    p.add_argument("--max-events", type=int, help="evaluate only the first N events")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (model and torch anti-kt)")
    p.add_argument("--batch-size", type=int, default=128, help="events per inference batch (128)")
    p.add_argument("--which", choices=("best", "last"), default="best", help="checkpoint of the run folder (best)")
    p.add_argument("--missed-threshold", type=float, default=0.0,
                   help="truth pixels predicted at or below this energy (GeV) count as missed (0)")
    p.add_argument("--bootstrap", type=int, default=200,
                   help="bootstrap replicas over events for the 68%% intervals of the headline figures (200; 0: none)")
    p.add_argument("--bootstrap-seed", type=int, default=12345, help="seed of the bootstrap replicas (12345)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--format", choices=("ttree", "rntuple"), default="ttree",
                   help="layout of predictions.root: ttree (default) or rntuple (ROOT 6.34+)")
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    import math

    from pfgraph.errors import PfgraphError

    if not (math.isfinite(args.radius) and args.radius > 0):
        raise PfgraphError(f"--radius {args.radius}: expected R > 0")
    if not (math.isfinite(args.jet_threshold) and args.jet_threshold >= 0):
        raise PfgraphError(f"--jet-threshold {args.jet_threshold}: expected a non-negative energy in GeV")
    if args.max_events is not None and args.max_events <= 0:
        raise PfgraphError(f"--max-events {args.max_events}: expected a positive number of events")
    if args.batch_size <= 0:
        raise PfgraphError(f"--batch-size {args.batch_size}: expected a positive number of events")
    if not (math.isfinite(args.missed_threshold) and args.missed_threshold >= 0):
        raise PfgraphError(f"--missed-threshold {args.missed_threshold}: expected a non-negative energy in GeV")
    if args.bootstrap < 0:
        raise PfgraphError(f"--bootstrap {args.bootstrap}: expected 0 (no intervals) or a number of replicas")


class _BlockReader:
    """Reads data-file branches block by block and serves consecutive entry ranges."""

    def __init__(self, files: Any, branches: list[str]) -> None:
        self.files, self.branches = files, branches
        self.lo, self.hi, self.chunk = 0, 0, None

    def take(self, start: int, n: int) -> dict[str, Any]:
        """Entries [start, start + n) as one chunk (numpy for fixed-size, awkward for jagged)."""
        import awkward as ak
        import numpy as np

        parts = []
        pos, end = start, start + n
        while pos < end:
            if not (self.lo <= pos < self.hi):
                self.lo = pos
                self.hi = min(pos + READ_BLOCK, self.files.num_events)
                self.chunk = self.files.read(self.branches, self.lo, self.hi)
            stop = min(end, self.hi)
            parts.append({b: self.chunk[b][pos - self.lo:stop - self.lo] for b in self.branches})
            pos = stop
        if len(parts) == 1:
            return parts[0]
        return {b: (ak.concatenate([p[b] for p in parts]) if isinstance(parts[0][b], ak.Array)
                    else np.concatenate([p[b] for p in parts])) for b in self.branches}


def _file_batches(preds: dict[str, Any], batch_size: int) -> Iterator[dict[str, Any]]:
    for s in range(0, len(preds["event_id"]), batch_size):
        yield {k: preds[k][s:s + batch_size] for k in ("event_id", "pred", "truth")}


def run(args: argparse.Namespace) -> int:
    """Run ``pfgraph evaluate``."""
    import numpy as np
    import yaml

    from pfgraph.errors import DataError, PfgraphError
    from pfgraph.eval.antikt import TIE_BREAK_SEED
    from pfgraph.eval.bootstrap import headline
    from pfgraph.eval.energy import EnergyAccumulator
    from pfgraph.eval.folder import check_target, evaluation_folder
    from pfgraph.eval.jets import JetAccumulator, empty_jet_metrics
    from pfgraph.eval.metrics import TRAINING_KEYS, assemble, training_section, write_metrics
    from pfgraph.eval.output import PredictionWriter, read_predictions
    from pfgraph.eval.training import training_record
    from pfgraph.io import identity as data_id
    from pfgraph.io import schema
    from pfgraph.io.root import EventFiles, make_meta
    from pfgraph.utils.atomic import atomic_write_text
    from pfgraph.utils.progress import progress

    t_start = time.perf_counter()
    _check_args(args)
    source = Path(args.run)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise PfgraphError(f"{out}: exists and is not a folder; --out expects an output folder")
    check_target(out)
    files = EventFiles(args.data)
    identity = data_id.dataset_identity(files)
    n_data = files.num_events if args.max_events is None else min(args.max_events, files.num_events)
    if n_data == 0:
        raise DataError(f"{files.paths[0]}: no events to evaluate")

    graph = False
    if source.is_dir():
        from pfgraph.train.predict import load_run, predict
        from pfgraph.train.trainer import resolve_device

        device = resolve_device(args.device)
        loaded = load_run(source, device, args.which)
        scale = float(loaded.norm.target_scale)
        graph = loaded.repr.name == "graph"
        model = {"name": loaded.model_name, "repr": loaded.repr.name, "run_dir": str(source),
                 "checkpoint": str(loaded.checkpoint), "checkpoint_sha256": loaded.checkpoint_sha256}
        training = training_record(source)  # figures, learning curves and budget status of the run
        run_config: dict[str, Any] = dict(loaded.config)
        scale_source = f"checkpoint {loaded.checkpoint.name}"
        batches: Iterator[dict[str, Any]] = predict(loaded, files, args.batch_size, args.max_events)
        n_expected = n_data
    elif source.is_file():
        preds = read_predictions(source, args.max_events)
        meta = preds["meta"]
        scale = meta.get("target_scale")
        if not isinstance(scale, (int, float)) or not scale > 0:
            raise DataError(f"{source}: no target_scale in its {schema.META_KEY}; cannot normalise jet energies")
        scale = float(scale)
        device = args.device if args.device != "auto" else "cpu"
        m = meta.get("model") or {}
        model = {"name": m.get("name"), "repr": m.get("repr"), "run_dir": m.get("run_dir"),
                 "checkpoint": m.get("checkpoint"), "checkpoint_sha256": m.get("checkpoint_sha256")}
        training = {**training_section(None), **{k: v for k, v in (meta.get("training") or {}).items()
                                                 if k in TRAINING_KEYS}}
        run_config = {"predictions": str(source), "meta": meta}
        scale_source = f"{source.name} meta (from {m.get('checkpoint') or 'the writer'})"
        n_expected = len(preds["event_id"])
        _check_identity(source, meta.get(data_id.META_KEY), identity)
        if n_expected > files.num_events:
            raise DataError(f"{source}: {n_expected} events, but the data has only {files.num_events}")
        batches = _file_batches(preds, args.batch_size)
    else:
        raise PfgraphError(f"{source}: no such run folder or predictions file")

    has_jet = bool(files.has_jet)
    reader = _BlockReader(files, ["event_id", *schema.INPUT_CHANNELS, *(("pix_ieta", "pix_iphi") if graph else ())])
    energy = EnergyAccumulator(scale, args.missed_threshold)  # training range: S, the training truth maximum
    jets = JetAccumulator(args.radius, args.jet_threshold, args.jet_backend, str(device), scale) if has_jet else None
    backend = jets.backend if jets is not None else None
    settings = {"target_scale": scale, "target_scale_source": scale_source, "batch_size": args.batch_size,
                "device": str(device), "max_events": args.max_events, "missed_threshold_gev": args.missed_threshold,
                "bootstrap_resamples": args.bootstrap, "bootstrap_seed": args.bootstrap_seed}
    jet_settings = {"radius": args.radius, "threshold_gev": args.jet_threshold, "backend": backend,
                    "requested_backend": args.jet_backend, "tie_break_pixels": jets.tie_break if jets else None,
                    "tie_break_seed": TIE_BREAK_SEED,
                    "algorithm": "antikt", "recombination": "E_scheme", "axis": [0.0, 0.0]}
    dataset = {"path": [str(p) for p in files.paths], "name": (files.meta.get("config") or {}).get("name"),
               "n_events": None, "has_jet_image": has_jet}
    meta = make_meta("predictions", {"evaluate": settings, "jets": jet_settings}, model=model,
                     model_names=[model["name"]], target_scale=scale, dataset=dataset, jets=jet_settings,
                     training=training, **{data_id.META_KEY: identity})
    manifest: dict[str, Any] = {"created_by": "pfgraph evaluate", "model": model, "data_identity": identity}
    with evaluation_folder(out, manifest) as work:  # the folder changes as one unit
        inference_s = 0.0
        n_done = 0
        with PredictionWriter(work / "predictions.root", meta, graph=graph, jets=has_jet,
                              format=args.format) as writer, \
                progress(n_expected, f"evaluate {model['name']}") as bar:
            it = iter(batches)
            while True:
                t0 = time.perf_counter()
                chunk = next(it, None)
                inference_s += time.perf_counter() - t0
                if chunk is None:
                    break
                ids = np.asarray(chunk["event_id"], dtype=np.int64)
                b = len(ids)
                data = reader.take(n_done, b)
                if not np.array_equal(np.asarray(data["event_id"], dtype=np.int64), ids):
                    k = int(np.flatnonzero(np.asarray(data["event_id"]) != ids)[0])
                    raise DataError(f"{source}: event_id {int(ids[k])} at entry {n_done + k} does not match the data "
                                    f"({int(data['event_id'][k])}): predictions and data must be the same events in order")
                inputs = np.stack([data[c] for c in schema.INPUT_CHANNELS], axis=1)
                pred = np.asarray(chunk["pred"], dtype=np.float32)
                truth = np.asarray(chunk["truth"], dtype=np.float32)
                energy.update(pred, truth, inputs)
                pix = None
                if graph:
                    pix_pred = chunk.get("pix_pred")
                    if pix_pred is None:
                        raise DataError(f"{source}: graph model gave no per-point predictions")
                    pix = ([np.asarray(x) for x in data["pix_ieta"]], [np.asarray(x) for x in data["pix_iphi"]],
                           [np.asarray(x, dtype=np.float32) for x in pix_pred])
                writer.write(ids, pred, truth, 0, pix)
                if jets is not None:
                    tt, pt_, match = jets.update(pred, truth)
                    writer.write_jets(ids, tt, pt_, match)
                n_done += b
                bar.update(b)
        if n_done == 0:
            raise DataError(f"{source}: no events were evaluated")
        energy_doc = energy.result()
        if jets is not None:
            jet_doc = jets.result()
        else:
            jet_doc = empty_jet_metrics(args.radius, args.jet_threshold, None, None,
                                        f"{files.paths[0]}: no '{schema.JET_IMAGE}' image (not a jet sample)")
        head = headline(energy.event_data(), jets.matches() if jets is not None else None, args.bootstrap,
                        args.bootstrap_seed)
        dataset["n_events"] = n_done
        total = time.perf_counter() - t_start
        doc = assemble(energy_doc, jet_doc, created_by="pfgraph evaluate", model=model, training=training,
                       headline=head,
                       dataset=dataset, settings=settings,
                       timing={"inference_s": inference_s if source.is_dir() else None,
                               "inference_events_per_s": n_done / inference_s if source.is_dir() and inference_s > 0 else None,
                               "jets_s": jet_doc["seconds"], "jets_events_per_s": jet_doc["events_per_s"], "total_s": total})
        write_metrics(work / "metrics.json", doc)
        resolved = {"evaluate": {"run": str(source), "data": [str(p) for p in files.paths], "out": str(out),
                                 **settings, "jets": jet_settings, "plots": not args.no_plots,
                                 "format": args.format},
                    "run": run_config}
        atomic_write_text(work / "config.yaml", yaml.safe_dump(_plain(resolved), sort_keys=False))
        if not args.no_plots:
            from pfgraph.eval.plots import write_plots

            r, e_true, missed = energy.residuals_with_missed()
            write_plots(work, doc["energy"], r, e_true, doc["jets"], jets.matches() if jets else None,
                        f"{model['name']} on {dataset['name'] or files.paths[0].name}", missed)
        manifest["n_events"] = n_done
    print(f"{summary_line(doc, n_done, total)} -> {out}")
    return 0


def _check_identity(source: Path, recorded: Any, identity: dict[str, Any]) -> None:
    """Refuse re-evaluating a predictions file against data it was not made from.

    Files without a recorded identity (older pfgraph, or written by hand) get a warning line.
    """
    import sys

    from pfgraph.errors import DataError
    from pfgraph.io import identity as data_id

    if not isinstance(recorded, dict):
        print(f"pfgraph: warning: {source}: records no data identity (written by an older pfgraph or by hand); "
              "cannot check that it was made from --data", file=sys.stderr)
        return
    why = data_id.identity_mismatch(recorded, identity)
    if why is not None:
        raise DataError(f"{source}: was made from {data_id.describe(recorded)}, not from --data "
                        f"{data_id.describe(identity)} ({why}); evaluate it against the data it was made from")


def summary_line(doc: dict[str, Any], n_events: int, seconds: float) -> str:
    """The one-line summary of an evaluation: ranking figures with their 68 % intervals."""
    from pfgraph.eval.bootstrap import format_figure as _with_interval

    fig = doc["headline"]["figures"]
    fit = doc["energy"]["residual"]["fit"]
    line = (f"evaluated {doc['model']['name']} on {n_events} events in {seconds:.1f} s: residual median "
            f"{_with_interval(fig['residual_median'])}, 68% half-width {_with_interval(fig['residual_half_width_68'])}, "
            f"missed {100 * (fig['missed_pixel_fraction']['value'] or 0):.2f}% of truth pixels, fake energy "
            f"{100 * (fig['fake_energy_fraction']['value'] or 0):.2f}%, core fit ")
    if fit["status"] != "ok":
        line += f"failed ({fit['status']})"
    else:
        line += f"sigma={fit['sigma']:.4f}" + ("" if fit["core_gaussian"] else " (non-Gaussian core)")
    above = doc["energy"]["extrapolation"]["energy_fraction_above"]
    if above:
        line += f", {100 * above:.1f}% of truth energy above the training range"
    if doc["jets"]["available"] and doc["jets"]["efficiency"] is not None:
        line += (f", jets: efficiency {doc['jets']['efficiency']:.3f}, D median "
                 f"{_with_interval(fig['jet_position_median'], 2)} px, dE/E median "
                 f"{_with_interval(fig['jet_energy_rel_median'], 3)}")
    return line


def _train_summary(run_dir: Path) -> dict[str, Any] | None:
    """The run folder's ``train_summary.json`` (None if absent or unreadable: the figures are optional)."""
    import json

    from pfgraph.train.trainer import SUMMARY

    try:
        doc = json.loads((run_dir / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _plain(obj: Any) -> Any:
    """YAML-safe copy (tuples to lists, numpy scalars to Python)."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj
