"""The training stage as a Python function: :func:`train` (``pfgraph train`` maps its flags onto it).

    from pfgraph import train
    result = train("unet_attn", "runs/unet_attn", "data/b050.root", epochs=10)
    result.run_dir, result.best_val_loss

A run folder that holds a checkpoint is resumed (``epochs`` is the total). The run's config is
resolved in one place (:func:`pfgraph.training.config.resolve_run_config`); the folder's layout is
:mod:`pfgraph.training.run_folder`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pfgraph.training.trainer import TrainResult


def train(model: str, out: str | Path, data: str | Path | Sequence[str | Path] | None = None, *,
          repr: str | None = None, config: str | Path | None = None, epochs: int | None = None,
          max_events: int | None = None, batch_size: int | None = None, device: str | None = None,
          seed: int | None = None, overrides: Sequence[str] = (), dist: Any = None,
          force: bool = False) -> TrainResult:
    """Train (or resume) ``model`` on ``data`` into the run folder ``out``.

    ``model``: a model preset, a model YAML file or a registered name (``pfgraph models``);
    ``data``: event file(s), glob(s) or a list file (None: the train config's ``data.default``;
    a missing one is an error naming the ``pfgraph simulate`` command that makes it); ``repr``: the representation (default: the model's own);
    ``config``: the train preset or file (``default``); ``overrides``: dotted ``key=value``
    settings (``train.lr=5e-4``, ``model.<param>=v``); ``dist``: the
    :class:`~pfgraph.training.ddp.DistInfo` of a torchrun process group (None: one process);
    ``force``: write the run's files into a folder that is not a run folder (or over files of the
    run's names pfgraph did not write). One process at a time writes a run folder (its lock names
    the holder). Returns the :class:`~pfgraph.training.trainer.TrainResult`. Bad settings or data raise a
    :class:`~pfgraph.errors.PfgraphError` before the run folder is created.
    """
    from pfgraph.config import looks_like_path
    from pfgraph.errors import PfgraphError
    from pfgraph.io.root import EventFiles
    from pfgraph.io.schema import EVENT_BRANCH_MAP
    from pfgraph.models.registry import get
    from pfgraph.repr.registry import get_representation
    from pfgraph.training import ddp
    from pfgraph.training.config import flag_sections, resolve_run_config
    from pfgraph.training.run_folder import (
        LAST,
        check_run_target,
        data_fingerprint,
        prepare_run_dir,
        read_checkpoint,
        remove_unfinished_run,
        topmost_missing,
    )
    from pfgraph.training.trainer import Trainer
    from pfgraph.utils import args as check
    from pfgraph.utils.atomic import check_creatable_dir, ensure_writable_dir
    from pfgraph.utils.lock import folder_lock

    check.check_type("train", "model", model, (str, Path), "a model name, preset or YAML file (str)")
    check.check_path("train", "out", out)
    check.check_paths("train", "data", data, optional=True)
    check.check_type("train", "repr", repr, (str,), "a representation name (str)", optional=True)
    check.check_type("train", "config", config, (str, Path), "a train preset or YAML file (str)", optional=True)
    for name, value in (("epochs", epochs), ("max_events", max_events), ("batch_size", batch_size), ("seed", seed)):
        check.check_type("train", name, value, (int,), "an integer", optional=True)
    check.check_type("train", "device", device, (str,), "a device name (str)", optional=True)
    overrides = check.check_overrides("train", overrides)
    info = dist or ddp.DistInfo()
    paths_in = [data] if isinstance(data, (str, Path)) else list(data or [])
    flags = flag_sections(epochs=epochs, batch_size=batch_size, seed=seed, device=device, max_events=max_events,
                          data=paths_in)
    # A failed start leaves nothing behind: a run folder this call creates is removed again when the
    # run fails before its first checkpoint (an unwritable folder is reported before any work).
    run_dir = check_creatable_dir(out)
    if info.is_main:  # an input is never an output; a folder pfgraph did not write is not taken over
        inputs = [p for p in (config, model) if p is not None and looks_like_path(p)]
        check_run_target(run_dir, force, [*inputs, *[p for p in paths_in if Path(p).is_file()]])
    top_new = topmost_missing(run_dir)
    try:
        with contextlib.ExitStack() as stack:
            if info.is_main:  # one writer per run folder, from before its state is read: a second train is refused
                ensure_writable_dir(run_dir)
                stack.enter_context(folder_lock(run_dir, "train"))
            resume = read_checkpoint(run_dir / LAST) if (run_dir / LAST).exists() else None
            cfg = resolve_run_config(model, repr_name=repr, train_config=config, flags=flags, overrides=overrides,
                                     resume=resume, where=run_dir, checkpoint=run_dir / LAST)
            # Build the model once up front: bad hyper-parameters fail here, before any data is read.
            get(cfg.model.arch, cfg.model.repr).builder(dict(cfg.model.params))
            paths = list(cfg.data.paths)
            if not paths:
                _require_default_dataset(Path(cfg.data.default), cfg.data.simulate)
                paths = [cfg.data.default]
            representation = get_representation(cfg.model.repr, **cfg.data.representation_options())
            needed = [b for b in representation.branches(cfg.data.target) if b in EVENT_BRANCH_MAP]
            files = EventFiles(paths, require=needed)
            set_model_grid(cfg, files.grid.size)
            if resume is not None:
                n = files.num_events if cfg.data.max_events is None else min(files.num_events, cfg.data.max_events)
                if int(resume["data"]["num_events"]) != n:
                    raise PfgraphError(f"{run_dir}: the run was trained on {resume['data']['num_events']} events, the data "
                                       f"now gives {n}; resume with the same data or choose another --out")
                if resume["data"].get("fingerprint") not in (None, data_fingerprint(files)):
                    raise PfgraphError(f"{run_dir}: the run was trained on other data ({', '.join(resume['data']['files'])}); "
                                       "resume with the same data or choose another --out")
                if info.is_main:
                    print(f"resuming {run_dir} from epoch {int(resume['epoch'])} (checkpoint_last.pt) towards "
                          f"{cfg.train.epochs} epochs", flush=True)
            run_dir = prepare_run_dir(run_dir, clean=info.is_main)
            ddp.barrier(info)
            return Trainer(cfg, run_dir, files, info, resume=resume).run()
    except BaseException:
        if top_new is not None and info.is_main:
            remove_unfinished_run(run_dir, top_new)
        raise


def set_model_grid(cfg: Any, size: int) -> None:
    """Models whose shapes depend on the grid (``takes_grid``) get ``model.grid`` from the data
    (kept in config.yaml and the checkpoint); a ``model.grid`` given that differs is an error."""
    from pfgraph.errors import PfgraphError
    from pfgraph.models.registry import get

    if not get(cfg.model.arch, cfg.model.repr).takes_grid:
        return
    given = cfg.model.params.get("grid")
    if given is not None and int(given) != size:
        raise PfgraphError(f"model.grid = {given}, but the data is on the {size} x {size} grid "
                           "(the model takes its grid from the data: drop model.grid)")
    cfg.model.params["grid"] = size


def _require_default_dataset(path: Path, sim_preset: str) -> None:
    """One clear line when the train config's default dataset is missing: training never simulates."""
    from pfgraph.errors import DataError

    if not path.exists():
        raise DataError(f"no such file (the train config's default dataset; pass --data, or make it with "
                        f"'pfgraph simulate --config {sim_preset} --out {path}')", path=path)
