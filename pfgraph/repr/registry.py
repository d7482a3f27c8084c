"""The representation registry: ``@register_representation("image")`` on a Representation class.

A representation turns event files into model inputs and model outputs back into the G x G
truth grid (:class:`~pfgraph.repr.base.Representation`). The built-in ones live in the modules
of :data:`BUILTIN` and are imported on first use; a new one needs only its own module and one
``@register_representation("name")`` on its class (import the module before using the name).
Everything that depends on the representation (the trainer, prediction, the evaluation,
``pfgraph train --repr``, the model registry) asks this registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pfgraph.config import did_you_mean
from pfgraph.errors import PfgraphError

if TYPE_CHECKING:
    from pfgraph.repr.base import Representation

#: Built-in representations and the modules that register them (imported lazily).
BUILTIN = {"image": "pfgraph.repr.image", "graph": "pfgraph.repr.graph"}

_REGISTRY: dict[str, type] = {}
C = TypeVar("C", bound=type)


def register_representation(name: str) -> Callable[[C], C]:
    """Class decorator registering a :class:`~pfgraph.repr.base.Representation` subclass under ``name``."""

    def deco(cls: C) -> C:
        from pfgraph.repr.base import Representation

        if not (isinstance(cls, type) and issubclass(cls, Representation)):
            raise TypeError(f"representation '{name}': {cls!r} is not a Representation subclass")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"representation '{name}' registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def names() -> list[str]:
    """Every known representation name (built-in ones without importing them, then registered ones)."""
    return [*BUILTIN, *sorted(n for n in _REGISTRY if n not in BUILTIN)]


def representation_class(name: str) -> type[Representation]:
    """The registered class of ``name`` (its module imported on first use); one clear error otherwise."""
    if name not in _REGISTRY and name in BUILTIN:
        try:
            importlib.import_module(BUILTIN[name])
        except ModuleNotFoundError as exc:
            if exc.name != BUILTIN[name]:
                raise
            raise PfgraphError(f"representation '{name}' is not available in this installation") from None
        if name not in _REGISTRY:
            raise PfgraphError(f"module {BUILTIN[name]} registers no '{name}' representation")
    if name not in _REGISTRY:
        raise PfgraphError(f"unknown representation '{name}'{did_you_mean(name, names())}; "
                           f"valid: {', '.join(names())}")
    return _REGISTRY[name]


def get_representation(name: str, **options: Any) -> Representation:
    """An instance of the representation ``name``; ``options`` (the data config's
    :meth:`~pfgraph.training.config.DataConfig.representation_options`) go to its constructor."""
    return representation_class(name)(**options)
