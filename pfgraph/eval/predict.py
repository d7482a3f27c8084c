"""``pfgraph predict``: a trained model applied to events that may carry no truth -> a friend tree.

    from pfgraph import predict
    result = predict("runs/unet_attn", "data/new_events.root", "new_events_pred.root")

``run`` is a run folder (torch, or ``backend="onnxruntime"``: the run exported in memory and run by
onnxruntime) or an exported ``.onnx`` file (onnxruntime; its metadata carries the normalisation
and the training data's record). The input needs only what the model reads (the input-only
layout of docs/SCHEMA.md: ``event_id``, the four detector channels dense for image models or as
the point cloud for graph models, and ``pfgraph_meta``).

The output holds one tree ``predictions`` with one entry per input event, in the input's order
(entry i predicts entry i, so ROOT can ``AddFriend`` it to the events tree): ``event_id``,
``pred`` float32[G][G] GeV (G: the input file's grid), ``model`` (0), and for graph models ``npix``, ``pix_ieta``,
``pix_iphi``, ``pix_pred`` (GeV per point, in the events file's point order). Its
``pfgraph_meta`` records the model, the backend, the normalisation, the input's data identity,
the training data's identity and the detector-config check.

Checks: the input's detector config (``pfgraph_meta`` ``config.detector``) must equal the training
data's, else one error line naming the differences, unless ``allow_config_mismatch`` (recorded as
``detector_check: "mismatch allowed"``). A file without a detector config (another simulation) is
accepted with one warning line (``detector_check: "no detector config"``). The output is written
atomically; an existing file is replaced only when pfgraph predict wrote it, and never is the input.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pfgraph.errors import DataError, PfgraphError

#: The inference backends of ``pfgraph predict``.
BACKENDS = ("torch", "onnxruntime")
#: ``created_by`` of the files pfgraph predict writes (the only existing files it replaces).
CREATED_BY = "pfgraph predict"


@dataclass
class PredictResult:
    """What :func:`predict` wrote: the file, the number of events, the model, the backend, the
    detector-config check, the inference rate and the file's meta."""

    out: Path
    events: int
    model: str
    backend: str
    detector_check: str
    events_per_s: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """One line for the command line."""
        return (f"predict: {self.events} events with {self.model} ({self.backend}, "
                f"{self.events_per_s:.0f} events/s; detector config: {self.detector_check})")


def _written_by_predict(path: Path) -> bool:
    """Whether ``path`` is a predictions file pfgraph predict wrote (its ``pfgraph_meta`` says so)."""
    from pfgraph.io.root import open_root, read_meta

    try:
        return read_meta(open_root(path), path).get("created_by") == CREATED_BY
    except PfgraphError:
        return False


def check_output(out: Path, data: list[Path], force: bool = False) -> None:
    """Refuse an output that is one of the inputs (always), a folder, or an existing file pfgraph predict
    did not write (unless ``force``): the shared rule of :mod:`pfgraph.utils.ownership`."""
    from pfgraph.utils.ownership import check_not_input, check_replaceable

    if out.is_dir():
        raise PfgraphError(f"{out}: is a folder; --out expects a file name")
    if out.suffix != ".root":
        raise PfgraphError(f"{out}: the output is a ROOT file; give a name ending in .root")
    check_not_input(out, data, "the input file")
    check_replaceable(out, force, owned=_written_by_predict)


def _detector_check(trained: dict[str, Any] | None, files: Any, allow: bool) -> tuple[str, list[str]]:
    """The detector-config check of ``files`` against the training data's config ``trained``."""
    from pfgraph.io.identity import detector_config, detector_differences

    configs = [detector_config(m) for m in files.metas]
    if any(c is None for c in configs):
        path = files.paths[configs.index(None)]
        print(f"pfgraph: warning: {path}: records no detector config (made by another simulation?); "
              "predicting anyway, the model was trained on pfgraph's detector", file=sys.stderr)
        return "no detector config", []
    if trained is None:
        print("pfgraph: warning: the run records no training detector config (its training data is gone); "
              "the input's detector config is not checked", file=sys.stderr)
        return "training config unknown", []
    for path, config in zip(files.paths, configs):
        diff = detector_differences(trained, config or {})
        if diff:
            if not allow:
                raise DataError(f"{path}: detector config differs from the training data's ({'; '.join(diff[:4])}"
                                f"{'; ...' if len(diff) > 4 else ''}); pass --allow-config-mismatch to predict anyway")
            return "mismatch allowed", diff
    return "same", []


