"""``pfgraph study NAME --results-now`` (pfgraph/study/partial.py): the results page of a study under
way, from the steps done, beside the running study and without touching what it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pfgraph.cli import main
from pfgraph.utils.lock import LOCK_NAME, folder_lock

TINY = str(Path(__file__).resolve().parent / "tiny.yaml")
#: The tiny study interrupted part-way: the data, the analytic inversion (trained and evaluated) and
#: the cnn trained but not evaluated; edgeconv not started.
DONE = ["simulate:train", "simulate:test", "train:analytic:1", "evaluate:analytic:1:test", "train:cnn:1"]


def _snapshot(out: Path) -> dict[str, bytes]:
    """Every file of the study folder but the partial folder (what the study writes), with its bytes."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and "partial" not in p.relative_to(out).parts}


@pytest.fixture(scope="module")
def halfway(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("study") / "tiny"
    assert main(["study", TINY, "--out", str(out), "--only", *DONE]) == 0
    return out


def test_the_page_of_a_study_under_way_says_what_is_done_and_marks_the_rest_not_run_yet(
        halfway: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = halfway
    before = _snapshot(out)
    with folder_lock(out, "study"):  # the study running in another process holds the folder's lock
        assert main(["study", TINY, "--out", str(out), "--results-now"]) == 0
        assert (out / LOCK_NAME).exists()  # still the study's
    assert _snapshot(out) == before  # it trained, evaluated and rewrote nothing of the study's (ledgers included)
    assert not (out / "RESULTS.md").exists() and not (out / "steps" / "results.json").exists()
    page = (out / "reports" / "partial" / "RESULTS.md").read_text()
    said = capsys.readouterr().out
    assert "results so far ->" in said and str(out / "reports" / "partial" / "test") in said
    assert (out / "reports" / "partial" / "test" / "index.html").exists()  # the report of the evaluations done
    assert page.startswith("# Results so far: study `tiny` (partial)")
    assert "**Partial: 2 of 3 planned trainings done** (0 running, 0 interrupted or failed, 1 not started), 1 of 3 " \
           "evaluations done; compute spent so far" in page
    assert "`pfgraph study tiny --results-now`" in page
    assert "**not run yet** on this test set (planned, no evaluation yet): `cnn`, `edgeconv`." in page
    claims = {cells[1].split(" (")[0]: cells[3] for line in page.splitlines()
              if line.startswith(("| DESIGN", "| arXiv")) and len(cells := line.split(" | ")) > 5}
    # edgeconv is planned: its claims wait for it; the paper models this study does not have: not measured
    assert claims["edgeconv is within 10 % of the best paper image model"] == "**not run yet**"
    assert claims["every learned model beats the analytic physics baseline"] == "**not run yet**"
    assert claims["unet_attn is the best of all"] == "**not measured**"
    training = page.split("## Training budgets")[1].split("###")[0]
    assert "| edgeconv | 1 | - / 1 | - | - | - | not run yet | - |" in training
    assert "Not run yet (" in page.split("## Compute spent")[1]


def test_a_finished_study_is_unaffected_and_its_partial_page_counts_everything(
        halfway: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole study resumes after a partial page (the partial folder is no foreign entry), writes its own
    RESULTS.md, and a new partial page counts every training."""
    out = halfway
    assert main(["study", TINY, "--out", str(out)]) == 0
    final = (out / "RESULTS.md").read_text()
    assert final.startswith("# Results: study `tiny`") and "not run yet" not in final.split("## Compute spent")[0]
    capsys.readouterr()
    assert main(["study", TINY, "--out", str(out), "--results-now", "--no-reports"]) == 0
    page = (out / "reports" / "partial" / "RESULTS.md").read_text()
    assert "**Partial: 3 of 3 planned trainings done**" in page and "3 of 3 evaluations done" in page
    assert (out / "RESULTS.md").read_text() == final  # the study's own page is never replaced
    assert json.loads((out / "steps" / "results.json").read_text())["status"] == "done"


def test_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", TINY, "--out", str(tmp_path / "none"), "--results-now"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no study.yaml: the study has not started there" in err
    assert main(["study", TINY, "--out", str(tmp_path), "--results-now", "--only", "train:cnn:1"]) == 2
    assert "it takes none of --only" in capsys.readouterr().err
    assert main(["study", TINY, "--out", str(tmp_path), "--no-reports"]) == 2
    assert "--no-reports applies to --results-now" in capsys.readouterr().err
