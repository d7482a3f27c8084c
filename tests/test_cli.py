"""pfgraph/cli.py: a closed pipe ends quietly, SIGTERM is an interrupt, a full disk is one line (issue 16.6/7/10)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pfgraph.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PFGRAPH_NO_PROGRESS": "1"}


@pytest.mark.parametrize("argv", [["inspect", "{file}"], ["schema", "--markdown"]])
def test_closed_pipe_ends_quietly(argv: list[str], events_file: Path) -> None:
    """``pfgraph inspect FILE | head -1``: the reader is gone before the first write."""
    cmd = [sys.executable, "-m", "pfgraph.cli", *(a.format(file=events_file) for a in argv)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like head after its line: every later write gets EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141
    assert err == ""


def test_head_of_inspect_in_a_shell_pipeline(events_file: Path) -> None:
    proc = subprocess.run(f"{sys.executable} -m pfgraph.cli inspect {events_file} | head -1", shell=True,
                          capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300)
    assert proc.stdout.startswith(f"file: {events_file}") and proc.stderr == ""


def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path) -> None:
    """SIGTERM during simulate: one line, exit 143, no output and no temporary left."""
    out = tmp_path / "x.root"
    proc = subprocess.Popen([sys.executable, "-m", "pfgraph.cli", "simulate", "--events", "200000", "--workers", "0",
                             "--out", str(out), "output.chunk=100"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".x.root.*.tmp")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip() == "pfgraph: interrupted (SIGTERM)"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_full_disk_outside_a_writer_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """An ENOSPC the writers did not turn into a PfgraphError is still one line naming the file."""
    import pfgraph.io.cmd as io_cmd

    def full(args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "schema.md"))

    monkeypatch.setattr(io_cmd, "run_schema", full)
    assert main(["schema"]) == 2
    err = capsys.readouterr().err
    assert err == f"pfgraph: error: {tmp_path / 'schema.md'}: no space left on device (No space left on device)\n"


@pytest.mark.slow
def test_a_fine_grid_end_to_end(tmp_path: Path) -> None:
    """Issue 28's acceptance at a small size: simulate at 224 x 224 (sparse-first files: output.dense_images
    auto), train an image and a graph model, evaluate both and report (the grid comes from the data at every
    step); predict reads the sparse file, and the same test events written densely evaluate identically."""
    import json

    import uproot

    from pfgraph.io.root import EventFiles

    data, test, dense = tmp_path / "g.root", tmp_path / "t.root", tmp_path / "t_dense.root"
    assert main(["simulate", "--config", "gauss_b050", "--events", "12", "--seed", "1", "--out", str(data),
                 "detector.grid=224"]) == 0
    assert main(["simulate", "--config", "gauss_b050", "--events", "6", "--seed", "2", "--out", str(test),
                 "detector.grid=224"]) == 0
    assert main(["simulate", "--config", "gauss_b050", "--events", "6", "--seed", "2", "--out", str(dense),
                 "detector.grid=224", "output.dense_images=always"]) == 0
    assert EventFiles(data).layout == EventFiles(test).layout == "sparse" and EventFiles(dense).layout == "dense"
    assert "truth" not in uproot.open(test)["events"].keys()
    runs = {"image": ("unet", "model.channels=[8,16]"), "graph": ("edgeconv", "model.widths=[16,16]", "model.head=[16]")}
    evals = []
    for rep, (model, *overrides) in runs.items():
        run, ev = tmp_path / f"run_{model}", tmp_path / f"ev_{model}"
        assert main(["train", "--repr", rep, "--model", model, "--data", str(data), "--out", str(run), "--epochs", "1",
                     "--batch-size", "4", "--device", "cpu", *overrides]) == 0
        assert main(["evaluate", str(run), "--data", str(test), "--out", str(ev)]) == 0
        with uproot.open(ev / "predictions.root") as f:
            assert f["predictions"]["pred"].array(library="np").shape == (6, 224, 224)
            assert json.loads(str(f["pfgraph_meta"]))["imsize"] == 224
        metrics = json.loads((ev / "metrics.json").read_text())
        assert metrics["headline"]
        evals.append(str(ev))
        # the dense copy of the test events: the same predictions and figures (truth from the sparse truth)
        assert main(["evaluate", str(run), "--data", str(dense), "--out", str(ev) + "_dense"]) == 0
        with uproot.open(ev / "predictions.root") as f, uproot.open(str(ev) + "_dense/predictions.root") as g:
            for name in ("pred", "truth"):
                assert f["predictions"][name].array(library="np").tobytes() == \
                    g["predictions"][name].array(library="np").tobytes(), name
        assert json.loads((tmp_path / f"ev_{model}_dense" / "metrics.json").read_text())["energy"] == metrics["energy"]
        assert main(["predict", str(run), "--data", str(test), "--out", str(tmp_path / f"p_{model}.root")]) == 0
    assert main(["report", *evals, "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "index.html").exists() and list((tmp_path / "rep").glob("event_*.png"))
