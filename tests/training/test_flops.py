"""Training FLOPs (:mod:`pfgraph.training.flops`): counted once per batch shape, scaled beyond
the counted shapes, cumulative in every metrics.csv row, totals in the summary, and old
metrics.csv files without the column still read (and are filled in on resume)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from pfgraph.io.metrics_csv import read_metrics_csv as read_metrics
from pfgraph.training import flops
from tests.training._helpers import cli, train_args


def _step(model: nn.Module, meter: flops.FlopMeter, batch: int) -> None:
    x = torch.rand(batch, 8)
    meter.start(*flops.step_key(batch, torch.zeros(batch, 4)))
    model(x).sum().backward()
    meter.stop()


def test_a_linear_layer_counts_forward_and_backward() -> None:
    """Linear 8 -> 4 on 5 rows: forward 2*5*8*4 = 320 FLOPs, backward the weight gradient, 320 more
    (the input needs no gradient)."""
    meter = flops.FlopMeter()
    with meter.epoch():
        _step(nn.Linear(8, 4), meter, 5)
    assert meter.epoch_flops == 640.0
    assert meter.flops_per_unit == 640.0 / 20


def test_each_shape_is_counted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.utils.flop_counter as fc

    made = []
    real = fc.FlopCounterMode

    def counting(*a: object, **kw: object) -> object:
        made.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(fc, "FlopCounterMode", counting)
    meter, model = flops.FlopMeter(), nn.Linear(8, 4)
    with meter.epoch():
        for b in (5, 5, 5, 3, 5, 3):
            _step(model, meter, b)
    assert len(made) == 2 and set(meter.cache) == {(5, (5, 4)), (3, (3, 4))}
    assert meter.epoch_flops == 4 * 640.0 + 2 * 384.0
    with meter.epoch():  # a new epoch starts from 0 and keeps the cache
        _step(model, meter, 5)
    assert meter.epoch_flops == 640.0 and len(made) == 2


def test_shapes_beyond_the_counted_ones_are_scaled_per_target_element() -> None:
    meter, model = flops.FlopMeter(max_exact=2), nn.Linear(8, 4)
    with meter.epoch():
        for b in (5, 3, 7):
            _step(model, meter, b)
    assert meter.estimated_steps == 1 and (7, (7, 4)) not in meter.cache
    assert meter.epoch_flops == pytest.approx(640.0 + 384.0 + 7 * 4 * (1024.0 / 32))  # exact for a linear model


def test_the_counter_is_closed_when_a_step_fails() -> None:
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

    meter = flops.FlopMeter()
    with pytest.raises(RuntimeError, match="boom"), meter.epoch():
        meter.start((1, (1,)), 1)
        raise RuntimeError("boom")
    assert not _get_current_dispatch_mode_stack()


def test_add_epoch_is_cumulative_and_fills_in_an_old_run() -> None:
    rows = [{"stage_events": 10, "train_flops": math.nan}, {"stage_events": 20, "train_flops": math.nan}]
    row: dict = {"stage_events": 20}
    flops.add_epoch(rows, row, 200.0, 20)  # 10 FLOPs per event this epoch
    assert [r["train_flops"] for r in rows] == [100.0, 300.0] and row["train_flops"] == 500.0
    rows.append(row)
    nxt: dict = {"stage_events": 20}
    flops.add_epoch(rows, nxt, 200.0, 20)
    assert nxt["train_flops"] == 700.0 and [r["train_flops"] for r in rows] == [100.0, 300.0, 500.0]
    assert flops.total([*rows, nxt]) == 700.0 and flops.total([]) == 0.0
    assert flops.total([{"train_flops": math.nan}]) is None


def test_the_paper_cnn_costs_what_the_issue_counted() -> None:
    """The paper cnn: 1.69 GFLOP per event, forward plus backward (issue 27's count)."""
    from pfgraph.models.registry import get
    from pfgraph.training.config import load_model_section

    section = load_model_section("cnn", "image")
    torch.manual_seed(0)
    model = get(section.arch, "image").builder(dict(section.params))
    meter = flops.FlopMeter()
    with meter.epoch():
        meter.start(*flops.step_key(1, torch.zeros(1, 1, 56, 56)))
        model(torch.rand(1, 4, 56, 56)).sum().backward()
        meter.stop()
    assert meter.epoch_flops / 1e9 == pytest.approx(1.69, rel=0.01)


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_metrics_csv_records_cumulative_training_flops(tmp_path: Path, events_file: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    rc, _, err = cli(capsys, *train_args(events_file, run, "--epochs", "3", "train.schedule=[48]"))
    assert rc == 0, err
    rows = _rows(run)
    counted = [float(r["train_flops"]) for r in rows]
    assert 0 < counted[0] < counted[1] < counted[2]
    # the image model's FLOPs are linear in the events: the 48-event epoch costs half a 96-event one
    assert counted[1] - counted[0] == pytest.approx(2 * counted[0], rel=1e-6)
    assert counted[2] - counted[1] == pytest.approx(2 * counted[0], rel=1e-6)
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["train_flops"] == pytest.approx(counted[-1])
    assert summary["history"]["train_flops"] == pytest.approx(counted)


def test_an_old_metrics_csv_still_reads_and_resumes(tmp_path: Path, events_file: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A run folder written before the column: its rows read (NaN), and resuming fills them in."""
    run = tmp_path / "old"
    assert cli(capsys, *train_args(events_file, run, "--epochs", "1"))[0] == 0
    rows = _rows(run)
    one_epoch = float(rows[0]["train_flops"])
    cols = [c for c in rows[0] if c not in ("train_flops", "wall_s", "val_half_width")]
    with (run / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    old = read_metrics(run / "metrics.csv", 10)
    assert len(old) == 1 and math.isnan(old[0]["train_flops"]) and math.isnan(old[0]["wall_s"])
    assert cli(capsys, *train_args(events_file, run, "--epochs", "2"))[0] == 0
    counted = [float(r["train_flops"]) for r in _rows(run)]
    assert counted == pytest.approx([one_epoch, 2 * one_epoch])
