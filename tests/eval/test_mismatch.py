"""Silent mismatches (issue 31): a model evaluated on data of another detector config, or on its own
training data, is flagged in metrics.json and its summary line."""

from __future__ import annotations

from pathlib import Path

from pfgraph.eval.stage import evaluate, summary_line


def test_other_detector_and_own_training_data_are_flagged(tmp_path: Path, tiny_run: Path, events_file: Path,
                                                          events_file_b0: Path) -> None:
    other = evaluate(tiny_run, events_file_b0, tmp_path / "b0", bootstrap=0, plots=False, device="cpu")
    mm = other.metrics["data_mismatch"]
    assert mm["flag"] is True and len(mm["reasons"]) == 1
    assert mm["reasons"][0] == "another detector config (training data -> evaluation data): detector.b_field: 0.5 -> 0.0"
    assert "DATA MISMATCH: another detector config" in summary_line(other.metrics, other.n_events, 1.0)
    own = evaluate(tiny_run, events_file, tmp_path / "own", bootstrap=0, plots=False, device="cpu")
    assert own.metrics["data_mismatch"] == {"flag": True, "reasons": [f"evaluated on its own training data "
                                                                      f"({events_file.name})"]}
