"""Checkpoint errors name the checkpoint; an unsafe checkpoint is refused plainly (issue 16.12)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.training._helpers import cli, train_args


class _RunsCode:
    """Unpickling this calls os.mkdir(marker): what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.marker),)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, events_file: Path) -> Path:
    from pfgraph.cli import main

    run = tmp_path_factory.mktemp("ckpt") / "cnn"
    assert main(train_args(events_file, run, "--epochs", "1")) == 0
    return run


def _copy_run(run_dir: Path, dst: Path) -> Path:
    shutil.copytree(run_dir, dst)
    return dst


def test_unsafe_checkpoint_refused_because_it_could_run_code(tmp_path: Path, events_file: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "evil"
    run.mkdir()
    marker = tmp_path / "pwned"
    torch.save({"format": "pfgraph-checkpoint", "payload": _RunsCode(marker)}, run / "checkpoint_best.pt")
    rc, _, err = cli(capsys, "evaluate", str(run), "--data", str(events_file), "--out", str(tmp_path / "ev"))
    assert rc == 2 and not marker.exists()
    assert len(err.strip().splitlines()) == 1
    assert f"{run / 'checkpoint_best.pt'}: refused" in err and "could run code" in err and "mkdir" in err
    # the same file as a resume checkpoint of train
    shutil.copy(run / "checkpoint_best.pt", run / "checkpoint_last.pt")
    rc, _, err = cli(capsys, *train_args(events_file, run))
    assert rc == 2 and not marker.exists() and f"{run / 'checkpoint_last.pt'}: refused" in err


def test_checkpoint_whose_model_config_does_not_fit_is_named(run_dir: Path, tmp_path: Path, events_file: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy_run(run_dir, tmp_path / "run")
    path = run / "checkpoint_best.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["model"]["params"]["no_such_param"] = 3  # a config this pfgraph's cnn does not take
    torch.save(ckpt, path)
    rc, _, err = cli(capsys, "evaluate", str(run), "--data", str(events_file), "--out", str(tmp_path / "ev"))
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"pfgraph: error: {path}: its model config does not fit"), err
    assert "no_such_param" in err

    ckpt["config"]["model"]["params"].pop("no_such_param")
    ckpt["arch"] = "no_such_model"
    ckpt["config"]["model"]["arch"] = "no_such_model"
    torch.save(ckpt, path)
    rc, _, err = cli(capsys, "evaluate", str(run), "--data", str(events_file), "--out", str(tmp_path / "ev"))
    assert rc == 2 and err.startswith(f"pfgraph: error: {path}: its model config does not fit"), err

    ckpt = torch.load(run_dir / "checkpoint_best.pt", weights_only=True)
    del ckpt["normalisation"]
    torch.save(ckpt, path)
    rc, _, err = cli(capsys, "evaluate", str(run), "--data", str(events_file), "--out", str(tmp_path / "ev"))
    assert rc == 2 and err.startswith(f"pfgraph: error: {path}: checkpoint has no 'normalisation'"), err


def test_resume_checkpoint_with_a_config_that_does_not_fit_is_named(run_dir: Path, tmp_path: Path, events_file: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy_run(run_dir, tmp_path / "run")
    path = run / "checkpoint_last.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["train"]["no_such_key"] = 1
    torch.save(ckpt, path)
    rc, _, err = cli(capsys, *train_args(events_file, run, "--epochs", "2"))
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"pfgraph: error: {path}: its run config does not fit"), err
