"""Typed configuration: dataclass schemas, YAML presets, dotted ``key=value`` overrides.

Every config is a (nested) dataclass. :func:`load_config` reads a YAML preset with
``yaml.safe_load``, applies overrides such as ``detector.b_field=0.5``, rejects unknown keys
with a did-you-mean, checks types, runs each dataclass's ``validate()`` and returns the typed
object. :func:`to_dict` gives the fully resolved config, which is stored in every output.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pfgraph import presets
from pfgraph.errors import ConfigError, quote

T = TypeVar("T")


def did_you_mean(key: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``valid`` to ``key``, '' when none is close."""
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check (and gently coerce) ``value`` against the annotation ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {quote(value)}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(
                f"{where}: {quote(value)} is not one of {', '.join(repr(a) for a in args)}"
                + (did_you_mean(str(value)[:200], [str(a) for a in args]))
            )
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {quote(value)}")
        inner = args[0] if args else Any
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {quote(value)}")
        inner = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, inner, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a section (mapping), got {quote(value)}")
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {quote(value)}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {quote(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {quote(value)}")
        try:
            number = float(value)
        except OverflowError:
            raise ConfigError(f"{where}: {quote(value, 40)} is too large for a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"{where}: {number} is not a finite number")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {quote(value)}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {quote(value)}")
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {quote(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            name = f"{where}.{key}" if where else str(key)
            raise ConfigError(f"unknown config key '{name}'{did_you_mean(str(key), fields)}")
    missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        names = ", ".join(f"'{where}.{n}'" if where else f"'{n}'" for n in missing)
        raise ConfigError(f"missing config key{'s' if len(missing) > 1 else ''} {names}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(value, hints[name], f"{where}.{name}" if where else name)
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """The fully resolved config as plain YAML/JSON-able data."""
    return dataclasses.asdict(obj)


_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into (["a","b","c"], value) with YAML value typing."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form key=value (e.g. detector.b_field=0.5)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = load_yaml(raw, f"override '{key}'") if raw.strip() else ""
    except ConfigError as exc:
        if "aliases expand" in str(exc) or "duplicate key" in str(exc):
            raise
        value = raw
    if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 5e-4 (no dot) as a string; on the command line it is a number
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply dotted overrides to a nested dict (in place) and return it."""
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            child = node.get(k)
            if child is None:
                child = {}
                node[k] = child
            if not isinstance(child, dict):
                raise ConfigError(f"override '{text}': '{k}' is not a section")
            node = child
        node[keys[-1]] = value
    return data


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _deep_merge(base[k], v)
        else:
            base[k] = v
    return base


#: The most values (scalars, lists, mappings) a YAML document may hold once its aliases are
#: expanded: a 900-byte file of nested aliases can otherwise stand for gigabytes.
MAX_YAML_NODES = 100_000


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys and alias bombs (:func:`load_yaml`)."""


def _no_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.setdefault(key, key_node)
        except TypeError:  # an unhashable key: the base constructor says so
            break
        if first is not key_node:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {quote(key, 60)} (first at line {first.start_mark.line + 1})",
                key_node.start_mark)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                        lambda loader, node: _no_duplicates(loader, node))


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes ``node`` stands for with every alias expanded (linear time: shared nodes are memoised)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias counts once (yaml builds it as a cycle)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(n, memo) for n in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[key] = total
    return total


def load_yaml(text: str, where: str | Path) -> Any:
    """Parse YAML ``text`` (from ``where``) safely: ``safe_load`` rules, no duplicate keys, at most
    :data:`MAX_YAML_NODES` values once aliases are expanded. The one YAML reader of pfgraph; errors
    are one ConfigError line naming ``where`` and the line."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > MAX_YAML_NODES:
            raise ConfigError(f"{where}: YAML aliases expand to more than {MAX_YAML_NODES:,} values "
                              f"({size:,}); refused")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}:{loc} invalid YAML ({str(problem)[:200]})") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with :func:`load_yaml`; a clear error when missing or malformed."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (YAML) file") from None
    data = load_yaml(text, path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of keys to values")
    return data


def looks_like_path(name: str | Path) -> bool:
    """True when ``name`` names a file rather than a preset: it has a folder separator or a
    ``.yaml``/``.yml`` suffix (``my/sim.yaml``, ``./x``, ``x.yaml``)."""
    text = str(name)
    return "/" in text or (os.sep in text) or Path(text).suffix.lower() in (".yaml", ".yml")


def resolve_config_path(name: str | Path, kind: str) -> Path:
    """A config file, or a preset name of ``kind`` shipped with the package (:mod:`pfgraph.presets`).

    A value that looks like a path (see :func:`looks_like_path`) must be an existing file: it
    never falls back to the preset of the same name. A bare name is always a preset.
    """
    path = Path(name)
    names = presets.names(kind)
    if looks_like_path(name):
        if path.is_file():
            return path
        if path.is_dir():
            raise ConfigError(f"{name}: is a folder, expected a {kind} config file")
        hint = f"; or the {kind} preset '{path.stem}' (write --config {path.stem})" if path.stem in names else ""
        raise ConfigError(f"{name}: no such config file{hint}")
    preset = presets.find(kind, str(name))
    if preset is not None:
        return preset
    local = f"; to use the file '{name}' write ./{name}" if path.is_file() else ""
    raise ConfigError(
        f"{name}: no such {kind} preset{did_you_mean(str(name), names)}; "
        f"presets: {', '.join(names) or 'none'}{local}"
    )


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    base: Mapping[str, Any] | None = None,
) -> T:
    """Load dataclass ``cls`` from ``base`` + YAML ``path`` + dotted ``overrides``."""
    data: dict[str, Any] = _deep_merge({}, base or {})
    if path is not None:
        _deep_merge(data, read_yaml(path))
    apply_overrides(data, overrides)
    return from_dict(cls, data)
