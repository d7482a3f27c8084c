"""``pfgraph train`` writes only into its own run folders, one process at a time (issue 31)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pfgraph.utils.lock import LOCK_NAME
from tests.training._helpers import TINY, cli, train_args

ROOT = Path(__file__).resolve().parents[2]


def test_a_users_config_yaml_is_never_overwritten(tmp_path: Path, events_file: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "mine"
    run.mkdir()
    user_cfg = run / "config.yaml"
    user_cfg.write_text("# my settings, with comments\ntrain: {lr: 0.01}\n")
    rc, _, err = cli(capsys, *train_args(events_file, run, "--epochs", "1"))
    assert rc == 2 and err.count("\n") == 1 and "config.yaml was not written by pfgraph train" in err
    # the input config is never an output, --force or not
    rc, _, err = cli(capsys, *train_args(events_file, run, "--epochs", "1", "--config", str(user_cfg), "--force"))
    assert rc == 2 and "an input is never an output" in err
    assert user_cfg.read_text() == "# my settings, with comments\ntrain: {lr: 0.01}\n"
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    rc, _, err = cli(capsys, *train_args(events_file, other, "--epochs", "1"))
    assert rc == 2 and "holds files pfgraph train did not write (notes.txt); it is not a run folder" in err


def test_a_second_train_into_the_same_folder_is_refused_naming_the_holder(
        tmp_path: Path, events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PFGRAPH_NO_PROGRESS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "pfgraph.cli", *train_args(events_file, run, "--epochs", "30")],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run / "checkpoint_last.pt").exists():
            time.sleep(0.1)
        assert (run / LOCK_NAME).exists()
        rc, _, err = cli(capsys, *train_args(events_file, run, "--epochs", "30", "--seed", "7"))
        assert rc == 2 and err.count("\n") == 1 and f"in use by pfgraph train pid={first.pid}" in err
    finally:
        first.kill()
        first.wait()
    # kill -9 left the lock file behind: the next train takes it over and resumes
    assert (run / LOCK_NAME).exists()
    rc, out, _ = cli(capsys, *train_args(events_file, run, "--epochs", "1"))
    assert rc == 0 and not (run / LOCK_NAME).exists()


def test_a_stale_lock_naming_a_dead_pid_is_taken_over(tmp_path: Path, events_file: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text(f"pfgraph train pid=999999 host={socket.gethostname()} since=then\n")
    rc, _, _ = cli(capsys, "train", "--model", "cnn", "--data", str(events_file), "--out", str(run), "--epochs", "1",
                   *TINY)
    assert rc == 0 and (run / "checkpoint_best.pt").exists()
