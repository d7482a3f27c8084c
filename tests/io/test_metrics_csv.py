"""The one metrics.csv reader and writer (:mod:`pfgraph.io.metrics_csv`)."""

from __future__ import annotations

import math
from pathlib import Path

from pfgraph.io.metrics_csv import METRIC_FIELDS, read_metrics_csv, write_metrics_csv


def _row(epoch: int, val: float) -> dict:
    return {"epoch": epoch, "stage_events": 96, "train_loss": 2 * val, "val_loss": val, "lr": 1e-3, "best": epoch,
            "epoch_time_s": 1.5, "train_events_per_s": 64.0, "val_half_width": 0.3, "wall_s": 2.0,
            "train_flops": 1e9 * epoch}


def test_round_trip_and_upto_epoch(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    write_metrics_csv(path, [_row(1, 0.2), _row(2, 0.1), _row(3, 0.05)])
    assert path.read_text().splitlines()[0] == ",".join(METRIC_FIELDS)
    rows = read_metrics_csv(path)
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[1] == _row(2, 0.1)
    assert all(isinstance(r[k], int) for r in rows for k in ("epoch", "stage_events", "best"))
    assert [r["epoch"] for r in read_metrics_csv(path, upto_epoch=2)] == [1, 2]  # later rows: a lost epoch


def test_further_numeric_columns_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text(",".join(METRIC_FIELDS) + ",val_mse,note\n1,96,0.1,0.2,0.001,1,1.5,64,0.3,2.0,1.5e12,0.5,x\n")
    (row,) = read_metrics_csv(path)
    assert row["train_flops"] == 1.5e12 and row["val_mse"] == 0.5 and "note" not in row


def test_missing_file_and_malformed_rows(tmp_path: Path) -> None:
    assert read_metrics_csv(tmp_path / "none.csv") == []
    path = tmp_path / "metrics.csv"
    write_metrics_csv(path, [_row(1, 0.2)])
    path.write_text(path.read_text() + "2,96,oops,0.1,0.001,1,1.5,64,0.3,2.0,1e9\n")
    assert [r["epoch"] for r in read_metrics_csv(path)] == [1]


def test_an_older_metrics_csv_without_the_new_columns_is_read(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,stage_events,train_loss,val_loss,lr,best,epoch_time_s,train_events_per_s\n"
                    "1,96,0.1,0.2,0.001,1,1.5,64\n2,96,0.05,0.1,0.001,1,1.5,64\n")
    rows = read_metrics_csv(path, 2)
    assert [r["epoch"] for r in rows] == [1, 2] and math.isnan(rows[0]["val_half_width"])
    assert math.isnan(rows[1]["wall_s"]) and rows[1]["val_loss"] == 0.1
