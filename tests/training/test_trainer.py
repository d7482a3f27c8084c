"""``pfgraph train``: the run folder, resume, determinism, kill -9, schedules and bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pfgraph.io.root import EventFiles
from pfgraph.repr.base import fit_normalisation
from pfgraph.training.run_folder import BEST, LAST, read_checkpoint
from pfgraph.training.trainer import split_indices, stage_events
from tests.training._helpers import cli, train_args

ROOT = Path(__file__).resolve().parents[2]


def _metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def _same_content(a: object, b: object, where: str = "") -> None:
    """Recursively equal, tensors bit for bit."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for k in a:
            _same_content(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same_content(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory: pytest.TempPathFactory, events_file: Path) -> Path:
    """One uninterrupted 2-epoch run (shared by several tests)."""
    from pfgraph.cli import main

    run = tmp_path_factory.mktemp("runs") / "straight"
    assert main(train_args(events_file, run, "--epochs", "2")) == 0
    return run


def test_one_epoch_writes_a_complete_run_folder(tmp_path: Path, events_file: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    rc, out, err = cli(capsys, *train_args(events_file, run, "--epochs", "1", "--repr", "image"))
    assert rc == 0, err
    last = out.strip().splitlines()[-1]
    assert last.startswith("train: cnn (image,") and "1/1 epochs" in last and "best val loss" in last
    for name in ("checkpoint_last.pt", "checkpoint_best.pt", "config.yaml", "metrics.csv", "loss.png",
                 "train_summary.json"):
        assert (run / name).is_file(), name
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporaries left
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    preset = yaml.safe_load((ROOT / "pfgraph/presets/model/cnn.yaml").read_text())
    del preset["name"]
    assert cfg["model"] == {"name": "cnn", "arch": "cnn", "repr": "image",
                            "params": {**preset, "encoder": [4, 8], "decoder": [4]}}
    assert cfg["model"]["params"]["encoder"] == [4, 8] and "name" not in cfg["model"]["params"]
    assert cfg["train"]["epochs"] == 1 and cfg["data"]["paths"] == [str(events_file)]
    assert cfg["data"]["split"] == [0.8, 0.1, 0.1] and cfg["train"]["loss"] == "mse"
    rows = _metrics(run)
    assert len(rows) == 1 and rows[0]["epoch"] == "1" and rows[0]["stage_events"] == "96"
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["model"] == "cnn" and summary["repr"] == "image" and summary["epochs"] == 1
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (96, 12, 12)
    assert summary["params"] > 0 and summary["events_per_s"] > 0 and summary["train_time_s"] > 0
    # Checkpoints are plain data: a file from someone else cannot run code.
    ck = torch.load(run / LAST, weights_only=True)
    assert ck["model_name"] == "cnn" and ck["repr"] == "image" and ck["epoch"] == 1
    assert ck["normalisation"]["target"] == "truth" and ck["config"] == cfg
    assert {"model_state", "optimizer_state", "scheduler_state", "rng", "split"} <= set(ck)


def test_the_normalisation_is_fitted_on_the_training_split_only(two_epochs: Path, events_file: Path) -> None:
    ck = read_checkpoint(two_epochs / LAST)
    split = {k: v.numpy() for k, v in ck["split"].items()}
    assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(120))
    expected = fit_normalisation(EventFiles(events_file), split["train"])
    assert ck["normalisation"] == expected.to_dict()
    everything = fit_normalisation(EventFiles(events_file), np.arange(120))
    assert everything.to_dict() != expected.to_dict()  # the held-out events would change it


def test_resume_continues_and_equals_an_uninterrupted_run(tmp_path: Path, events_file: Path, two_epochs: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "resumed"
    assert cli(capsys, *train_args(events_file, run, "--epochs", "1"))[0] == 0
    rc, out, _ = cli(capsys, *train_args(events_file, run, "--epochs", "2"))
    assert rc == 0 and f"resuming {run} from epoch 1" in out and "(resumed at epoch 1)" in out
    _same_content(read_checkpoint(run / LAST), read_checkpoint(two_epochs / LAST))
    assert [r["epoch"] for r in _metrics(run)] == ["1", "2"]
    assert [r["val_loss"] for r in _metrics(run)] == [r["val_loss"] for r in _metrics(two_epochs)]
    # A finished run is not trained again.
    rc, out, _ = cli(capsys, *train_args(events_file, run, "--epochs", "2"))
    assert rc == 0 and "2/2 epochs" in out and "epoch 3" not in out


def test_two_runs_with_the_same_seed_give_identical_checkpoints(tmp_path: Path, events_file: Path, two_epochs: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "again"
    assert cli(capsys, *train_args(events_file, run, "--epochs", "2"))[0] == 0
    for name in (LAST, BEST):
        assert (run / name).read_bytes() == (two_epochs / name).read_bytes(), name
    other = tmp_path / "seed2"
    assert cli(capsys, *train_args(events_file, other, "--epochs", "1", "--seed", "2"))[0] == 0
    a, b = read_checkpoint(other / LAST), read_checkpoint(run / LAST)
    assert not torch.equal(a["model_state"]["stem.0.0.weight"], b["model_state"]["stem.0.0.weight"])


def test_kill_9_during_training_then_rerun_continues(tmp_path: Path, events_file: Path) -> None:
    """SIGKILL a training process after its first checkpoint: the checkpoint on disk is
    complete and a re-run resumes from it."""
    run = tmp_path / "killed"
    env = dict(os.environ, PFGRAPH_NO_PROGRESS="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "pfgraph.cli", *train_args(events_file, run, "--epochs", "200")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (run / LAST).exists():
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        time.sleep(0.3)  # let it get into the middle of a later epoch / save
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    done = read_checkpoint(run / LAST)["epoch"]  # loads: never a half-written checkpoint
    assert done >= 1
    rows = _metrics(run)
    assert len(rows) >= done
    res = subprocess.run([sys.executable, "-m", "pfgraph.cli", *train_args(events_file, run, "--epochs", str(done + 1))],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"resuming {run} from epoch {done}" in res.stdout
    assert read_checkpoint(run / LAST)["epoch"] == done + 1
    assert [int(r["epoch"]) for r in _metrics(run)] == list(range(1, done + 2))
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # stale temporaries removed


def test_progressive_schedule_grows_the_training_set(tmp_path: Path, events_file: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "prog"
    rc, _, err = cli(capsys, *train_args(events_file, run, "--epochs", "4", "train.schedule=[24,48]",
                                         "train.stage_epochs=1"))
    assert rc == 0, err
    assert [r["stage_events"] for r in _metrics(run)] == ["24", "48", "96", "96"]


def test_progressive_stage_sizes() -> None:
    from pfgraph.training.config import TrainConfig

    cfg = TrainConfig(schedule=[1000, 2000, 4000], stage_epochs=2)
    assert [stage_events(cfg, e, 8000) for e in range(8)] == [1000, 1000, 2000, 2000, 4000, 4000, 8000, 8000]
    assert stage_events(TrainConfig(schedule=[500]), 0, 300) == 300


def test_split_is_fixed_and_scales_with_the_data() -> None:
    s = split_indices(10_000, [0.8, 0.1, 0.1], 12345)
    assert [len(s[k]) for k in ("train", "val", "test")] == [8000, 1000, 1000]
    again = split_indices(10_000, [0.8, 0.1, 0.1], 12345)
    assert all(np.array_equal(s[k], again[k]) for k in s)
    assert sorted(np.concatenate(list(s.values())).tolist()) == list(range(10_000))
    small = split_indices(120, [0.8, 0.1, 0.1], 12345)
    assert [len(small[k]) for k in ("train", "val", "test")] == [96, 12, 12]


def test_early_stopping_and_lr_schedule_follow_the_validation_loss(tmp_path: Path, events_file: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "early"
    # min_delta larger than any possible gain: only the first epoch counts as an improvement.
    rc, out, err = cli(capsys, *train_args(events_file, run, "--epochs", "6", "train.early_stop.patience=2",
                                           "train.early_stop.min_delta=1.0", "train.scheduler.patience=0",
                                           "train.scheduler.threshold=1.0"))
    assert rc == 0, err
    rows = _metrics(run)
    assert len(rows) == 3 and "stopped early" in out
    assert [r["best"] for r in rows] == ["1", "0", "0"]
    lrs = [float(r["lr"]) for r in rows]
    # A relative threshold of 100 % is never met: the plateau scheduler halves the rate each epoch.
    assert lrs == pytest.approx([5e-4, 2.5e-4, 1.25e-4])
    assert read_checkpoint(run / BEST)["epoch"] == 1 and read_checkpoint(run / LAST)["epoch"] == 3


@pytest.mark.parametrize("loss", ["l1", "huber"])
def test_configurable_loss_and_target(tmp_path: Path, events_file: Path, capsys: pytest.CaptureFixture[str],
                                      loss: str) -> None:
    run = tmp_path / loss
    rc, _, err = cli(capsys, *train_args(events_file, run, "--epochs", "1", "--max-events", "60", f"train.loss={loss}",
                                         "data.target=truth_neutral"))
    assert rc == 0, err
    ck = read_checkpoint(run / LAST)
    assert ck["normalisation"]["target"] == "truth_neutral" and ck["config"]["train"]["loss"] == loss
    assert ck["data"]["num_events"] == 60


def test_untrainable_analytic_baseline_is_saved_without_training(tmp_path: Path, events_file: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "analytic"
    rc, out, err = cli(capsys, "train", "--model", "analytic", "--data", str(events_file), "--out", str(run))
    assert rc == 0, err
    assert "nothing to train" in out and "(image, 0 params)" in out
    ck = read_checkpoint(run / BEST)
    assert ck["epoch"] == 0 and ck["optimizer_state"] is None
    assert float(ck["model_state"]["constants"][0]) == 0.5  # B field taken from the training file
    rc, out, _ = cli(capsys, "train", "--model", "analytic", "--data", str(events_file), "--out", str(run))
    assert rc == 0 and "resuming" in out


def test_without_data_a_missing_default_dataset_is_one_line_naming_the_command(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], events_file: Path) -> None:
    """Training never simulates (no stage runs another): a missing default dataset is an error that
    names the file and the ``pfgraph simulate`` command that makes it; an existing one is used."""
    default = tmp_path / "data" / "b050.root"
    args = ["train", "--model", "cnn", "--out", str(tmp_path / "run"), "--epochs", "1",
            f"data.default={default}", "data.simulate=gauss_b050", "model.encoder=[4]", "model.decoder=[]",
            "train.threads=1"]
    rc, out, err = cli(capsys, *args)
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"pfgraph: error: {default}: no such file")
    assert f"pfgraph simulate --config gauss_b050 --out {default}" in err
    assert not default.exists() and not (tmp_path / "run").exists()
    default.parent.mkdir()
    default.write_bytes(events_file.read_bytes())
    rc, out, err = cli(capsys, *args)
    assert rc == 0, err
    assert read_checkpoint(tmp_path / "run" / LAST)["data"]["files"] == [str(default.resolve())]


# ------------------------------------------------------------------------------ bad input


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    rc, _, err = cli(capsys, *argv)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pfgraph: error: "), err
    return lines[0]


def test_unknown_model_lists_the_valid_ones(tmp_path: Path, events_file: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    msg = _error(capsys, "train", "--model", "unet_atn", "--data", str(events_file), "--out", str(tmp_path / "r"))
    assert "unknown model 'unet_atn'" in msg and "did you mean 'unet_attn'" in msg and "edgeconv" in msg


def test_representation_mismatch(tmp_path: Path, events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    msg = _error(capsys, "train", "--repr", "graph", "--model", "unet", "--data", str(events_file),
                 "--out", str(tmp_path / "r"))
    assert "model 'unet' uses the 'image' representation, not 'graph'" in msg


def test_data_without_the_needed_branches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.io._files import event_types_and_data, synthetic_batch, write_tree

    types, data = event_types_and_data(synthetic_batch(20, seed=3))
    del types["truth"], data["truth"]
    path = write_tree(tmp_path / "no_truth.root", types, data)
    msg = _error(capsys, *train_args(path, tmp_path / "r"))
    assert f"{path}: branch 'truth' missing" in msg


def test_unwritable_output_folder(tmp_path: Path, events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    msg = _error(capsys, *train_args(events_file, blocker / "run"))
    assert "cannot create output folder" in msg and str(blocker / "run") in msg
    msg = _error(capsys, *train_args(events_file, blocker))
    assert "is not a folder" in msg


def test_checkpoint_of_another_model_in_the_run_folder(tmp_path: Path, events_file: Path, two_epochs: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    msg = _error(capsys, *train_args(events_file, two_epochs, "--epochs", "3", model="unet", tiny=False))
    assert "holds a checkpoint of model 'cnn'" in msg and "not 'unet'" in msg
    assert read_checkpoint(two_epochs / LAST)["epoch"] == 2  # untouched


def test_resume_refuses_changed_settings_and_other_data(events_file: Path, events_file_b0: Path, two_epochs: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    msg = _error(capsys, *train_args(events_file, two_epochs, "--epochs", "3", "train.lr=0.1"))
    assert "cannot resume with train.lr=0.1" in msg
    msg = _error(capsys, *train_args(events_file, two_epochs, "--epochs", "3", "--max-events", "60"))
    assert "cannot resume with data.max_events=60" in msg
    msg = _error(capsys, *train_args(events_file_b0, two_epochs, "--epochs", "3"))
    assert "the run was trained on other data" in msg and str(events_file) in msg


def test_corrupt_checkpoint_in_the_run_folder(tmp_path: Path, events_file: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "corrupt"
    run.mkdir()
    (run / LAST).write_bytes(b"not a checkpoint at all")
    msg = _error(capsys, *train_args(events_file, run))
    assert f"{run / LAST}: not a readable pfgraph checkpoint" in msg


@pytest.mark.parametrize(("extra", "expected"), [
    (("train.lr=-1",), "train.lr = -1"),
    (("lr=0.1",), "did you mean 'train.lr=0.1'"),
    (("train.los=l1",), "unknown config key 'train.los' (did you mean 'loss'?)"),
    (("model.chanels=[4]",), "unknown config key 'chanels'"),
    (("--max-events", "3"), "too few for a train/validation split"),
])
def test_bad_settings_are_one_line(tmp_path: Path, events_file: Path, capsys: pytest.CaptureFixture[str],
                                   extra: tuple[str, ...], expected: str) -> None:
    msg = _error(capsys, *train_args(events_file, tmp_path / "r", *extra))
    assert expected in msg, msg


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_requested_without_a_gpu(tmp_path: Path, events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    msg = _error(capsys, *train_args(events_file, tmp_path / "r", "--device", "cuda"))
    assert "no CUDA device is available" in msg


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_with_amp(tmp_path: Path, events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "gpu"
    rc, _, err = cli(capsys, *train_args(events_file, run, "--epochs", "2", "--device", "cuda"))
    assert rc == 0, err
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["device"].startswith("cuda")
    assert read_checkpoint(run / LAST)["epoch"] == 2


def test_log_mse_loss_weighs_relative_errors_alike() -> None:
    from pfgraph.training.config import TrainConfig
    from pfgraph.training.trainer import make_loss

    loss = make_loss(TrainConfig(loss="log_mse", log_eps=1e-4))
    target = torch.tensor([0.01, 1.0])
    small = loss(torch.tensor([0.011, 1.0]), target)  # 10 % too high on the small pixel
    large = loss(torch.tensor([0.01, 1.1]), target)  # 10 % too high on the large pixel
    assert small == pytest.approx(large.item(), rel=0.02)
    mse = make_loss(TrainConfig(loss="mse"))
    assert mse(torch.tensor([0.01, 1.1]), target) > 1000 * mse(torch.tensor([0.011, 1.0]), target)
    summed = make_loss(TrainConfig(loss="log_mse", log_eps=1e-4), reduction="sum")
    assert summed(torch.tensor([0.011, 1.0]), target) == pytest.approx(2 * small.item())
    assert loss(torch.tensor([-0.5, 1.0]), torch.tensor([0.0, 1.0])) == 0  # negative = empty
