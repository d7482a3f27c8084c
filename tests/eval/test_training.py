"""metrics.json's ``training`` section: the run's learning curves and budget status copied from
the run folder (:mod:`pfgraph.eval.training`), its round trip and the migration of schema 3."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from pfgraph.errors import DataError
from pfgraph.eval.metrics import METRICS_VERSION, key_paths, read_metrics, template, write_metrics
from pfgraph.eval.training import training_record
from pfgraph.utils import budget


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path, events_file: Path) -> Path:
    """``pfgraph evaluate`` of the tiny run on 20 events."""
    from pfgraph.cli import main

    out = tmp_path_factory.mktemp("evaltraining") / "cnn"
    assert main(["evaluate", str(tiny_run), "--data", str(events_file), "--out", str(out), "--device", "cpu",
                 "--max-events", "20", "--bootstrap", "0"]) == 0
    return out


def test_metrics_json_carries_the_training_record(evaluated: Path, tiny_run: Path) -> None:
    doc = read_metrics(evaluated / "metrics.json")
    summary = json.loads((tiny_run / "train_summary.json").read_text())
    t = doc["training"]
    with (tiny_run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert t["history"]["epoch"] == [int(r["epoch"]) for r in rows]
    for key in ("train_loss", "val_loss", "val_half_width", "lr", "wall_s", "train_flops"):
        assert t["history"][key] == pytest.approx([float(r[key]) for r in rows]), key
    assert t["train_flops"] == summary["train_flops"] > 0
    assert t["train_flops"] == pytest.approx(float(rows[-1]["train_flops"]))
    assert t["precision"] == summary["precision"] in ("fp32", "bf16")
    assert t["status"] == summary["status"] in budget.STATUSES and t["status_rule"] == budget.RULE
    assert t["epoch_cap"] == summary["target_epochs"] and t["wall_time_s"] == summary["wall_time_s"] > 0
    assert t["best_val_half_width"] == pytest.approx(float(rows[0]["val_half_width"]))
    assert t["scheduler"] == "plateau"
    # Round trip: written and read back unchanged.
    write_metrics(evaluated / "again.json", doc)
    assert read_metrics(evaluated / "again.json") == doc


def doc_degenerate(doc: dict) -> bool:
    """The one rule applied to a document's headline figures by hand."""
    fig = doc["headline"]["figures"]
    return fig["missed_pixel_fraction"]["value"] > 0.5 or abs(fig["residual_median"]["value"]) > 0.5


def test_a_schema_3_document_is_migrated(tmp_path: Path, evaluated: Path) -> None:
    doc = json.loads((evaluated / "metrics.json").read_text())
    for k in ("epoch_cap", "status", "status_rule", "wall_time_s", "best_val_half_width", "scheduler", "history",
              "train_flops", "precision"):
        del doc["training"][k]
    del doc["baselines"]  # (schema 5)
    del doc["degenerate"], doc["data_mismatch"]
    del doc["cones"]  # (schema 8)
    doc["schema_version"] = 3
    assert key_paths(doc) == key_paths(template(3))
    (tmp_path / "v3.json").write_text(json.dumps(doc))
    new = read_metrics(tmp_path / "v3.json")
    assert new["schema_version"] == METRICS_VERSION == 8 and key_paths(new) == key_paths(template())
    assert new["degenerate"]["flag"] == doc_degenerate(new) and new["data_mismatch"]["flag"] is None
    assert new["training"]["status"] is None and set(new["training"]["history"].values()) == {None}
    assert new["training"]["epochs"] == doc["training"]["epochs"]  # the rest kept
    # A schema-4 document without the course of training is refused, not guessed at.
    doc["schema_version"] = 4
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="key .training.best_val_half_width. missing"):
        read_metrics(tmp_path / "bad.json")


def test_a_schema_5_document_gets_null_compute_keys(tmp_path: Path, evaluated: Path) -> None:
    doc = json.loads((evaluated / "metrics.json").read_text())
    del doc["training"]["train_flops"], doc["training"]["precision"], doc["training"]["history"]["train_flops"]
    del doc["degenerate"], doc["data_mismatch"]  # (schema 7)
    del doc["cones"]  # (schema 8)
    doc["schema_version"] = 5
    assert key_paths(doc) == key_paths(template(5))
    (tmp_path / "v5.json").write_text(json.dumps(doc))
    new = read_metrics(tmp_path / "v5.json")
    assert new["schema_version"] == METRICS_VERSION and key_paths(new) == key_paths(template())
    t = new["training"]
    assert t["train_flops"] is None and t["precision"] is None and t["history"]["train_flops"] is None
    assert t["history"]["val_loss"] == doc["training"]["history"]["val_loss"]  # the rest kept


def test_an_older_run_folder_gets_its_history_from_metrics_csv(tmp_path: Path, tiny_run: Path) -> None:
    """A run written before the trainer recorded its course: history from metrics.csv (without the
    columns it lacks), status by the same rule."""
    import shutil

    run = tmp_path / "old"
    shutil.copytree(tiny_run, run)
    summary = json.loads((run / "train_summary.json").read_text())
    for k in ("status", "status_rule", "wall_time_s", "best_val_half_width", "history", "scheduler"):
        del summary[k]
    (run / "train_summary.json").write_text(json.dumps(summary))
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    old_cols = ["epoch", "stage_events", "train_loss", "val_loss", "lr", "best", "epoch_time_s", "train_events_per_s"]
    with (run / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=old_cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    t = training_record(run)
    assert t["history"]["val_loss"] == pytest.approx([float(r["val_loss"]) for r in rows])
    assert t["history"]["val_half_width"] == [None] * len(rows)
    assert t["history"]["train_flops"] == [None] * len(rows)
    assert t["status"] == budget.budget_status([float(r["val_loss"]) for r in rows], summary["epochs"],
                                               summary["target_epochs"], summary["stopped_early"])
    assert t["wall_time_s"] is None and t["scheduler"] is None
    assert training_record(tmp_path / "nothing")["history"]["epoch"] is None  # no folder: nulls
