"""``pfgraph demo --quick``: the whole pipeline from simulation to the report, as CI runs it."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pfgraph.cli import main
from pfgraph.reporting.demo import QUICK

pytestmark = pytest.mark.pythia


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.src: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.src += [v for k, v in attrs if k == "src" and v]


def test_quick_demo_runs_every_stage_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "$ pfgraph simulate" in printed and "$ pfgraph report" in printed
    index = out / "report" / "index.html"
    parser = _Images()
    parser.feed(index.read_text())
    assert len(parser.src) >= 6
    for src in parser.src:
        assert (index.parent / src).stat().st_size > 1000, src
    rows = {r["model"]: r for r in json.loads((out / "report" / "summary.json").read_text())["models"]}
    assert set(rows) == {m for _, m, _ in QUICK.models}
    assert {r["repr"] for r in rows.values()} == {"image", "graph"}
    for name, row in rows.items():  # every model evaluated on the Pythia jet set with jets found
        assert row["events"] == QUICK.jet_events and row["jet_efficiency"]["value"] > 0.5, name
        assert row["residual_half_width_68"]["lo"] is not None, name  # headline figures carry intervals
        assert row["parameters"] is not None, name
    # a second run finds everything done: no simulation or evaluation is repeated
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    again = capsys.readouterr().out
    assert "$ pfgraph simulate" not in again and "$ pfgraph evaluate" not in again
