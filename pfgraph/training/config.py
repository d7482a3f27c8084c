"""The run configuration of ``pfgraph train``: model, training and data sections.

A run's config is assembled from the model preset (``pfgraph/presets/model/<name>.yaml``), the train
preset (``pfgraph/presets/train/<name>.yaml``, sections ``train``, ``data`` and optionally ``model``
overrides), the command-line flags and dotted ``key=value`` overrides, then validated. The
fully resolved config is saved beside every checkpoint (``config.yaml``) and inside it.

Model presets: the reserved key ``name`` is the registered architecture (default: the file's
name), ``description`` a free text; every other key is a hyper-parameter of the builder. A
preset whose file name differs from its ``name`` is a variant (``unet_attn_plus`` ->
``unet_attn``). In overrides ``model.<param>=v`` is short for ``model.params.<param>=v``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pfgraph.config import (
    apply_overrides,
    did_you_mean,
    from_dict,
    parse_override,
    read_yaml,
    to_dict,
)
from pfgraph.errors import ConfigError


@dataclass
class SchedulerConfig:
    """The learning-rate schedule.

    ``plateau`` (default): ReduceLROnPlateau on the validation loss (``factor``, ``patience``,
    ``threshold``, ``min_lr``). ``cosine``: a linear warm-up over ``warmup_epochs`` epochs, then
    cosine annealing from ``train.lr`` to ``min_lr`` over the rest of the epoch cap
    (``train.epochs``), stepped once per epoch.
    """

    kind: Literal["plateau", "cosine"] = "plateau"
    factor: float = 0.5
    patience: int = 2
    threshold: float = 1e-4
    min_lr: float = 1e-6
    warmup_epochs: int = 0

    def validate(self) -> None:
        """Check values."""
        if not 0 < self.factor < 1:
            raise ConfigError(f"train.scheduler.factor = {self.factor}: expected 0 < factor < 1")
        if self.patience < 0 or self.min_lr < 0:
            raise ConfigError("train.scheduler: patience and min_lr must be >= 0")
        if self.warmup_epochs < 0:
            raise ConfigError(f"train.scheduler.warmup_epochs = {self.warmup_epochs}: expected 0 or more")


@dataclass
class EarlyStopConfig:
    """Stop when the validation loss has not improved by ``min_delta`` for ``patience`` epochs (0 = off)."""

    patience: int = 6
    min_delta: float = 0.0

    def validate(self) -> None:
        """Check values."""
        if self.patience < 0 or self.min_delta < 0:
            raise ConfigError("train.early_stop: patience and min_delta must be >= 0")


@dataclass
class TrainConfig:
    """Optimisation settings."""

    epochs: int = 20
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    loss: Literal["mse", "l1", "huber", "log_mse", "rel_huber", "mixed_mse"] = "mse"
    huber_delta: float = 0.01
    #: ``rel_huber`` (:mod:`pfgraph.training.losses`): Huber (``rel_delta``) on log((E_pred + eps) / (E_true + eps))
    #: with eps = ``rel_eps_gev`` GeV, computed in GeV (the same loss for every S); on empty target pixels
    #: (the fake-energy penalty, log(1 + E_pred / eps)) weighted by ``empty_weight``.
    rel_eps_gev: float = 0.02
    rel_delta: float = 0.1
    empty_weight: float = 0.05
    #: A term on cone sums (:class:`pfgraph.training.losses.ConeSumLoss`), added to any loss with weight
    #: ``cone_weight`` (0: off): Huber (``rel_delta``) on log((P + eps) / (T + eps)) of the predicted and
    #: true energy summed in the cone of radius ``cone_radius`` (eta-phi) around every pixel whose true
    #: cone holds at least ``cone_min_gev`` GeV, on the grid (point-cloud outputs scattered to it first).
    cone_weight: float = 0.0
    cone_radius: float = 0.4
    cone_min_gev: float = 5.0
    #: ``mixed_mse`` (:mod:`pfgraph.training.paper_losses`, the paper's v2 loss, image models only):
    #: ``wmse_weight`` x the truth-energy-weighted MSE + ``ssim_weight`` x (1 - SSIM), the authors' 1 and 0.05.
    wmse_weight: float = 1.0
    ssim_weight: float = 0.05
    #: ``log_mse``: squared difference of log(1 + E / log_eps), E the normalised energy (0.005 ~ 0.1 GeV
    #: for S ~ 20 GeV): every energy scale weighs alike, as in the relative residual r.
    log_eps: float = 0.005
    #: Per-element loss weights on the target's energy (DESIGN deviation, issue 15): ``none``, or
    #: ``flat_log``: every bin of log E (``reweight_bins_per_decade``) of the training targets'
    #: non-zero values carries the same total weight (each weight at most ``reweight_max``; empty
    #: targets weigh 1), as single-particle calibrations are derived from spectra flat in log E, so
    #: the model estimates the energy without the training spectrum's prior pulling it down.
    reweight: Literal["none", "flat_log"] = "none"
    reweight_bins_per_decade: int = 10
    reweight_max: float = 1000.0
    grad_clip: float = 0.0
    seed: int = 1
    device: str = "auto"
    amp: bool = True
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"
    #: Training precision (:mod:`pfgraph.training.precision`): ``fp32``, ``bf16`` (autocast forward,
    #: fp32 weights, loss and optimiser state) or ``auto`` (bf16 where the CPU or GPU computes it
    #: natively, except recurrent models; else fp32).
    precision: Literal["fp32", "bf16", "auto"] = "auto"
    #: Precision of the per-epoch validation: ``fp32`` or ``train`` (the run's training precision).
    eval_precision: Literal["fp32", "train"] = "fp32"
    #: Channels-last memory layout for models whose convolutions are all 2-D (image models).
    channels_last: bool = True
    num_workers: int = 0
    #: torch intra-op CPU threads (0 = torch's default, one per core).
    threads: int = 0
    #: The paper's progressive volume increase: training-set sizes of the first stages, each
    #: ``stage_epochs`` long; afterwards the full training split. Empty = full from the start.
    schedule: list[int] = field(default_factory=list)
    stage_epochs: int = 1
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    early_stop: EarlyStopConfig = field(default_factory=EarlyStopConfig)

    def validate(self) -> None:
        """Check values."""
        if self.epochs < 0:
            raise ConfigError(f"train.epochs = {self.epochs}: expected 0 or more")
        if self.batch_size <= 0 or self.eval_batch_size <= 0:
            raise ConfigError("train.batch_size and train.eval_batch_size must be positive")
        if self.lr <= 0:
            raise ConfigError(f"train.lr = {self.lr}: expected a positive learning rate")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.huber_delta <= 0 or self.log_eps <= 0:
            raise ConfigError("train: weight_decay and grad_clip must be >= 0, huber_delta and log_eps > 0")
        if not (self.cone_weight >= 0 and self.cone_radius > 0 and self.cone_min_gev > 0):
            raise ConfigError(f"train: cone_weight = {self.cone_weight} must be >= 0, cone_radius = "
                              f"{self.cone_radius} and cone_min_gev = {self.cone_min_gev} > 0")
        if not (self.rel_eps_gev > 0 and self.rel_delta > 0 and self.empty_weight >= 0):
            raise ConfigError(f"train: rel_eps_gev = {self.rel_eps_gev} and rel_delta = {self.rel_delta} must be > 0, "
                              f"empty_weight = {self.empty_weight} >= 0")
        if not (self.wmse_weight >= 0 and self.ssim_weight >= 0 and self.wmse_weight + self.ssim_weight > 0):
            raise ConfigError(f"train: wmse_weight = {self.wmse_weight} and ssim_weight = {self.ssim_weight} must be "
                              ">= 0 and not both 0")
        if self.loss == "mixed_mse" and self.reweight != "none":
            raise ConfigError(f"train.loss=mixed_mse is a per-event loss (weighted MSE + SSIM): it takes no element "
                              f"weights (train.reweight={self.reweight}); use train.reweight=none")
        if self.num_workers < 0:
            raise ConfigError(f"train.num_workers = {self.num_workers}: expected 0 or more")
        if self.reweight_bins_per_decade <= 0 or not self.reweight_max >= 1.0:
            raise ConfigError(f"train.reweight_bins_per_decade = {self.reweight_bins_per_decade}, reweight_max = "
                              f"{self.reweight_max}: expected a positive number of bins and a maximum weight >= 1")
        if self.threads < 0:
            raise ConfigError(f"train.threads = {self.threads}: expected 0 (torch default) or more")
        if any(n <= 0 for n in self.schedule):
            raise ConfigError(f"train.schedule = {self.schedule}: expected positive training-set sizes")
        if self.stage_epochs <= 0:
            raise ConfigError(f"train.stage_epochs = {self.stage_epochs}: expected a positive number")
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ConfigError(f"train.device = '{dev}': expected auto, cpu, cuda or cuda:N")


@dataclass
class DataConfig:
    """Which events, which target, how they are split."""

    paths: list[str] = field(default_factory=list)
    default: str = "data/b050.root"
    simulate: str = "gauss_b050"
    max_events: int | None = None
    target: Literal["truth", "truth_neutral"] = "truth"
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    split_seed: int = 12345
    memory_budget_gb: float = 8.0

    def validate(self) -> None:
        """Check values."""
        if self.max_events is not None and self.max_events <= 0:
            raise ConfigError(f"data.max_events = {self.max_events}: expected a positive number of events")
        if len(self.split) != 3 or any(f < 0 for f in self.split) or abs(sum(self.split) - 1.0) > 1e-6:
            raise ConfigError(f"data.split = {self.split}: expected three fractions (train, val, test) summing to 1")
        if self.memory_budget_gb <= 0:
            raise ConfigError(f"data.memory_budget_gb = {self.memory_budget_gb}: expected a positive number")

    def representation_options(self) -> dict[str, Any]:
        """The options every representation's constructor takes (:class:`~pfgraph.repr.base.Representation`)."""
        return {"memory_budget_gb": self.memory_budget_gb}


