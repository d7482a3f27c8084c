"""pfgraph.study.results: RESULTS.md from a study folder; verdicts follow the intervals and the stated metric."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pfgraph.eval.metrics import evaluate_arrays, write_metrics
from pfgraph.study.results import build_results, combine, derive_status, write_results


def _study_folder(tmp_path: Path, widths: dict[str, list[float]], abs_widths: dict[str, float] | None = None,
                  other_file: dict[str, float] | None = None) -> Path:
    """A study folder with one test set: model -> smearing per seed (relative), optionally an absolute
    smearing in GeV instead (to make the relative and the absolute figures disagree); ``other_file``:
    model -> its S as a multiple of the others' (trained on the study's second file, ``train_tail``)."""
    root = tmp_path / "study"
    rng = np.random.default_rng(3)
    truth = (rng.exponential(2.0, (12, 56, 56)) * (rng.random((12, 56, 56)) < 0.4)).astype(np.float32)
    models = []
    for i, (model, per_seed) in enumerate(widths.items()):
        models.append({"model": model, "seeds": list(range(1, len(per_seed) + 1)), "epochs": 4,
                       **({"train_on": "train_tail"} if other_file and model in other_file else {})})
        scale = float(truth.max()) * (other_file or {}).get(model, 1.0)
        for seed, noise in enumerate(per_seed, 1):
            rng_i = np.random.default_rng(100 * i + seed)
            if abs_widths and model in abs_widths:
                pred = truth + (truth > 0) * abs_widths[model] * rng_i.standard_normal(truth.shape)
            else:
                pred = truth * (1 + noise * rng_i.standard_normal(truth.shape))
            doc = evaluate_arrays(pred.astype(np.float32), truth, target_scale=scale,
                                  model={"name": model, "repr": "image"}, bootstrap=20,
                                  training={"parameters": 1000 + i, "epochs": 4, "seed": seed})
            folder = root / "evals" / "test" / model / f"seed{seed}"
            folder.mkdir(parents=True)
            write_metrics(folder / "metrics.json", doc)
            run = root / "runs" / model / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "metrics.csv").write_text("epoch,stage_events,train_loss,val_loss,lr,best,epoch_time_s,"
                                             "train_events_per_s\n" + "".join(
                                                 f"{e},80,0.1,{0.1 / e},0.001,1,10.0,8.0\n" for e in range(1, 5)))
    study = {"name": "synthetic", "datasets": {"train": {"sim": "gauss_b050", "events": 100},
                                               "train_tail": {"sim": "gauss_b050_tail", "events": 100},
                                               "test": {"sim": "gauss_b050", "events": 30, "seed": 9}},
             "train_on": "train", "evaluate_on": ["test"], "models": models}
    (root / "study.yaml").write_text(yaml.safe_dump(study))
    (root / "steps").mkdir()
    for step, kind, seconds, attempts, status in (("simulate:train", "simulate", 10.0, 1, "done"),
                                                  ("train:cnn:1", "train", 3600.0, 2, "done"),
                                                  ("train:cnn:2", "train", 1800.0, 1, "interrupted")):
        (root / "steps" / f"{step}.json").write_text(json.dumps(
            {"step": step, "kind": kind, "seconds": seconds, "attempts": attempts, "status": status,
             "started": "2026-12-02T10:00:00Z", "finished": "2026-12-02T12:00:00Z", "machine": "vm: 2 cores"}))
    return root


def _claims(text: str) -> dict[str, str]:
    return {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| arXiv")
            or line.startswith("| DESIGN")}


def test_verdicts_come_from_intervals_on_the_paper_metric(tmp_path: Path) -> None:
    root = _study_folder(tmp_path, {"cnn": [0.3], "cnn_attn": [0.1], "unet": [0.2], "unet_attn": [0.4],
                                    "cnn3d": [0.3]})
    text = build_results(root)
    claims = _claims(text)
    attn = claims["self-attention improves the CNN (cnn_attn as the paper's text builds it)"]
    assert "`abs_norm_half_width_68`" in attn and "**agrees**" in attn and "agrees: cnn_attn" in attn
    assert "**disagrees**" in claims["self-attention improves the U-Net"]
    assert "**not measured**" in claims["self-attention improves the CNN (cnn_attn_code, as the authors' code "
                                        "builds it)"]
    # seed 1 of cnn and of cnn3d: different noise draws of the same width: the intervals overlap
    assert "**inconclusive**" in claims["3D convolutions over the detector layers improve the CNN"]
    assert "| cnn | image | 1 | 1,000 | 4 / cap 4 |" in text


def test_paper_metric_and_relative_metric_can_disagree(tmp_path: Path) -> None:
    """An absolute smearing hurts r on small pixels more than abs_norm: the verdicts are shown side by side."""
    root = _study_folder(tmp_path, {"cnn": [0.1], "cnn_attn": [0.0]}, abs_widths={"cnn_attn": 0.13})
    line = _claims(build_results(root))["self-attention improves the CNN (cnn_attn as the paper's text builds it)"]
    decided, beside = line.split(" | ")[3], line.split(" | ")[5]
    assert decided == "**agrees**" and beside.startswith("disagrees")
    ranks = build_results(root).split("Rank by metric")[1]
    assert "cnn_attn" in ranks and "->" in ranks  # its rank moves between the metrics


def test_seeds_are_combined_and_status_derived(tmp_path: Path) -> None:
    root = _study_folder(tmp_path, {"cnn": [0.30, 0.32, 0.31], "analytic": [0.1]})
    text = build_results(root)
    row = next(line for line in text.splitlines() if line.startswith("| cnn | image | 3 |"))
    assert "+-" in row and "4, 4, 4 / cap 4" in row
    # no train_summary.json: the status comes from metrics.csv by the stated rule (val loss still falling at the cap)
    assert "still improving (no train_summary.json)" in row
    compute = text.split("## Compute spent")[1]
    assert "| train | 2 | 3 | 2 | 5400 | 1.50 |" in compute and "**5410**" in compute
    assert "Not done when this page was written (interrupted or failed): train:cnn:2." in compute
    never = compute.split("Not run yet (")[1]  # steps without a ledger, named so a partial page says what it lacks
    assert "train:cnn:3" in never and "simulate:train," not in never and "train:cnn:1," not in never
    seeds = text.split("Every seed")[1].split("## Training budgets")[0]
    assert sum(line.startswith("| cnn | ") for line in seeds.splitlines()) == 3 and "| cnn | 2 | 0." in seeds


def test_combine_one_and_several_seeds() -> None:
    one = combine([{"value": 1.0, "lo": 0.9, "hi": 1.2}])
    assert one == {"value": 1.0, "lo": 0.9, "hi": 1.2, "std": None, "n": 1}
    three = combine([{"value": v, "lo": v - 0.1, "hi": v + 0.1} for v in (1.0, 2.0, 3.0)])
    assert three["value"] == pytest.approx(2.0) and three["std"] == pytest.approx(1.0)
    assert three["hi"] - three["value"] == pytest.approx((1.0 + 0.01) ** 0.5)


@pytest.mark.parametrize(("losses", "epochs", "cap", "stopped", "want"), [
    ([1.0, 0.9, 0.8, 0.7, 0.6], 5, 5, False, "still improving"),
    ([1.0, 0.5, 0.5, 0.5, 0.5], 5, 5, False, "hit its cap"),
    ([1.0, 0.9], 2, 5, False, "not finished"),
    ([1.0, 1.1, 1.2], 3, 5, True, "stopped early"),
    ([], 0, 5, False, "not trained"),
])
def test_status_rule(losses: list[float], epochs: int, cap: int, stopped: bool, want: str) -> None:
    assert derive_status(losses, epochs, cap, stopped, trained=bool(losses)) == want


def test_recorded_status_wins_and_evidence_is_kept(tmp_path: Path) -> None:
    root = _study_folder(tmp_path, {"cnn": [0.3]})
    (root / "runs" / "cnn" / "seed1" / "train_summary.json").write_text(json.dumps(
        {"epochs": 4, "target_epochs": 4, "best_epoch": 3, "best_val_loss": 0.02, "status": "hit its cap",
         "wall_time_s": 123.0, "best_val_half_width": 0.21}))
    keep = tmp_path / "kept"
    path = write_results(root, tmp_path / "R.md", keep=keep)
    text = path.read_text()
    assert "| cnn | 1 | 4 / 4 | 3 | 0.02 | 0.210 | hit its cap | 123 |" in text
    assert (keep / "evals" / "test" / "cnn" / "seed1" / "metrics.json").exists()
    assert (keep / "steps" / "train:cnn:1.json").exists() and (keep / "study.yaml").exists()
    assert f"`{keep}`" in text


def test_results_table_script_wraps_the_package(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from scripts.results_table import main

    root = _study_folder(tmp_path, {"cnn": [0.3]})
    assert main([str(root), "--out", str(tmp_path / "R.md"), "--keep", str(tmp_path / "kept")]) == 0
    assert (tmp_path / "R.md").read_text() == build_results(root, evidence=str(tmp_path / "kept"))
    assert main([str(tmp_path)]) == 2
    assert "not a study folder" in capsys.readouterr().err


def test_status_copied_into_metrics_json_is_read(tmp_path: Path) -> None:
    """Without train_summary.json, a status the evaluation recorded (metrics.json training.status) is used."""
    root = _study_folder(tmp_path, {"cnn": [0.3]})
    path = root / "evals" / "test" / "cnn" / "seed1" / "metrics.json"
    doc = json.loads(path.read_text())
    doc["training"]["status"] = "stopped early"
    path.write_text(json.dumps(doc))
    assert "| cnn | 1 | 4 / 4 | 4 | - | - | stopped early |" in build_results(root)


def test_issue_15_targets_are_checked_on_the_value_against_the_analytic_and_the_test_set() -> None:
    from pfgraph.study.results import targets_table

    def fig(v: float) -> dict:
        return {"value": v, "lo": v - 0.001, "hi": v + 0.001, "std": None, "n": 1}

    jets = {"analytic": {"jet_energy_rel_median": fig(0.008), "jet_energy_rel_half_width_68": fig(0.032),
                         "residual_half_width_68": fig(0.070), "jet_position_median": fig(0.05),
                         "fake_energy_fraction": fig(0.037)},
            "calibrated": {"jet_energy_rel_median": fig(-0.040), "jet_energy_rel_half_width_68": fig(0.036),
                           "residual_half_width_68": fig(0.130), "jet_position_median": fig(0.30),
                           "fake_energy_fraction": fig(0.022)}}
    test = {"analytic": {"residual_half_width_68": fig(0.070)}, "calibrated": {"residual_half_width_68": fig(0.096)}}
    rows = {line.split(" | ")[0].lstrip("| "): line for line in targets_table(jets, test, "test").splitlines()[2:]}
    assert rows["analytic"].count("yes") == 5 and "**no**" not in rows["analytic"]
    cells = rows["calibrated"].split(" | ")
    # |median| 0.040 > 0.02: no; width 0.036: yes; ratio 0.130/0.096 = 1.35 > 1.2: no; D 0.30 px: no; fake below analytic: yes
    assert [cells[i] for i in (2, 4, 5, 6, 8, 10)] == ["**no**", "yes", "1.35", "**no**", "**no**", "yes |"]


def test_tail_ab_is_decided_on_the_magnitude_of_the_jet_energy_bias() -> None:
    """closer_to_zero compares |median| with intervals: -0.040 +- 0.002 against +0.010 +- 0.002 agrees,
    two biases whose magnitudes overlap (one interval holding zero) are inconclusive."""
    from pfgraph.study.results import JET_AB, JET_SCALE, _magnitude, closer_to_zero

    def fig(v: float, half: float = 0.002) -> dict:
        return {"value": v, "lo": v - half, "hi": v + half, "std": None, "n": 1}

    assert _magnitude(fig(-0.04)) == {**fig(0.04), "lo": pytest.approx(0.038), "hi": pytest.approx(0.042)}
    assert (_magnitude(fig(0.001))["lo"], _magnitude(fig(0.001))["hi"]) == (0.0, pytest.approx(0.003))
    assert JET_AB["calibrated_tail_flat"][0] == "calibrated" and JET_AB["calibrated_gnn_flat"][0] == "calibrated_gnn"
    check = closer_to_zero("calibrated_tail", "calibrated")
    figs = {"calibrated": {JET_SCALE: fig(-0.040)}, "calibrated_tail": {JET_SCALE: fig(0.010)}}
    assert check(figs, JET_SCALE)[0] is True
    figs["calibrated_tail"][JET_SCALE] = fig(0.045)  # as far off the other way: not closer
    assert check(figs, JET_SCALE)[0] is False
    figs["calibrated_tail"][JET_SCALE] = fig(0.039, 0.003)
    assert check(figs, JET_SCALE)[0] == "inconclusive"
    assert check({"calibrated": {JET_SCALE: fig(-0.04)}}, JET_SCALE)[0] is None


def test_a_variant_never_stands_in_for_a_model_not_evaluated_yet(tmp_path: Path) -> None:
    """A study under way: calibrated_tail_flat (model calibrated) is evaluated, calibrated not yet; the
    claims about calibrated must say 'not measured', not use the variant's figures."""
    from pfgraph.eval.metrics import read_metrics

    root = _study_folder(tmp_path, {"cnn": [0.3], "calibrated_tail_flat": [0.05]})
    mfile = root / "evals" / "test" / "calibrated_tail_flat" / "seed1" / "metrics.json"
    doc = read_metrics(mfile)
    doc["model"]["name"] = "calibrated"
    write_metrics(mfile, doc)
    study = yaml.safe_load((root / "study.yaml").read_text())
    study["models"][1].update(model="calibrated", name="calibrated_tail_flat")
    study["models"].append({"model": "calibrated", "seeds": [1], "epochs": 4})
    (root / "study.yaml").write_text(yaml.safe_dump(study))
    claims = _claims(build_results(root))
    assert "**not measured**" in claims["the improved calibrated beats its paper version cnn"]
    assert "**agrees**" in claims["the improved calibrated_tail_flat beats its paper version cnn"]


