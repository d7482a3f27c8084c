"""A trained run over data -> predictions on the G x G grid in GeV (used by ``pfgraph evaluate``).

    run = load_run("runs/unet_attn")
    for chunk in predict(run, EventFiles("data/b050_jet.root")):
        chunk["event_id"], chunk["pred"], chunk["truth"]    # (B,), (B,G,G) GeV, (B,G,G) GeV
        chunk["mask"]                                       # (B,G,G) pixels with any input

The checkpoint's normalisation is applied unchanged to the new data (the jet set included),
and predictions are de-normalised with its target scale. Events come in file order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pfgraph import geometry
from pfgraph.config import from_dict
from pfgraph.errors import DataError, PfgraphError
from pfgraph.io import schema
from pfgraph.io.root import EventFiles
from pfgraph.models.registry import ModelEntry, get
from pfgraph.repr.base import Normalisation, Representation
from pfgraph.repr.registry import get_representation
from pfgraph.training.config import DataConfig
from pfgraph.training.precision import flush_denormal
from pfgraph.training.run_folder import BEST, LAST, check_run_folder, file_sha256, read_checkpoint, resolve_device
from pfgraph.training.trainer import check_branches, iter_batches

#: Events turned into one dataset at a time while predicting (bounds memory).
PREDICT_BLOCK = 2048


@dataclass
class LoadedRun:
    """A trained model ready to predict, with everything needed to interpret its outputs."""

    run_dir: Path
    checkpoint: Path
    checkpoint_sha256: str
    model_name: str
    model: nn.Module
    entry: ModelEntry
    repr: Representation
    norm: Normalisation
    config: dict[str, Any]
    epoch: int
    device: torch.device
    split: dict[str, np.ndarray] = field(default_factory=dict)
    #: the training data as the checkpoint records it: ``identity`` (:func:`pfgraph.io.identity.dataset_identity`)
    #: and ``detector`` (its detector config; read from the training files for older checkpoints while they exist)
    training_data: dict[str, Any] = field(default_factory=dict)

    @property
    def grid_size(self) -> int:
        """G of the training data's G x G grid (its detector config's ``grid``; configs written before the
        grid was a setting, or none recorded, were on the paper's grid)."""
        det = self.training_data.get("detector") or {}
        return int(det.get("grid", geometry.PAPER_GRID_SIZE))

    @property
    def target(self) -> str:
        """The target branch the model was trained on (``truth`` or ``truth_neutral``)."""
        return self.norm.target


