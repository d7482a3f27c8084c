"""Issue 16: a failed ``train`` leaves no run folder (item 8); a NaN/Inf or exploding validation
loss stops the run with one line instead of claiming a best checkpoint (item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pfgraph.training.run_folder import BEST, LAST, read_checkpoint
from pfgraph.training.trainer import Trainer
from tests.training._helpers import cli, train_args


@pytest.mark.parametrize("case", ["missing data", "bad setting", "too few events"])
def test_a_failed_start_leaves_no_run_folder(tmp_path: Path, events_file: Path, case: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "runs" / "new"
    if case == "missing data":
        argv = train_args(tmp_path / "nope.root", run)
    elif case == "bad setting":
        argv = train_args(events_file, run, "train.lr=-1")
    else:
        argv = train_args(events_file, run, "--max-events", "1")
    rc, _, err = cli(capsys, *argv)
    assert rc == 2 and err.startswith("pfgraph: error:") and err.count("\n") == 1
    assert not run.exists() and not run.parent.exists()


def test_an_existing_folder_is_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "mine"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    rc, _, _ = cli(capsys, *train_args(tmp_path / "nope.root", run))
    assert rc == 2 and (run / "notes.txt").read_text() == "mine"


def _fake_val_losses(monkeypatch: pytest.MonkeyPatch, losses: list[float]) -> None:
    real = Trainer.evaluate
    calls = iter(losses)

    def evaluate(self: Trainer, model: object, dataset: object, *rest: object) -> float:
        real(self, model, dataset, *rest)  # rest: the list collecting validation residuals
        return next(calls)

    monkeypatch.setattr(Trainer, "evaluate", evaluate)


@pytest.mark.parametrize(("losses", "expected"), [
    ([float("inf")], "validation loss is inf at epoch 1: training stopped, no checkpoint_best.pt was written"),
    ([0.5, float("nan")], "validation loss is nan at epoch 2: training stopped, checkpoint_best.pt keeps epoch 1"),
    ([0.5, 0.4, 4e4], "validation loss exploded to 4e+04 at epoch 3 (1e+05 times the best): training stopped, "
                      "checkpoint_best.pt keeps epoch 2"),
])
def test_bad_validation_loss_stops_the_run(tmp_path: Path, events_file: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str], losses: list[float],
                                           expected: str) -> None:
    _fake_val_losses(monkeypatch, losses)
    run = tmp_path / "run"
    rc, out, err = cli(capsys, *train_args(events_file, run, "--epochs", str(len(losses) + 1)))
    assert rc == 2 and err.startswith(f"pfgraph: error: {run}: ") and expected in err and err.count("\n") == 1
    assert "best val loss" not in out
    if len(losses) == 1:
        assert not (run / BEST).exists() and not run.exists()  # nothing worth resuming: no folder either
    else:
        assert read_checkpoint(run / BEST)["epoch"] == len(losses) - 1
        assert read_checkpoint(run / LAST)["epoch"] == len(losses) - 1  # the bad epoch is not committed