def test_the_paper_metric_is_compared_on_one_s(tmp_path: Path) -> None:
    """dE/S divides by the largest truth pixel of the model's own training file: a model trained on a
    file with a 20x larger S (the hard-tail file) must not rank first on dE/S for that alone. Its
    figures are put on the S of the models trained on the study's file, and the page says so."""
    root = _study_folder(tmp_path, {"cnn": [0.1], "cnn3d": [0.1]}, abs_widths={"cnn": 0.05, "cnn3d": 0.05},
                         other_file={"cnn3d": 20.0})
    own = json.loads((root / "evals/test/cnn3d/seed1/metrics.json").read_text())
    ref = json.loads((root / "evals/test/cnn/seed1/metrics.json").read_text())
    width = "headline.figures.abs_norm_half_width_68.value"

    def get(d: dict, path: str) -> float:
        for part in path.split("."):
            d = d[part]
        return d  # type: ignore[return-value]

    assert get(own, width) < 0.1 * get(ref, width)  # as evaluated: on its own, 20x larger S
    text = build_results(root)
    assert f"one S = {float(get(ref, 'settings.target_scale')):.4g} GeV" in text
    assert "rescaled from their own S" in text and "cnn3d" in text.split("rescaled from their own S")[1][:200]
    table = text.split("Rank by metric")[1]
    ranks = next(line for line in table.splitlines() if line.startswith("| cnn3d | "))
    value = float(ranks.split(" | ")[2].split(" ")[0])  # the dE/S cell of the rank table
    assert value == pytest.approx(get(ref, width), rel=0.1)  # the same smearing: the same figure on one S


