"""The model registry: ``@register("unet_attn", repr="image")`` on a builder.

A builder takes the model config (a plain dict from ``pfgraph/presets/model/<name>.yaml`` after
overrides) and returns a ``torch.nn.Module``. Modules listed in :data:`MODEL_MODULES` are
imported on first use, so ``pfgraph models`` sees every model.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pfgraph.errors import PfgraphError

#: Modules that register models when imported.
MODEL_MODULES = (
    "pfgraph.models.mlp",
    "pfgraph.models.cnn",
    "pfgraph.models.cnn3d",
    "pfgraph.models.cnn_attn",
    "pfgraph.models.unet",
    "pfgraph.models.rnn",
    "pfgraph.models.edgeconv",
    "pfgraph.models.pfn",
    "pfgraph.models.analytic",
    "pfgraph.models.calibrated",
    "pfgraph.models.residual",
)


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its name, representation, builder and one-line description."""

    name: str
    repr: str
    builder: Callable[[Mapping[str, Any]], Any]
    description: str
    trainable: bool = True
    #: The builder's config has a ``grid`` key (the grid size G) that the trainer fills from the data.
    takes_grid: bool = False


_REGISTRY: dict[str, ModelEntry] = {}
_LOADED = False


def register(name: str, repr: str, description: str = "", trainable: bool = True,
             takes_grid: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``builder(config) -> nn.Module`` under ``name`` for the representation
    ``repr`` (a name of :mod:`pfgraph.repr.registry`: register a new representation before its models).
    ``takes_grid``: the config has a ``grid`` key (grid size) the trainer sets from the training data."""
    from pfgraph.repr.registry import names

    if repr not in names():
        raise ValueError(f"unknown representation {repr!r}; known: {', '.join(names())}")

    def deco(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name].builder is not builder:
            raise ValueError(f"model {name!r} registered twice")
        doc = description or (builder.__doc__ or "").strip().splitlines()[0] if (description or builder.__doc__) else ""
        _REGISTRY[name] = ModelEntry(name, repr, builder, doc, trainable, takes_grid)
        return builder

    return deco


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    for mod in MODEL_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # a real missing dependency, not a module still to be written
                raise
    _LOADED = True


def available() -> dict[str, ModelEntry]:
    """All registered models, by name."""
    _load_all()
    return dict(sorted(_REGISTRY.items()))


class ModelChoice(NamedTuple):
    """What ``--model`` names: the label (preset, file stem or model name), the registered
    architecture, its representation and the hyper-parameters (the preset's keys but ``name`` and
    ``description``)."""

    name: str
    arch: str
    repr: str
    params: dict[str, Any]


def resolve(model: str, repr: str | None = None) -> ModelChoice:
    """Resolve ``--model``: a YAML file, a model preset (:mod:`pfgraph.presets`) or a registered name.

    In a preset or file the reserved key ``name`` is the registered architecture (default: the
    file's name); a preset whose file name differs is a variant (``unet_attn_plus`` -> ``unet_attn``).
    One clear error line for a missing file, an unknown name (with a did-you-mean) or a
    representation mismatch.
    """
    from pfgraph import presets
    from pfgraph.config import did_you_mean, looks_like_path, read_yaml
    from pfgraph.errors import ConfigError

    model_presets = presets.paths("model")
    path = Path(model)
    if looks_like_path(model):  # a path must be a file: never the preset of the same name
        if not path.is_file():
            raise ConfigError(f"{model}: no such model config file" + (
                f"; or the model preset '{path.stem}' (write --model {path.stem})" if path.stem in model_presets else ""))
        data, label = read_yaml(path), path.stem
    elif model in model_presets:
        data, label = read_yaml(model_presets[model]), model
    elif model in available():
        data, label = {}, model
    else:
        names = sorted(set(available()) | set(model_presets))
        raise ConfigError(f"unknown model '{model}'{did_you_mean(model, names)}; valid models: {', '.join(names)}")
    data = dict(data)
    arch = str(data.pop("name", label))
    data.pop("description", None)
    data.pop(TRAIN_KEY, None)
    entry = get(arch, repr)
    return ModelChoice(name=label, arch=arch, repr=entry.repr, params=data)


#: Reserved key of a model preset (or file): the ``train`` settings the model trains with by default
#: (e.g. its loss), applied over the train preset and under flags and overrides.
TRAIN_KEY = "train"


def preset_train_section(model: str) -> dict[str, Any]:
    """The ``train`` section of the model preset or file ``model`` names ({} for a registered name
    or a preset without one); one clear error line if it is not a mapping."""
    from pfgraph import presets
    from pfgraph.config import looks_like_path, read_yaml
    from pfgraph.errors import ConfigError

    model_presets = presets.paths("model")
    if looks_like_path(model) and Path(model).is_file():
        data, where = read_yaml(Path(model)), model
    elif model in model_presets:
        data, where = read_yaml(model_presets[model]), str(model_presets[model])
    else:
        return {}
    section = data.get(TRAIN_KEY) or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{where}: '{TRAIN_KEY}' must be a mapping of train settings (e.g. loss: rel_huber)")
    return dict(section)


def get(name: str, repr: str | None = None) -> ModelEntry:
    """The entry of ``name``; a clear error listing valid names, or on a representation mismatch."""
    models = available()
    if name not in models:
        close = difflib.get_close_matches(name, list(models), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise PfgraphError(f"unknown model '{name}'{hint}; valid models: {', '.join(models)}")
    entry = models[name]
    if repr is not None and repr != entry.repr:
        from pfgraph.repr.registry import representation_class

        representation_class(repr)  # an unknown name: one line listing the valid ones
        raise PfgraphError(
            f"model '{name}' uses the '{entry.repr}' representation, not '{repr}' (use --repr {entry.repr})"
        )
    return entry
