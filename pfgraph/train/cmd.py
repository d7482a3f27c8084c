"""``pfgraph train``: train any registered model on simulated ROOT data (one trainer for all).

    pfgraph train --repr image --model unet_attn --data data/b050.root --out runs/unet_attn \\
        [--epochs E] [--max-events N] [--batch-size B] [--config F] [--device D] [--seed S] [key=value ...]

Re-running into a run folder that holds a checkpoint resumes it (``--epochs`` is the total).
Multi-process: ``torchrun --standalone --nproc_per_node 2 -m pfgraph.cli train ...``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pfgraph.utils.cli_common import add_overrides


def register(sub: Any) -> None:
    """Add the ``train`` sub-command."""
    p = sub.add_parser(
        "train", help="train a model (image or graph representation); resumes an existing run folder",
        description="Train a registered model with the one trainer: MSE/Adam, LR schedule and early stopping on "
        "the validation loss, best-on-validation checkpoint, progressive training-set schedule, AMP on CUDA, "
        "resume from the last checkpoint, DDP under torchrun.")
    p.add_argument("--model", required=True, help="model name or preset (see 'pfgraph models'), or a model YAML file")
    p.add_argument("--repr", choices=("image", "graph"), help="representation (default: the model's own)")
    p.add_argument("--data", nargs="+", help="event file(s), glob(s) or list (default: the train config's dataset, "
                   "simulated if missing)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, config.yaml, metrics.csv, loss.png)")
    p.add_argument("--config", help="train config file or preset (pfgraph/presets/train; default: default)")
    p.add_argument("--epochs", type=int, help="total number of epochs (a resumed run continues up to it)")
    p.add_argument("--max-events", type=int, help="use only the first N events of the data")
    p.add_argument("--batch-size", type=int, help="training batch size")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--seed", type=int, help="training seed (initialisation and shuffling)")
    add_overrides(p, "train.lr=5e-4 train.early_stop.patience=3", "model hyper-parameters as model.<param>=value")
    p.set_defaults(func=run)


def _flag_patch(args: argparse.Namespace) -> dict[str, Any]:
    """The config values set by command-line flags."""
    train: dict[str, Any] = {}
    data: dict[str, Any] = {}
    if args.epochs is not None:
        train["epochs"] = args.epochs
    if args.batch_size is not None:
        train["batch_size"] = args.batch_size
    if args.seed is not None:
        train["seed"] = args.seed
    if args.device is not None:
        train["device"] = args.device
    if args.max_events is not None:
        data["max_events"] = args.max_events
    if args.data:
        data["paths"] = [str(d) for d in args.data]
    return {k: v for k, v in (("train", train), ("data", data)) if v}


def _ensure_default_dataset(path: Path, sim_preset: str, info: Any) -> None:
    """Simulate the config's default dataset when it is missing (rank 0; the others wait)."""
    from pfgraph.train import ddp

    if not path.exists() and info.is_main:
        from pfgraph.config import load_config, resolve_config_path
        from pfgraph.sim.detector import SimConfig
        from pfgraph.sim.generate import generate
        from pfgraph.utils.progress import progress

        sim_path = resolve_config_path(sim_preset, "sim")
        sim_cfg = load_config(SimConfig, sim_path)
        print(f"{path}: default dataset missing; simulating {sim_cfg.events} events with {sim_path}", flush=True)
        with progress(sim_cfg.events, f"simulate {sim_cfg.name}") as bar:
            generate(sim_cfg, path, workers=1, progress=bar.update)
    ddp.barrier(info)


def run(args: argparse.Namespace) -> int:
    """Run ``pfgraph train``."""
    from pfgraph.train import ddp

    info = ddp.init(args.device or "auto")
    try:
        result = train_from_args(args, info)
    finally:
        ddp.shutdown(info)
    if info.is_main:
        print(result.summary_line())
    return 0