def test_ranks_whose_intervals_overlap_are_marked_tied() -> None:
    """A rank order two overlapping intervals cannot resolve is marked '=' on both; a resolved one is not."""
    from pfgraph.study.results import MSE, PAPER_METRIC, RANK, ranking_table

    def fig(v: float, half: float) -> dict:
        return {"value": v, "lo": v - half, "hi": v + half, "std": None, "n": 1}

    figs = {m: {k: fig(v, h) for k in (MSE, PAPER_METRIC, RANK)}
            for m, v, h in (("a", 0.070, 0.001), ("b", 0.0705, 0.001), ("c", 0.2, 0.01))}
    rows = {line.split(" | ")[0][2:]: line for line in ranking_table(figs).splitlines()[2:]}
    assert rows["a"].count("(1=)") == 3 and rows["b"].count("(2=)") == 3
    assert rows["c"].count("(3)") == 3 and "=" not in rows["c"]


def test_a_model_row_describes_the_seeds_it_shows(tmp_path: Path) -> None:
    """A study under way: a model evaluated for one seed of two shows that seed's epochs and status only
    (the other seed's training is listed in the training table)."""
    import shutil

    root = _study_folder(tmp_path, {"cnn": [0.1, 0.1]})
    shutil.rmtree(root / "evals/test/cnn/seed2")
    shutil.rmtree(root / "runs/cnn/seed2")
    text = build_results(root)
    row = next(line for line in text.splitlines() if line.startswith("| cnn | image | 1 |"))
    assert "4 / cap 4" in row and "not run" not in row
    assert any(line.startswith("| cnn | 2 |") and "not run" in line for line in text.splitlines())


