"""Training to convergence, visibly: the per-epoch validation half-width, the cosine schedule and
the budget status of real runs (the rule itself: tests/utils/test_budget.py)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from pfgraph.errors import ConfigError
from pfgraph.io.metrics_csv import METRIC_FIELDS
from pfgraph.training.config import TrainConfig
from pfgraph.training.trainer import make_scheduler
from pfgraph.utils import budget
from tests.training._helpers import cli, train_args


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def cosine_run(tmp_path_factory: pytest.TempPathFactory, events_file: Path) -> Path:
    """A tiny 3-epoch run with the cosine schedule and one warm-up epoch."""
    from pfgraph.cli import main

    run = tmp_path_factory.mktemp("runs") / "cosine"
    assert main(train_args(events_file, run, "--epochs", "3", "train.scheduler.kind=cosine",
                           "train.scheduler.warmup_epochs=1", "train.scheduler.min_lr=1e-5",
                           "train.early_stop.patience=0")) == 0
    return run


def test_metrics_csv_has_the_validation_half_width_of_the_evaluation(cosine_run: Path, events_file: Path) -> None:
    """The column equals the evaluation's 68 % half-width of r over the validation split's truth
    pixels, computed from the epoch's checkpoint through the evaluation's own code."""
    from pfgraph.eval.energy import EnergyAccumulator
    from pfgraph.io.root import EventFiles
    from pfgraph.training.predict import load_run, predict

    rows = _rows(cosine_run)
    assert list(rows[0]) == list(METRIC_FIELDS) and len(rows) == 3
    widths = [float(r["val_half_width"]) for r in rows]
    assert all(0 < w < 10 for w in widths)
    assert all(float(r["wall_s"]) >= float(r["epoch_time_s"]) > 0 for r in rows)
    last = load_run(cosine_run, which="last")
    acc = EnergyAccumulator(float(last.norm.target_scale))
    for item in predict(last, EventFiles(events_file), indices=last.split["val"]):
        acc.update(item["pred"], item["truth"])
    assert acc.result()["residual"]["robust"]["half_width_68"] == pytest.approx(widths[-1], rel=1e-4)
    summary = json.loads((cosine_run / "train_summary.json").read_text())
    assert summary["history"]["val_half_width"] == pytest.approx(widths)
    assert summary["history"]["epoch"] == [1, 2, 3] and summary["scheduler"] == "cosine"
    best = int(summary["best_epoch"])
    assert summary["best_val_half_width"] == pytest.approx(widths[best - 1])
    assert summary["wall_time_s"] >= sum(float(r["wall_s"]) for r in rows)
    assert summary["status"] in budget.STATUSES and summary["status_rule"] == budget.RULE


def test_cosine_schedule_learning_rates(cosine_run: Path) -> None:
    """metrics.csv's lr is the rate after the epoch's step (the next epoch's): warm-up epoch 0 at
    lr/2, then lr * (floor + (1 - floor)(1 + cos(pi t)) / 2), t = (e - 1) / 2."""
    lr, floor = 1e-3, 1e-5 / 1e-3
    expect = [lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (e - 1) / 2))) for e in (1, 2, 3)]
    assert [float(r["lr"]) for r in _rows(cosine_run)] == pytest.approx(expect, rel=1e-6)
    # The schedule itself, epoch by epoch, from a fresh optimiser.
    cfg = TrainConfig(epochs=4, lr=0.1)
    cfg.scheduler.kind, cfg.scheduler.min_lr, cfg.scheduler.warmup_epochs = "cosine", 0.0, 0
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = make_scheduler(opt, cfg)
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.1, 0.1 * (1 + math.cos(math.pi / 4)) / 2, 0.05,
                                  0.1 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.0], abs=1e-12)
    cfg.scheduler.kind = "plateau"
    assert isinstance(make_scheduler(opt, cfg), torch.optim.lr_scheduler.ReduceLROnPlateau)


def test_a_resumed_cosine_run_anneals_over_its_new_cap(tmp_path: Path, events_file: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    args = ("train.scheduler.kind=cosine", "train.scheduler.min_lr=0", "train.early_stop.patience=0")
    assert cli(capsys, *train_args(events_file, run, "--epochs", "2", *args))[0] == 0
    rc, _, err = cli(capsys, *train_args(events_file, run, "--epochs", "4", *args))
    assert rc == 0, err
    lrs = [float(r["lr"]) for r in _rows(run)]
    # Epochs 1-2 annealed over a cap of 2 (down to 0 after epoch 2); epoch 3 on resumes the new cap of 4.
    assert lrs == pytest.approx([5e-4, 0.0, 1e-3 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.0], abs=1e-12)


def test_scheduler_settings_are_checked() -> None:
    from pfgraph.training.config import build_run_config, load_model_section

    with pytest.raises(ConfigError, match="kind"):
        build_run_config(load_model_section("cnn"), {}, ["train.scheduler.kind=linear"])
    with pytest.raises(ConfigError, match="warmup_epochs"):
        build_run_config(load_model_section("cnn"), {}, ["train.scheduler.warmup_epochs=-1"])
    assert build_run_config(load_model_section("cnn"), {}, []).train.scheduler.kind == "plateau"


def test_status_of_real_runs(tmp_path: Path, events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "early"
    rc, _, err = cli(capsys, *train_args(events_file, run, "--epochs", "5", "train.early_stop.patience=1",
                                         "train.early_stop.min_delta=1.0"))
    assert rc == 0, err
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["status"] == budget.STOPPED_EARLY and summary["epochs"] == 2
    capped = tmp_path / "capped"
    rc, out, err = cli(capsys, *train_args(events_file, capped, "--epochs", "1"))
    assert rc == 0, err
    assert "1/1 epochs, still improving on 96 events" in out  # the CLI line states the budget status
    assert len(summary["history"]["val_loss"]) == 2
    analytic = tmp_path / "analytic"
    rc, _, err = cli(capsys, *train_args(events_file, analytic, model="analytic", tiny=False))
    assert rc == 0, err
    summary = json.loads((analytic / "train_summary.json").read_text())
    assert summary["status"] == budget.NOT_TRAINED and summary["history"]["epoch"] == []
