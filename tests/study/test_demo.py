"""``pfgraph demo --quick``: the demo study, from simulation to the report, through the study runner (as CI runs it)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from pfgraph.cli import main
from pfgraph.eval.folder import read_manifest
from pfgraph.study.config import load_study
from pfgraph.study.demo import demo_study
from pfgraph.training.run_folder import BEST, file_sha256, read_checkpoint, save_checkpoint

pytestmark = pytest.mark.pythia


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.src: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.src += [v for k, v in attrs if k == "src" and v]


def _steps_run(printed: str) -> list[str]:
    """The step ids a run of the study printed (``study demo_quick: step i/n <id>``)."""
    return [line.split()[-1] for line in printed.splitlines() if line.startswith("study demo_quick: step ")]


def test_quick_demo_runs_every_stage_resumes_and_reevaluates_a_changed_checkpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, _ = load_study("demo_quick")
    models = [m.label for m in cfg.models]
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    ran = _steps_run(printed)
    assert ran[:2] == ["simulate:b050", "simulate:b050_jet"] and ran[-2:] == ["report:b050_jet", "results"]
    assert {f"train:{m}:1" for m in models} | {f"evaluate:{m}:1:b050_jet" for m in models} <= set(ran)
    # every step prints the command that reruns it alone
    assert f"$ pfgraph study demo_quick --out {out} --only train:cnn:1" in printed
    index = out / "report" / "index.html"  # the demo's report stays where the README says
    assert f"open {index}" in printed
    parser = _Images()
    parser.feed(index.read_text())
    assert len(parser.src) >= 6
    for src in parser.src:
        assert (index.parent / src).stat().st_size > 1000, src
    rows = {r["model"]: r for r in json.loads((out / "report" / "summary.json").read_text())["models"]}
    assert set(rows) == set(models)
    assert {r["repr"] for r in rows.values()} == {"image", "graph"}
    for name, row in rows.items():  # every model evaluated on the Pythia jet set with jets found
        assert row["events"] == cfg.datasets["b050_jet"].events and row["jet_efficiency"]["value"] > 0.5, name
        assert row["residual_half_width_68"]["lo"] is not None, name  # headline figures carry intervals
        assert row["parameters"] is not None, name
    assert (out / "RESULTS.md").is_file()
    ledgers = {p.stem: json.loads(p.read_text())["status"] for p in (out / "steps").glob("*.json")}
    assert set(ledgers.values()) == {"done"} and len(ledgers) == len(ran)

    # a second run finds everything done: no simulation, training or evaluation is repeated
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert _steps_run(capsys.readouterr().out) == ["report:b050_jet", "results"]

    # the checkpoint changed (a retrained or replaced model): the re-run evaluates it again, and
    # only it; the report then shows the new evaluation, not the stale one
    best = out / "runs" / "cnn" / "seed1" / BEST
    ck = read_checkpoint(best)
    name = next(k for k, v in ck["model_state"].items() if torch.is_floating_point(v))
    ck["model_state"][name] = ck["model_state"][name] + 0.01
    save_checkpoint(ck, best)
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert _steps_run(capsys.readouterr().out) == ["evaluate:cnn:1:b050_jet", "report:b050_jet", "results"]
    manifest = read_manifest(out / "evals" / "b050_jet" / "cnn" / "seed1")
    assert manifest["model"]["checkpoint_sha256"] == file_sha256(best)


def test_demo_seed_changes_the_study_and_its_commands() -> None:
    cfg, source = demo_study(quick=True, seed=1)
    assert source == "demo_quick" and cfg.training.seeds == [1]
    cfg, source = demo_study(quick=False, seed=7)
    assert source is None and cfg.training.seeds == [7]  # commands then name the folder's study.yaml
    assert cfg.datasets["b050"].seed == 7 and cfg.datasets["b050_jet"].seed == 8
    assert cfg.report_dirs == {"b050_jet": "report"}
