"""Silent mismatches (issue 31): a model evaluated on data of another detector config, or on its own
training data, is flagged in metrics.json and its summary line."""

from __future__ import annotations

from pathlib import Path

from pfgraph.eval.mismatch import detector_differences
from pfgraph.eval.stage import evaluate, summary_line


def test_other_detector_and_own_training_data_are_flagged(tmp_path: Path, tiny_run: Path, events_file: Path,
                                                          events_file_b0: Path) -> None:
    other = evaluate(tiny_run, events_file_b0, tmp_path / "b0", bootstrap=0, plots=False, device="cpu")
    mm = other.metrics["data_mismatch"]
    assert mm["flag"] is True and len(mm["reasons"]) == 1
    assert mm["reasons"][0].startswith("another detector config: detector.b_field 0.5 (training data) != 0.0")
    assert "DATA MISMATCH: another detector config" in summary_line(other.metrics, other.n_events, 1.0)
    own = evaluate(tiny_run, events_file, tmp_path / "own", bootstrap=0, plots=False, device="cpu")
    assert own.metrics["data_mismatch"] == {"flag": True, "reasons": [f"evaluated on its own training data "
                                                                      f"({events_file.name})"]}


def test_detector_differences_name_every_setting() -> None:
    a = {"detector": {"b_field": 0.5, "trk_res": 0.1}, "jets": {"enabled": False}}
    b = {"detector": {"b_field": 0.0, "trk_res": 0.1}, "jets": {"enabled": True}}  # a jet sample is not a mismatch
    assert detector_differences(a, b) == ["detector.b_field 0.5 (training data) != 0.0 (evaluation data)"]
    assert detector_differences(a, a) == [] and detector_differences(None, a) == []
