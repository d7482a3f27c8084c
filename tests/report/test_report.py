"""The comparison report renders with every referenced file present."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from pfgraph.cli import main
from pfgraph.eval.output import PredictionWriter
from pfgraph.io import schema
from pfgraph.io.root import EventFiles, RootWriter, make_meta
from pfgraph.report.compare import build_report, load_eval, width68
from tests.eval.conftest import make_jet_file


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        for k, v in attrs:
            if k in ("src", "href") and v:
                self.refs.append(v)


def fake_eval(folder: Path, data: Path, model: str, repr_name: str, noise: float, seed: int,
              params: int = 1234) -> Path:
    """A real 'pfgraph evaluate' folder for predictions = truth * (1 + noise * N(0, 1)).

    The predictions file carries the model and training figures in its meta, as evaluate writes
    them; evaluating it against ``data`` makes metrics.json and predictions.root (with jets)."""
    files = EventFiles(data)
    d = files.read(["event_id", "truth"])
    rng = np.random.default_rng(seed)
    pred = (d["truth"] * (1 + noise * rng.standard_normal(d["truth"].shape))).astype(np.float32)
    source = folder.parent / f"{folder.name}_source.root"
    meta = make_meta("predictions", model={"name": model, "repr": repr_name}, model_names=[model],
                     target_scale=float(d["truth"].max()),
                     training={"parameters": params, "train_time_s": 12.5, "epochs": 3})
    with PredictionWriter(source, meta) as w:
        w.write(d["event_id"], pred, d["truth"])
    assert main(["evaluate", str(source), "--data", str(data), "--out", str(folder), "--no-plots"]) == 0
    return folder


@pytest.fixture(scope="module")
def jet_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_jet_file(tmp_path_factory.mktemp("reportdata") / "jets.root", 24)


@pytest.fixture()
def evals(tmp_path: Path, jet_data: Path) -> list[Path]:
    return [fake_eval(tmp_path / "e_img", jet_data, "unet_attn", "image", 0.1, 1, params=461_505),
            fake_eval(tmp_path / "e_graph", jet_data, "edgeconv", "graph", 0.05, 2, params=13_729)]


def test_report_html_references_existing_files(tmp_path: Path, evals: list[Path]) -> None:
    assert main(["report", *map(str, evals), "--out", str(tmp_path / "rep")]) == 0
    index = tmp_path / "rep" / "index.html"
    parser = _Refs()
    parser.feed(index.read_text())
    assert len(parser.refs) >= 6
    for ref in parser.refs:
        assert not ref.startswith(("http:", "https:", "//")), ref  # self-contained
        f = tmp_path / "rep" / ref
        assert f.exists() and f.stat().st_size > 1000, ref
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    rows = {r["model"]: r for r in summary["models"]}
    assert set(rows) == {"unet_attn", "edgeconv"}
    assert rows["edgeconv"]["repr"] == "graph"
    # figures from metrics.json: training section, jets, out-of-reach share
    assert rows["unet_attn"]["parameters"] == 461_505 and rows["edgeconv"]["parameters"] == 13_729
    assert rows["edgeconv"]["train_time_s"] == 12.5 and rows["edgeconv"]["epochs"] == 3
    for row in rows.values():
        assert row["jet_efficiency"] == 1.0 and 0 < row["out_of_reach_fraction"] < 0.1
        assert row["jet_energy_width68"] is not None and row["residual_fit_sigma"] is not None
    assert rows["edgeconv"]["jet_position_median_px"] < rows["unet_attn"]["jet_position_median_px"] + 0.5
    # the recomputed robust width follows the injected smearing
    assert rows["unet_attn"]["residual_width68"] == pytest.approx(0.1, rel=0.05)
    assert rows["edgeconv"]["residual_width68"] == pytest.approx(0.05, rel=0.05)
    assert "| unet_attn | image |" in (tmp_path / "rep" / "summary.md").read_text()


def test_report_bad_input_is_one_line(tmp_path: Path, evals: list[Path], capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    assert main(["report", str(empty), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pfgraph: error:") and "metrics.json" in err and "\n" not in err
    (evals[0] / "predictions.root").write_bytes(b"not root at all")
    with pytest.raises(Exception, match="corrupt or unreadable ROOT file"):
        load_eval(evals[0])


def test_width68_of_a_gaussian() -> None:
    x = np.random.default_rng(0).normal(0, 0.2, 200_000)
    assert width68(x) == pytest.approx(0.2, rel=0.01)


def test_report_refuses_other_grid_size(tmp_path: Path, jet_data: Path) -> None:
    folder = fake_eval(tmp_path / "e", jet_data, "mlp", "image", 0.1, 3)
    with RootWriter(folder / "predictions.root", make_meta("predictions")) as w:
        img = np.dtype((np.float32, (28, 28)))
        w.tree(schema.PREDICTIONS_TREE, {"event_id": np.int64, "pred": img, "truth": img})
        w.extend(schema.PREDICTIONS_TREE, {"event_id": np.arange(2), "pred": np.zeros((2, 28, 28), np.float32),
                                           "truth": np.zeros((2, 28, 28), np.float32)})
    with pytest.raises(Exception, match="another grid size"):
        build_report([folder], tmp_path / "r")
