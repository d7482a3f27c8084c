"""The prediction API: a run folder over data -> (B, 56, 56) GeV predictions in file order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import uproot

from pfgraph.errors import DataError, PfgraphError
from pfgraph.io.root import EventFiles
from pfgraph.training.predict import load_run, predict
from tests.training._helpers import train_args


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, events_file: Path) -> Path:
    from pfgraph.cli import main

    run = tmp_path_factory.mktemp("pred") / "cnn"
    assert main(train_args(events_file, run, "--epochs", "1")) == 0
    return run


def test_load_run_gives_an_eval_model_and_its_normalisation(run_dir: Path) -> None:
    run = load_run(run_dir)
    assert run.model_name == "cnn" and run.entry.name == "cnn" and run.repr.name == "image"
    assert not run.model.training and run.checkpoint.name == "checkpoint_best.pt"
    assert len(run.checkpoint_sha256) == 64 and run.config["model"]["name"] == "cnn"
    assert run.target == "truth" and run.norm.target_scale > 0 and len(run.norm.input_scale) == 4
    assert sorted(len(v) for v in run.split.values()) == [12, 12, 96]
    assert load_run(run_dir, which="last").checkpoint.name == "checkpoint_last.pt"


def test_predictions_in_file_order_in_gev(run_dir: Path, events_file: Path) -> None:
    run = load_run(run_dir)
    files = EventFiles(events_file)
    chunks = list(predict(run, files, batch_size=16, max_events=40))
    assert [len(c["event_id"]) for c in chunks] == [16, 16, 8]
    ids = np.concatenate([c["event_id"] for c in chunks])
    pred = np.concatenate([c["pred"] for c in chunks])
    truth = np.concatenate([c["truth"] for c in chunks])
    ref = uproot.open(events_file)["events"].arrays(["event_id", "truth", "emcal", "hcal", "trk_neg", "trk_pos"],
                                                   entry_stop=40, library="np")
    assert ids.dtype == np.int64 and np.array_equal(ids, ref["event_id"])
    assert pred.dtype == np.float32 and pred.shape == (40, 56, 56)
    assert truth.dtype == np.float32 and np.array_equal(truth, ref["truth"])  # exactly the file's values
    # The checkpoint's normalisation in, its target scale out.
    scales = np.asarray(run.norm.input_scale, dtype=np.float32).reshape(1, 4, 1, 1)
    x = np.stack([ref[c] for c in ("emcal", "hcal", "trk_neg", "trk_pos")], axis=1) / scales
    with torch.no_grad():
        direct = run.model(torch.from_numpy(x.astype(np.float32)))[:, 0].numpy() * run.norm.target_scale
    np.testing.assert_allclose(pred, direct, rtol=1e-5, atol=1e-6)
    assert (pred >= 0).all()  # sigmoid output


def test_other_data_uses_the_training_normalisation(run_dir: Path, events_file_b0: Path) -> None:
    run = load_run(run_dir)
    scale = run.norm.target_scale
    files = EventFiles(events_file_b0)
    first = next(predict(run, files, batch_size=4, indices=np.array([5, 7])))
    assert first["event_id"].tolist() == [5, 7]
    assert run.norm.target_scale == scale  # nothing re-fitted on the new data
    ref = uproot.open(events_file_b0)["events"].arrays(["truth"], library="np")["truth"][[5, 7]]
    assert np.array_equal(first["truth"], ref)


def test_errors_are_one_clear_line(run_dir: Path, tmp_path: Path, events_file: Path) -> None:
    with pytest.raises(PfgraphError, match="no checkpoint"):
        load_run(tmp_path)
    with pytest.raises(PfgraphError, match="no such run folder"):
        load_run(tmp_path / "missing")
    with pytest.raises(PfgraphError, match="checkpoint of model 'cnn', not 'unet'"):
        load_run(run_dir, expect_model="unet")
    with pytest.raises(DataError, match="out of range"):
        list(predict(load_run(run_dir), EventFiles(events_file), indices=np.array([500])))


def test_a_checkpoint_that_does_not_fit_its_model(run_dir: Path, tmp_path: Path) -> None:
    ck = torch.load(run_dir / "checkpoint_best.pt", weights_only=True)
    ck["config"]["model"]["params"]["encoder"] = [8, 8]  # another architecture than the weights
    bad = tmp_path / "bad"
    bad.mkdir()
    torch.save(ck, bad / "checkpoint_best.pt")
    with pytest.raises(PfgraphError, match="does not fit model 'cnn'"):
        load_run(bad)
