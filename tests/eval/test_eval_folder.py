"""Issue 16, items 2, 4 and 5: predictions identify their data, an evaluation folder changes as
one unit (manifest.json) and matches its checkpoint's run, reports refuse mixed datasets."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import uproot
import yaml

from pfgraph.cli import main
from pfgraph.eval.folder import MANIFEST, verify_folder
from pfgraph.io.root import EventFiles
from pfgraph.training.run_folder import BEST
from pfgraph.utils.atomic import file_sha256
from tests.eval.conftest import make_jet_file

ROOT = Path(__file__).resolve().parents[2]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def other_jet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another jet sample: same event ids 0..23, another seed."""
    return make_jet_file(tmp_path_factory.mktemp("otherjets") / "jets_seed6.root", 24, seed=6)


@pytest.fixture(scope="module")
def eval_a(tiny_run: Path, jet_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evals") / "cnn_a"
    assert main(["evaluate", str(tiny_run), "--data", str(jet_file), "--out", str(out), "--no-plots",
                 "--device", "cpu"]) == 0
    return out


@pytest.fixture(scope="module")
def eval_b(tiny_run: Path, other_jet_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evals") / "cnn_b"
    assert main(["evaluate", str(tiny_run), "--data", str(other_jet_file), "--out", str(out), "--no-plots",
                 "--device", "cpu"]) == 0
    return out


def _copy(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest)
    return dest


# ------------------------------------------------------------------ item 2: data identity


def test_predictions_file_identifies_its_data(eval_a: Path, jet_file: Path) -> None:
    with uproot.open(eval_a / "predictions.root") as f:
        meta = json.loads(str(f["pfgraph_meta"]))
    ident = meta["data_identity"]
    files = EventFiles(jet_file)
    assert ident["seed"] == 5 and ident["events"] == 24 and ident["name"] == files.meta["config"]["name"]
    assert len(ident["fingerprint"]) == 16 and len(ident["config_sha256"]) == 16
    assert ident["files"][0]["path"] == str(jet_file.resolve()) and ident["files"][0]["entries"] == 24
    assert json.loads((eval_a / MANIFEST).read_text())["data_identity"] == ident


def test_reevaluation_refuses_other_data(eval_a: Path, jet_file: Path, other_jet_file: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    preds = eval_a / "predictions.root"
    rc, _, err = _cli(capsys, "evaluate", str(preds), "--data", str(other_jet_file), "--out", str(tmp_path / "x"),
                      "--no-plots")
    assert rc == 2 and err.startswith(f"pfgraph: error: {preds}: was made from ") and err.count("\n") == 1
    assert "jets.root" in err and "jets_seed6.root" in err and "(seed 5 != 6)" in err
    assert not (tmp_path / "x").exists() and not list(tmp_path.iterdir())
    # the right data is accepted (moved or copied: the identity is the content, not the path)
    moved = shutil.copy(jet_file, tmp_path / "renamed.root")
    rc, _, err = _cli(capsys, "evaluate", str(preds), "--data", str(moved), "--out", str(tmp_path / "y"), "--no-plots")
    assert rc == 0 and "warning" not in err


# ------------------------------------------------------------------ item 4: one-unit folders


def test_evaluation_folder_has_a_verified_manifest(eval_a: Path) -> None:
    doc = verify_folder(eval_a)
    assert set(doc["files"]) == {"metrics.json", "predictions.root", "config.yaml"}
    assert doc["files"]["predictions.root"]["sha256"] == file_sha256(eval_a / "predictions.root")
    assert doc["model"]["name"] == "cnn" and doc["n_events"] == 24
    assert not [p for p in eval_a.parent.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_report_refuses_a_mixed_or_incomplete_folder(eval_a: Path, eval_b: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    mixed = _copy(eval_a, tmp_path / "mixed")
    shutil.copy(eval_b / "predictions.root", mixed / "predictions.root")  # what a kill mid-update left before
    rc, _, err = _cli(capsys, "report", str(mixed), "--out", str(tmp_path / "rep"))
    assert rc == 2 and f"{mixed}: predictions.root is not the file this evaluation wrote" in err
    assert err.count("\n") == 1
    bare = _copy(eval_a, tmp_path / "bare")
    (bare / MANIFEST).unlink()
    rc, _, err = _cli(capsys, "report", str(bare), "--out", str(tmp_path / "rep"))
    assert rc == 2 and f"{bare}: no manifest.json" in err
    rc, out, _ = _cli(capsys, "report", str(eval_a), "--out", str(tmp_path / "rep"))
    assert rc == 0 and "report: 1 evaluations of Gauss_S1.00_NL0.30_B0.50_jet (jets.root; seed 5, 24 events)" in out


def test_a_failed_evaluation_leaves_the_previous_folder_intact(eval_a: Path, tiny_run: Path, other_jet_file: Path,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = _copy(eval_a, tmp_path / "ev")
    before = {p.name: file_sha256(p) for p in folder.iterdir()}

    def interrupted(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("pfgraph.eval.metrics.write_metrics", interrupted)  # after predictions.root is complete
    rc, _, err = _cli(capsys, "evaluate", str(tiny_run), "--data", str(other_jet_file), "--out", str(folder),
                      "--no-plots", "--device", "cpu")
    assert rc == 130 and "interrupted" in err
    assert {p.name: file_sha256(p) for p in folder.iterdir()} == before
    verify_folder(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev"]  # no temporary folder left either


def test_evaluate_replaces_an_earlier_evaluation_and_refuses_foreign_folders(
        eval_a: Path, tiny_run: Path, other_jet_file: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = _copy(eval_a, tmp_path / "ev")
    old_metrics = file_sha256(folder / "metrics.json")
    rc, _, _ = _cli(capsys, "evaluate", str(tiny_run), "--data", str(other_jet_file), "--out", str(folder),
                    "--no-plots", "--device", "cpu")
    assert rc == 0 and file_sha256(folder / "metrics.json") != old_metrics
    assert verify_folder(folder)["data_identity"]["seed"] == 6
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    rc, _, err = _cli(capsys, "evaluate", str(tiny_run), "--data", str(other_jet_file), "--out", str(mine),
                      "--no-plots", "--device", "cpu")
    assert rc == 2 and f"{mine}: holds files pfgraph evaluate did not write (notes.txt)" in err
    assert (mine / "notes.txt").read_text() == "keep me"


def test_evaluate_never_deletes_a_users_figures(eval_a: Path, tiny_run: Path, other_jet_file: Path,
                                                tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 31: ``evaluate --out figures/`` deleted every PNG of a folder of the user's figures.
    A PNG the evaluation's manifest does not list (or, without a manifest, one pfgraph did not draw)
    is the user's: refused with one line; ``--force`` replaces the folder as asked."""
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\n a figure of the user's")
    argv = ["evaluate", str(tiny_run), "--data", str(other_jet_file), "--out", str(figures), "--no-plots",
            "--device", "cpu"]
    rc, _, err = _cli(capsys, *argv)
    assert rc == 2 and err.count("\n") == 1 and "plot.png" in err and "--force" in err
    assert (figures / "plot.png").exists()
    folder = _copy(eval_a, tmp_path / "ev")  # an evaluation folder with a figure added by hand
    (folder / "residual.png").write_bytes(b"an old figure")
    rc, _, err = _cli(capsys, "evaluate", str(tiny_run), "--data", str(other_jet_file), "--out", str(folder),
                      "--no-plots", "--device", "cpu")
    assert rc == 2 and "residual.png" in err and (folder / "residual.png").exists()
    rc, _, _ = _cli(capsys, *argv, "--force")
    assert rc == 0 and not (figures / "plot.png").exists()
    verify_folder(figures)


@pytest.mark.slow
def test_kill_9_during_evaluation_keeps_the_old_folder_and_the_next_run_cleans_up(
        eval_a: Path, tiny_run: Path, other_jet_file: Path, tmp_path: Path) -> None:
    folder = _copy(eval_a, tmp_path / "ev")
    before = {p.name: file_sha256(p) for p in folder.iterdir()}
    argv = [sys.executable, "-m", "pfgraph.cli", "evaluate", str(tiny_run), "--data", str(other_jet_file), "--out",
            str(folder), "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    tmp = None
    while time.time() < deadline and tmp is None:
        tmp = next((p for p in tmp_path.glob(".ev.evaluate-*.tmp") if (p / "predictions.root").exists()), None)
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert tmp is not None, "the evaluation never wrote its temporary predictions.root"
    assert {p.name: file_sha256(p) for p in folder.iterdir()} == before  # the old evaluation, whole
    assert tmp.exists()
    subprocess.run(argv + ["--no-plots"], cwd=ROOT, env=env, check=True, capture_output=True)
    assert not tmp.exists() and verify_folder(folder)["data_identity"]["seed"] == 6


def test_checkpoint_from_another_run_folder_is_refused(tiny_run: Path, events_file: Path, jet_file: Path,
                                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "small_cnn"
    assert main(["train", "--model", "cnn", "--data", str(events_file), "--out", str(other), "--epochs", "1",
                 "model.encoder=[4]", "model.decoder=[4]", "train.threads=1", "train.batch_size=16"]) == 0
    capsys.readouterr()
    swapped = _copy(tiny_run, tmp_path / "swapped")
    shutil.copy(other / BEST, swapped / BEST)
    rc, _, err = _cli(capsys, "evaluate", str(swapped), "--data", str(jet_file), "--out", str(tmp_path / "e"),
                      "--no-plots", "--device", "cpu")
    assert rc == 2 and f"{swapped / BEST}: does not belong to run folder {swapped}: it holds model 'cnn' (" in err
    assert "but train_summary.json describes 'cnn' (" in err and not (tmp_path / "e").exists()
    # same model and size, other settings: caught by config.yaml
    edited = _copy(tiny_run, tmp_path / "edited")
    cfg = yaml.safe_load((edited / "config.yaml").read_text())
    cfg["train"]["lr"] = 0.5
    (edited / "config.yaml").write_text(yaml.safe_dump(cfg))
    rc, _, err = _cli(capsys, "evaluate", str(edited), "--data", str(jet_file), "--out", str(tmp_path / "e"),
                      "--no-plots", "--device", "cpu")
    assert rc == 2 and "does not belong to run folder" in err and "train.lr=0.001" in err


# ------------------------------------------------------------------ item 5: reports across datasets


def test_report_refuses_evaluations_of_different_datasets(eval_a: Path, eval_b: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _cli(capsys, "report", str(eval_a), str(eval_b), "--out", str(tmp_path / "rep"))
    assert rc == 2 and err.count("\n") == 1
    assert "report: the evaluations are of different datasets (seed 5 != 6)" in err
    assert f"{eval_a}: Gauss_S1.00_NL0.30_B0.50_jet (jets.root; seed 5, 24 events)" in err
    assert f"{eval_b}: Gauss_S1.00_NL0.30_B0.50_jet (jets_seed6.root; seed 6, 24 events)" in err
