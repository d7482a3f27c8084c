"""``pfgraph evaluate`` end to end: outputs, the ROOT file read without pfgraph, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from pfgraph.cli import main
from pfgraph.errors import PfgraphError
from pfgraph.eval.metrics import METRICS_VERSION, key_paths, read_metrics, template
from pfgraph.io import schema

pytest.importorskip("fastjet")


def evaluate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["evaluate", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def jet_eval(tiny_run: Path, jet_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evaljet") / "cnn_jet"
    assert main(["evaluate", str(tiny_run), "--data", str(jet_file), "--out", str(out), "--device", "cpu",
                 "--batch-size", "10"]) == 0
    return out


def test_outputs_and_metrics_schema(jet_eval: Path, tiny_run: Path) -> None:
    from pfgraph.train.predict import load_run

    names = {p.name for p in jet_eval.iterdir()}
    assert {"metrics.json", "predictions.root", "config.yaml", "residual.png", "residual_vs_etrue.png",
            "jets.png"} <= names
    assert not [n for n in names if n.startswith(".")]  # no temporaries left
    doc = read_metrics(jet_eval / "metrics.json")
    assert key_paths(doc) == key_paths(template())
    run = load_run(tiny_run)
    assert doc["settings"]["target_scale"] == pytest.approx(run.norm.target_scale)
    assert doc["model"] == {"name": "cnn", "repr": "image", "run_dir": str(tiny_run), "checkpoint": str(run.checkpoint),
                            "checkpoint_sha256": run.checkpoint_sha256}
    summary = json.loads((tiny_run / "train_summary.json").read_text())
    assert doc["training"]["parameters"] == summary["params"] > 0
    assert doc["training"]["epochs"] == 1 and doc["training"]["train_time_s"] == summary["train_time_s"]
    assert doc["dataset"]["n_events"] == 24 and doc["dataset"]["has_jet_image"] is True
    assert doc["dataset"]["name"] == "Gauss_S1.00_NL0.30_B0.50_jet"
    jets = doc["jets"]
    assert jets["available"] and jets["radius"] == 0.4 and jets["threshold_gev"] == 0.1 and jets["backend"] == "fastjet"
    assert jets["n_truth_jets"] == 24 and 0 <= jets["efficiency"] <= 1
    assert doc["timing"]["inference_events_per_s"] > 0 and doc["timing"]["jets_events_per_s"] > 0
    assert doc["energy"]["n_events"] == 24 and doc["energy"]["residual"]["fit"]["status"] == "ok"


def test_identical_keys_with_and_without_jets(jet_eval: Path, tiny_run: Path, events_file: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = evaluate(capsys, str(tiny_run), "--data", str(events_file), "--out", str(tmp_path / "e"),
                          "--device", "cpu", "--max-events", "20", "--no-plots")
    assert rc == 0 and "evaluated cnn on 20 events" in out
    plain = json.loads((tmp_path / "e" / "metrics.json").read_text())
    jet = json.loads((jet_eval / "metrics.json").read_text())
    assert key_paths(plain) == key_paths(jet) == key_paths(template())
    assert plain["jets"]["available"] is False and "not a jet sample" in plain["jets"]["reason"]
    assert plain["jets"]["efficiency"] is None and plain["jets"]["position"]["fit"]["mu"] is None
    with uproot.open(tmp_path / "e" / "predictions.root") as f:
        assert schema.JETS_TREE not in [k.split(";")[0] for k in f.keys()]
        assert f[schema.PREDICTIONS_TREE].num_entries == 20
    assert not list((tmp_path / "e").glob("*.png"))


def test_prediction_file_opens_in_plain_uproot(jet_eval: Path, jet_file: Path) -> None:
    with uproot.open(jet_eval / "predictions.root") as f:
        meta = json.loads(str(f[schema.META_KEY]))
        tree = f[schema.PREDICTIONS_TREE]
        arrays = tree.arrays(["event_id", "model", "pred", "truth"], library="np")
        data = uproot.open(jet_file)["events"].arrays(["event_id", "truth"], library="np")
        assert arrays["pred"].shape == (24, 56, 56) and arrays["pred"].dtype == np.float32
        np.testing.assert_array_equal(arrays["event_id"], data["event_id"])
        np.testing.assert_array_equal(arrays["truth"], data["truth"])
        assert meta["kind"] == "predictions" and meta["model_names"][int(arrays["model"][0])] == "cnn"
        jets = f[schema.JETS_TREE].arrays(library="ak")
    assert len(jets) == 24
    # the selected jets come first; ranks say where they were in pT order
    first_pt = ak.to_numpy(jets["truth_jet_pt"][:, 0])
    np.testing.assert_allclose(first_pt, ak.to_numpy(jets["truth_pt"]), rtol=1e-6)
    assert (ak.to_numpy(jets["truth_jet_eta"][:, 0]) ** 2 < 0.1).all()  # the injected jet sits at the origin


def independent_fastjet(truth: np.ndarray, radius: float, threshold: float, tie_break: float, seed: int) -> list:
    """FastJet on the truth images, pseudojets built here from the recorded settings."""
    import fastjet

    off = np.random.default_rng(seed).uniform(-0.5, 0.5, (2, 56, 56))
    eta_c = np.linspace(-2.5, 2.5, 57)[:-1] + 2.5 / 56
    phi_c = np.linspace(-np.pi, np.pi, 57)[:-1] + np.pi / 56
    eta = np.broadcast_to(eta_c[:, None], (56, 56)) + tie_break * (5.0 / 56) * off[0]
    phi = np.broadcast_to(phi_c[None, :], (56, 56)) + tie_break * (2 * np.pi / 56) * off[1]
    out = []
    for img in truth.astype(np.float64):
        sel = img > threshold
        e, et, ph = img[sel], eta[sel], phi[sel]
        pt = e / np.cosh(et)
        pjs = [fastjet.PseudoJet(float(a), float(b), float(c), float(d))
               for a, b, c, d in zip(pt * np.cos(ph), pt * np.sin(ph), pt * np.sinh(et), e)]
        seq = fastjet.ClusterSequence(pjs, fastjet.JetDefinition(fastjet.antikt_algorithm, radius))
        jets = sorted(seq.inclusive_jets(), key=lambda j: -j.pt())
        out.append(np.array([[j.pt(), j.eta(), j.phi_std(), j.e(), len(j.constituents())] for j in jets]))
    return out


def test_jets_tree_equals_an_independent_fastjet_run(jet_eval: Path) -> None:
    with uproot.open(jet_eval / "predictions.root") as f:
        meta = json.loads(str(f[schema.META_KEY]))
        truth = f[schema.PREDICTIONS_TREE]["truth"].array(library="np")
        jets = f[schema.JETS_TREE].arrays(library="ak")
    cfg = meta["jets"]
    ref = independent_fastjet(truth, cfg["radius"], cfg["threshold_gev"], cfg["tie_break_pixels"], cfg["tie_break_seed"])
    for k, r in enumerate(ref):
        stored = np.stack([ak.to_numpy(jets[f"truth_jet_{f}"][k]).astype(np.float64)
                           for f in ("pt", "eta", "phi", "energy", "nconst")], axis=1)
        stored = stored[np.argsort(-stored[:, 0], kind="stable")]
        assert stored.shape == r.shape, f"event {k}: {len(stored)} jets stored, FastJet finds {len(r)}"
        np.testing.assert_array_equal(stored[:, 4], r[:, 4])
        np.testing.assert_allclose(stored[:, :4], r[:, :4], rtol=2e-6, atol=2e-6)


def test_reevaluating_the_prediction_file(jet_eval: Path, jet_file: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = evaluate(capsys, str(jet_eval / "predictions.root"), "--data", str(jet_file), "--out",
                            str(tmp_path / "again"), "--no-plots")
    assert rc == 0, err
    a = read_metrics(jet_eval / "metrics.json")
    b = read_metrics(tmp_path / "again" / "metrics.json")
    assert a["energy"] == b["energy"] and a["jets"]["position"] == b["jets"]["position"]
    assert b["settings"]["target_scale"] == a["settings"]["target_scale"]
    assert b["training"] == a["training"]  # carried by the predictions file's meta


RECORDED_V2 = Path(__file__).resolve().parents[2] / "docs" / "results" / "b050_jet" / "cnn.json"


def test_metrics_of_schema_versions_1_and_2_are_read_and_migrated(tmp_path: Path) -> None:
    doc = json.loads(RECORDED_V2.read_text())  # a recorded schema-2 document
    assert doc["schema_version"] == 2
    old = read_metrics(RECORDED_V2)
    assert old["schema_version"] == METRICS_VERSION and key_paths(old) == key_paths(template())
    # the migrated headline carries the document's own robust figures, without intervals
    figs = old["headline"]["figures"]
    assert figs["residual_half_width_68"]["value"] == doc["energy"]["residual"]["robust"]["half_width_68"]
    assert figs["jet_energy_rel_median"]["value"] == doc["jets"]["energy_rel"]["robust"]["median"]
    assert figs["residual_median"]["lo"] is None and "no bootstrap intervals" in old["headline"]["reason"]
    assert old["energy"]["missed"]["pixel_fraction"] is None and old["training"]["seed"] is None
    # the Gaussian-core rule is applied to the old fits from their own numbers
    assert old["energy"]["residual"]["fit"]["core_gaussian"] is not None
    del doc["training"]
    doc["schema_version"] = 1
    (tmp_path / "v1.json").write_text(json.dumps(doc))
    v1 = read_metrics(tmp_path / "v1.json")
    assert v1["schema_version"] == METRICS_VERSION
    assert {v for k, v in v1["training"].items() if k != "history"} == {None}
    assert set(v1["training"]["history"].values()) == {None}
    doc["schema_version"] = METRICS_VERSION + 1
    (tmp_path / "newer.json").write_text(json.dumps(doc))
    with pytest.raises(PfgraphError, match="newer than this pfgraph reads"):
        read_metrics(tmp_path / "newer.json")


def test_torch_and_fastjet_backends_write_the_same_jets(jet_eval: Path, jet_file: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    outs = {}
    for backend in ("torch", "fastjet"):
        rc, _, err = evaluate(capsys, str(jet_eval / "predictions.root"), "--data", str(jet_file), "--out",
                              str(tmp_path / backend), "--no-plots", "--jet-backend", backend, "--max-events", "3",
                              "--jet-threshold", "0.5")
        assert rc == 0, err
        with uproot.open(tmp_path / backend / "predictions.root") as f:
            outs[backend] = f[schema.JETS_TREE].arrays(library="ak")
        assert read_metrics(tmp_path / backend / "metrics.json")["jets"]["backend"] == backend
    for field in outs["torch"].fields:
        assert ak.all(outs["torch"][field] == outs["fastjet"][field]), field


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == 1 and lines[0].startswith("pfgraph: error:"), err
    return lines[0]


def test_run_folder_without_checkpoint(tmp_path: Path, events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run").mkdir()
    rc, _, err = evaluate(capsys, str(tmp_path / "run"), "--data", str(events_file), "--out", str(tmp_path / "o"))
    assert rc == 2 and "no checkpoint" in one_error_line(err)
    assert not (tmp_path / "o" / "metrics.json").exists()
    rc, _, err = evaluate(capsys, str(tmp_path / "nothing"), "--data", str(events_file), "--out", str(tmp_path / "o"))
    assert rc == 2 and "no such run folder or predictions file" in one_error_line(err)


def test_data_of_another_schema(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    future = tmp_path / "future.root"
    with uproot.recreate(future) as f:
        f[schema.META_KEY] = json.dumps({"schema_version": 99, "kind": "events", "imsize": 56})
        f["events"] = {"event_id": np.arange(3, dtype=np.int64)}
    rc, _, err = evaluate(capsys, str(tiny_run), "--data", str(future), "--out", str(tmp_path / "o"))
    assert rc == 2 and "schema version 99" in one_error_line(err)
    missing = tmp_path / "missing.root"
    with uproot.recreate(missing) as f:
        f[schema.META_KEY] = json.dumps({"schema_version": 1, "kind": "events", "imsize": 56})
        f["events"] = {"event_id": np.arange(3, dtype=np.int64)}
    rc, _, err = evaluate(capsys, str(tiny_run), "--data", str(missing), "--out", str(tmp_path / "o"))
    assert rc == 2 and "missing" in one_error_line(err)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


@pytest.mark.parametrize("how", ["meta", "ttree", "rntuple"])
def test_prediction_file_of_another_grid_size(how: str, tmp_path: Path, events_file: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pred28.root"
    size = 28
    img = np.zeros((2, size, size), np.float32)
    data = {"event_id": np.arange(2, dtype=np.int64), "pred": img, "truth": img}
    with uproot.recreate(path) as f:
        f[schema.META_KEY] = json.dumps({"schema_version": 1, "kind": "predictions", "target_scale": 10.0,
                                         "imsize": size if how == "meta" else 56})
        if how == "ttree":
            f.mktree("predictions", {k: v.dtype if v.ndim == 1 else np.dtype((v.dtype, v.shape[1:]))
                                     for k, v in data.items()}).extend(data)
        else:
            f["predictions"] = data
    rc, _, err = evaluate(capsys, str(path), "--data", str(events_file), "--out", str(tmp_path / "o"))
    line = one_error_line(err)
    assert rc == 2 and "grid size" in line and ("28" in line)
    assert not (tmp_path / "o" / "metrics.json").exists()


@pytest.mark.parametrize(("flag", "value", "text"), [("--radius", "0", "R > 0"), ("--radius", "-0.4", "R > 0"),
                                                      ("--jet-threshold", "-1", "non-negative"),
                                                      ("--max-events", "0", "positive")])
def test_impossible_settings(flag: str, value: str, text: str, tiny_run: Path, jet_file: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = evaluate(capsys, str(tiny_run), "--data", str(jet_file), "--out", str(tmp_path / "o"), flag, value)
    assert rc == 2 and text in one_error_line(err)


def test_evaluate_arrays_matches_the_command(jet_eval: Path, jet_file: Path) -> None:
    from pfgraph.eval.metrics import evaluate_arrays
    from pfgraph.io.root import EventFiles

    with uproot.open(jet_eval / "predictions.root") as f:
        arr = f[schema.PREDICTIONS_TREE].arrays(["pred", "truth"], library="np")
    data = EventFiles(jet_file).read(list(schema.INPUT_CHANNELS))
    cmd = read_metrics(jet_eval / "metrics.json")
    doc = evaluate_arrays(arr["pred"], arr["truth"], {c: data[c] for c in schema.INPUT_CHANNELS},
                          target_scale=cmd["settings"]["target_scale"], jets=True, backend="fastjet")
    assert doc["energy"] == cmd["energy"]
    assert doc["jets"]["position"] == cmd["jets"]["position"] and doc["jets"]["efficiency"] == cmd["jets"]["efficiency"]
    assert key_paths(doc) == key_paths(cmd)
    assert math.isfinite(doc["timing"]["total_s"])


def test_graph_model_writes_per_point_predictions(events_file: Path, jet_file: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "edgeconv"
    assert main(["train", "--model", "edgeconv", "--data", str(events_file), "--out", str(run), "--epochs", "1",
                 "model.widths=[8,8]", "model.head=[8]", "model.k=4", "train.threads=1", "train.batch_size=16"]) == 0
    capsys.readouterr()
    rc, _, err = evaluate(capsys, str(run), "--data", str(jet_file), "--out", str(tmp_path / "e"), "--device", "cpu",
                          "--max-events", "4", "--no-plots")
    assert rc == 0, err
    assert read_metrics(tmp_path / "e" / "metrics.json")["model"]["repr"] == "graph"
    with uproot.open(tmp_path / "e" / "predictions.root") as f:
        a = f[schema.PREDICTIONS_TREE].arrays(library="ak")
    data = uproot.open(jet_file)["events"].arrays(["npix", "pix_ieta", "pix_iphi"], entry_stop=4, library="ak")
    assert ak.all(a["npix"] == data["npix"]) and ak.all(a["pix_ieta"] == data["pix_ieta"])
    pred = ak.to_numpy(a["pred"])
    for k in range(4):
        ie, ip = ak.to_numpy(a["pix_ieta"][k]), ak.to_numpy(a["pix_iphi"][k])
        np.testing.assert_array_equal(pred[k][ie, ip], ak.to_numpy(a["pix_pred"][k]))
        assert (pred[k] != 0).sum() <= len(ie)  # nothing predicted where there is no point


def test_extrapolation_split_uses_the_runs_training_range(jet_eval: Path, tiny_run: Path) -> None:
    """Issue 15: the evaluation records the training truth maximum of the run and splits the truth at it."""
    from pfgraph.train.predict import load_run

    doc = read_metrics(jet_eval / "metrics.json")
    ex = doc["energy"]["extrapolation"]
    s = load_run(tiny_run).norm.target_scale
    assert ex["train_max_gev"] == pytest.approx(s) and "training split" in ex["source"]
    assert ex["energy_fraction_above"] > 0  # Pythia jets reach beyond a small training file's range
    n_in, n_above = ex["inside"]["robust"]["n"], ex["above"]["robust"]["n"]
    assert n_above > 0 and n_in + n_above == doc["energy"]["n_truth_pixels"]
    assert ex["pixel_fraction_above"] == pytest.approx(n_above / (n_in + n_above))