@dataclass
class ModelSection:
    """The model: preset name, registered architecture, representation, hyper-parameters."""

    name: str = ""
    arch: str = ""
    repr: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunConfig:
    """Everything a training run depends on."""

    model: ModelSection = field(default_factory=ModelSection)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def validate(self) -> None:
        """Check what involves more than one section: a loss the representation cannot take."""
        if self.train.loss == "mixed_mse" and self.model.repr and self.model.repr != "image":
            raise ConfigError(f"train.loss=mixed_mse (weighted MSE + SSIM) needs images: model '{self.model.name}' "
                              f"uses the '{self.model.repr}' representation (use another train.loss)")


_MODEL_KEYS = ("name", "arch", "repr", "params")
_SECTIONS = ("model", "train", "data")


def load_model_section(model: str, repr_name: str | None = None) -> ModelSection:
    """The model section for ``--model`` (a preset name, a YAML file, or a registered name;
    :func:`pfgraph.models.registry.resolve`)."""
    from pfgraph.models.registry import resolve

    return ModelSection(*resolve(model, repr_name))


def normalise_overrides(overrides: Iterable[str]) -> list[str]:
    """Rewrite ``model.<param>=v`` to ``model.params.<param>=v``; a clear hint for a missing section."""
    out = []
    train_keys = set(TrainConfig.__dataclass_fields__)
    data_keys = set(DataConfig.__dataclass_fields__)
    for text in overrides:
        keys, _ = parse_override(text)
        head = keys[0]
        if head not in _SECTIONS:
            if head in train_keys or head in data_keys:
                section = "train" if head in train_keys else "data"
                raise ConfigError(f"override '{text}': did you mean '{section}.{text}'?")
            raise ConfigError(f"override '{text}': unknown section '{head}'{did_you_mean(head, _SECTIONS)}; "
                              "use model.<param>=, train.<key>= or data.<key>=")
        if head == "model" and len(keys) > 1 and keys[1] not in _MODEL_KEYS:
            text = "model.params." + text.split(".", 1)[1]
        out.append(text)
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into ``base`` (in place); returns ``base``."""
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def _apply_sections(config: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Merge sections ``train``/``data``/``model`` into a config dict (in place). A ``model`` section
    holds hyper-parameters (the ``model.<param>`` shorthand of presets, as of overrides) unless it
    names the section's own keys (``params``, ``name``, ``arch``, ``repr``)."""
    extra = dict(extra)
    model = extra.pop("model", None) or {}
    if model:
        section = config.setdefault("model", {})
        if set(model) & set(_MODEL_KEYS):
            _merge(section, model)
        else:
            _merge(section.setdefault("params", {}), model)
    return _merge(config, extra)