def test_mean_and_spread_are_shown_to_the_spread_s_precision() -> None:
    """A small figure over seeds keeps the digits its spread resolves (0.01 +- 0.00041 hid that
    0.0102 and 0.0099 differ), and a large one drops the digits its spread does not."""
    from pfgraph.study.results import show

    def fig(value: float, std: float) -> dict:
        return {"value": value, "std": std, "lo": value - std, "hi": value + std, "n": 3}

    assert show(fig(0.0102, 0.000414), ".3g") == "0.01020 +- 0.00041"
    assert show(fig(13.04, 0.366), ".3g") == "13.04 +- 0.37"
    assert show(fig(1234.0, 56.0), ".3g") == "1234 +- 56"
    assert show(fig(0.175, 0.0161), ".3f") == "0.175 +- 0.016"  # fixed-point columns keep their format


def test_runs_with_different_budget_statuses_name_their_seeds() -> None:
    """'still improving, stopped early' read as one contradictory status; each status names its seeds."""
    from pfgraph.study.results import Run, run_statuses

    def run(seed: int, status: str) -> Run:
        return Run(model="m", seed=seed, cap=4, summary={"status": status, "epochs": 4}, history=[])

    assert run_statuses([run(1, "still improving"), run(2, "stopped early"), run(3, "stopped early")]) == (
        "still improving (seed 1), stopped early (seeds 2, 3)")
    assert run_statuses([run(1, "hit its cap"), run(2, "hit its cap")]) == "hit its cap"
    assert run_statuses([]) == "-"


