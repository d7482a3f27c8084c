"""Presets shipped inside the package: ``pfgraph/presets/<kind>/<name>.yaml``, found with :mod:`importlib.resources`.

Kinds: ``sim`` (generation configs for ``pfgraph simulate``), ``model`` (architecture and
hyper-parameters for ``pfgraph train --model``), ``train`` (training and data sections) and
``study`` (study definitions; none ship yet). A kind is a folder: adding one means adding its
name to :data:`KINDS` and its folder of YAML files.

This is the one place that knows where presets live; :func:`pfgraph.config.resolve_config_path`,
the model registry and the command line ask it. It imports nothing of pfgraph but the errors.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from pfgraph.errors import ConfigError

#: Preset kinds, one folder each.
KINDS: tuple[str, ...] = ("sim", "model", "train", "study")
#: File suffix of a preset.
SUFFIX = ".yaml"


@functools.cache
def root() -> Path:
    """The folder holding the preset kinds (inside the installed package)."""
    top = resources.files(__name__)
    if not isinstance(top, Path):  # e.g. imported from a zip archive: presets must be real files
        raise ConfigError(f"pfgraph presets: the package's data ({top}) is not on the file system; "
                          "install pfgraph from a wheel or a source tree")
    return top


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"unknown preset kind '{kind}'; kinds: {', '.join(KINDS)}")


def paths(kind: str) -> dict[str, Path]:
    """Every preset of ``kind``, by name, sorted (an empty dict for a kind without presets)."""
    _check_kind(kind)
    folder = root() / kind
    return {p.stem: p for p in sorted(folder.glob(f"*{SUFFIX}"))} if folder.is_dir() else {}


def names(kind: str) -> list[str]:
    """The preset names of ``kind``, sorted."""
    return list(paths(kind))


def find(kind: str, name: str) -> Path | None:
    """The file of preset ``name`` of ``kind``, or None when there is none."""
    return paths(kind).get(name)


def description(kind: str, name: str) -> str:
    """A preset's ``description`` key, else its first comment line; '' when neither (or no such preset)."""
    from pfgraph.config import load_yaml

    path = find(kind, name)
    if path is None:
        return ""
    text = path.read_text()
    data = load_yaml(text, path)
    if isinstance(data, dict) and data.get("description"):
        return str(data["description"])
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""
