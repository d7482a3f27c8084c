"""scripts/results_table.py: RESULTS.md is built from metrics documents, and its verdicts follow them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import uproot

from pfgraph.eval.metrics import evaluate_arrays, write_metrics
from scripts.results_table import build, jet_extrapolation


def _run_folder(tmp_path: Path, widths: dict[str, float], seeds: dict[str, int] | None = None) -> Path:
    """A reproduce_paper.sh output folder with one B=0.5 test set evaluated for ``widths`` (model -> smearing;
    ``seeds``: model -> seed of its smearing, default its position)."""
    run = tmp_path / "paper"
    rng = np.random.default_rng(3)
    truth = (rng.exponential(2.0, (20, 56, 56)) * (rng.random((20, 56, 56)) < 0.4)).astype(np.float32)
    for i, (model, noise) in enumerate(widths.items()):
        rng_i = np.random.default_rng((seeds or {}).get(model, i))
        pred = (truth * (1 + noise * rng_i.standard_normal(truth.shape))).astype(np.float32)
        doc = evaluate_arrays(pred, truth, target_scale=float(truth.max()), model={"name": model, "repr": "image"},
                              training={"parameters": 1000 + i, "epochs": 2})
        folder = run / "evals" / "b050_test" / model
        folder.mkdir(parents=True)
        write_metrics(folder / "metrics.json", doc)
    (run / "reproduce.log").write_text(  # an interrupted call, then the one that resumed it
        "# reproduce_paper.sh --events 100 --epochs 2\n"
        "# started 2026-12-01T09:00:00Z on vm: events=100 test=20 jets=20 epochs=2 device=cpu fields=050\n"
        "epoch 1/2:  10%|#         | 10/100"  # killed: no newline after its progress bar
        "# reproduce_paper.sh --events 100 --epochs 2\n"
        "# started 2026-12-01T10:00:00Z on vm: events=100 test=20 jets=20 epochs=2 device=cpu fields=050\n"
        "epoch 1/2:  50%|#####     | 50/100\repoch 1/2: 100%|##########| 100/100\n"
        "# finished 2026-12-01T10:05:00Z, 300 s\n")
    return run


def test_tables_verdicts_and_kept_evidence(tmp_path: Path) -> None:
    run = _run_folder(tmp_path, {"cnn": 0.3, "cnn_attn": 0.1, "unet": 0.2, "unet_attn": 0.4, "cnn3d": 0.3},
                      seeds={"cnn3d": 0})  # cnn3d: the same smearing as cnn
    keep = tmp_path / "kept"
    text = build(run, keep)
    calls = [line for line in text.splitlines() if line.startswith("  ") and "reproduce_paper.sh" in line]
    assert len(calls) == 2 and all("`scripts/reproduce_paper.sh --events 100 --epochs 2`" in c for c in calls)
    assert "started 2026-12-01T09:00:00Z, interrupted" in calls[0]
    assert "started 2026-12-01T10:00:00Z, finished 2026-12-01T10:05:00Z (300 s)" in calls[1]
    assert "| cnn | image | 1,000 | 2 |" in text and "| unet_attn | image | 1,003 | 2 |" in text
    lines = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| arXiv")}
    assert "**agrees**" in lines["self-attention improves the CNN"]  # 0.1 < 0.3, intervals apart
    assert "**disagrees**" in lines["self-attention improves the U-Net"]  # 0.4 > 0.2
    # the same figures: the 68 % intervals overlap, so no verdict either way
    assert "**inconclusive**" in lines["3D convolutions over the detector layers improve the CNN"]
    assert " [" in lines["self-attention improves the CNN"]  # figures are shown with their intervals
    design = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| DESIGN")}
    assert "**not measured**" in design["the improved mlp_plus beats its paper version mlp"]
    # the evidence: every metrics document as written, and the log without progress-bar redraws
    kept = json.loads((keep / "b050_test" / "cnn_attn.json").read_text())
    assert kept == json.loads((run / "evals" / "b050_test" / "cnn_attn" / "metrics.json").read_text())
    log = (keep / "reproduce.log").read_text()
    assert "100/100" in log and "50/100" not in log


def test_documents_without_intervals_give_no_verdict(tmp_path: Path) -> None:
    """Regression (issue 13): a fixed 2 % rule decided claims; schema-2 documents carry no intervals."""
    run = _run_folder(tmp_path, {"cnn": 0.3, "cnn_attn": 0.1})
    for model in ("cnn", "cnn_attn"):
        path = run / "evals" / "b050_test" / model / "metrics.json"
        doc = json.loads(path.read_text())
        for fig in doc["headline"]["figures"].values():
            fig["lo"] = fig["hi"] = None
        path.write_text(json.dumps(doc))
    text = build(run, tmp_path / "kept")
    lines = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| arXiv")}
    assert "**inconclusive**" in lines["self-attention improves the CNN"]


def test_jet_extrapolation_is_measured_on_the_run_data(tmp_path: Path) -> None:
    run = tmp_path / "paper"
    (run / "data").mkdir(parents=True)
    assert jet_extrapolation(run) is None  # no data files: no sentence
    train = np.zeros((3, 56, 56), np.float32)
    train[0, 5, 5] = 10.0  # the training maximum
    truth = np.zeros((2, 56, 56), np.float32)
    jet = np.zeros((2, 56, 56), np.float32)
    truth[0, 1, 1], jet[0, 1, 1] = 30.0, 30.0  # above the training maximum
    truth[1, 2, 2], jet[1, 2, 2] = 10.0, 10.0  # at it: not above
    for name, branches in (("b050.root", {"truth": train}), ("b050_jet.root", {"truth": truth, "jet": jet})):
        with uproot.recreate(run / "data" / name) as f:  # TTrees, as pfgraph writes them
            f.mktree("events", {k: (np.float32, (56, 56)) for k in branches}).extend(branches)
    text = jet_extrapolation(run)
    assert text is not None
    assert "is 10.0 GeV" in text and "75 % of the injected jets' true energy" in text and "(1 of 2 events" in text


def test_models_trained_with_several_seeds_show_their_spread(tmp_path: Path) -> None:
    run = _run_folder(tmp_path, {"cnn_s1": 0.30, "cnn_s2": 0.32, "unet": 0.2})
    for folder, seed in (("cnn_s1", 1), ("cnn_s2", 2), ("unet", 1)):
        path = run / "evals" / "b050_test" / folder / "metrics.json"
        doc = json.loads(path.read_text())
        doc["model"]["name"] = folder.split("_s")[0]
        doc["training"]["seed"] = seed
        path.write_text(json.dumps(doc))
    text = build(run, tmp_path / "kept")
    assert "Spread over training seeds" in text
    row = next(line for line in text.splitlines() if line.startswith("| cnn | 2 |"))
    assert "+-" in row and "unet | 2" not in text  # one seed: no spread row
