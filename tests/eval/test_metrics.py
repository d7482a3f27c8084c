"""The metrics.json schema (pfgraph.eval.metrics): template, schema check, atomic write/read, migration,
assembly and :func:`evaluate_arrays` on known answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pfgraph import geometry
from pfgraph.errors import DataError, PfgraphError
from pfgraph.eval.metrics import (
    METRICS_SCHEMA,
    METRICS_VERSION,
    TRAINING_KEYS,
    assemble,
    check_schema,
    common_norm_scale,
    evaluate_arrays,
    key_paths,
    on_norm_scale,
    read_metrics,
    template,
    training_section,
    write_metrics,
)

N = geometry.IMSIZE


def _images(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.exponential(2.0, (n, N, N)) * (rng.random((n, N, N)) < 0.3)).astype(np.float32)


def test_template_versions_differ_by_the_documented_keys() -> None:
    v7, v6, v5, v4, v3, v2, v1 = (template(), template(6), template(5), template(4), template(3), template(2),
                                  template(1))
    assert v7["schema"] == METRICS_SCHEMA and v7["schema_version"] == METRICS_VERSION == 8
    assert {"degenerate.flag", "degenerate.reasons", "degenerate.rule", "data_mismatch.flag"} <= key_paths(v7)
    assert {"cones.seed_gev", "cones.per_radius[].radius", "cones.per_radius[].half_width_68"} <= key_paths(v7)
    assert "cones" not in template(7) and "degenerate" in template(7)
    assert "degenerate" not in v6 and "data_mismatch" not in v6
    assert {"training.train_flops", "training.precision", "training.history.train_flops"} <= key_paths(v6)
    assert not {"training.train_flops", "training.precision", "training.history.train_flops"} & key_paths(v5)
    assert "training.history" in key_paths(v4) and "training.status" in key_paths(v4)
    assert "baselines.oracle" in key_paths(v5) and "baselines" not in v4
    assert "training.history" not in key_paths(v3) and "training.status" not in key_paths(v3)
    assert "headline" in v3 and "headline" not in v2 and "training" in v2 and "training" not in v1
    assert "energy.missed" in key_paths(v3) and "energy.missed" not in key_paths(v2)
    assert "jets.energy_match_rel" in key_paths(v3) and "jets.energy_match_rel" not in key_paths(v2)
    assert key_paths({"a": {"b": 1}, "c": [{"d": 2}], "e": []}) == {"a", "a.b", "c", "c[].d", "e"}


def test_check_schema_names_the_first_missing_or_unexpected_key() -> None:
    doc = template()
    check_schema(doc)
    doc["extra"]["anything"] = {"goes": 1}  # extra is free
    check_schema(doc)
    del doc["settings"]["device"]
    with pytest.raises(DataError, match="^m.json: key 'settings.device' missing from the metrics document$"):
        check_schema(doc, "m.json")
    doc = template()
    doc["energy"]["surprise"] = 1
    with pytest.raises(DataError, match="unexpected key 'energy.surprise'"):
        check_schema(doc)
    with pytest.raises(DataError, match="not a pfgraph metrics document"):
        check_schema({"schema": "other"})
    with pytest.raises(DataError, match="version True is not a positive integer"):
        check_schema({**template(), "schema_version": True})


def test_write_then_read_round_trip_cleans_numpy_and_nan(tmp_path: Path) -> None:
    doc = assemble(template()["energy"], template()["jets"], model={"name": "cnn", "repr": "image"},
                   timing={"total_s": np.float32(1.5), "inference_s": float("nan")},
                   dataset={"n_events": np.int64(7), "has_jet_image": np.bool_(True)})
    path = tmp_path / "metrics.json"
    write_metrics(path, doc)
    back = read_metrics(path)
    assert back["model"]["name"] == "cnn" and back["dataset"]["n_events"] == 7
    assert back["dataset"]["has_jet_image"] is True
    assert back["timing"]["total_s"] == 1.5 and back["timing"]["inference_s"] is None  # NaN -> null
    assert json.loads(path.read_text()) == back
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporaries left


def test_write_metrics_refuses_a_document_off_the_schema_and_writes_nothing(tmp_path: Path) -> None:
    doc = template()
    doc["energy"] = {"only": 1}
    with pytest.raises(DataError, match="missing from the metrics document"):
        write_metrics(tmp_path / "m.json", doc)
    assert list(tmp_path.iterdir()) == []


def test_read_metrics_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.json: cannot read"):
        read_metrics(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json: not valid JSON \(.* at line 1\)"):
        read_metrics(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"list\.json: not a pfgraph metrics document"):
        read_metrics(tmp_path / "list.json")


def test_assemble_refuses_an_unknown_section() -> None:
    with pytest.raises(PfgraphError, match="metrics: unknown section 'modle'"):
        assemble({}, {}, modle={"name": "x"})


def test_training_section_copies_the_run_summary_keys() -> None:
    summary = {"params": 12, "epochs": 3, "events_per_s": 9.5, "seed": 4, "unrelated": 1}
    sec = training_section(summary)
    assert set(sec) == set(TRAINING_KEYS)
    assert sec["parameters"] == 12 and sec["train_events_per_s"] == 9.5 and sec["seed"] == 4
    empty = training_section(None)
    assert sec["best_epoch"] is None and {v for k, v in empty.items() if k != "history"} == {None}
    assert set(empty["history"].values()) == {None}


def test_a_perfect_prediction_has_zero_residuals() -> None:
    truth = _images(6, 1)
    doc = evaluate_arrays(truth.copy(), truth, target_scale=20.0, bootstrap=0, batch_size=4)
    e = doc["energy"]
    assert e["n_events"] == 6 and e["n_truth_pixels"] == int((truth > 0).sum())
    assert e["residual"]["robust"]["median"] == 0.0 and e["residual"]["robust"]["half_width_68"] == 0.0
    assert e["mse_per_image"]["mean"] == 0.0
    assert doc["jets"]["available"] is False and doc["jets"]["reason"] == "jets not requested"
    assert doc["settings"]["target_scale"] == 20.0 and doc["settings"]["batch_size"] == 4
    assert key_paths(doc) == key_paths(template())


def test_a_uniform_scale_gives_that_residual() -> None:
    truth = _images(5, 2)
    doc = evaluate_arrays(truth * 1.25, truth, target_scale=20.0, bootstrap=0)
    assert doc["energy"]["residual"]["robust"]["median"] == pytest.approx(0.25, abs=1e-6)
    assert math.isclose(doc["headline"]["figures"]["residual_median"]["value"], 0.25, abs_tol=1e-6)


def test_evaluate_arrays_refuses_mismatched_or_bad_input() -> None:
    truth = _images(2)
    with pytest.raises(PfgraphError, match="differ in shape"):
        evaluate_arrays(truth[:1], truth, bootstrap=0)
    with pytest.raises(PfgraphError, match="batch size 0"):
        evaluate_arrays(truth, truth, bootstrap=0, batch_size=0)
    with pytest.raises(PfgraphError, match=r"expected \(B, G, G\) on the truth grid"):
        evaluate_arrays(truth[:, :10], truth[:, :10], bootstrap=0)


# a schema-2 metrics.json as pfgraph evaluate wrote it (cnn on the 2-epoch reproduction's jet set, formerly
# kept in docs/results/): the migration is tested on a real recorded document
RECORDED_V2 = Path(__file__).resolve().parent / "data" / "metrics_schema2_cnn_b050_jet.json"


def test_metrics_of_schema_versions_1_and_2_are_read_and_migrated(tmp_path: Path) -> None:
    doc = json.loads(RECORDED_V2.read_text())  # a recorded schema-2 document
    assert doc["schema_version"] == 2
    old = read_metrics(RECORDED_V2)
    assert old["schema_version"] == METRICS_VERSION and key_paths(old) == key_paths(template())
    # the migrated headline carries the document's own robust figures, without intervals
    figs = old["headline"]["figures"]
    assert figs["residual_half_width_68"]["value"] == doc["energy"]["residual"]["robust"]["half_width_68"]
    assert figs["jet_energy_rel_median"]["value"] == doc["jets"]["energy_rel"]["robust"]["median"]
    assert figs["residual_median"]["lo"] is None and "no bootstrap intervals" in old["headline"]["reason"]
    assert old["energy"]["missed"]["pixel_fraction"] is None and old["training"]["seed"] is None
    # the Gaussian-core rule is applied to the old fits from their own numbers
    assert old["energy"]["residual"]["fit"]["core_gaussian"] is not None
    del doc["training"]
    doc["schema_version"] = 1
    (tmp_path / "v1.json").write_text(json.dumps(doc))
    v1 = read_metrics(tmp_path / "v1.json")
    assert v1["schema_version"] == METRICS_VERSION
    assert {v for k, v in v1["training"].items() if k != "history"} == {None}
    assert set(v1["training"]["history"].values()) == {None}
    doc["schema_version"] = METRICS_VERSION + 1
    (tmp_path / "newer.json").write_text(json.dumps(doc))
    with pytest.raises(PfgraphError, match="newer than this pfgraph reads"):
        read_metrics(tmp_path / "newer.json")




def test_on_norm_scale_gives_the_figures_of_an_evaluation_on_that_s() -> None:
    """dE/S_own x S_own/S is the evaluation with S: headline figures, robust summaries and core fits."""
    truth = _images(6, 4)
    pred = (truth * (1 + 0.1 * np.random.default_rng(5).standard_normal(truth.shape))).astype(np.float32)
    on_s = evaluate_arrays(pred, truth, target_scale=10.0, bootstrap=10)
    own = evaluate_arrays(pred, truth, target_scale=200.0, bootstrap=10)
    moved = on_norm_scale(own, common_norm_scale([own, on_s], prefer=[on_s]))
    for key in ("abs_norm_median", "abs_norm_half_width_68"):
        for end in ("value", "lo", "hi"):
            assert moved["headline"]["figures"][key][end] == pytest.approx(on_s["headline"]["figures"][key][end],
                                                                            rel=1e-4)
    got, want = moved["energy"]["abs_norm"]["truth_pixels"], on_s["energy"]["abs_norm"]["truth_pixels"]
    assert got["robust"]["q84"] == pytest.approx(want["robust"]["q84"], rel=1e-4)
    assert got["fit"]["sigma"] == pytest.approx(want["fit"]["sigma"], rel=1e-3)
    assert moved["settings"]["norm_rescaled_from"] == 200.0 and moved["energy"]["abs_norm"]["target_scale"] == 10.0
    assert own["energy"]["abs_norm"]["target_scale"] == 200.0  # the evaluation itself is left as it was
    assert on_norm_scale(on_s, 10.0) == on_s and common_norm_scale([own, own, on_s]) == 200.0
