"""``pfgraph inspect``: branch summaries, schema check, metadata, event displays."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from pfgraph import cli
from pfgraph.io import schema
from pfgraph.io.cmd import _num
from pfgraph.io.root import EventFiles
from tests.io._files import synthetic_batch, write_events, write_predictions


def inspect(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert cli.main(["inspect", *argv]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def branch_lines(out: str) -> dict[str, str]:
    """'  name  type  stats' lines of the summary -> {name: stats after the type column}."""
    lines = {}
    for line in out.splitlines():
        m = re.match(r"^  (\S+)\s+(\S+)\s+(.*)$", line)
        if m and not line.startswith("  event_id =") and "sum" not in m.group(2):
            lines[m.group(1)] = m.group(3)
    return lines


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_inspect_events_file(events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = inspect(capsys, str(events_file))
    files = EventFiles(events_file)
    meta = files.meta
    assert out.startswith(f"file: {events_file} (")
    assert "TTree, compression lz4:1" in out.splitlines()[0]
    assert (f"meta: kind events, schema version {schema.SCHEMA_VERSION} (this pfgraph reads "
            f"{schema.MIN_SCHEMA_VERSION}-{schema.SCHEMA_VERSION}), pfgraph {meta['pfgraph_version']}, "
            f"config {meta['config']['name']}, seed {meta['seed']}, events 0..119 (shard 0 of 1)") in out
    required = sum(not b.optional for b in schema.EVENT_BRANCHES)
    assert f"schema check: OK (events: {required} required branches, dense layout (image branches))" in out
    assert "tree 'events': 120 entries" in out
    lines = branch_lines(out)
    assert set(schema.REQUIRED_EVENT_BRANCHES) <= set(lines)
    d = files.read(["npix", "truth", "pix_emcal", "e_total"])
    npix = d["npix"]
    assert lines["npix"] == f"min {_num(npix.min())}  mean {_num(npix.mean())}  max {_num(npix.max())}"
    sums = d["truth"].reshape(120, -1).sum(axis=1, dtype=np.float64)
    assert lines["truth"].startswith(f"per-event sum [GeV]: mean {_num(sums.mean())} min {_num(sums.min())} "
                                     f"max {_num(sums.max())};")
    flat = ak.to_numpy(ak.flatten(d["pix_emcal"])).astype(np.float64)
    assert lines["pix_emcal"] == (f"per event n: mean {npix.mean():.1f} min {npix.min()} max {npix.max()} (0 empty);  "
                                  f"values [GeV]: min {_num(flat.min())}  mean {_num(flat.mean())}  max {_num(flat.max())}")


def test_inspect_event_and_display(events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "sub" / "display.png"
    out = inspect(capsys, str(events_file), "--event", "3", "--display", str(png))
    d = EventFiles(events_file).read(["event_id", "npix", "emcal"], start=3, stop=4)
    assert "events entry 3:" in out and f"event_id = 3, npix = {d['npix'][0]}," in out
    assert f"emcal          sum {_num(float(d['emcal'][0].sum(dtype=np.float64)))} GeV in " \
           f"{int(np.count_nonzero(d['emcal'][0]))} pixels" in out
    assert out.rstrip().endswith(f"display: wrote {png}")
    assert png_size(png) == (1380, 780)  # 3 x 2 panels, 100 dpi
    assert [p.name for p in png.parent.iterdir()] == ["display.png"]  # atomic: no temporary left


def test_inspect_jet_file_display_has_seven_panels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_events(tmp_path / "jet.root", synthetic_batch(3, seed=1, with_jet=True))
    out = inspect(capsys, str(path), "--display", str(tmp_path / "j.png"))
    assert "+ optional jet, jet_pt, jet_eta, jet_phi, jet_e, n_jet_particles" in out
    assert "events entry 0:" in out
    assert png_size(tmp_path / "j.png") == (1840, 780)  # 4 x 2 panels


def test_inspect_rntuple_matches_ttree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batch = synthetic_batch(7, seed=2, empty=(1, 5))
    tt = inspect(capsys, str(write_events(tmp_path / "t.root", batch)))
    nt = inspect(capsys, str(write_events(tmp_path / "n.root", batch, fmt="rntuple")))
    assert "RNTuple, compression lz4:1" in nt.splitlines()[0]
    assert branch_lines(tt) == branch_lines(nt)
    assert "(2 empty)" in branch_lines(nt)["pix_ieta"]


def test_inspect_max_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batch = synthetic_batch(8, seed=3)
    out = inspect(capsys, str(write_events(tmp_path / "e.root", batch)), "--max-events", "3")
    assert "tree 'events': 8 entries, first 3 summarised" in out
    assert branch_lines(out)["event_id"] == "min 0  mean 1  max 2"


@pytest.mark.parametrize("fmt", ["ttree", "rntuple"])
def test_inspect_predictions_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    batch = synthetic_batch(5, seed=4, empty=(2,))
    files = EventFiles(write_events(tmp_path / "e.root", batch))
    path = write_predictions(tmp_path / "predictions.root", files.read(["event_id", "truth", "npix"]), fmt=fmt)
    png = tmp_path / "p.png"
    out = inspect(capsys, str(path), "--event", "1", "--display", str(png))
    assert "meta: kind predictions" in out and "model synthetic" in out
    assert ("schema check: OK (predictions: 2 required branches + optional truth, npix, pix_pred; "
            "jets: 11 required branches + optional truth_jet_ceta, truth_jet_cphi, truth_jet_nconst, "
            "pred_jet_ceta, pred_jet_cphi, pred_jet_nconst)") in out
    assert "tree 'predictions': 5 entries" in out and "tree 'jets': 5 entries" in out
    assert "predictions entry 1:" in out
    assert png_size(png) == (1380, 390)  # prediction, truth, prediction - truth
