"""Preset discovery (pfgraph.presets): the one place that knows where the shipped presets live."""

from __future__ import annotations

from pathlib import Path

import pytest

import pfgraph
from pfgraph import presets
from pfgraph.config import resolve_config_path
from pfgraph.errors import ConfigError


def test_presets_live_inside_the_package() -> None:
    assert presets.root() == Path(pfgraph.__file__).parent / "presets"
    assert presets.names("sim") == ["gauss_b000", "gauss_b050", "gauss_b050_g112", "gauss_b050_g224", "gauss_b050_g448",
                                    "gauss_b050_jet", "gauss_b050_tail"]
    assert {"default", "quick", "progressive"} <= set(presets.names("train"))
    assert {"cnn", "edgeconv", "pfn", "analytic", "unet_attn_plus"} <= set(presets.names("model"))
    assert presets.find("sim", "gauss_b050") == presets.root() / "sim" / "gauss_b050.yaml"
    assert presets.find("sim", "nope") is None
    assert not list((Path(pfgraph.__file__).parents[1] / "configs").glob("**/*.yaml"))  # one home for presets


def test_study_presets_ship_and_an_unknown_kind_or_name_is_refused() -> None:
    assert "study" in presets.KINDS and presets.names("study") == ["cpu_b050", "cpu_paper", "demo", "demo_quick", "granularity",
                                                                "paper"]
    with pytest.raises(ConfigError, match="unknown preset kind 'simm'; kinds: sim, model, train, study"):
        presets.names("simm")
    with pytest.raises(ConfigError, match="gauss: no such study preset; presets: cpu_b050, cpu_paper, demo, demo_quick, granularity, paper"):
        resolve_config_path("gauss", "study")


def test_the_granularity_study_trains_each_family_on_the_same_events_at_each_grid() -> None:
    """Issue 28 item 5: image and point-cloud models of each family at 56, 112 and 224, each trained and
    evaluated on its own grid's files, the same seeds (events) at every grid."""
    from pfgraph.config import read_yaml
    from pfgraph.study.config import study_from_dict
    from pfgraph.study.results import dataset_grid

    study = study_from_dict(read_yaml(resolve_config_path("granularity", "study")))
    grids = {name: dataset_grid({"sim": d.sim, "overrides": d.overrides}) for name, d in study.datasets.items()}
    assert set(grids.values()) == {56, 112, 224}
    for kind in ("train", "test", "jet"):
        sets = [study.datasets[n] for n in grids if n.startswith(kind)]
        assert len(sets) == 3 and len({(d.seed, d.events) for d in sets}) == 1, kind
    models = {(m.model, grids[study.train_set(m)]) for m in study.models}
    assert models == {(m, g) for m in ("cnn", "residual_cnn", "edgeconv", "residual_gnn") for g in (56, 112, 224)}
    for m in study.models:
        assert {grids[s] for s in study.eval_sets(m)} == {grids[study.train_set(m)]}, m.label


def test_description_is_the_key_or_the_first_comment() -> None:
    assert presets.description("model", "nope") == ""
    text = presets.find("model", "unet_attn_plus").read_text()
    desc = presets.description("model", "unet_attn_plus")
    assert desc and (desc in text)


def test_bare_names_and_files_resolve(tmp_path: Path) -> None:
    assert resolve_config_path("gauss_b050", "sim") == presets.find("sim", "gauss_b050")
    own = tmp_path / "mine.yaml"
    own.write_text(presets.find("sim", "gauss_b050").read_text())
    assert resolve_config_path(own, "sim") == own
    with pytest.raises(ConfigError, match="gaus_b050: no such sim preset .did you mean 'gauss_b050'"):
        resolve_config_path("gaus_b050", "sim")
