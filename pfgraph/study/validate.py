"""Check a whole study before its first step: a bad entry must fail in seconds, not hours late.

:func:`check_study` resolves every dataset's sim config (preset or file, with its overrides) and
every model's run config (model preset or file, representation, the study's train config, its
epochs, seeds, budget and overrides) exactly as the steps will, and builds each model once, so an
unknown model, an unknown sim preset, a path that leaves the study's reach or a bad override is
one line before anything runs (also under ``--dry-run`` and ``--list``). :func:`study_warnings`
says what is legal but probably not meant (a model evaluated on the set it trains on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pfgraph.errors import ConfigError, PfgraphError


def _where(study: Any) -> str:
    return str(study.source or study.cfg.name)


def check_sim_reference(name: str, where: str) -> None:
    """Refuse a dataset's ``sim:`` that climbs out of the current folder (``../../etc/passwd``):
    a study names sim presets, or YAML files beside or below it."""
    if ".." in Path(name).parts:
        raise ConfigError(f"{where}: sim '{name[:200]}': a path with '..' is refused; name a sim preset or a YAML "
                          "file in or below the current folder")


def check_study(study: Any) -> None:
    """Resolve every dataset and model of ``study`` (a :class:`pfgraph.study.runner.Study`) as its
    steps will; one PfgraphError line naming the study file and the entry otherwise."""
    from pfgraph.models.registry import get
    from pfgraph.training.config import flag_sections, resolve_run_config

    cfg = study.cfg
    where = _where(study)
    used = {cfg.train_set(m) for m in cfg.models} | {d for m in cfg.models for d in cfg.eval_sets(m)}
    for ds in cfg.datasets:
        if ds not in used:
            continue
        check_sim_reference(cfg.datasets[ds].sim, f"{where}: datasets: {ds}")
        try:
            study._sim_config(ds)
        except PfgraphError as exc:
            raise ConfigError(f"{where}: datasets: {ds}: {exc}") from None
    built: set[str] = set()
    for m in cfg.models:
        for seed in cfg.seeds(m):
            flags = flag_sections(epochs=cfg.epochs(m), batch_size=cfg.training.batch_size, seed=seed,
                                  device=cfg.training.device, max_events=cfg.training.max_events)
            try:
                run = resolve_run_config(m.model, repr_name=m.repr, train_config=cfg.training.config, flags=flags,
                                         overrides=cfg.overrides(m))
                if m.label not in built:  # bad hyper-parameters fail here, as they would in the step
                    get(run.model.arch, run.model.repr).builder(dict(run.model.params))
                    built.add(m.label)
            except PfgraphError as exc:
                raise ConfigError(f"{where}: models: {m.label}: {exc}") from None
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: models: {m.label}: cannot build the model "
                                  f"({type(exc).__name__}: {str(exc)[:200]})") from None


def study_warnings(study: Any) -> list[str]:
    """Legal settings that are probably a mistake (one line each)."""
    cfg = study.cfg
    out = []
    for m in cfg.models:
        train = cfg.train_set(m)
        if train in cfg.eval_sets(m):
            out.append(f"{_where(study)}: model {m.label} is evaluated on '{train}', the dataset it trains on: its "
                       "figures there measure memory, not generalisation")
    return out
