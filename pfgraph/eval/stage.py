"""The evaluation stage as a Python function: :func:`evaluate` (``pfgraph evaluate`` maps its flags onto it).

    from pfgraph import evaluate
    result = evaluate("runs/unet_attn", "data/b050_jet.root", "evals/unet_attn_jet")
    result.metrics["headline"]["figures"]["residual_half_width_68"], result.summary

``run`` is a run folder (its checkpoint is loaded; the normalisation always comes from it) or a
``predictions.root`` written earlier (re-evaluated against ``data``, which must be the data it
was made from: its ``data_identity`` meta is compared). A run folder is predicted and evaluated
in one pass over the data: every batch carries its event ids, target and input mask. Outputs in
``out``: ``metrics.json`` (schema :mod:`pfgraph.eval.metrics`; on a file with the ``oracle`` image
also the oracle's figures beside the model's, :mod:`pfgraph.eval.baselines`), ``predictions.root``
(:mod:`pfgraph.eval.output`), ``residual.png``, ``residual_vs_etrue.png``, ``jets.png`` (jet
samples), ``config.yaml`` (the resolved evaluation settings and the run's config) and
``manifest.json`` (every file's hash, the model and the data identity). The folder changes as
one unit (:mod:`pfgraph.eval.folder`): a killed evaluation leaves the previous one intact.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pfgraph.errors import PfgraphError

#: anti-kt implementations: torch (CPU/CUDA), fastjet, auto = torch on CUDA, fastjet on CPU.
JET_BACKENDS = ("torch", "fastjet", "auto")
#: Data-file entries read at a time when re-evaluating a predictions file (its input mask).
READ_BLOCK = 2048


@dataclass
class EvaluateSettings:
    """The evaluation's settings (``pfgraph evaluate``'s flags, same names and defaults)."""

    jet_backend: str = "auto"
    jet_threshold: float = 0.1
    radius: float = 0.4
    max_events: int | None = None
    device: str = "auto"
    batch_size: int = 128
    which: str = "best"
    missed_threshold: float = 0.0
    bootstrap: int = 200
    bootstrap_seed: int = 12345
    plots: bool = True
    format: str = "ttree"
    force: bool = False  # replace an --out holding files evaluate did not write

    def validate(self) -> None:
        """One PfgraphError line for a setting of the wrong type or an impossible one (named as its
        command-line flag)."""
        from pfgraph.utils.args import check_fields

        check_fields(self, "evaluate")
        if self.jet_backend not in JET_BACKENDS:
            raise PfgraphError(f"--jet-backend {self.jet_backend}: expected one of {', '.join(JET_BACKENDS)}")
        if self.which not in ("best", "last"):
            raise PfgraphError(f"--which {self.which}: expected best or last")
        if self.format not in ("ttree", "rntuple"):
            raise PfgraphError(f"--format {self.format}: expected ttree or rntuple")
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise PfgraphError(f"--radius {self.radius}: expected R > 0")
        if not (math.isfinite(self.jet_threshold) and self.jet_threshold >= 0):
            raise PfgraphError(f"--jet-threshold {self.jet_threshold}: expected a non-negative energy in GeV")
        if self.max_events is not None and self.max_events <= 0:
            raise PfgraphError(f"--max-events {self.max_events}: expected a positive number of events")
        if self.batch_size <= 0:
            raise PfgraphError(f"--batch-size {self.batch_size}: expected a positive number of events")
        if not (math.isfinite(self.missed_threshold) and self.missed_threshold >= 0):
            raise PfgraphError(f"--missed-threshold {self.missed_threshold}: expected a non-negative energy in GeV")
        if self.bootstrap < 0:
            raise PfgraphError(f"--bootstrap {self.bootstrap}: expected 0 (no intervals) or a number of replicas")


@dataclass
class Evaluation:
    """What an evaluation wrote: its folder, the metrics.json document, events and seconds."""

    out: Path
    metrics: dict[str, Any] = field(repr=False)
    n_events: int
    seconds: float

    @property
    def summary(self) -> str:
        """The one-line summary ``pfgraph evaluate`` prints (ranking figures with their intervals)."""
        return summary_line(self.metrics, self.n_events, self.seconds)


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


def _file_batches(preds: dict[str, Any], files: Any, source: Path, batch_size: int) -> Iterator[dict[str, Any]]:
    """Batches of a predictions file, each with the input mask of the same events read from the data
    (a predictions file holds no inputs); event ids must match the data's, entry by entry."""
    import numpy as np

    from pfgraph.errors import DataError
    from pfgraph.io import schema

    reader = _BlockReader(files, ["event_id", *schema.INPUT_CHANNELS])
    for s in range(0, len(preds["event_id"]), batch_size):
        ids = np.asarray(preds["event_id"][s:s + batch_size], dtype=np.int64)
        data = reader.take(s, len(ids))
        have = np.asarray(data["event_id"], dtype=np.int64)
        if not np.array_equal(have, ids):
            k = int(np.flatnonzero(have != ids)[0])
            raise DataError(f"{source}: event_id {int(ids[k])} at entry {s + k} does not match the data "
                            f"({int(have[k])}): predictions and data must be the same events in order")
        mask = np.any(np.stack([data[c] for c in schema.INPUT_CHANNELS], axis=1) != 0, axis=1)
        yield {"event_id": ids, "pred": preds["pred"][s:s + batch_size], "truth": preds["truth"][s:s + batch_size],
               "mask": mask}


