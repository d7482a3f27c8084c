"""pfgraph/sim/stage.py guards (issue 31): never over a user's file or the config read, workers
capped at the cores, a disk estimate before a simulation that cannot fit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pfgraph.cli import main


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_simulate_never_replaces_a_file_pfgraph_did_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user = tmp_path / "notes.txt"
    user.write_text("my notes")
    argv = ["simulate", "--events", "4", "--workers", "0", "--out", str(user)]
    rc, _, err = _cli(capsys, *argv)
    assert rc == 2 and err == f"pfgraph: error: {user}: exists and was not written by pfgraph; refusing to replace " \
                             "it (choose another name, or pass --force to replace it)\n"
    assert user.read_text() == "my notes"
    rc, _, _ = _cli(capsys, *argv, "--force")
    assert rc == 0 and user.read_bytes()[:4] == b"root"
    rc, _, _ = _cli(capsys, *argv)  # now pfgraph's own file: replaced without --force
    assert rc == 0


def test_the_config_read_is_never_the_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("# mine\nevents: 4\n")
    rc, _, err = _cli(capsys, "simulate", "--config", str(cfg), "--out", str(cfg), "--workers", "0", "--force")
    assert rc == 2 and "an input is never an output" in err and cfg.read_text() == "# mine\nevents: 4\n"


def test_workers_are_capped_at_the_cores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cores = len(os.sched_getaffinity(0))
    rc, _, err = _cli(capsys, "simulate", "--events", "8", "--workers", "1000", "--out", str(tmp_path / "w.root"))
    assert rc == 0 and f"--workers 1000 capped at {cores}" in err


def test_a_simulation_larger_than_the_free_disk_is_refused_before_it_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "big.root"
    rc, _, err = _cli(capsys, "simulate", "--events", "100000000", "--out", str(out))
    assert rc == 2 and err.count("\n") == 1 and "no space left on device for 100,000,000 events" in err
    assert "TiB" in err and not out.exists() and list(tmp_path.iterdir()) == []
