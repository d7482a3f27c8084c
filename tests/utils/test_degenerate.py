"""The degenerate-model rule (issue 31) shared by evaluate and RESULTS.md."""

from __future__ import annotations

import math

from pfgraph.utils.degenerate import DEGENERATE_RULE, degenerate_reasons, degenerate_record


def test_collapsed_model_is_degenerate_on_both_figures() -> None:
    # a model predicting zero everywhere: every truth pixel missed, r = -1
    reasons = degenerate_reasons({"missed_pixel_fraction": 1.0, "residual_median": -1.0})
    assert len(reasons) == 2
    assert "missed_pixel_fraction" in reasons[0] and "residual_median" in reasons[1]


def test_healthy_model_is_not_degenerate() -> None:
    assert degenerate_reasons({"missed_pixel_fraction": 0.0, "residual_median": -0.03}) == []


def test_bootstrap_figures_are_read_by_their_value() -> None:
    figs = {"missed_pixel_fraction": {"value": 0.2, "lo": 0.19, "hi": 0.21},
            "residual_median": {"value": 0.7, "lo": 0.69, "hi": 0.71}}
    assert degenerate_reasons(figs) == ["residual_median 0.7 is more than 0.5 from 0 (median r far from 0)"]
    assert all("|" not in r for r in degenerate_reasons({"missed_pixel_fraction": 1.0, "residual_median": -1.0}))


def test_thresholds_are_strict_and_missing_figures_give_no_reason() -> None:
    assert degenerate_reasons({"missed_pixel_fraction": 0.5, "residual_median": 0.5}) == []
    assert degenerate_reasons({"missed_pixel_fraction": 0.51}) != []
    assert degenerate_reasons({"residual_median": -0.51}) != []
    assert degenerate_reasons({}) == []
    assert degenerate_reasons({"residual_median": None}) == []


def test_non_finite_figure_is_a_reason() -> None:
    assert degenerate_reasons({"residual_median": math.nan}) == ["residual_median is not finite"]


def test_record_carries_flag_reasons_and_rule() -> None:
    rec = degenerate_record({"missed_pixel_fraction": 0.9})
    assert rec["flag"] is True and rec["rule"] == DEGENERATE_RULE and len(rec["reasons"]) == 1
    assert degenerate_record({"missed_pixel_fraction": 0.1})["flag"] is False
