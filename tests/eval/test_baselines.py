"""The oracle baseline: evaluated beside every model on a file that carries the oracle image, with
the same code as the model (metrics.json ``baselines.oracle``), null elsewhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pfgraph.io import schema
from pfgraph.io.root import EventFiles
from tests.conftest import make_events
from tests.eval.conftest import make_jet_file

NO_TRAIN = ["--epochs", "0", "train.threads=1"]


@pytest.fixture(scope="module")
def oracle_jets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_jet_file(tmp_path_factory.mktemp("oracle") / "jets.root", 12, 5, "output.oracle=true")


def _untrained(model: str, data: Path, out: Path, *extra: str) -> Path:
    from pfgraph.cli import main

    assert main(["train", "--model", model, "--data", str(data), "--out", str(out), *NO_TRAIN, *extra]) == 0
    return out


def test_oracle_is_evaluated_with_the_models_code(oracle_jets: Path, tmp_path: Path) -> None:
    import pfgraph
    from pfgraph.eval.metrics import evaluate_arrays, read_metrics

    run = _untrained("analytic", oracle_jets, tmp_path / "analytic")
    ev = pfgraph.evaluate(run, oracle_jets, tmp_path / "eval", bootstrap=20, plots=False)
    doc = read_metrics(tmp_path / "eval" / "metrics.json")
    oracle = doc["baselines"]["oracle"]
    assert oracle is not None and "oracle" in ev.summary
    data = EventFiles(oracle_jets).read(["truth", schema.ORACLE_IMAGE, *schema.INPUT_CHANNELS])
    ref = evaluate_arrays(data[schema.ORACLE_IMAGE], data["truth"], {c: data[c] for c in schema.INPUT_CHANNELS},
                          target_scale=doc["settings"]["target_scale"], jets=True, bootstrap=20)
    for key in ("residual_half_width_68", "residual_median", "fake_energy_fraction", "missed_pixel_fraction",
                "jet_energy_rel_median"):
        assert oracle["headline"]["figures"][key] == ref["headline"]["figures"][key], key
    assert oracle["energy"]["residual"]["robust"] == ref["energy"]["residual"]["robust"]
    assert oracle["jets"]["available"] and oracle["jets"]["n_events"] == 12
    # the floor is below the formula: each particle's own measurements, combined
    assert (oracle["headline"]["figures"]["residual_half_width_68"]["value"]
            < doc["headline"]["figures"]["residual_half_width_68"]["value"])


def test_graph_model_evaluations_carry_it_too(oracle_jets: Path, tmp_path: Path) -> None:
    import pfgraph

    run = _untrained("residual_gnn", oracle_jets, tmp_path / "gnn", "model.width=4", "model.blocks=1")
    ev = pfgraph.evaluate(run, oracle_jets, tmp_path / "eval", bootstrap=0, plots=False)
    assert ev.metrics["baselines"]["oracle"] is not None


def test_null_without_the_image_or_for_another_target(events_file: Path, tmp_path: Path) -> None:
    import pfgraph

    run = _untrained("analytic", events_file, tmp_path / "plain")
    assert pfgraph.evaluate(run, events_file, tmp_path / "e1", bootstrap=0, plots=False).metrics["baselines"] == {
        "oracle": None}
    data = make_events(tmp_path / "oracle.root", 20, "gauss_b050", "output.oracle=true")
    neutral = _untrained("analytic", data, tmp_path / "neutral", "data.target=truth_neutral")
    ev = pfgraph.evaluate(neutral, data, tmp_path / "e2", bootstrap=0, plots=False)
    assert ev.metrics["baselines"]["oracle"] is None  # the oracle estimates all particles, not the neutral ones
    assert np.isfinite(ev.metrics["headline"]["figures"]["residual_half_width_68"]["value"])
