"""The model registry: ``@register("unet_attn", repr="image")`` on a builder.

A builder takes the model config (a plain dict from ``configs/model/<name>.yaml`` after
overrides) and returns a ``torch.nn.Module``. Modules listed in :data:`MODEL_MODULES` are
imported on first use, so ``pfgraph models`` sees every model.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pfgraph.errors import PfgraphError

#: Modules that register models when imported.
MODEL_MODULES = (
    "pfgraph.models.mlp",
    "pfgraph.models.cnn",
    "pfgraph.models.unet",
    "pfgraph.models.rnn",
    "pfgraph.models.edgeconv",
    "pfgraph.models.pfn",
    "pfgraph.models.analytic",
    "pfgraph.models.calibrated",
)


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its name, representation, builder and one-line description."""

    name: str
    repr: str
    builder: Callable[[Mapping[str, Any]], Any]
    description: str
    trainable: bool = True


_REGISTRY: dict[str, ModelEntry] = {}
_LOADED = False


def register(name: str, repr: str, description: str = "", trainable: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``builder(config) -> nn.Module`` under ``name`` for the representation
    ``repr`` (a name of :mod:`pfgraph.repr.registry`: register a new representation before its models)."""
    from pfgraph.repr.registry import names

    if repr not in names():
        raise ValueError(f"unknown representation {repr!r}; known: {', '.join(names())}")

    def deco(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name].builder is not builder:
            raise ValueError(f"model {name!r} registered twice")
        doc = description or (builder.__doc__ or "").strip().splitlines()[0] if (description or builder.__doc__) else ""
        _REGISTRY[name] = ModelEntry(name, repr, builder, doc, trainable)
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
