"""A study as one YAML file: datasets, which one trains, which ones evaluate, models, seeds, budgets.

    name: cpu_b050
    datasets:
      train: {sim: gauss_b050, events: 10000, seed: 2}
      test:  {sim: gauss_b050, events: 1000, seed: 10507}
    train_on: train
    evaluate_on: [test]
    training: {config: default, epochs: 30, seeds: [1, 2, 3], overrides: [train.threads=2]}
    models:
      - analytic                      # a bare name: every default
      - {model: cnn, epochs: 12, overrides: [model.channels=32]}
    evaluation: {bootstrap: 200}
    report_dirs: {test: report}       # optional: a test set's report folder (default reports/<set>)
    resources:                        # optional: what a Snakemake job of each step kind asks for
      train: {threads: 4, mem_mb: 16000, gpus: 1, runtime: 240}

Read with :func:`pfgraph.config.from_dict` (unknown keys are refused with a did-you-mean);
:func:`load_study` returns the typed :class:`StudyConfig`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pfgraph.config import from_dict, read_yaml, resolve_config_path, to_dict
from pfgraph.errors import ConfigError

#: Names that become folder names and step ids: letters, digits, ``_``, ``-``, ``.``.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _check_name(value: str, where: str) -> None:
    if not NAME.match(value):
        raise ConfigError(f"{where}: '{value}' is not a usable name (letters, digits, '_', '-', '.'; "
                          "it names folders and steps)")


def _check_overrides(values: list[str], where: str) -> None:
    for text in values:
        if "=" not in text:
            raise ConfigError(f"{where}: '{text}' is not of the form key=value (e.g. train.threads=2)")


@dataclass
class DatasetSpec:
    """One event file of the study: a sim preset (or YAML file), its size, seed and overrides."""

    sim: str
    events: int | None = None
    seed: int | None = None
    overrides: list[str] = field(default_factory=list)

    def validate(self) -> None:
        """Positive sizes, well-formed overrides."""
        if self.events is not None and self.events <= 0:
            raise ConfigError(f"events = {self.events}: expected a positive number of events")
        _check_overrides(self.overrides, "overrides")


@dataclass
class TrainingDefaults:
    """What every model's training gets unless its own entry says otherwise."""

    config: str = "default"  # train preset (pfgraph/presets/train) or YAML file
    epochs: int = 20  # epoch cap; early stopping (train.early_stop.patience) may end a run before it
    seeds: list[int] = field(default_factory=lambda: [1])
    overrides: list[str] = field(default_factory=list)  # dotted train/data/model settings
    device: str = "auto"
    batch_size: int | None = None
    max_events: int | None = None

    def validate(self) -> None:
        """A non-negative cap, at least one seed, well-formed overrides."""
        if self.epochs < 0:
            raise ConfigError(f"training.epochs = {self.epochs}: expected 0 or more")
        if not self.seeds:
            raise ConfigError("training.seeds: expected at least one seed")
        _check_overrides(self.overrides, "training.overrides")


@dataclass
class ModelSpec:
    """One model of the study: a model preset, registered name or YAML file, and its own budget."""

    model: str
    name: str | None = None  # the model's name in the study (folders, steps); default: the model preset's
    repr: str | None = None
    epochs: int | None = None  # epoch cap (default: training.epochs)
    seeds: list[int] | None = None  # default: training.seeds
    overrides: list[str] = field(default_factory=list)  # after training.overrides (model.<param>=v, train.x=v)
    train_on: str | None = None  # default: the study's train_on
    evaluate_on: list[str] | None = None  # default: the study's evaluate_on

    def validate(self) -> None:
        """A usable name, a non-negative cap, at least one seed."""
        if self.epochs is not None and self.epochs < 0:
            raise ConfigError(f"models: {self.label}: epochs = {self.epochs}: expected 0 or more")
        if self.seeds is not None and not self.seeds:
            raise ConfigError(f"models: {self.label}: seeds: expected at least one seed")
        _check_overrides(self.overrides, f"models: {self.label}: overrides")
        _check_name(self.label, "models")

    @property
    def label(self) -> str:
        """The model's name in the study."""
        return self.name or Path(self.model).stem


@dataclass
class EvaluationSpec:
    """Settings of every evaluation (the fields of :class:`pfgraph.EvaluateSettings` a study sets)."""

    bootstrap: int = 200
    bootstrap_seed: int = 12345
    device: str = "auto"
    batch_size: int = 128
    jet_backend: str = "auto"
    plots: bool = True

    def validate(self) -> None:
        """A non-negative number of bootstrap replicas."""
        if self.bootstrap < 0:
            raise ConfigError(f"evaluation.bootstrap = {self.bootstrap}: expected 0 or more replicas")


#: The step kinds (:mod:`pfgraph.study.plan`), the keys of a study's ``resources``.
STEP_KINDS = ("simulate", "train", "evaluate", "report", "results")


@dataclass
class StepResources:
    """What one job of a step kind asks a batch system for (the rules of ``pfgraph study --snakefile``)."""

    threads: int = 1
    mem_mb: int = 4000
    gpus: int = 0  # train: more than 1 runs the step under torchrun (DDP, one process per GPU)
    runtime: int | None = None  # minutes (Slurm's time limit); None: the cluster's default

    def validate(self) -> None:
        """Positive threads and memory, no negative GPU count or runtime."""
        if self.threads < 1 or self.mem_mb < 1:
            raise ConfigError(f"threads = {self.threads}, mem_mb = {self.mem_mb}: expected positive numbers")
        if self.gpus < 0 or (self.runtime is not None and self.runtime < 1):
            raise ConfigError(f"gpus = {self.gpus}, runtime = {self.runtime}: expected gpus >= 0, runtime >= 1 minute")


