"""Issue 31: a model that predicts nothing must never rank first.

``train.lr=1e10`` collapses a cnn to zero everywhere: every truth pixel is missed, r = -1 and the
residual half-width is 0 [0, 0]. The evaluation flags it in metrics.json and its summary line, and
the report flags it, lists it after every ranked model and marks it never ranked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pfgraph.cli import main
from tests.training._helpers import TINY


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_an_all_zeros_model_is_flagged_and_never_ranked(tmp_path: Path, events_file: Path, events_file_b0: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    runs, evals = tmp_path / "runs", tmp_path / "evals"
    assert _cli(capsys, "train", "--model", "cnn", "--data", str(events_file), "--out", str(runs / "zero"),
                "--epochs", "1", *TINY, "train.lr=1e10")[0] == 0
    assert _cli(capsys, "train", "--model", "analytic", "--data", str(events_file), "--out", str(runs / "analytic"),
                "--device", "cpu")[0] == 0
    rc, out, _ = _cli(capsys, "evaluate", str(runs / "zero"), "--data", str(events_file_b0), "--out",
                      str(evals / "zero"), "--bootstrap", "10", "--no-plots", "--device", "cpu")
    doc = json.loads((evals / "zero" / "metrics.json").read_text())
    fig = doc["headline"]["figures"]
    assert rc == 0 and fig["missed_pixel_fraction"]["value"] == 1.0 and fig["residual_half_width_68"]["value"] == 0.0
    assert doc["degenerate"]["flag"] is True and len(doc["degenerate"]["reasons"]) == 2 and doc["degenerate"]["rule"]
    assert "DEGENERATE (missed_pixel_fraction" in out and "never ranked" in out
    rc, out, _ = _cli(capsys, "evaluate", str(runs / "analytic"), "--data", str(events_file_b0), "--out",
                      str(evals / "analytic"), "--bootstrap", "10", "--no-plots", "--device", "cpu")
    assert rc == 0 and "DEGENERATE" not in out
    assert json.loads((evals / "analytic" / "metrics.json").read_text())["degenerate"]["flag"] is False
    report = tmp_path / "report"
    assert _cli(capsys, "report", str(evals / "zero"), str(evals / "analytic"), "--out", str(report))[0] == 0
    rows = json.loads((report / "summary.json").read_text())["models"]
    assert [(r["model"], r["ranked"]) for r in rows] == [("analytic", True), ("cnn", False)]  # flagged one last
    assert rows[1]["degenerate"] == doc["degenerate"]["reasons"]
    page = (report / "index.html").read_text()
    assert '<tr class="degenerate"><td class="">cnn DEGENERATE (never ranked)' in page
    assert "cnn DEGENERATE (never ranked)" in (report / "summary.md").read_text()
