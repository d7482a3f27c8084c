"""The run folder: what ``pfgraph train`` writes and everything downstream reads.

A run folder holds ``checkpoint_last.pt`` (after every epoch), ``checkpoint_best.pt`` (best
validation loss), ``config.yaml`` (the fully resolved run config), ``metrics.csv`` (one row per
epoch), ``loss.png`` and ``train_summary.json``. This module owns those names, reads and writes
checkpoints safely (tensors and plain data only), checks that a checkpoint belongs to its
folder, prepares and cleans folders, and chooses the torch device.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pfgraph.errors import PfgraphError
from pfgraph.utils.atomic import atomic_path, ensure_writable_dir, file_sha256, temp_prefix  # noqa: F401 (the run folder's checkpoint hash)
from pfgraph.utils.ownership import check_not_input, foreign_entries, refuse_foreign, written_by_pfgraph

if TYPE_CHECKING:
    from pfgraph.io.root import EventFiles
    from pfgraph.training.ddp import DistInfo

CHECKPOINT_FORMAT = "pfgraph-checkpoint"
CHECKPOINT_VERSION = 1
LAST = "checkpoint_last.pt"
BEST = "checkpoint_best.pt"
CONFIG = "config.yaml"
METRICS = "metrics.csv"
LOSS_PNG = "loss.png"
SUMMARY = "train_summary.json"
OUTPUTS = (LAST, BEST, CONFIG, METRICS, LOSS_PNG, SUMMARY)


def resolve_device(name: str, info: DistInfo | None = None) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a torch device (one clear error without CUDA)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PfgraphError(f"--device {name}: no CUDA device is available (use --device cpu or auto)")
        if info is not None and info.enabled:
            return torch.device("cuda", info.local_rank)
        index = int(name.split(":")[1]) if ":" in name else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise PfgraphError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) available")
        return torch.device("cuda", index)
    return torch.device("cpu")


def read_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a pfgraph checkpoint safely (``weights_only=True``); one clear error otherwise."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise PfgraphError(f"{path}: no such checkpoint") from None
    except Exception as exc:
        what = re.search(r"(?:[Uu]nsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(exc))
        if what is not None:  # torch's safe loader met a pickled callable: refuse, never run it
            raise PfgraphError(f"{path}: refused: the checkpoint holds a pickled Python object ({what.group(1)}) "
                               "that could run code when loaded; pfgraph loads only tensors and plain data") from None
        msg = str(exc).splitlines()[0] if str(exc) else ""
        raise PfgraphError(f"{path}: not a readable pfgraph checkpoint ({type(exc).__name__}: {msg[:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise PfgraphError(f"{path}: not a pfgraph checkpoint")
    if int(ckpt.get("version", 0)) > CHECKPOINT_VERSION:
        raise PfgraphError(f"{path}: checkpoint version {ckpt.get('version')} is newer than this pfgraph supports")
    return ckpt


def save_checkpoint(obj: Mapping[str, Any], path: Path) -> None:
    """``torch.save`` atomically (temporary file, fsync, rename). The temporary file keeps the
    final name (torch names the archive's root folder after the file), so equal content gives
    byte-identical files."""
    with atomic_path(path, same_name=True) as tmp:
        torch.save(dict(obj), tmp)


def clean_stale_temporaries(run_dir: Path) -> int:
    """Remove temporaries an interrupted writer left beside the run's outputs: only those whose
    writer has ended (the owner check of :func:`pfgraph.utils.atomic.stale_temporaries`)."""
    from pfgraph.utils.atomic import clean_stale_temporaries as clean

    return sum(clean(run_dir / name)[0] for name in OUTPUTS)


def is_run_folder(run_dir: Path) -> bool:
    """True when ``run_dir`` holds a checkpoint or config that ``pfgraph train`` wrote."""
    return any(written_by_pfgraph(run_dir / name) for name in (LAST, BEST, CONFIG))


def check_run_target(run_dir: Path, force: bool = False, inputs: Sequence[str | Path | None] = ()) -> None:
    """Refuse a ``--out`` that ``pfgraph train`` must not write into (one PfgraphError line).

    An input (the ``--config`` or ``--model`` file being read, a data file) is never one of the run
    folder's outputs, ``force`` or not. An existing folder must be a run folder (:func:`is_run_folder`)
    or empty; in a run folder, files of the run's own names that pfgraph did not write are refused.
    ``force`` lets the run write its file names into any folder (other files are never touched).
    """
    for name in OUTPUTS:
        check_not_input(run_dir / name, [p for p in inputs if p is not None],
                        f"an input of this run and would be overwritten by its {name}")
    if not run_dir.is_dir() or force:
        return
    run = is_run_folder(run_dir)

    def ours(p: Path) -> bool:
        return p.name in OUTPUTS and (run or written_by_pfgraph(p))

    foreign = foreign_entries(run_dir, ours)
    if not foreign:
        return
    clash = [n for n in foreign if n in OUTPUTS]
    if clash:
        if clash[0].endswith(".pt"):  # a checkpoint without pfgraph's format tag: corrupt, or someone else's
            raise PfgraphError(f"{run_dir / clash[0]}: not a readable pfgraph checkpoint (corrupt, or not written by "
                               "pfgraph train) and the run would overwrite it; choose another --out, or pass --force "
                               "to replace it")
        raise PfgraphError(f"{run_dir}: {clash[0]} was not written by pfgraph train and the run would overwrite it; "
                           "choose another --out, or pass --force to replace it")
    if not run:
        refuse_foreign(run_dir, foreign, "train", False, "it is not a run folder")


def data_fingerprint(files: EventFiles) -> str:
    """What the data is, independent of where it lies: every file's generation record and size
    (:func:`pfgraph.io.identity.data_fingerprint`)."""
    from pfgraph.io.identity import data_fingerprint as fingerprint

    return fingerprint(files)


def prepare_run_dir(run_dir: str | Path, clean: bool = True) -> Path:
    """Create the run folder (clear error when impossible) and, with ``clean``, drop the
    temporaries an interrupted run left (only the writing rank cleans)."""
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise PfgraphError(f"{path}: exists and is not a folder; --out expects a run folder")
    ensure_writable_dir(path)
    if clean:
        clean_stale_temporaries(path)
    return path


def check_run_folder(run_dir: Path, path: Path, ckpt: dict[str, Any], n_params: int) -> None:
    """Refuse a checkpoint that does not belong to ``run_dir`` (one PfgraphError line).

    A checkpoint copied into another run's folder would be evaluated with that run's training
    record. The checkpoint's model and parameter count must match the folder's
    ``train_summary.json``, and its config the folder's ``config.yaml`` (settings a resumed run
    may change, like ``train.epochs``, excepted). Files the folder lacks are not compared.
    """
    from pfgraph.config import load_yaml
    from pfgraph.training.config import RESUMABLE_KEYS, config_differences

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
        folder_cfg = load_yaml((run_dir / CONFIG).read_text(), run_dir / CONFIG)
    except (OSError, UnicodeDecodeError, PfgraphError):
        folder_cfg = None
    if isinstance(folder_cfg, dict) and isinstance(ckpt.get("config"), dict):
        changed = [(k, a, b) for k, a, b in config_differences(ckpt["config"], folder_cfg)
                   if not any(k == r or k.startswith(r + ".") for r in RESUMABLE_KEYS)]
        if changed:
            key, a, b = changed[0]
            raise PfgraphError(f"{where} its config has {key}={a!r}, the folder's {CONFIG} {b!r}; "
                               "evaluate the run folder the checkpoint came from")


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """The run folder's ``train_summary.json`` (None if absent or unreadable: the figures are optional)."""
    try:
        doc = json.loads((Path(run_dir) / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def topmost_missing(path: Path) -> Path | None:
    """The highest folder of ``path`` (itself included) that does not exist yet; None if it exists."""
    path = path.absolute()
    if path.exists():
        return None
    while not path.parent.exists() and path.parent != path:
        path = path.parent
    return path


def remove_unfinished_run(run_dir: Path, top: Path) -> None:
    """Remove a run folder this call created (and the parents it created, up to ``top``) when
    the run failed before its first checkpoint: nothing to resume. Only pfgraph's own outputs
    and temporaries go; a folder that holds anything else is left as it is."""
    import shutil


    if (run_dir / LAST).exists():
        return
    with contextlib.suppress(OSError):
        entries = list(run_dir.iterdir())
        ours = [p for p in entries if p.name in OUTPUTS or any(p.name.startswith(temp_prefix(n)) and p.name.endswith(".tmp")
                                                                for n in OUTPUTS)]
        if len(ours) != len(entries):
            return
        for p in ours:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        folder = run_dir.absolute()
        folder.rmdir()
        while folder != top and folder.parent != folder:
            folder = folder.parent
            folder.rmdir()  # only empty folders: stops (OSError) at anything else