def train_preset_data(train_config: str | Path) -> dict[str, Any]:
    """The train preset as a dict with sections ``train``, ``data`` and optional ``model`` params."""
    from pfgraph.config import resolve_config_path

    data = read_yaml(resolve_config_path(train_config, "train"))
    for key in data:
        if key not in _SECTIONS:
            raise ConfigError(f"train config: unknown section '{key}'{did_you_mean(str(key), _SECTIONS)}; "
                              "expected train, data and optionally model")
    return data


def build_run_config(model: ModelSection, train_data: Mapping[str, Any], overrides: Iterable[str]) -> RunConfig:
    """Model section + train preset data + overrides -> validated :class:`RunConfig`."""
    data: dict[str, Any] = _apply_sections({"model": to_dict(model), "train": {}, "data": {}}, train_data)
    apply_overrides(data, normalise_overrides(overrides))
    return from_dict(RunConfig, data)


def run_config_from_dict(data: Mapping[str, Any], overrides: Iterable[str] = ()) -> RunConfig:
    """A saved resolved config (plus overrides) -> :class:`RunConfig`."""
    data = copy.deepcopy(dict(data))
    apply_overrides(data, normalise_overrides(overrides))
    return from_dict(RunConfig, data)


def flag_sections(*, epochs: int | None = None, batch_size: int | None = None, seed: int | None = None,
                  device: str | None = None, max_events: int | None = None,
                  data: Sequence[str | Path] | None = None) -> dict[str, Any]:
    """The config sections set by the stage's keyword arguments (the command line's flags); None = unset."""
    train = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed), ("device", device))
             if v is not None}
    data_section: dict[str, Any] = {}
    if max_events is not None:
        data_section["max_events"] = max_events
    if data:
        data_section["paths"] = [str(d) for d in data]
    return {k: v for k, v in (("train", train), ("data", data_section)) if v}


