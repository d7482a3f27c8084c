"""The model registry (pfgraph.models.registry): registration, lookup, and resolving ``--model``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pfgraph import presets
from pfgraph.errors import ConfigError, PfgraphError
from pfgraph.models import registry
from pfgraph.models.cmd import model_table
from pfgraph.models.registry import available, get, register, resolve


def test_variant_preset_names_its_architecture() -> None:
    s = resolve("unet_attn_plus", "image")
    assert (s.name, s.arch, s.repr) == ("unet_attn_plus", "unet_attn", "image")
    assert s.params["attention"]["scaled"] is True and "name" not in s.params and "description" not in s.params
    assert resolve("unet_attn").params["attention"]["scaled"] is False
    with pytest.raises(PfgraphError, match="uses the 'image' representation, not 'graph'"):
        resolve("unet_attn_plus", "graph")
    with pytest.raises(ConfigError, match="unknown model 'unet_attn_pls'.*did you mean 'unet_attn_plus'"):
        resolve("unet_attn_pls")


def test_a_file_a_registered_name_and_a_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "small.yaml"
    own.write_text("name: cnn\ndescription: mine\nencoder: [4, 8]\n")
    s = resolve(str(own))
    assert (s.name, s.arch, s.repr, s.params) == ("small", "cnn", "image", {"encoder": [4, 8]})
    available()  # load the registry before adding to it
    monkeypatch.setitem(registry._REGISTRY, "tiny_no_preset", registry.ModelEntry("tiny_no_preset", "graph", dict, "a test model"))
    assert presets.find("model", "tiny_no_preset") is None
    assert resolve("tiny_no_preset") == ("tiny_no_preset", "tiny_no_preset", "graph", {})
    with pytest.raises(ConfigError, match=r"^x/cnn\.yaml: no such model config file; or the model preset 'cnn' "
                                          r"\(write --model cnn\)$"):
        resolve("x/cnn.yaml")


def test_get_refuses_unknown_names_with_a_suggestion_and_register_refuses_a_second_builder() -> None:
    assert get("edgeconv").repr == "graph" and available()["cnn"].repr == "image"
    with pytest.raises(PfgraphError, match="unknown model 'edgconv' .did you mean 'edgeconv'.."):
        get("edgconv")
    with pytest.raises(ValueError, match="registered twice"):
        register("cnn", repr="image")(lambda config: None)
    with pytest.raises(ValueError, match="unknown representation 'voxel'"):
        register("x", repr="voxel")


def test_the_models_table_lists_every_preset_and_model_once() -> None:
    rows = model_table()
    names = [r["name"] for r in rows]
    assert names == sorted(set(presets.names("model")) | set(available()))
    row = next(r for r in rows if r["name"] == "unet_attn_plus")
    assert row["arch"] == "unet_attn" and row["repr"] == "image" and row["params"] > 0
    assert row["description"] == presets.description("model", "unet_attn_plus")
    assert next(r for r in rows if r["name"] == "analytic")["trainable"] is False


def test_a_model_presets_train_section_is_the_models_train_default(tmp_path: Path) -> None:
    """``train:`` in a model preset or file sets that model's train defaults (over the train preset, under
    flags and overrides) and is no hyper-parameter of the builder."""
    from pfgraph.models.registry import preset_train_section
    from pfgraph.training.config import resolve_run_config

    assert preset_train_section("residual_cnn") == {"loss": "rel_huber", "lr": 2.0e-3, "batch_size": 16}
    assert preset_train_section("cnn") == {}
    assert "train" not in resolve("residual_gnn").params
    path = tmp_path / "mine.yaml"
    path.write_text("name: cnn\nchannels: 8\ntrain:\n  loss: log_mse\n  lr: 0.0005\n")
    cfg = resolve_run_config(str(path), overrides=["train.lr=0.002"])
    assert cfg.train.loss == "log_mse" and cfg.train.lr == 0.002 and "train" not in cfg.model.params
    assert resolve_run_config("cnn").train.loss == "mse"  # the paper configs keep MSE
    path.write_text("name: cnn\ntrain: 3\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        resolve_run_config(str(path))
