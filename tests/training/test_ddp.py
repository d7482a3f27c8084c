"""Data-parallel training with torchrun on CPU (gloo), through the normal entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from pfgraph.training.run_folder import LAST, read_checkpoint
from tests.training._helpers import train_args

ROOT = Path(__file__).resolve().parents[2]


def test_torchrun_two_processes_on_cpu(tmp_path: Path, events_file: Path) -> None:
    run = tmp_path / "ddp"
    env = dict(os.environ, PFGRAPH_NO_PROGRESS="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "pfgraph.cli", *train_args(events_file, run, "--epochs", "2", "--device", "cpu")]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 2 and summary["device"] == "cpu"
    ck = read_checkpoint(run / LAST)
    assert ck["epoch"] == 2 and all(torch.isfinite(v).all() for v in ck["model_state"].values() if v.is_floating_point())
    assert res.stdout.count("train: cnn") == 1  # rank 0 alone reports and writes
    # Each of the 2 ranks saw half of the 96 training events per epoch.
    lines = (run / "metrics.csv").read_text().splitlines()
    assert len(lines) == 3 and all(line.split(",")[1] == "96" for line in lines[1:])