def train_from_args(args: argparse.Namespace, info: Any = None) -> Any:
    """Resolve the run config (fresh or resumed), load the data and train; returns the TrainResult."""
    from pfgraph.config import to_dict
    from pfgraph.errors import PfgraphError
    from pfgraph.io.root import EventFiles
    from pfgraph.io.schema import EVENT_BRANCH_MAP
    from pfgraph.repr.base import get_representation
    from pfgraph.train import ddp
    from pfgraph.train.config import (
        RESUMABLE_KEYS,
        build_run_config,
        config_differences,
        load_model_section,
        run_config_from_dict,
        train_preset_data,
    )
    from pfgraph.train.trainer import LAST, Trainer, data_fingerprint, prepare_run_dir, read_checkpoint
    from pfgraph.utils.atomic import check_creatable_dir

    info = info or ddp.DistInfo()
    section = load_model_section(args.model, args.repr)
    patch = _flag_patch(args)
    # The run folder is created only once config, model and data are validated: a failed start
    # leaves nothing behind (an unwritable --out is still reported before any work).
    run_dir = check_creatable_dir(args.out)
    resume = None
    if (run_dir / LAST).exists():
        resume = read_checkpoint(run_dir / LAST)
        if resume.get("model_name") != section.name or resume.get("repr") != section.repr:
            raise PfgraphError(
                f"{run_dir}: holds a checkpoint of model '{resume.get('model_name')}' ({resume.get('repr')}), not "
                f"'{section.name}' ({section.repr}); choose another --out or the same --model")
        base = resume.get("config")
        if not isinstance(base, dict):
            raise PfgraphError(f"{run_dir / LAST}: checkpoint has no run config (incomplete or not written by pfgraph train)")
        if args.config:
            base = _merge(base, train_preset_data(args.config))
        try:
            run_config_from_dict(resume["config"])
        except PfgraphError as exc:
            raise PfgraphError(f"{run_dir / LAST}: its run config does not fit this pfgraph: {exc}") from None
        cfg = run_config_from_dict(_merge(base, patch), args.overrides)
        changed = [(k, a, b) for k, a, b in config_differences(resume["config"], to_dict(cfg))
                   if not any(k == r or k.startswith(r + ".") for r in RESUMABLE_KEYS)]
        if changed:
            key, old, new = changed[0]
            raise PfgraphError(f"{run_dir}: cannot resume with {key}={new!r} (the run was started with {old!r}); "
                               "keep the run's settings or choose another --out")
    else:
        cfg = build_run_config(section, _merge(train_preset_data(args.config or "default"), patch), args.overrides)
    # Build the model once up front: bad hyper-parameters fail here, before any data is read.
    from pfgraph.models.registry import get

    get(cfg.model.arch, cfg.model.repr).builder(dict(cfg.model.params))
    paths = list(cfg.data.paths)
    if not paths:
        default = Path(cfg.data.default)
        _ensure_default_dataset(default, cfg.data.simulate, info)
        paths = [str(default)]
    representation = get_representation(cfg.model.repr)
    needed = [b for b in representation.branches(cfg.data.target) if b in EVENT_BRANCH_MAP]
    files = EventFiles(paths, require=needed)
    if resume is not None:
        n = files.num_events if cfg.data.max_events is None else min(files.num_events, cfg.data.max_events)
        if int(resume["data"]["num_events"]) != n:
            raise PfgraphError(f"{run_dir}: the run was trained on {resume['data']['num_events']} events, the data "
                               f"now gives {n}; resume with the same data or choose another --out")
        if resume["data"].get("fingerprint") not in (None, data_fingerprint(files)):
            raise PfgraphError(f"{run_dir}: the run was trained on other data ({', '.join(resume['data']['files'])}); "
                               "resume with the same data or choose another --out")
        done = int(resume["epoch"])
        if info.is_main:
            print(f"resuming {run_dir} from epoch {done} (checkpoint_last.pt) towards {cfg.train.epochs} epochs",
                  flush=True)
    top_new = _topmost_missing(run_dir)
    run_dir = prepare_run_dir(run_dir, clean=info.is_main)
    ddp.barrier(info)
    try:
        return Trainer(cfg, run_dir, files, info, resume=resume).run()
    except BaseException:
        if top_new is not None and info.is_main:
            _remove_unfinished_run(run_dir, top_new)
        raise


def _topmost_missing(path: Path) -> Path | None:
    """The highest folder of ``path`` (itself included) that does not exist yet; None if it exists."""
    path = path.absolute()
    if path.exists():
        return None
    while not path.parent.exists() and path.parent != path:
        path = path.parent
    return path


def _remove_unfinished_run(run_dir: Path, top: Path) -> None:
    """Remove a run folder this call created (and the parents it created, up to ``top``) when
    the run failed before its first checkpoint: nothing to resume. Only pfgraph's own outputs
    and temporaries go; a folder that holds anything else is left as it is."""
    import contextlib
    import shutil

    from pfgraph.train.trainer import LAST, OUTPUTS

    if (run_dir / LAST).exists():
        return
    with contextlib.suppress(OSError):
        entries = list(run_dir.iterdir())
        ours = [p for p in entries if p.name in OUTPUTS or any(p.name.startswith(f".{n}.") and p.name.endswith(".tmp")
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


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merged copy of ``base`` with ``extra`` (train presets may carry model params under ``model``)."""
    import copy

    out = copy.deepcopy(base)
    for k, v in extra.items():
        if k == "model" and isinstance(v, dict) and "params" in out.get("model", {}) and not set(v) & {"params", "name", "arch", "repr"}:
            v = {"params": v}
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
