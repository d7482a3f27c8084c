"""Optional imports go through one helper whose error says exactly what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from pfgraph.errors import PfgraphError

_INSTALL_HINTS = {
    "torch_cluster": "pip install --no-build-isolation torch-cluster (after torch==2.13.0)",
    "fastjet": "pip install 'fastjet>=3.5.2'",
    "pythia8mc": "pip install pythia8mc==8.317.2",
    "ROOT": "pip install '.[root]' (CERN ROOT from PyPI)",
    "onnx": "pip install 'pfgraph[onnx]' (or: pip install '.[onnx]' in a checkout)",
    "onnxruntime": "pip install 'pfgraph[onnx]' (or: pip install '.[onnx]' in a checkout)",
}


def optional_import(name: str) -> ModuleType:
    """Import ``name`` or raise a PfgraphError naming the pip command that provides it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        hint = _INSTALL_HINTS.get(name, f"pip install {name}")
        raise PfgraphError(f"optional dependency '{name}' is not installed ({exc}); {hint}") from None


def has_module(name: str) -> bool:
    """True when ``name`` can be imported."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True