def resolve_run_config(model: str, *, repr_name: str | None = None, train_config: str | Path | None = None,
                       flags: Mapping[str, Any] | None = None, overrides: Iterable[str] = (),
                       resume: Mapping[str, Any] | None = None, where: str | Path = "",
                       checkpoint: str | Path = "") -> RunConfig:
    """THE resolver of a run's config: model preset, train preset, the model preset's own ``train``
    section (e.g. the residual models' loss), flags and overrides, in that order; for a resumed run,
    the checkpoint's saved config takes the presets' place.

    ``model`` is a preset name, a YAML file or a registered model; ``train_config`` a train preset
    or file (``default`` for a new run, nothing for a resumed one); ``flags`` the sections of
    :func:`flag_sections`; ``resume`` the checkpoint (file ``checkpoint``) of the run folder ``where``. A resumed run may
    change only :data:`RESUMABLE_KEYS`; anything else, another model, or a checkpoint without a
    config -> one ConfigError line naming ``where``.
    """
    from pfgraph.models.registry import preset_train_section

    section = load_model_section(model, repr_name)
    flags = flags or {}
    overrides = list(overrides)
    if resume is None:
        base = _apply_sections({"model": to_dict(section), "train": {}, "data": {}},
                               train_preset_data(train_config or "default"))
        _apply_sections(base, {"train": preset_train_section(model)})  # the model's own train defaults
        _apply_sections(base, flags)
        apply_overrides(base, normalise_overrides(overrides))
        return from_dict(RunConfig, base)
    if resume.get("model_name") != section.name or resume.get("repr") != section.repr:
        raise ConfigError(
            f"{where}: holds a checkpoint of model '{resume.get('model_name')}' ({resume.get('repr')}), not "
            f"'{section.name}' ({section.repr}); choose another --out or the same --model")
    saved = resume.get("config")
    if not isinstance(saved, dict):
        raise ConfigError(f"{checkpoint or where}: checkpoint has no run config (incomplete or not written by pfgraph train)")
    try:
        run_config_from_dict(saved)
    except ConfigError as exc:
        raise ConfigError(f"{checkpoint or where}: its run config does not fit this pfgraph: {exc}") from None
    base = copy.deepcopy(saved)
    if train_config:  # a train preset named again: the model's own train defaults over it, as for a new run
        _apply_sections(base, train_preset_data(train_config))
        _apply_sections(base, {"train": preset_train_section(model)})
    _apply_sections(base, flags)
    cfg = run_config_from_dict(base, overrides)
    # a setting this pfgraph has and the run's pfgraph had not is no change while it keeps its default
    defaults = to_dict(run_config_from_dict(copy.deepcopy(saved)))
    changed = [(k, a, b) for k, a, b in config_differences(saved, to_dict(cfg))
               if not any(k == r or k.startswith(r + ".") for r in RESUMABLE_KEYS)
               and not (_missing(saved, k) and b == _dotted(defaults, k))]
    if changed:
        key, old, new = changed[0]
        raise ConfigError(f"{where}: cannot resume with {key}={new!r} (the run was started with {old!r}); "
                          "keep the run's settings or choose another --out")
    return cfg


#: Keys that may change when a run is resumed (everything else must match the checkpoint).
RESUMABLE_KEYS = ("train.epochs", "train.device", "train.num_workers", "train.threads", "train.amp", "train.amp_dtype",
                  "train.precision", "train.eval_precision", "train.channels_last",
                  "train.eval_batch_size", "train.early_stop.patience", "train.early_stop.min_delta",
                  "data.paths", "data.default", "data.simulate", "data.memory_budget_gb")


def _dotted(doc: Mapping[str, Any], key: str) -> Any:
    for part in key.split("."):
        doc = doc.get(part) if isinstance(doc, Mapping) else None
    return doc


def _missing(doc: Mapping[str, Any], key: str) -> bool:
    *parents, last = key.split(".")
    for part in parents:
        doc = doc.get(part) if isinstance(doc, Mapping) else None
    return not isinstance(doc, Mapping) or last not in doc


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Dotted keys whose values differ between two resolved configs."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(config_differences(a, b, name + "."))
        elif a != b:
            out.append((name, a, b))
    return out

