"""``predictions.root`` (pfgraph.eval.output): write/read round trips, graph points, jets, atomicity, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import uproot

from pfgraph import geometry
from pfgraph.errors import DataError
from pfgraph.eval.jets import JET_FIELDS, MATCH_FIELDS, JetTable
from pfgraph.eval.output import PREDICTIONS_KIND, PredictionWriter, read_predictions
from pfgraph.io.root import make_meta

N = geometry.IMSIZE


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = (rng.exponential(2.0, (n, N, N)) * (rng.random((n, N, N)) < 0.3)).astype(np.float32)
    pred = (truth * rng.uniform(0.8, 1.2, truth.shape)).astype(np.float32)
    return pred, truth


def _meta(**extra: object) -> dict:
    return make_meta(PREDICTIONS_KIND, None, model="m", model_names=["m"], **extra)


@pytest.mark.parametrize("fmt", ["ttree", "rntuple"])
def test_predictions_round_trip_in_batches(tmp_path: Path, fmt: str) -> None:
    pred, truth = _images(7, 1)
    path = tmp_path / "p.root"
    with PredictionWriter(path, _meta(), format=fmt) as w:
        w.write(np.arange(100, 104), pred[:4], truth[:4])
        w.write(np.arange(104, 107), pred[4:], truth[4:])
    out = read_predictions(path)
    assert out["meta"]["kind"] == PREDICTIONS_KIND and out["meta"]["model"] == "m"
    np.testing.assert_array_equal(out["event_id"], np.arange(100, 107))
    np.testing.assert_array_equal(out["pred"], pred)
    np.testing.assert_array_equal(out["truth"], truth)
    assert out["pred"].dtype == np.float32 and out["event_id"].dtype == np.int64
    short = read_predictions(path, max_events=3)
    assert short["pred"].shape == (3, N, N) and short["event_id"].tolist() == [100, 101, 102]


def test_graph_predictions_store_the_points(tmp_path: Path) -> None:
    pred, truth = _images(2, 2)
    ieta = [np.array([3, 4], np.int16), np.array([], np.int16)]
    iphi = [np.array([5, 6], np.int16), np.array([], np.int16)]
    pp = [np.array([1.5, 2.5], np.float32), np.array([], np.float32)]
    path = tmp_path / "g.root"
    with PredictionWriter(path, _meta(), graph=True) as w:
        w.write(np.array([0, 1]), pred, truth, pix=(ieta, iphi, pp))
    tree = uproot.open(path)["predictions"]
    assert tree["npix"].array(library="np").tolist() == [2, 0]
    assert tree["pix_pred"].array(library="ak").tolist() == [[1.5, 2.5], []]
    assert tree["pix_ieta"].array(library="ak").tolist() == [[3, 4], []]
    np.testing.assert_array_equal(read_predictions(path)["pred"], pred)


def test_graph_predictions_without_points_are_refused_and_leave_no_file(tmp_path: Path) -> None:
    pred, truth = _images(1, 3)
    path = tmp_path / "g.root"
    with pytest.raises(DataError, match="per-point values"), PredictionWriter(path, _meta(), graph=True) as w:
        w.write(np.array([0]), pred, truth)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_jets_tree_round_trip(tmp_path: Path) -> None:
    pred, truth = _images(2, 4)
    counts = np.array([2, 1], np.int64)
    fields = {f: np.arange(3, dtype=np.float32) + 10 * i for i, f in enumerate(JET_FIELDS)}
    fields["nconst"] = np.array([4, 1, 7], np.int32)
    table = JetTable(counts, fields)
    match = {k: np.zeros(2) for k in MATCH_FIELDS}
    match["truth_rank"] = np.array([0, -1])
    match["matched"] = np.array([True, False])
    match["de_jet_rel"] = np.array([0.25, np.nan])
    path = tmp_path / "j.root"
    with PredictionWriter(path, _meta(), jets=True) as w:
        w.write(np.array([5, 6]), pred, truth)
        w.write_jets(np.array([5, 6]), table, JetTable(np.array([0, 0]), {f: v[:0] for f, v in fields.items()}), match)
    t = uproot.open(path)["jets"]
    assert t["ntruth_jet"].array(library="np").tolist() == [2, 1]
    assert t["npred_jet"].array(library="np").tolist() == [0, 0]
    assert t["truth_jet_nconst"].array(library="ak").tolist() == [[4, 1], [7]]
    assert t["truth_jet_pt"].array(library="ak").tolist() == [[0.0, 1.0], [2.0]]
    assert t["truth_rank"].array(library="np").tolist() == [0, -1]
    assert t["matched"].array(library="np").tolist() == [True, False]
    rel = t["de_jet_rel"].array(library="np")
    assert rel[0] == pytest.approx(0.25) and np.isnan(rel[1])
    assert table.event(1)["nconst"].tolist() == [7]


def test_read_predictions_refuses_what_is_not_a_predictions_file(tmp_path: Path) -> None:
    pred, truth = _images(3, 5)
    events = tmp_path / "e.root"
    with PredictionWriter(events, make_meta("events", None)) as w:
        w.write(np.arange(3), pred, truth)
    with pytest.raises(DataError, match=r"e\.root: a 'events' file, expected a predictions file"):
        read_predictions(events)
    text = tmp_path / "t.root"
    text.write_text("not root")
    with pytest.raises(DataError, match=r"t\.root"):
        read_predictions(text)


def test_read_predictions_names_the_event_with_a_nan(tmp_path: Path) -> None:
    pred, truth = _images(4, 6)
    pred[2, 10, 10] = np.nan
    path = tmp_path / "nan.root"
    with PredictionWriter(path, _meta()) as w:
        w.write(np.arange(4), pred, truth)
    with pytest.raises(DataError) as err:
        read_predictions(path)
    assert str(err.value) == f"{path}: event 2, branch 'pred': NaN or Inf value, expected finite numbers"