def evaluate(run: str | Path, data: str | Path | Sequence[str | Path], out: str | Path,
             settings: EvaluateSettings | None = None, **options: Any) -> Evaluation:
    """Evaluate the run folder (or predictions file) ``run`` on ``data`` into the folder ``out``.

    Settings come as an :class:`EvaluateSettings` or as its fields by keyword
    (``bootstrap=0, plots=False``). Returns the :class:`Evaluation`; bad input raises one
    :class:`~pfgraph.errors.PfgraphError` line and leaves any earlier evaluation in ``out`` intact.
    """
    import numpy as np
    import yaml

    from pfgraph.errors import DataError
    from pfgraph.eval.antikt import TIE_BREAK_SEED
    from pfgraph.eval.bootstrap import headline
    from pfgraph.eval.cones import ConeAccumulator
    from pfgraph.eval.energy import EnergyAccumulator
    from pfgraph.eval.folder import check_target, evaluation_folder
    from pfgraph.eval.jets import JetAccumulator, empty_jet_metrics
    from pfgraph.eval.metrics import TRAINING_KEYS, assemble, training_section, write_metrics
    from pfgraph.eval.mismatch import data_mismatch
    from pfgraph.eval.output import PredictionWriter, read_predictions
    from pfgraph.eval.training import training_record
    from pfgraph.io import identity as data_id
    from pfgraph.io import schema
    from pfgraph.io.root import EventFiles, make_meta
    from pfgraph.utils.atomic import atomic_write_text
    from pfgraph.utils.ownership import text_marker
    from pfgraph.utils.progress import Timed, progress

    if settings is None:
        unknown = sorted(set(options) - set(EvaluateSettings.__dataclass_fields__))
        if unknown:
            raise PfgraphError(f"evaluate: unknown setting '{unknown[0]}'; valid: "
                               f"{', '.join(EvaluateSettings.__dataclass_fields__)}")
        settings = EvaluateSettings(**options)
    elif options:
        raise PfgraphError("evaluate: give either settings or keyword settings, not both")
    opts = settings
    if not isinstance(opts, EvaluateSettings):
        raise PfgraphError(f"evaluate: argument 'settings' expects EvaluateSettings, got {type(opts).__name__}")
    from pfgraph.utils.args import check_path, check_paths
    from pfgraph.utils.ownership import check_not_inside

    check_path("evaluate", "run", run)
    check_paths("evaluate", "data", data)
    check_path("evaluate", "out", out)
    opts.validate()
    t_start = time.perf_counter()
    source = Path(run)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PfgraphError(f"{out}: exists and is not a folder; --out expects an output folder")
    files = EventFiles(data)
    check_not_inside(out, [source, *files.paths], "an input of this evaluation")
    check_target(out, opts.force)
    identity = data_id.dataset_identity(files)
    n_data = files.num_events if opts.max_events is None else min(opts.max_events, files.num_events)
    if n_data == 0:
        raise DataError(f"{files.paths[0]}: no events to evaluate")

    point_outputs = False
    if source.is_dir():
        from pfgraph.training.predict import load_run, predict
        from pfgraph.training.run_folder import resolve_device

        device = resolve_device(opts.device)
        loaded = load_run(source, device, opts.which)
        scale = float(loaded.norm.target_scale)
        point_outputs = loaded.repr.point_outputs
        model = {"name": loaded.model_name, "repr": loaded.repr.name, "run_dir": str(source),
                 "checkpoint": str(loaded.checkpoint), "checkpoint_sha256": loaded.checkpoint_sha256}
        training = training_record(source)  # figures, learning curves and budget status of the run
        run_config: dict[str, Any] = dict(loaded.config)
        scale_source = f"checkpoint {loaded.checkpoint.name}"
        batches: Iterator[dict[str, Any]] = predict(loaded, files, opts.batch_size, opts.max_events)
        n_expected = n_data
    elif source.is_file():
        preds = read_predictions(source, opts.max_events)
        meta = preds["meta"]
        scale = meta.get("target_scale")
        if not isinstance(scale, (int, float)) or not scale > 0:
            raise DataError(f"{source}: no target_scale in its {schema.META_KEY}; cannot normalise jet energies")
        scale = float(scale)
        device = opts.device if opts.device != "auto" else "cpu"
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
        batches = _file_batches(preds, files, source, opts.batch_size)
    else:
        raise PfgraphError(f"{source}: no such run folder or predictions file")

    has_jet = bool(files.has_jet)
    energy = EnergyAccumulator(scale, opts.missed_threshold)  # training range: S, the training truth maximum
    cones = ConeAccumulator()
    jets = JetAccumulator(opts.radius, opts.jet_threshold, opts.jet_backend, str(device), scale) if has_jet else None
    backend = jets.backend if jets is not None else None
    oracle = None
    if files.has_oracle:  # the measured floor, evaluated beside the model with the same code
        from pfgraph.eval.baselines import OracleBaseline

        oracle = OracleBaseline(_BlockReader(files, list(OracleBaseline.BRANCHES)), scale, opts.missed_threshold,
                                JetAccumulator(opts.radius, opts.jet_threshold, opts.jet_backend, str(device), scale)
                                if has_jet else None)
    settings = {"target_scale": scale, "target_scale_source": scale_source, "batch_size": opts.batch_size,
                "device": str(device), "max_events": opts.max_events, "missed_threshold_gev": opts.missed_threshold,
                "bootstrap_resamples": opts.bootstrap, "bootstrap_seed": opts.bootstrap_seed}
    jet_settings = {"radius": opts.radius, "threshold_gev": opts.jet_threshold, "backend": backend,
                    "requested_backend": opts.jet_backend, "tie_break_pixels": jets.tie_break if jets else None,
                    "tie_break_seed": TIE_BREAK_SEED,
                    "algorithm": "antikt", "recombination": "E_scheme", "axis": [0.0, 0.0]}
    dataset = {"path": [str(p) for p in files.paths], "name": (files.meta.get("config") or {}).get("name"),
               "n_events": None, "has_jet_image": has_jet}
    meta = make_meta("predictions", {"evaluate": settings, "jets": jet_settings}, imsize=files.grid.size, model=model,
                     model_names=[model["name"]], target_scale=scale, dataset=dataset, jets=jet_settings,
                     training=training, **{data_id.META_KEY: identity})
    manifest: dict[str, Any] = {"created_by": "pfgraph evaluate", "model": model, "data_identity": identity}
    mismatch = data_mismatch(source if source.is_dir() else None, files)
    with evaluation_folder(out, manifest, opts.force) as work:  # the folder changes as one unit
        n_done = 0
        chunks = Timed(batches)
        with PredictionWriter(work / "predictions.root", meta, graph=point_outputs, jets=has_jet,
                              format=opts.format) as writer, \
                progress(n_expected, f"evaluate {model['name']}") as bar:
            for chunk in chunks:
                ids = np.asarray(chunk["event_id"], dtype=np.int64)
                b = len(ids)
                pred = np.asarray(chunk["pred"], dtype=np.float32)
                truth = np.asarray(chunk["truth"], dtype=np.float32)
                energy.update(pred, truth, chunk["mask"])
                cones.update(pred, truth)
                if oracle is not None:
                    oracle.update(n_done, ids, truth, chunk["mask"])
                pix = None
                if point_outputs:
                    if chunk.get("pix_pred") is None:
                        raise DataError(f"{source}: model '{model['name']}' gave no per-point predictions")
                    pix = ([ie for ie, _ in chunk["pix"]], [ip for _, ip in chunk["pix"]], chunk["pix_pred"])
                writer.write(ids, pred, truth, 0, pix)
                if jets is not None:
                    tt, pt_, match = jets.update(pred, truth)
                    writer.write_jets(ids, tt, pt_, match)
                n_done += b
                bar.update(b)
        if n_done == 0:
            raise DataError(f"{source}: no events were evaluated")
        inference_s = chunks.seconds
        energy_doc = energy.result()
        if jets is not None:
            jet_doc = jets.result()
        else:
            jet_doc = empty_jet_metrics(opts.radius, opts.jet_threshold, None, None,
                                        f"{files.paths[0]}: no '{schema.JET_IMAGE}' image (not a jet sample)")
        head = headline(energy.event_data(), jets.matches() if jets is not None else None, opts.bootstrap,
                        opts.bootstrap_seed)
        baselines = {"oracle": oracle.result(opts.bootstrap, opts.bootstrap_seed, jet_doc) if oracle else None}
        dataset["n_events"] = n_done
        total = time.perf_counter() - t_start
        doc = assemble(energy_doc, jet_doc, created_by="pfgraph evaluate", model=model, training=training,
                       headline=head, baselines=baselines, data_mismatch=mismatch, cones=cones.result(),
                       dataset=dataset, settings=settings,
                       timing={"inference_s": inference_s if source.is_dir() else None,
                               "inference_events_per_s": n_done / inference_s if source.is_dir() and inference_s > 0 else None,
                               "jets_s": jet_doc["seconds"], "jets_events_per_s": jet_doc["events_per_s"], "total_s": total})
        write_metrics(work / "metrics.json", doc)
        resolved = {"evaluate": {"run": str(source), "data": [str(p) for p in files.paths], "out": str(out),
                                 **settings, "jets": jet_settings, "plots": opts.plots,
                                 "format": opts.format},
                    "run": run_config}
        atomic_write_text(work / "config.yaml", text_marker("evaluate") + ": the resolved evaluation settings\n"
                          + yaml.safe_dump(_plain(resolved), sort_keys=False))
        if opts.plots:
            from pfgraph.eval.plots import write_plots

            r, e_true, missed = energy.residuals_with_missed()
            write_plots(work, doc["energy"], r, e_true, doc["jets"], jets.matches() if jets else None,
                        f"{model['name']} on {dataset['name'] or files.paths[0].name}", missed)
        manifest["n_events"] = n_done
    return Evaluation(out=out, metrics=doc, n_events=n_done, seconds=total)




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
    oracle = (doc.get("baselines") or {}).get("oracle")
    if oracle:
        line += (f"; oracle (each particle's own measurements): 68% half-width "
                 f"{_with_interval(oracle['headline']['figures']['residual_half_width_68'])}")
    degenerate = doc.get("degenerate") or {}
    if degenerate.get("flag"):
        line += f"; DEGENERATE ({'; '.join(degenerate.get('reasons') or [])}): never ranked"
    mismatch = doc.get("data_mismatch") or {}
    if mismatch.get("flag"):
        line += f"; DATA MISMATCH: {'; '.join(mismatch.get('reasons') or [])}"
    return line


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
