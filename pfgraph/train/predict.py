"""A trained run over data -> predictions on the 56x56 grid in GeV (used by ``pfgraph evaluate``).

    run = load_run("runs/unet_attn")
    for chunk in predict(run, EventFiles("data/b050_jet.root")):
        chunk["event_id"], chunk["pred"], chunk["truth"]    # (B,), (B,56,56) GeV, (B,56,56) GeV

The checkpoint's normalisation is applied unchanged to the new data (the jet set included),
and predictions are de-normalised with its target scale. Events come in file order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pfgraph.errors import DataError, PfgraphError
from pfgraph.io.root import EventFiles
from pfgraph.models.registry import ModelEntry, get
from pfgraph.repr.base import Normalisation, Representation, get_representation
from pfgraph.train.trainer import BEST, LAST, check_branches, iter_batches, read_checkpoint, resolve_device

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

    @property
    def target(self) -> str:
        """The target branch the model was trained on (``truth`` or ``truth_neutral``)."""
        return self.norm.target


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
        from pfgraph.models.cnn import checkpoint_arch  # cnn_attn checkpoints older than the paper-text model

        entry = get(checkpoint_arch(str(ckpt.get("arch", model_cfg.get("arch"))), model_cfg.get("params", {})),
                    str(ckpt.get("repr")))
        torch.manual_seed(0)
        model = entry.builder(dict(model_cfg.get("params", {})))
        norm = Normalisation.from_dict(ckpt["normalisation"])
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
    return LoadedRun(run_dir=run_dir, checkpoint=path, checkpoint_sha256=_sha256(path), model_name=name, model=model,
                     entry=entry, repr=get_representation(entry.repr), norm=norm, config=config,
                     epoch=int(ckpt.get("epoch", 0)), device=dev, split=split)


def check_run_folder(run_dir: Path, path: Path, ckpt: dict[str, Any], n_params: int) -> None:
    """Refuse a checkpoint that does not belong to ``run_dir`` (one PfgraphError line).

    A checkpoint copied into another run's folder would be evaluated with that run's training
    record. The checkpoint's model and parameter count must match the folder's
    ``train_summary.json``, and its config the folder's ``config.yaml`` (settings a resumed run
    may change, like ``train.epochs``, excepted). Files the folder lacks are not compared.
    """
    import json

    import yaml

    from pfgraph.train.config import RESUMABLE_KEYS, config_differences
    from pfgraph.train.trainer import CONFIG, SUMMARY

    name = str(ckpt.get("model_name"))
    recorded = ckpt.get("params")
    if isinstance(recorded, int) and recorded != n_params:
        raise PfgraphError(f"{path}: records {recorded:,} parameters but its weights have {n_params:,}: "
                           "a damaged or hand-edited checkpoint")
    where = f"{path}: does not belong to run folder {run_dir}:"
    try:
        summary = json.loads((run_dir / SUMMARY).read_text())
    except (OSError, ValueError):
        summary = None
    if isinstance(summary, dict):
        s_model, s_params = summary.get("model"), summary.get("params")
        if (s_model is not None and s_model != name) or (isinstance(s_params, int) and s_params != n_params):
            theirs = f"'{s_model}' ({s_params:,} parameters)" if isinstance(s_params, int) else f"'{s_model}'"
            raise PfgraphError(f"{where} it holds model '{name}' ({n_params:,} parameters) but {SUMMARY} describes "
                               f"{theirs}; evaluate the run folder the checkpoint came from")
    try:
        folder_cfg = yaml.safe_load((run_dir / CONFIG).read_text())
    except (OSError, yaml.YAMLError):
        folder_cfg = None
    if isinstance(folder_cfg, dict) and isinstance(ckpt.get("config"), dict):
        changed = [(k, a, b) for k, a, b in config_differences(ckpt["config"], folder_cfg)
                   if not any(k == r or k.startswith(r + ".") for r in RESUMABLE_KEYS)]
        if changed:
            key, a, b = changed[0]
            raise PfgraphError(f"{where} its config has {key}={a!r}, the folder's {CONFIG} {b!r}; "
                               "evaluate the run folder the checkpoint came from")


def _per_point(run: LoadedRun, output: torch.Tensor, batch: Any) -> list[np.ndarray] | None:
    """Per-event native (per-point) predictions in normalised units, for graph models."""
    fn = getattr(run.repr, "per_point", None)
    if callable(fn):
        res = fn(output, batch)
        if res is not None:
            return [np.asarray(r.detach().cpu().numpy() if isinstance(r, torch.Tensor) else r) for r in res]
    owner = getattr(batch, "batch", None)
    if run.repr.name == "graph" and isinstance(owner, torch.Tensor) and output.dim() <= 2:
        counts = torch.bincount(owner.cpu(), minlength=int(getattr(batch, "num_graphs", 0) or 0)).tolist()
        flat = output.detach().reshape(-1).float().cpu()
        return [t.numpy() for t in torch.split(flat, counts)]
    return None


def predict(run: LoadedRun, files: EventFiles, batch_size: int = 64, max_events: int | None = None,
            indices: np.ndarray | None = None) -> Iterator[dict[str, Any]]:
    """Predictions of ``run`` over ``files`` in file order, one dict per batch.

    Each dict: ``event_id`` int64 (B,), ``pred`` float32 (B, 56, 56) GeV, ``truth`` float32
    (B, 56, 56) GeV (the run's target, read from the file), and for graph models ``pix_pred``
    (a list of per-event float32 arrays, GeV). ``max_events`` takes the first N events;
    ``indices`` (sorted global entries, e.g. ``run.split["test"]``) a subset.
    """
    if batch_size <= 0:
        raise PfgraphError(f"batch_size {batch_size}: expected a positive number")
    n = files.num_events if max_events is None else min(max_events, files.num_events)
    idx = np.arange(n, dtype=np.int64) if indices is None else np.unique(np.asarray(indices, dtype=np.int64))
    if len(idx) and (idx[0] < 0 or idx[-1] >= n):
        raise DataError(f"event index {int(idx[-1])} out of range: the data has {n} events")
    target = run.target
    check_branches(files, [*run.repr.branches(target), "event_id"], f"model '{run.model_name}'")
    scale = float(run.norm.target_scale)
    for lo in range(0, len(idx), PREDICT_BLOCK):
        block = idx[lo:lo + PREDICT_BLOCK]
        dataset = run.repr.make_dataset(files, block, run.norm)
        ids, truth = _read_truth(files, block, target)
        pos = 0
        with torch.no_grad():
            for batch in iter_batches(run.repr, dataset, batch_size):
                batch = batch.to(run.device)
                out = run.repr.forward(run.model, batch)
                grid = run.repr.to_grid(out, batch).float().cpu().numpy() * np.float32(scale)
                b = grid.shape[0]
                item: dict[str, Any] = {"event_id": ids[pos:pos + b], "pred": grid.astype(np.float32, copy=False),
                                        "truth": truth[pos:pos + b]}
                points = _per_point(run, out, batch)
                if points is not None:
                    item["pix_pred"] = [(p * np.float32(scale)).astype(np.float32) for p in points]
                pos += b
                yield item


def _read_truth(files: EventFiles, block: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray]:
    """``event_id`` and the target image (GeV) of the sorted global entries ``block``."""
    from pfgraph.io.datasets import read_images

    truth = np.empty((len(block), 1, 56, 56), dtype=np.float32)
    read_images(files, [target], block, [1.0], truth)
    ids = np.empty(len(block), dtype=np.int64)
    lo, hi = int(block[0]), int(block[-1]) + 1
    chunk = files.read(["event_id"], lo, hi)
    ids[:] = np.asarray(chunk["event_id"], dtype=np.int64)[block - lo]
    return ids, truth[:, 0]