#: A step kind's resources when the study names none for it.
DEFAULT_RESOURCES = {"simulate": StepResources(1, 2000), "train": StepResources(2, 8000),
                     "evaluate": StepResources(1, 4000), "report": StepResources(1, 2000),
                     "results": StepResources(1, 2000)}


@dataclass
class StudyConfig:
    """The whole study (see the module docstring)."""

    name: str
    datasets: dict[str, DatasetSpec]
    train_on: str
    evaluate_on: list[str]
    models: list[ModelSpec]
    training: TrainingDefaults = field(default_factory=TrainingDefaults)
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    description: str = ""
    #: Report folder of a test set, relative to the study folder (default ``reports/<dataset>``).
    report_dirs: dict[str, str] = field(default_factory=dict)
    #: Per step kind, what a Snakemake job asks for (default :data:`DEFAULT_RESOURCES`).
    resources: dict[str, StepResources] = field(default_factory=dict)

    def validate(self) -> None:
        """Every name used is defined, and no two models share a name."""
        _check_name(self.name, "name")
        for ds in self.datasets:
            _check_name(ds, "datasets")
        if not self.models:
            raise ConfigError("models: expected at least one model")
        seen: set[str] = set()
        for m in self.models:
            if m.label in seen:
                raise ConfigError(f"models: '{m.label}' appears twice; give one of them another name (name: ...)")
            seen.add(m.label)
        for m in [None, *self.models]:
            train = self.train_on if m is None or m.train_on is None else m.train_on
            evals = self.evaluate_on if m is None or m.evaluate_on is None else m.evaluate_on
            where = "" if m is None else f"models: {m.label}: "
            for ds, key in [(train, "train_on"), *((e, "evaluate_on") for e in evals)]:
                if ds not in self.datasets:
                    raise ConfigError(f"{where}{key}: no dataset '{ds}'"
                                      f"{_did_you_mean(ds, self.datasets)}; datasets: {', '.join(self.datasets)}")
        for kind, res in self.resources.items():
            if kind not in STEP_KINDS:
                raise ConfigError(f"resources: no step kind '{kind}'{_did_you_mean(kind, STEP_KINDS)}; "
                                  f"kinds: {', '.join(STEP_KINDS)}")
            if res.gpus and kind not in ("train", "evaluate"):
                raise ConfigError(f"resources: {kind}: gpus = {res.gpus}: only train and evaluate steps use a GPU")
        evaluated = {ds for m in self.models for ds in self.eval_sets(m)}
        for ds, folder in self.report_dirs.items():
            if ds not in evaluated:
                raise ConfigError(f"report_dirs: no evaluated dataset '{ds}'{_did_you_mean(ds, evaluated)}; "
                                  f"evaluated: {', '.join(sorted(evaluated))}")
            rel = Path(folder)
            if not folder or rel.is_absolute() or ".." in rel.parts or rel.parts[0] in ("data", "runs", "evals", "steps"):
                raise ConfigError(f"report_dirs: {ds}: '{folder}' must be a new folder inside the study folder "
                                  "(relative, no '..', not data/, runs/, evals/ or steps/)")

    def step_resources(self, kind: str) -> StepResources:
        """What a job of step kind ``kind`` asks for."""
        return self.resources.get(kind, DEFAULT_RESOURCES[kind])

    def train_set(self, m: ModelSpec) -> str:
        """The dataset ``m`` trains on."""
        return m.train_on or self.train_on

    def eval_sets(self, m: ModelSpec) -> list[str]:
        """The datasets ``m`` is evaluated on."""
        return list(self.evaluate_on if m.evaluate_on is None else m.evaluate_on)

    def seeds(self, m: ModelSpec) -> list[int]:
        """The training seeds of ``m``."""
        return list(self.training.seeds if m.seeds is None else m.seeds)

    def epochs(self, m: ModelSpec) -> int:
        """The epoch cap of ``m``."""
        return self.training.epochs if m.epochs is None else m.epochs

    def overrides(self, m: ModelSpec) -> list[str]:
        """Training overrides of ``m``: the study's, then its own (later ones win)."""
        return [*self.training.overrides, *m.overrides]

    def model(self, label: str) -> ModelSpec:
        """The model named ``label`` in the study."""
        for m in self.models:
            if m.label == label:
                return m
        raise ConfigError(f"no model '{label}' in study {self.name}{_did_you_mean(label, [m.label for m in self.models])}")


def _did_you_mean(key: str, valid: Any) -> str:
    from pfgraph.config import did_you_mean

    return did_you_mean(key, list(valid))


def study_from_dict(data: dict[str, Any], where: str = "") -> StudyConfig:
    """The typed study from a mapping (a model given as a bare name becomes ``{model: name}``)."""
    data = dict(data)
    models = data.get("models")
    if isinstance(models, list):
        data["models"] = [{"model": m} if isinstance(m, str) else m for m in models]
    try:
        return from_dict(StudyConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None


def load_study(name: str | Path) -> tuple[StudyConfig, Path]:
    """The study file or preset ``name`` (``pfgraph/presets/study/<name>.yaml``) as (config, its path)."""
    path = resolve_config_path(name, "study")
    return study_from_dict(read_yaml(path), str(path)), path


def study_to_dict(cfg: StudyConfig) -> dict[str, Any]:
    """The resolved study as plain data (what ``study.yaml`` in the output folder holds)."""
    return to_dict(cfg)
