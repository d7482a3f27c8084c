"""The report folder (issue 31): written as one unit, never over files no report wrote, never over
an input or the current folder; an evaluation given twice is shown once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pfgraph.cli import main
from pfgraph.reporting.compare import build_report
from tests.eval.conftest import make_jet_file
from tests.reporting.test_report import fake_eval


@pytest.fixture(scope="module")
def two_evals(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("reportfolder")
    data = make_jet_file(base / "jets.root", 16)
    return [fake_eval(base / "e_a", data, "unet_attn", "image", 0.1, 1),
            fake_eval(base / "e_b", data, "edgeconv", "graph", 0.05, 2)]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_a_users_folder_and_the_current_folder_are_refused(tmp_path: Path, two_evals: list[Path],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("<html>my page</html>")
    (mine / "summary.md").write_text("# my notes")
    rc, _, err = _cli(capsys, "report", str(two_evals[0]), "--out", str(mine))
    assert rc == 2 and err.count("\n") == 1 and "holds files pfgraph report did not write (index.html, summary.md)" in err
    assert (mine / "index.html").read_text() == "<html>my page</html>"
    cwd = os.getcwd()
    os.chdir(mine)
    try:
        rc, _, err = _cli(capsys, "report", str(two_evals[0]), "--out", ".", "--force")
    finally:
        os.chdir(cwd)
    assert rc == 2 and "current folder" in err and sorted(p.name for p in mine.iterdir()) == ["index.html", "summary.md"]
    rc, _, err = _cli(capsys, "report", str(two_evals[0]), "--out", str(two_evals[0]))
    assert rc == 2 and "an input is never an output" in err
    rc, _, _ = _cli(capsys, "report", str(two_evals[0]), "--out", str(mine), "--force")
    assert rc == 0 and "my page" not in (mine / "index.html").read_text()


def test_a_rereport_leaves_no_stale_figure_and_an_interrupted_one_changes_nothing(
        tmp_path: Path, two_evals: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "rep"
    build_report(two_evals, out)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "residual_graph.png" in first
    from pfgraph.reporting import compare

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(compare, "_event_displays", boom)  # interrupted half way (PNGs written, no index.html)
    with pytest.raises(KeyboardInterrupt):
        build_report(two_evals[:1], out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first  # the previous report, byte for byte
    monkeypatch.undo()
    build_report(two_evals[:1], out)
    names = {p.name for p in out.iterdir()}
    assert "residual_graph.png" not in names and "index.html" in names  # nothing of the two-model report stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no temporary folder left
    listed = set(json.loads((out / "summary.json").read_text())["files"])
    assert listed == names


def test_the_same_evaluation_given_twice_is_shown_once(tmp_path: Path, two_evals: list[Path],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _cli(capsys, "report", str(two_evals[0]), str(two_evals[0]) + "/", str(two_evals[1]),
                      "--out", str(tmp_path / "rep"))
    rows = json.loads((tmp_path / "rep" / "summary.json").read_text())["models"]
    assert rc == 0 and [r["model"] for r in rows] == ["unet_attn", "edgeconv"] and "report: 2 evaluations" in out
