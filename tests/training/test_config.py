"""The run configuration: model presets and variants, train presets, dotted overrides."""

from __future__ import annotations

import pytest

from pfgraph.config import to_dict
from pfgraph.errors import ConfigError, PfgraphError
from pfgraph.models.registry import resolve
from pfgraph.training.config import (
    build_run_config,
    config_differences,
    load_model_section,
    normalise_overrides,
    train_preset_data,
)


def test_the_model_section_is_the_registrys_resolution() -> None:
    s = load_model_section("unet_attn_plus", "image")  # resolution itself: tests/models/test_registry.py
    assert (s.name, s.arch, s.repr) == ("unet_attn_plus", "unet_attn", "image")
    assert s.params == dict(resolve("unet_attn_plus").params)
    with pytest.raises(PfgraphError, match="uses the 'image' representation, not 'graph'"):
        load_model_section("unet_attn_plus", "graph")


def test_overrides_model_shorthand_and_section_hints() -> None:
    assert normalise_overrides(["model.channels=[8]", "model.params.kernel=5", "train.lr=0.1"]) == [
        "model.params.channels=[8]", "model.params.kernel=5", "train.lr=0.1"]
    with pytest.raises(ConfigError, match="did you mean 'train.epochs=3'"):
        normalise_overrides(["epochs=3"])
    with pytest.raises(ConfigError, match="unknown section 'trian'.*did you mean 'train'"):
        normalise_overrides(["trian.lr=1"])


def test_train_presets_and_overrides_resolve_to_one_config() -> None:
    cfg = build_run_config(load_model_section("cnn"), train_preset_data("progressive"),
                           ["train.batch_size=8", "model.encoder=[4,8]", "data.target=truth_neutral"])
    assert cfg.train.schedule == [1000, 2000, 4000] and cfg.train.stage_epochs == 2 and cfg.train.epochs == 24
    assert cfg.train.batch_size == 8 and cfg.model.params["encoder"] == [4, 8] and cfg.data.target == "truth_neutral"
    default = build_run_config(load_model_section("cnn"), train_preset_data("default"), [])
    assert default.data.split == [0.8, 0.1, 0.1] and default.data.default == "data/b050.root"
    assert default.train.loss == "mse" and default.train.device == "auto"
    diffs = config_differences(to_dict(default), to_dict(cfg))
    assert ("train.batch_size", 32, 8) in diffs and ("model.params.encoder", [16, 32, 64], [4, 8]) in diffs
    with pytest.raises(ConfigError, match="train.device = 'gpu'"):
        build_run_config(load_model_section("cnn"), {}, ["train.device=gpu"])
    with pytest.raises(ConfigError, match="data.split"):
        build_run_config(load_model_section("cnn"), {}, ["data.split=[0.5,0.2]"])
    with pytest.raises(ConfigError, match="unknown section 'optimiser'"):
        train_preset_data_from_text("optimiser: {lr: 1}")


def train_preset_data_from_text(text: str) -> dict:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "t.yaml"
        p.write_text(text)
        return train_preset_data(p)
