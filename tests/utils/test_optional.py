"""Optional imports (pfgraph.utils.optional): the module, or one line naming the install command."""

from __future__ import annotations

import math

import pytest

from pfgraph.errors import PfgraphError
from pfgraph.utils.optional import has_module, optional_import


def test_an_installed_module_is_returned() -> None:
    assert optional_import("math") is math and has_module("math")


def test_a_missing_module_names_its_install_command() -> None:
    assert not has_module("pfgraph_no_such_module")
    with pytest.raises(PfgraphError, match=r"^optional dependency 'pfgraph_no_such_module' is not installed "
                                           r"\(.*\); pip install pfgraph_no_such_module$"):
        optional_import("pfgraph_no_such_module")


def test_known_packages_get_their_own_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    def refuse(name: str) -> None:
        raise ImportError(f"No module named '{name}'")

    monkeypatch.setattr(importlib, "import_module", refuse)
    with pytest.raises(PfgraphError, match=r"pip install 'fastjet>=3\.5\.2'$"):
        optional_import("fastjet")
    with pytest.raises(PfgraphError, match=r"torch-cluster \(after torch==2\.13\.0\)$"):
        optional_import("torch_cluster")
