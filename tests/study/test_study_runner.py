"""pfgraph study: runs a study end to end, resumes, lists its steps, refuses missing dependencies, keeps a ledger."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pfgraph.cli import main
from pfgraph.errors import DataError
from pfgraph.study.config import load_study
from pfgraph.study.runner import Study

TINY = str(Path(__file__).resolve().parent / "tiny.yaml")
FIRST = ["simulate:train", "simulate:test", "train:analytic:1", "evaluate:analytic:1:test"]


def _ledger(out: Path, step: str) -> dict:
    return json.loads((out / "steps" / f"{step}.json").read_text())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny study run in two calls: first some steps (--only), then the whole command (which resumes)."""
    out = tmp_path_factory.mktemp("study") / "tiny"
    assert main(["study", TINY, "--out", str(out), "--only", *FIRST]) == 0
    first = {s: _ledger(out, s) for s in FIRST}
    assert not (out / "steps" / "train:cnn:1.json").exists()
    return {"out": out, "first": first}


def test_only_refuses_a_step_whose_dependency_is_missing(tiny: dict, capsys: pytest.CaptureFixture[str]) -> None:
    out = tiny["out"]
    assert main(["study", TINY, "--out", str(out), "--only", "evaluate:cnn:1:test"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "step evaluate:cnn:1:test needs train:cnn:1, which is not done" in err
    assert "--only train:cnn:1" in err
    assert main(["study", TINY, "--out", str(out), "--only", "train:nope:1"]) == 2
    assert "no step 'train:nope:1'" in capsys.readouterr().err


def test_only_skips_a_step_already_done(tiny: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """A resubmitted batch job finds its step done and does nothing."""
    out = tiny["out"]
    assert main(["study", TINY, "--out", str(out), "--only", "simulate:train", "evaluate:analytic:1:test"]) == 0
    text = capsys.readouterr().out
    assert "simulate:train is done; skipped" in text and "evaluate:analytic:1:test is done; skipped" in text
    assert _ledger(out, "simulate:train") == tiny["first"]["simulate:train"]


def test_list_shows_dependencies_and_commands(tiny: dict, capsys: pytest.CaptureFixture[str]) -> None:
    out = tiny["out"]
    assert main(["study", TINY, "--out", str(out), "--list", "--format", "json"]) == 0
    steps = {s["id"]: s for s in json.loads(capsys.readouterr().out)["steps"]}
    assert steps["train:cnn:1"]["needs"] == ["simulate:train"]
    assert steps["evaluate:edgeconv:1:test"]["needs"] == ["train:edgeconv:1", "simulate:test"]
    assert steps["report:test"]["needs"] == ["evaluate:analytic:1:test", "evaluate:cnn:1:test",
                                             "evaluate:edgeconv:1:test"]
    assert steps["results"]["needs"] == ["report:test"]
    assert steps["train:cnn:1"]["command"] == f"pfgraph study {TINY} --out {out} --only train:cnn:1"
    assert steps["simulate:train"]["done"] and not steps["train:cnn:1"]["done"]
    assert main(["study", TINY, "--out", str(out), "--list"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert any(line.startswith("evaluate:cnn:1:test\t[todo]\tneeds: train:cnn:1 simulate:test\t") for line in text)


def test_whole_command_resumes_and_writes_everything(tiny: dict, capsys: pytest.CaptureFixture[str]) -> None:
    out = tiny["out"]
    assert main(["study", TINY, "--out", str(out), "--dry-run"]) == 0
    planned = [line.split()[2] for line in capsys.readouterr().out.splitlines()]
    assert planned == ["train:cnn:1", "evaluate:cnn:1:test", "train:edgeconv:1", "evaluate:edgeconv:1:test",
                       "report:test", "results"]
    assert main(["study", TINY, "--out", str(out)]) == 0
    ran = [ln.split()[-1] for ln in capsys.readouterr().out.splitlines() if ln.startswith("study tiny: step ")]
    assert ran == planned  # the steps done in the first call were not run again
    for step, before in tiny["first"].items():
        assert _ledger(out, step) == before  # untouched: same attempts, seconds, finish time
    for d in ("data/train.root", "runs/cnn/seed1/checkpoint_best.pt", "evals/test/edgeconv/seed1/metrics.json",
              "reports/test/index.html", "RESULTS.md", "study.yaml"):
        assert (out / d).exists(), d
    # a third call: only the cheap report and results are rewritten
    assert main(["study", TINY, "--out", str(out)]) == 0
    ran = [ln.split()[-1] for ln in capsys.readouterr().out.splitlines() if ln.startswith("study tiny: step ")]
    assert ran == ["report:test", "results"]
    assert _ledger(out, "results")["attempts"] == 2


def test_results_md_has_its_sections(tiny: dict) -> None:
    out = tiny["out"]
    if not (out / "RESULTS.md").exists():
        assert main(["study", TINY, "--out", str(out)]) == 0
    text = (out / "RESULTS.md").read_text()
    for heading in ("# Results: study `tiny`", "## How to read the verdicts", "## Test set `test`",
                    "Claims on this test set:", "Rank by metric (1 = best", "## Training budgets",
                    "## Compute spent"):
        assert heading in text, heading
    assert "| cnn | image | 1 |" in text and "| edgeconv | graph | 1 |" in text
    assert "| cnn | 1 | 1 / 1 | 1 |" in text and "still improving" in text  # a 1-epoch cap counts as improving
    assert "`abs_norm_reach_68`" in text and "**total**" in text and "### Figures at equal compute" in text
    assert "Not done when this page was written" not in text


def _as_git_keeps(src: Path, dst: Path) -> None:
    """Copy ``src`` (a study folder) to ``dst`` with only the files the repository's .gitignore keeps."""
    import shutil
    import subprocess

    repo = dst.parent / "repo"
    (repo / "studies").mkdir(parents=True)
    shutil.copyfile(Path(__file__).resolve().parents[2] / ".gitignore", repo / ".gitignore")
    shutil.copytree(src, repo / "studies" / "s")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    kept = subprocess.run([*git, "ls-files", "studies/s"], check=True, capture_output=True, text=True).stdout.split()
    for name in kept:
        target = dst / Path(name).relative_to("studies/s")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(repo / name, target)


def test_a_study_folder_kept_in_git_resumes_on_another_machine(tiny: dict, tmp_path: Path) -> None:
    """Without data, checkpoints, predictions and plots (.gitignore), finished trainings and evaluations
    stay done; an evaluation still to do retrains its model from scratch; the report reads the rest from
    their metrics."""
    out = tiny["out"]
    assert main(["study", TINY, "--out", str(out)]) == 0
    kept = tmp_path / "kept"
    _as_git_keeps(out, kept)
    assert not list(kept.rglob("*.pt")) and not list(kept.rglob("predictions.root")) and not (kept / "data").exists()
    assert (kept / "runs" / "cnn" / "seed1" / "train_summary.json").exists()
    assert (kept / "evals" / "test" / "cnn" / "seed1" / "metrics.json").exists()
    cfg, path = load_study(TINY)
    study = Study(cfg, kept, path)
    assert [s.id for s in study.pending()] == ["simulate:train", "simulate:test", "report:test", "results"]
    # an evaluation lost with the machine (its model's checkpoint too): the training runs again
    import shutil

    shutil.rmtree(kept / "evals" / "test" / "cnn" / "seed1")
    assert [s.id for s in study.pending()] == ["simulate:train", "simulate:test", "train:cnn:1",
                                               "evaluate:cnn:1:test", "report:test", "results"]
    # as a training still running when its files were committed: a config and a partial curve, no summary
    (kept / "runs" / "cnn" / "seed1" / "train_summary.json").unlink()
    assert (kept / "runs" / "cnn" / "seed1" / "metrics.csv").exists()
    assert [s.id for s in study.pending()] == ["simulate:train", "simulate:test", "train:cnn:1",
                                               "evaluate:cnn:1:test", "report:test", "results"]
    before = _ledger(kept, "train:cnn:1")
    assert main(["study", TINY, "--out", str(kept)]) == 0
    after = _ledger(kept, "train:cnn:1")
    assert after["status"] == "done" and after["attempts"] == before["attempts"] + 1
    assert after["seconds"] > before["seconds"]  # the lost attempt's seconds stay in the compute spent
    assert _ledger(kept, "train:edgeconv:1") == json.loads((out / "steps" / "train:edgeconv:1.json").read_text())
    summary = json.loads((kept / "reports" / "test" / "summary.json").read_text())
    assert sorted(Path(f).parent.name for f in summary["metrics_only"]) == ["analytic", "edgeconv"]
    assert len(summary["models"]) == 3 and (kept / "RESULTS.md").exists()


def test_ledger_sums_the_seconds_of_every_attempt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupted attempt records its seconds; the next attempt adds to them."""
    cfg, _ = load_study(TINY)
    study = Study(cfg, tmp_path / "s", TINY)
    step = study.step("simulate:train")

    def interrupted(self: Study, step: object, dist: object) -> None:
        time.sleep(0.05)
        raise KeyboardInterrupt

    monkeypatch.setattr(Study, "_run_simulate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        study.run_step(step)
    rec = study.read_ledger(step.id)
    assert rec["status"] == "interrupted" and rec["attempts"] == 1 and rec["seconds"] >= 0.05
    monkeypatch.setattr(Study, "_run_simulate", lambda self, step, dist: time.sleep(0.02))
    study.run_step(step)
    rec = study.read_ledger(step.id)
    assert rec["status"] == "done" and rec["attempts"] == 2 and len(rec["attempt_seconds"]) == 2
    assert rec["seconds"] == pytest.approx(sum(rec["attempt_seconds"]), abs=2e-3)
    assert rec["attempt_seconds"][1] >= 0.02 and rec["machine"] and rec["finished"]

    def failing(self: Study, step: object, dist: object) -> None:
        raise DataError("data/train.root: event 3: branch 'emcal' has NaN")

    monkeypatch.setattr(Study, "_run_simulate", failing)
    with pytest.raises(DataError):
        study.run_step(step)
    rec = study.read_ledger(step.id)
    assert rec["status"] == "failed" and rec["attempts"] == 3 and "event 3" in rec["error"]
    assert rec["seconds"] == pytest.approx(sum(rec["attempt_seconds"]), abs=3e-3)


def test_a_killed_attempt_counts_up_to_its_last_heartbeat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A running step rewrites its ledger every HEARTBEAT_S; the ledger a SIGKILL would leave
    behind (the last beat) carries the attempt's seconds into the next attempt's total."""
    from pfgraph.study import runner

    monkeypatch.setattr(runner, "HEARTBEAT_S", 0.02)
    cfg, _ = load_study(TINY)
    study = Study(cfg, tmp_path / "s", TINY)
    step = study.step("simulate:train")
    left: dict = {}

    def killed(self: Study, step: object, dist: object) -> None:
        time.sleep(0.3)  # several beats
        left.update(self.read_ledger("simulate:train"))

    monkeypatch.setattr(Study, "_run_simulate", killed)
    study.run_step(step)
    assert left["status"] == "running" and left["heartbeat"] and left["seconds"] >= 0.1
    assert left["attempt_seconds"] == [left["seconds"]]
    study._write_ledger(left)  # what the process leaves when it is killed at this point
    monkeypatch.setattr(Study, "_run_simulate", lambda self, step, dist: time.sleep(0.02))
    study.run_step(step)
    rec = study.read_ledger(step.id)
    assert rec["status"] == "done" and rec["attempts"] == 2 and rec["attempt_seconds"][0] == left["seconds"]
    assert rec["seconds"] == pytest.approx(left["seconds"] + rec["attempt_seconds"][1], abs=2e-3)
    time.sleep(0.1)  # the beat has stopped: nothing overwrites the final record
    assert study.read_ledger(step.id) == rec


def test_torchrun_needs_exactly_one_training_step(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["study", TINY, "--out", str(tmp_path / "s")]) == 2
    assert "under torchrun, run exactly one training step" in capsys.readouterr().err


def test_a_data_file_made_otherwise_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pfgraph

    out = tmp_path / "s"
    pfgraph.simulate("gauss_b050", out / "data" / "test.root", events=20, seed=5)  # the study wants 30, seed 10507
    assert main(["study", TINY, "--out", str(out), "--only", "simulate:test"]) == 2
    err = capsys.readouterr().err
    assert "data/test.root: generated with another config" in err and "choose another --out" in err


def test_a_data_file_from_before_a_config_key_existed_is_current(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A file written before a config key was added holds that key's default: the study keeps it
    (a key dropped from its stored config, at its default, is no difference; a changed value is)."""
    import pfgraph
    from pfgraph.io.root import EventFiles

    out = tmp_path / "s"
    study = Study(load_study(TINY)[0], out)
    path = out / "data" / "test.root"
    pfgraph.simulate("gauss_b050", path, events=30, seed=10507)
    assert study._data_current("test") is True
    meta = EventFiles(path).meta
    older = json.loads(json.dumps(meta))
    del older["config"]["output"]["dense_images"], older["config"]["detector"]["cell_threshold_hcal"]
    monkeypatch.setattr(EventFiles, "meta", property(lambda self: older), raising=False)
    assert study._data_current("test") is True
    older["config"]["detector"]["b_field"] = 3.0
    assert "generated with another config (differs in: detector)" in str(study._data_current("test"))


@pytest.mark.slow
def test_a_training_step_under_torchrun_uses_ddp(tmp_path: Path) -> None:
    """``torchrun ... -m pfgraph.cli study FILE --only train:M:S``: two processes, one run folder, one ledger."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "s"
    assert main(["study", TINY, "--out", str(out), "--only", "simulate:train"]) == 0
    env = dict(os.environ, PFGRAPH_NO_PROGRESS="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "pfgraph.cli", "study", TINY, "--out", str(out), "--only", "train:cnn:1"]
    res = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    summary = json.loads((out / "runs" / "cnn" / "seed1" / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 1
    rec = _ledger(out, "train:cnn:1")
    assert rec["status"] == "done" and rec["attempts"] == 1 and rec["processes"] == 2
    assert res.stdout.count("study tiny: step") == 1  # rank 0 alone reports