def predict(run: str | Path, data: str | Path | list[str | Path], out: str | Path, backend: str = "torch",
            allow_config_mismatch: bool = False, batch_size: int = 64, max_events: int | None = None,
            device: str = "auto", which: str = "best", force: bool = False) -> PredictResult:
    """Predict every event of ``data`` with ``run`` into ``out``; see the module docstring."""
    from pfgraph.eval.output import PredictionWriter
    from pfgraph.io import identity as data_id
    from pfgraph.io.root import EventFiles, expand_paths, make_meta
    from pfgraph.training.predict import input_branches, load_run
    from pfgraph.training.predict import predict as run_predict
    from pfgraph.utils.progress import Timed, progress

    if backend not in BACKENDS:
        raise PfgraphError(f"--backend {backend}: expected one of {', '.join(BACKENDS)}")
    if max_events is not None and max_events <= 0:
        raise PfgraphError(f"--max-events {max_events}: expected a positive number of events")
    source, out = Path(run), Path(out)
    paths = expand_paths(data)
    check_output(out, paths, force)
    engine = None
    if source.is_file() and source.suffix == ".onnx":
        backend = "onnxruntime"  # an exported file runs in onnxruntime on the CPU
        from pfgraph.training.export import load_onnx_run

        loaded, engine = load_onnx_run(source)
    elif source.is_dir():
        loaded = load_run(source, "cpu" if backend == "onnxruntime" else device, which)
        if backend == "onnxruntime":
            from pfgraph.training.export import OnnxModel, export_bytes

            engine = OnnxModel(export_bytes(loaded)[0])
    else:
        raise PfgraphError(f"{source}: no such run folder or .onnx file")
    files = EventFiles(paths, require=["event_id", *input_branches(loaded.repr, loaded.target)])
    n = files.num_events if max_events is None else min(max_events, files.num_events)
    check, diff = _detector_check(loaded.training_data.get("detector"), files, allow_config_mismatch)
    identity = data_id.dataset_identity(files)
    model = {"name": loaded.model_name, "repr": loaded.repr.name, "source": str(source),
             "checkpoint": str(loaded.checkpoint), "checkpoint_sha256": loaded.checkpoint_sha256}
    meta = make_meta("predictions", None, imsize=files.grid.size, created_by=CREATED_BY, model=model, model_names=[loaded.model_name],
                     backend=backend, target=loaded.target, target_scale=float(loaded.norm.target_scale),
                     normalisation=loaded.norm.to_dict(), has_truth=False,
                     training_data={"identity": loaded.training_data.get("identity"),
                                    "detector": loaded.training_data.get("detector")},
                     detector_check=check, detector_differences=diff,
                     allow_config_mismatch=bool(allow_config_mismatch),
                     dataset={"path": [str(p) for p in files.paths], "n_events": n},
                     **{data_id.META_KEY: identity})
    graph = loaded.repr.point_outputs
    done = 0
    chunks = Timed(run_predict(loaded, files, batch_size, max_events, with_truth=False, engine=engine))
    with PredictionWriter(out, meta, graph=graph, truth=False) as writer, \
            progress(n, f"predict {loaded.model_name}") as bar:
        for chunk in chunks:
            pix = None
            if graph:
                pix = ([ie for ie, _ in chunk["pix"]], [ip for _, ip in chunk["pix"]], chunk["pix_pred"])
            writer.write(chunk["event_id"], chunk["pred"], None, 0, pix)
            done += len(chunk["event_id"])
            bar.update(len(chunk["event_id"]))
        if done != n:  # inside the writer: nothing is written
            raise DataError(f"{files.paths[0]}: {done} of {n} events predicted")
    inference_s = chunks.seconds
    return PredictResult(out=out, events=done, model=loaded.model_name, backend=backend, detector_check=check,
                         events_per_s=done / inference_s if inference_s > 0 else 0.0, meta=meta)
