"""The comparison report renders with every referenced file present."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from pfgraph.cli import main
from pfgraph.io import schema
from pfgraph.io.root import EventFiles, RootWriter, jagged_record, make_meta
from pfgraph.report.compare import build_report, load_eval, width68


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        for k, v in attrs:
            if k in ("src", "href") and v:
                self.refs.append(v)


def fake_eval(folder: Path, data: Path, model: str, repr_name: str, noise: float, seed: int) -> Path:
    """An evaluation folder as 'pfgraph evaluate' writes it, with predictions = truth * (1 + noise)."""
    folder.mkdir(parents=True)
    files = EventFiles(data)
    d = files.read(["event_id", "truth"])
    rng = np.random.default_rng(seed)
    pred = (d["truth"] * (1 + noise * rng.standard_normal(d["truth"].shape))).astype(np.float32)
    n = len(d["event_id"])
    with RootWriter(folder / "predictions.root", make_meta("predictions", model=model)) as w:
        img = np.dtype((np.float32, (schema.IMSIZE, schema.IMSIZE)))
        w.tree(schema.PREDICTIONS_TREE, {"event_id": np.int64, "pred": img, "truth": img})
        w.extend(schema.PREDICTIONS_TREE, {"event_id": d["event_id"], "pred": pred, "truth": d["truth"]})
        fields = {f: np.float32 for f in ("pt", "eta", "phi", "energy")}
        import awkward as ak
        types = {k: ak.types.from_datashape("var * {pt: float32, eta: float32, phi: float32, energy: float32}",
                                            highlevel=False) for k in ("truth_jet", "pred_jet")}
        w.tree(schema.JETS_TREE, {"event_id": np.int64, **types})
        ones = np.ones(n, dtype=np.int64)
        truth_e = 100 + 10 * rng.random(n)
        jets = {
            "truth_jet": jagged_record(ones, {"pt": truth_e, "eta": np.zeros(n), "phi": np.zeros(n), "energy": truth_e}),
            "pred_jet": jagged_record(ones, {"pt": truth_e, "eta": 0.05 * rng.standard_normal(n),
                                             "phi": 0.05 * rng.standard_normal(n),
                                             "energy": truth_e * (1 + noise * rng.standard_normal(n))}),
        }
        jets = {k: ak.values_astype(v, np.float32) for k, v in jets.items()}
        del fields
        w.extend(schema.JETS_TREE, {"event_id": d["event_id"], **jets})
    metrics = {"model": {"name": model, "repr": repr_name, "parameters": 1234},
               "dataset": {"path": str(data)},
               "energy": {"fit": {"mu": 0.0, "sigma": noise}}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


@pytest.fixture()
def evals(tmp_path: Path, events_file: Path) -> list[Path]:
    return [fake_eval(tmp_path / "e_img", events_file, "unet_attn", "image", 0.1, 1),
            fake_eval(tmp_path / "e_graph", events_file, "edgeconv", "graph", 0.05, 2)]


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
    with pytest.raises(Exception, match="not a readable ROOT file"):
        load_eval(evals[0])


def test_width68_of_a_gaussian() -> None:
    x = np.random.default_rng(0).normal(0, 0.2, 200_000)
    assert width68(x) == pytest.approx(0.2, rel=0.01)


def test_report_refuses_other_grid_size(tmp_path: Path, events_file: Path) -> None:
    folder = fake_eval(tmp_path / "e", events_file, "mlp", "image", 0.1, 3)
    with RootWriter(folder / "predictions.root", make_meta("predictions")) as w:
        img = np.dtype((np.float32, (28, 28)))
        w.tree(schema.PREDICTIONS_TREE, {"event_id": np.int64, "pred": img, "truth": img})
        w.extend(schema.PREDICTIONS_TREE, {"event_id": np.arange(2), "pred": np.zeros((2, 28, 28), np.float32),
                                           "truth": np.zeros((2, 28, 28), np.float32)})
    with pytest.raises(Exception, match="another grid size"):
        build_report([folder], tmp_path / "r")
