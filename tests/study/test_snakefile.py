"""``pfgraph study --snakefile``: the study as a Snakemake workflow, run by the real snakemake."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pfgraph.cli import main
from pfgraph.study.config import load_study, study_from_dict
from pfgraph.study.runner import Study
from pfgraph.study.snakefile import rule_names, snakefile_text, step_outputs

ROOT = Path(__file__).resolve().parents[2]
TINY = str(Path(__file__).resolve().parent / "tiny.yaml")


def _rules(text: str) -> dict[str, dict[str, str]]:
    """rule name -> {directive: value} of a written Snakefile (one line per directive)."""
    rules: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        if m := re.match(r"^rule (\w+):", line):
            current = rules.setdefault(m.group(1), {})
        elif current is not None and (m := re.match(r"^    (\w+): (.*)$", line)):
            current[m.group(1)] = m.group(2)
    return rules


def test_one_rule_per_step_with_its_files_resources_and_command(tmp_path: Path) -> None:
    cfg, _ = load_study(TINY)
    study = Study(cfg, tmp_path / "tiny")
    rules = _rules(snakefile_text(study, TINY))
    names = rule_names(study.steps())
    assert set(rules) == {"all", *names.values()} and len(rules) == len(study.steps()) + 1
    assert rules["all"]["input"] == "'RESULTS.md', 'steps/results.json'"
    train = rules[names["train:cnn:1"]]
    assert train["output"] == "'runs/cnn/seed1/train_summary.json', 'steps/train:cnn:1.json'"  # the ledger last
    assert train["input"] == "'data/train.root', 'steps/simulate:train.json'"  # what train:cnn:1 needs
    assert train["threads"] == "2" and train["resources"] == "mem_mb=8000"
    assert train["shell"] == repr("{params.pfgraph} study " + TINY + f" --out {tmp_path / 'tiny'} --only train:cnn:1")
    evaluate = rules[names["evaluate:cnn:1:test"]]
    assert evaluate["input"] == ("'runs/cnn/seed1/train_summary.json', 'steps/train:cnn:1.json', 'data/test.root', "
                                 "'steps/simulate:test.json'")
    assert step_outputs(study, study.step("report:test")) == ["reports/test/index.html", "steps/report:test.json"]


def test_resources_of_the_study_and_torchrun_for_a_multi_gpu_training(tmp_path: Path) -> None:
    data = {"name": "s", "datasets": {"train": {"sim": "gauss_b050"}, "test": {"sim": "gauss_b050"}},
            "train_on": "train", "evaluate_on": ["test"], "models": ["cnn"],
            "resources": {"train": {"threads": 8, "mem_mb": 32000, "gpus": 4, "runtime": 600},
                          "evaluate": {"gpus": 1}}}
    study = Study(study_from_dict(data), tmp_path / "s")
    rules = _rules(snakefile_text(study, "s"))
    train, evaluate = rules["train_cnn_1"], rules["evaluate_cnn_1_test"]
    assert train["threads"] == "8" and train["resources"] == "mem_mb=32000, runtime=600, gpu=4"
    assert train["shell"].startswith("'{params.torchrun} --standalone --nproc_per_node {resources.gpu} -m pfgraph.cli "
                                     "study s --out ")
    assert evaluate["resources"] == "mem_mb=4000, gpu=1" and evaluate["shell"].startswith("'{params.pfgraph} study s")
    # braces in a path are not Snakemake placeholders
    text = snakefile_text(Study(study.cfg, tmp_path / "a{b}"), "s")
    assert "a{{b}}" in text and "workdir: " + repr(str(tmp_path / "a{b}")) in text


def test_snakefile_is_refused_with_run_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["study", TINY, "--out", str(tmp_path), "--snakefile", str(tmp_path / "S"), "--only", "results"]) == 2
    assert "--snakefile writes the whole workflow" in capsys.readouterr().err
    assert not (tmp_path / "S").exists()


def _results_without_timing(path: Path) -> str:
    """RESULTS.md without what differs between two runs of the same study: its folder and whatever
    is measured in wall seconds (the training wall column, figures at equal wall time, the compute
    section). The tiny study's runs record no FLOPs, so its equal-compute budgets are wall seconds."""
    text = path.read_text().replace(str(path.parent), "<folder>")
    text = text.split("## Compute spent")[0]
    head, budgets = text.split("## Training budgets")
    budgets = budgets.split("### Figures at equal compute")[0]
    assert "| train wall [s] |" in budgets.splitlines()[4]  # the last column of the budget table
    budgets = re.sub(r"\| [\d.]+ \|$", "| <s> |", budgets, flags=re.M)
    return re.sub(r"B = [\d.]+ s:[^|]*", "<at equal wall time>", head + budgets)


@pytest.mark.slow  # 1-3 minutes on the shared 2-core machine: one process per step, plus the reference run
def test_snakemake_runs_the_study_into_the_same_folder_as_pfgraph_study(tmp_path: Path) -> None:
    pytest.importorskip("snakemake")
    ref = tmp_path / "by_pfgraph"
    assert main(["study", TINY, "--out", str(ref)]) == 0
    out = tmp_path / "by_snakemake"
    smk = tmp_path / "Snakefile"
    assert main(["study", TINY, "--out", str(out), "--snakefile", str(smk)]) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    elsewhere = tmp_path / "elsewhere"  # the Snakefile runs from any directory
    elsewhere.mkdir()
    cmd = [sys.executable, "-m", "snakemake", "-s", str(smk), "--cores", "2",
           "--config", f"pfgraph={sys.executable} -m pfgraph.cli"]
    run = subprocess.run(cmd, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "10 of 11 steps (91%) done" in run.stderr and "(100%) done" in run.stderr
    # the same study folder: every step's ledger done, the same figures, the same RESULTS.md
    ledgers = {p.name: json.loads(p.read_text()) for p in (ref / "steps").glob("*.json")}
    again = {p.name: json.loads(p.read_text()) for p in (out / "steps").glob("*.json")}
    assert set(again) == set(ledgers) and {r["status"] for r in again.values()} == {"done"}
    assert {k: (r["key"], r["attempts"]) for k, r in again.items()} == {k: (r["key"], r["attempts"])
                                                                        for k, r in ledgers.items()}
    for mfile in sorted(ref.glob("evals/*/*/*/metrics.json")):
        a, b = json.loads(mfile.read_text()), json.loads((out / mfile.relative_to(ref)).read_text())
        figures = [{k: v for k, v in d["headline"].items() if k != "seconds"} for d in (a, b)]  # all but its timing
        assert figures[0] == figures[1] and a["energy"] == b["energy"]
        # the same trained weights (a checkpoint's SHA-256 differs: it records its data file's absolute path)
        assert a["training"]["best_val_loss"] == b["training"]["best_val_loss"]
    assert _results_without_timing(out / "RESULTS.md") == _results_without_timing(ref / "RESULTS.md")
    assert (out / "reports" / "test" / "index.html").is_file()
    # a second run has nothing to do
    run = subprocess.run(cmd, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "Nothing to be done" in run.stdout + run.stderr
