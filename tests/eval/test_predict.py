"""pfgraph predict: input-only files (written by scripts/examples/write_input_only.py), no truth needed,
one entry per input event in its order, the detector-config check, and a safe output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import uproot

from pfgraph.cli import main
from pfgraph.errors import DataError, PfgraphError
from pfgraph.eval.predict import predict
from pfgraph.io import schema

ROOT_DIR = Path(__file__).resolve().parents[2]
SCRIPT = ROOT_DIR / "scripts" / "examples" / "write_input_only.py"


def write_input_only(out: Path, *args: str) -> Path:
    """Run the example script as a user would (its own process)."""
    env_path = {"PYTHONPATH": str(ROOT_DIR)}
    import os

    proc = subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(out)], capture_output=True, text=True,
                          env={**os.environ, **env_path}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def graph_run(tmp_path_factory: pytest.TempPathFactory, events_file: Path) -> Path:
    """A tiny edgeconv trained for one epoch (graph model: per-point outputs)."""
    import torch

    run = tmp_path_factory.mktemp("predictrun") / "edgeconv"
    threads = torch.get_num_threads()
    try:
        rc = main(["train", "--model", "edgeconv", "--data", str(events_file), "--out", str(run), "--epochs", "1",
                   "model.widths=[8,8]", "model.head=[8]", "train.threads=1", "train.batch_size=16"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    return run


@pytest.fixture(scope="module")
def input_only(tmp_path_factory: pytest.TempPathFactory, events_file: Path) -> Path:
    """The first 30 events of the training-like file as numpy arrays, written by the example script."""
    d = tmp_path_factory.mktemp("inputonly")
    with uproot.open(events_file) as f:
        arrays = f["events"].arrays(["event_id", *schema.INPUT_CHANNELS], entry_stop=30, library="np")
    np.savez(d / "mine.npz", **arrays)
    return write_input_only(d / "mine.root", "--npz", str(d / "mine.npz"), "--detector-like", str(events_file))


def read(path: Path) -> tuple[dict, dict]:
    with uproot.open(path) as f:
        return f["predictions"].arrays(library="np"), json.loads(str(f[schema.META_KEY]))


@pytest.mark.parametrize("which", ["tiny_run", "graph_run"])
def test_input_only_file_gives_the_predictions_of_the_full_file(which: str, request: pytest.FixtureRequest,
                                                                 input_only: Path, events_file: Path,
                                                                 tmp_path: Path) -> None:
    run = request.getfixturevalue(which)
    full = predict(run, events_file, tmp_path / "full.root", max_events=30)
    mine = predict(run, input_only, tmp_path / "mine.root")
    assert mine.events == full.events == 30 and mine.detector_check == "same"
    a, meta = read(tmp_path / "mine.root")
    b, _ = read(tmp_path / "full.root")
    assert "truth" not in a
    with uproot.open(input_only) as f:
        ids = f["events"]["event_id"].array(library="np")
    np.testing.assert_array_equal(a["event_id"], ids)  # entry i predicts entry i
    np.testing.assert_allclose(a["pred"], b["pred"], atol=1e-5 * max(1.0, float(np.abs(b["pred"]).max())))
    assert meta["created_by"] == "pfgraph predict" and meta["detector_check"] == "same"
    assert meta["normalisation"]["target_scale"] > 0 and meta["training_data"]["detector"]["b_field"] == 0.5
    assert meta["data_identity"]["events"] == 30
    if which == "graph_run":  # per-point values at the points of the input
        assert list(a["npix"]) == [len(x) for x in a["pix_pred"]]
        grid = np.zeros_like(a["pred"])
        for e in range(len(grid)):
            grid[e, a["pix_ieta"][e], a["pix_iphi"][e]] = a["pix_pred"][e]
        np.testing.assert_allclose(grid, a["pred"], atol=1e-6)


def test_another_b_field_is_refused_then_accepted_and_recorded(tiny_run: Path, events_file: Path,
                                                              tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    other = write_input_only(tmp_path / "b1.root", "--demo", "12", "--detector-like", str(events_file),
                             "--b-field", "1.0")
    out = tmp_path / "p.root"
    assert main(["predict", str(tiny_run), "--data", str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "b_field: 0.5 -> 1.0" in err and "--allow-config-mismatch" in err
    assert not out.exists()
    assert main(["predict", str(tiny_run), "--data", str(other), "--out", str(out), "--allow-config-mismatch"]) == 0
    _, meta = read(out)
    assert meta["allow_config_mismatch"] is True and meta["detector_check"] == "mismatch allowed"
    assert meta["detector_differences"] == ["b_field: 0.5 -> 1.0"]


def test_a_file_without_detector_config_is_accepted_with_a_warning(tiny_run: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    other = write_input_only(tmp_path / "geant.root", "--demo", "5")
    assert main(["predict", str(tiny_run), "--data", str(other), "--out", str(tmp_path / "p.root")]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning" in err and "no detector config" in err
    arrays, meta = read(tmp_path / "p.root")
    assert meta["detector_check"] == "no detector config" and len(arrays["event_id"]) == 5


def test_output_safety(tiny_run: Path, input_only: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.root"
    foreign.write_bytes(b"not pfgraph's")
    with pytest.raises(PfgraphError, match="not written by pfgraph; refusing to replace it .*--force"):
        predict(tiny_run, input_only, foreign)
    assert foreign.read_bytes() == b"not pfgraph's"
    for force in (False, True):  # an input is never an output, --force or not
        with pytest.raises(PfgraphError, match="is the input file"):
            predict(tiny_run, input_only, input_only, force=force)
    with pytest.raises(PfgraphError, match="is a folder"):
        predict(tiny_run, input_only, tmp_path)
    out = tmp_path / "again.root"
    predict(tiny_run, input_only, out, max_events=3)
    predict(tiny_run, input_only, out, max_events=4)  # its own output is replaced
    assert len(read(out)[0]["event_id"]) == 4
    predict(tiny_run, input_only, foreign, max_events=2, force=True)  # named by the user, with --force
    assert len(read(foreign)[0]["event_id"]) == 2


def test_a_file_without_the_models_inputs_is_one_line(tiny_run: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.root"
    with uproot.recreate(bad) as f:
        f[schema.META_KEY] = json.dumps({"schema_version": 1, "kind": "events"})
        f.mktree("events", {"event_id": np.int64}).extend({"event_id": np.arange(3)})
    with pytest.raises(DataError, match="branch 'emcal' missing"):
        predict(tiny_run, bad, tmp_path / "p.root")


def test_predictions_without_truth_cannot_be_re_evaluated(tiny_run: Path, input_only: Path, tmp_path: Path,
                                                          events_file: Path) -> None:
    from pfgraph.eval.output import read_predictions

    predict(tiny_run, input_only, tmp_path / "p.root")
    with pytest.raises(DataError, match="written by pfgraph predict, no 'truth' branch"):
        read_predictions(tmp_path / "p.root")


def test_onnxruntime_backend_matches_torch(tiny_run: Path, graph_run: Path, input_only: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    for run in (tiny_run, graph_run):
        a = predict(run, input_only, tmp_path / "t.root", max_events=10)
        b = predict(run, input_only, tmp_path / "o.root", backend="onnxruntime", max_events=10)
        assert main(["export", str(run), "--out", str(tmp_path / "m.onnx")]) == 0
        c = predict(tmp_path / "m.onnx", input_only, tmp_path / "f.root", max_events=10)
        assert (a.backend, b.backend, c.backend) == ("torch", "onnxruntime", "onnxruntime")
        want = read(tmp_path / "t.root")[0]["pred"]
        for name in ("o.root", "f.root"):
            got, meta = read(tmp_path / name)
            assert np.abs(got["pred"] - want).max() <= 1e-5 * max(1.0, float(np.abs(want).max()))
            assert meta["backend"] == "onnxruntime" and meta["detector_check"] == "same"


def test_inspect_says_what_an_input_only_file_feeds(input_only: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    assert main(["inspect", str(input_only)]) == 0
    out = capsys.readouterr().out
    assert "input-only layout (image, graph inputs, no truth)" in out
    assert "feeds: input-only file: predict (image models and graph models); not train or evaluate" in out


@pytest.mark.root
def test_root_reads_the_predictions_as_a_friend_of_the_input(graph_run: Path, input_only: Path, tmp_path: Path) -> None:
    """The documented analysis: RDataFrame over the input tree with the predictions as its friend."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ROOT = pytest.importorskip("ROOT")  # noqa: N806
    ROOT.gROOT.SetBatch(True)
    out = predict(graph_run, input_only, tmp_path / "friend.root").out
    arrays, _ = read(out)
    events = ROOT.TFile.Open(str(input_only))
    preds = ROOT.TFile.Open(str(out))
    tree = events.Get("events")
    tree.AddFriend(preds.Get("predictions"), "p")
    df = ROOT.RDataFrame(tree)
    assert df.Count().GetValue() == 30
    assert df.Filter("event_id != p.event_id || npix != p.npix").Count().GetValue() == 0
    total = df.Define("e", "Sum(p.pred)").Sum("e").GetValue()
    assert total == pytest.approx(float(arrays["pred"].astype(np.float64).sum()), rel=1e-5)
    # per point: the prediction next to the input energies of the same point
    emcal = df.Define("w", "Sum(p.pix_pred * pix_emcal)").Sum("w").GetValue()
    want = sum(float(np.dot(p.astype(np.float64), e)) for p, e in
               zip(arrays["pix_pred"], uproot.open(input_only)["events"]["pix_emcal"].array(library="np")))
    assert emcal == pytest.approx(want, rel=1e-5)
    events.Close()
    preds.Close()


def test_export_replaces_only_its_own_file(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("onnx")
    foreign = tmp_path / "mine.onnx"
    foreign.write_bytes(b"someone else's model")
    assert main(["export", str(tiny_run), "--out", str(foreign)]) != 0
    assert "not written by pfgraph" in capsys.readouterr().err and foreign.read_bytes() == b"someone else's model"
    assert main(["export", str(tiny_run), "--out", str(foreign), "--force"]) == 0  # named by the user, with --force
    assert main(["export", str(tiny_run), "--out", str(foreign)]) == 0  # now pfgraph's own file