def load_run(run_dir: str | Path, device: str | torch.device = "cpu", which: str = "best",
             expect_model: str | None = None) -> LoadedRun:
    """Load a run folder's best (or ``which="last"``) checkpoint; the model is in eval mode.

    A folder without a checkpoint, a checkpoint that does not fit its model, or one of another
    model than ``expect_model`` -> one PfgraphError line.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PfgraphError(f"{run_dir}: no such run folder")
    if which not in ("best", "last"):
        raise PfgraphError(f"which='{which}': expected 'best' or 'last'")
    candidates = [run_dir / BEST, run_dir / LAST] if which == "best" else [run_dir / LAST]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        raise PfgraphError(f"{run_dir}: no checkpoint ({' or '.join(p.name for p in candidates)}); train it first "
                           "with 'pfgraph train ... --out " + str(run_dir) + "'")
    dev = resolve_device(str(device)) if isinstance(device, str) else device
    ckpt = read_checkpoint(path, "cpu")
    name = str(ckpt.get("model_name"))
    if expect_model is not None and name != expect_model:
        raise PfgraphError(f"{path}: is a checkpoint of model '{name}', not '{expect_model}'")
    missing = [k for k in ("config", "model_state", "normalisation") if k not in ckpt]
    if missing:
        raise PfgraphError(f"{path}: checkpoint has no '{missing[0]}' (incomplete or not written by pfgraph train)")
    try:  # the checkpoint's own model config: any error in it names the checkpoint
        config = dict(ckpt["config"])
        model_cfg = config.get("model", {})
        from pfgraph.models.cnn_attn import checkpoint_arch  # cnn_attn checkpoints older than the paper-text model

        entry = get(checkpoint_arch(str(ckpt.get("arch", model_cfg.get("arch"))), model_cfg.get("params", {})),
                    str(ckpt.get("repr")))
        torch.manual_seed(0)
        model = entry.builder(dict(model_cfg.get("params", {})))
        norm = Normalisation.from_dict(ckpt["normalisation"])
        data_cfg = from_dict(DataConfig, config.get("data") or {}, "data")
        representation = get_representation(entry.repr, **data_cfg.representation_options())
    except PfgraphError as exc:
        raise PfgraphError(f"{path}: its model config does not fit this pfgraph: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as exc:
        raise PfgraphError(f"{path}: its model config does not fit model '{name}' "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})") from None
    try:
        model.load_state_dict(ckpt["model_state"])
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        raise PfgraphError(f"{path}: does not fit model '{name}' ({str(exc).splitlines()[0][:160]})") from None
    check_run_folder(run_dir, path, ckpt, sum(p.numel() for p in model.parameters() if p.requires_grad))
    model.to(dev).eval()
    split = {k: np.asarray(v.numpy(), dtype=np.int64) for k, v in (ckpt.get("split") or {}).items()}
    return LoadedRun(run_dir=run_dir, checkpoint=path, checkpoint_sha256=file_sha256(path), model_name=name, model=model,
                     entry=entry, repr=representation, norm=norm, config=config,
                     epoch=int(ckpt.get("epoch", 0)), device=dev, split=split,
                     training_data=_training_data(ckpt.get("data")))


def _training_data(recorded: Any) -> dict[str, Any]:
    """The checkpoint's record of its training data; an older checkpoint's detector config is read
    from the training files when they are still there (None when unknown)."""
    data = dict(recorded) if isinstance(recorded, dict) else {}
    out: dict[str, Any] = {"identity": data.get("identity"), "files": data.get("files"),
                           "fingerprint": data.get("fingerprint")}
    if "detector" in data:
        out["detector"] = data["detector"]
        return out
    out["detector"] = None
    try:
        from pfgraph.io.identity import detector_config
        from pfgraph.io.root import open_root, read_meta

        paths = [Path(p) for p in data.get("files") or []]
        if paths and paths[0].is_file():
            out["detector"] = detector_config(read_meta(open_root(paths[0]), paths[0]))
    except PfgraphError:
        pass
    return out


def has_target(files: EventFiles, target: str, rep: Representation) -> bool:
    """True when every file holds the target branches ``rep`` reads for ``target``."""
    from pfgraph.io.reading import stored_branches
    from pfgraph.io.root import open_root

    needed = [b for b in rep.branches(target) if b in (target, f"pix_{target}")]
    for i, path in enumerate(files.paths):
        tree = open_root(path)[schema.EVENTS_TREE]
        if any(files.migrations[i].file_name(b) not in tree for b in stored_branches(needed, files.layouts[i])):
            return False
    return True


def input_branches(rep: Representation, target: str) -> list[str]:
    """The branches ``rep`` reads without the target: what a file must hold to be predicted."""
    return [b for b in rep.branches(target) if b not in (target, f"pix_{target}")]


#: ``engine(batch) -> output``: a model run outside torch (``pfgraph predict --backend onnxruntime``);
#: it sees batches in GeV (unit input scales) and returns the representation's native output in GeV.
Engine = Callable[[Any], torch.Tensor]


def predict(run: LoadedRun, files: EventFiles, batch_size: int = 64, max_events: int | None = None,
            indices: np.ndarray | None = None, with_truth: bool | None = None,
            engine: Engine | None = None) -> Iterator[dict[str, Any]]:
    """Predictions of ``run`` over ``files`` in file order, one dict per batch: one pass over the data
    gives everything the evaluation needs.

    Each dict: ``event_id`` int64 (B,), ``pred`` float32 (B, G, G) GeV, ``truth`` float32
    (B, G, G) GeV (the run's target as the file holds it; None with ``with_truth=False``),
    ``mask`` bool (B, G, G) (pixels with any input), and for representations with per-point
    outputs ``pix_pred`` (per-event float32 arrays, GeV) with ``pix`` (per-event (ieta, iphi) of
    those points). ``max_events`` takes the first N events; ``indices`` (sorted global entries,
    e.g. ``run.split["test"]``) a subset. ``with_truth`` None: read the truth when the files hold
    it. ``engine``: run the model through it instead of ``run.model`` (see :data:`Engine`).
    """
    if batch_size <= 0:
        raise PfgraphError(f"batch_size {batch_size}: expected a positive number")
    n = files.num_events if max_events is None else min(max_events, files.num_events)
    idx = np.arange(n, dtype=np.int64) if indices is None else np.unique(np.asarray(indices, dtype=np.int64))
    if len(idx) and (idx[0] < 0 or idx[-1] >= n):
        raise DataError(f"event index {int(idx[-1])} out of range: the data has {n} events")
    rep = run.repr
    if with_truth is None:
        with_truth = has_target(files, run.target, rep)
    needed = rep.branches(run.target) if with_truth else input_branches(rep, run.target)
    check_branches(files, [*needed, "event_id"], f"model '{run.model_name}'")
    if engine is None:
        scale = np.float32(run.norm.target_scale)
        norm = run.norm.target_in_gev()  # the model sees the checkpoint's input scales; the target stays in GeV
    else:  # the engine takes GeV and gives GeV
        scale = np.float32(1.0)
        norm = Normalisation(input_scale=[1.0] * len(run.norm.input_scale), target_scale=1.0, target=run.target)
    for lo in range(0, len(idx), PREDICT_BLOCK):
        block = idx[lo:lo + PREDICT_BLOCK]
        dataset = rep.make_dataset(files, block, norm) if with_truth else \
            rep.make_dataset(files, block, norm, with_target=False)
        with torch.no_grad():
            for batch in iter_batches(rep, dataset, batch_size):
                batch = batch.to(run.device)
                with flush_denormal():  # fp32 (evaluation is never autocast), denormals flushed to zero
                    out = rep.forward(run.model, batch) if engine is None else engine(batch)
                grid = rep.to_grid(out, batch).float().cpu().numpy() * scale
                item: dict[str, Any] = {"event_id": rep.event_ids(batch), "pred": grid.astype(np.float32, copy=False),
                                        "truth": rep.truth_grid(batch).float().cpu().numpy() if with_truth else None,
                                        "mask": rep.input_mask(batch).cpu().numpy()}
                if rep.point_outputs:
                    item["pix_pred"] = [(np.asarray(p) * scale).astype(np.float32) for p in rep.per_point(out, batch)]
                    item["pix"] = rep.point_pixels(batch)
                yield item