def test_jet_extrapolation_measures_the_jet_energy_above_the_training_range(tmp_path: Path) -> None:
    """The sentence states the share of jet energy in pixels above the training file's largest truth
    pixel, and says so when a training file covers the jet set."""
    import uproot

    from pfgraph.study.results import jet_extrapolation

    def write(path: Path, truth: np.ndarray, jet: np.ndarray | None = None) -> Path:
        branches = {"truth": truth.astype(np.float32)}
        if jet is not None:
            branches["jet"] = jet.astype(np.float32)
        with uproot.recreate(path) as f:
            f.mktree("events", {k: (v.dtype, v.shape[1:]) for k, v in branches.items()})
            f["events"].extend(branches)
        return path

    truth = np.zeros((4, 56, 56))
    truth[:, 10, 10] = 10.0  # the training range: up to 10 GeV
    train = write(tmp_path / "train.root", truth)
    jets = np.zeros((2, 56, 56))
    jets[:, 5, 5] = 30.0  # above the range
    jets[:, 6, 6] = 10.0  # inside it
    jets[0, 7, 7] = 20.0  # above it, one event
    jet = write(tmp_path / "jet.root", jets, jets)
    text = jet_extrapolation(train, jet)
    above = 100 * (30 + 30 + 20) / (30 + 30 + 20 + 10 + 10)
    assert f"{above:.0f} % of the injected jets' true energy" in text
    assert "(2 of 2 events have such a pixel)" in text and "extrapolates beyond its training range" in text
    wide = write(tmp_path / "wide.root", truth * 4)  # 40 GeV covers every jet pixel
    assert "do not extrapolate" in jet_extrapolation(wide, jet)
    assert jet_extrapolation(tmp_path / "missing.root", jet) is None
