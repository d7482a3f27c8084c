"""The budget status rule (:mod:`pfgraph.utils.budget`), the one rule training, evaluation and results use."""

from __future__ import annotations

import pytest

from pfgraph.utils import budget


@pytest.mark.parametrize(("losses", "epochs", "cap", "stopped", "trained", "status"), [
    ([1.0, 0.9, 0.8, 0.8, 0.8, 0.8], 6, 10, True, True, budget.STOPPED_EARLY),
    ([1.0, 0.9, 0.8], 3, 3, False, True, budget.STILL_IMPROVING),  # fell from the first epoch by > 1 %
    ([1.0, 0.995, 0.999], 3, 3, False, True, budget.HIT_CAP),  # within 1 % of the first epoch
    ([1.0, 0.5, 0.4, 0.4, 0.399, 0.398], 6, 6, False, True, budget.HIT_CAP),  # last 3: 0.25 % below the best before
    ([1.0, 0.5, 0.4, 0.4, 0.39, 0.5], 6, 6, False, True, budget.STILL_IMPROVING),  # 2.5 % below, in the last 3
    ([1.0, 0.5, 0.4, 0.35, 0.6, 0.6], 6, 6, False, True, budget.STILL_IMPROVING),  # best 3 epochs before the end
    ([1.0, 0.5, 0.35, 0.4, 0.6, 0.6], 6, 6, False, True, budget.HIT_CAP),  # best 4 epochs before the end
    ([0.7], 1, 1, False, True, budget.STILL_IMPROVING),  # one epoch says nothing about convergence
    ([1.0, 0.9], 2, 5, False, True, budget.NOT_FINISHED),
    ([], 0, 0, False, False, budget.NOT_TRAINED),
    ([float("nan"), 1.0, 0.5], 3, 3, False, True, budget.STILL_IMPROVING),  # non-finite losses are skipped
])
def test_budget_status_rule(losses: list[float], epochs: int, cap: int, stopped: bool, trained: bool,
                            status: str) -> None:
    assert budget.budget_status(losses, epochs, cap, stopped, trained) == status


def test_the_rule_text_names_every_status_and_the_thresholds() -> None:
    for status in budget.STATUSES:
        assert f"'{status}'" in budget.RULE
    assert f"last {budget.WINDOW} epochs" in budget.RULE and "1 %" in budget.RULE
