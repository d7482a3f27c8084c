"""The representation registry: lookups, errors, and a representation added from outside the package."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import pfgraph
from pfgraph.errors import PfgraphError
from pfgraph.repr import registry
from pfgraph.repr.base import Representation


def test_builtin_representations_are_found_lazily_and_named() -> None:
    assert registry.names()[:2] == ["image", "graph"]
    for name in ("image", "graph"):
        rep = registry.get_representation(name, memory_budget_gb=1.0)
        assert isinstance(rep, Representation) and rep.name == name and rep.memory_budget_gb == 1.0
    assert registry.representation_class("graph").point_outputs and not registry.representation_class("image").point_outputs


def test_unknown_representation_is_one_line_with_a_suggestion() -> None:
    with pytest.raises(PfgraphError, match=r"unknown representation 'grap' \(did you mean 'graph'\?\); valid: image, graph"):
        registry.get_representation("grap")


def test_registering_a_non_representation_or_twice_fails() -> None:
    with pytest.raises(TypeError):
        registry.register_representation("bad")(int)

    class A(Representation):  # abstract methods unimplemented: never instantiated here
        pass

    registry.register_representation("dup_test")(A)
    try:
        class B(Representation):
            pass

        with pytest.raises(ValueError, match="registered twice"):
            registry.register_representation("dup_test")(B)
    finally:
        registry._REGISTRY.pop("dup_test")


@pytest.fixture
def pixel_table() -> object:
    """Register the test representation and its model; unregister afterwards."""
    from pfgraph.models import registry as models
    from tests.repr import pixel_table as module

    registry._REGISTRY.setdefault("pixel_table", module.PixelTable)
    models._REGISTRY.setdefault("pixel_table_mlp", models.ModelEntry(
        "pixel_table_mlp", "pixel_table", module.build_pixel_table_mlp, "per-pixel MLP on pixel tables (test)"))
    yield module
    registry._REGISTRY.pop("pixel_table", None)
    models._REGISTRY.pop("pixel_table_mlp", None)


def test_a_representation_from_outside_trains_and_evaluates_through_the_public_api(
        pixel_table: object, events_file: Path, tmp_path: Path) -> None:
    result = pfgraph.train("pixel_table_mlp", tmp_path / "run", events_file, epochs=1, overrides=["train.threads=1"])
    assert result.repr == "pixel_table" and result.params == 4 * 8 + 8 + 8 + 1
    ev = pfgraph.evaluate(result.run_dir, events_file, tmp_path / "eval", bootstrap=0, plots=False)
    doc = json.loads((ev.out / "metrics.json").read_text())
    assert doc["model"] == {**doc["model"], "name": "pixel_table_mlp", "repr": "pixel_table"}
    assert ev.n_events == doc["dataset"]["n_events"] > 0
    fig = doc["headline"]["figures"]["residual_half_width_68"]["value"]
    assert np.isfinite(fig) and fig > 0
    # the batch's input mask reached the evaluation: the out-of-reach share is measured (0 for a dense table)
    assert "residual" in doc["energy"] and ev.summary.startswith("evaluated pixel_table_mlp on")
