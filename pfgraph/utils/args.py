"""Arguments of the public Python functions (``pfgraph.simulate``, ``train``, ``evaluate``, ``report``):
a wrong type is one :class:`~pfgraph.errors.PfgraphError` line naming the function and the argument,
never a raw TypeError deep inside (or a string of overrides read one character at a time)."""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Sequence
from typing import Any

from pfgraph.errors import PfgraphError, quote

#: What "a path" may be.
PATH_TYPES = (str, os.PathLike)


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {quote(value, 60)}"


def check_type(func: str, name: str, value: Any, kinds: tuple[type, ...], expected: str,
               optional: bool = False) -> None:
    """Refuse ``value`` unless it is an instance of ``kinds`` (bool never counts as a number)."""
    if value is None and optional:
        return
    numeric = any(k in (int, float) for k in kinds)
    if isinstance(value, kinds) and not (numeric and isinstance(value, bool) and bool not in kinds):
        return
    raise PfgraphError(f"{func}: argument '{name}' expects {expected}, got {_describe(value)}")


def check_path(func: str, name: str, value: Any, optional: bool = False) -> None:
    """A file or folder path (str or os.PathLike)."""
    check_type(func, name, value, PATH_TYPES, "a path (str or pathlib.Path)", optional)


def check_paths(func: str, name: str, value: Any, optional: bool = False) -> None:
    """A path or a list of paths."""
    if value is None and optional:
        return
    if isinstance(value, PATH_TYPES):
        return
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and value and all(
            isinstance(v, PATH_TYPES) for v in value):
        return
    raise PfgraphError(f"{func}: argument '{name}' expects a path or a non-empty list of paths, got {_describe(value)}")


def check_overrides(func: str, value: Any, name: str = "overrides") -> list[str]:
    """A list of ``key=value`` strings; a single string is refused (it would be read character by character)."""
    if isinstance(value, str):
        raise PfgraphError(f"{func}: argument '{name}' expects a list of key=value strings, got the string "
                           f"{quote(value, 60)} (write [{quote(value, 60)}])")
    if value is None:
        return []
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise PfgraphError(f"{func}: argument '{name}' expects a list of key=value strings, got {_describe(value)}")
    return list(value)


def _matches(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is not None:
        return isinstance(value, origin)
    return isinstance(value, tp) if isinstance(tp, type) else True


def check_fields(obj: Any, func: str) -> None:
    """Every field of the dataclass ``obj`` has its annotated type (one line naming the first that has not)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if not _matches(value, hints[f.name]):
            tp = hints[f.name]
            expected = getattr(tp, "__name__", None) or str(tp).replace("typing.", "").replace("NoneType", "None")
            raise PfgraphError(f"{func}: argument '{f.name}' expects {expected}, got {_describe(value)}")
