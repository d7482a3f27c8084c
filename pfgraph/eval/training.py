"""The run's training record for ``metrics.json`` (section ``training``).

:func:`training_record` copies what the run folder recorded: ``train_summary.json``'s figures,
the per-epoch history (training and validation loss, validation residual half-width, learning
rate, epoch wall time) and the budget status with its rule (:mod:`pfgraph.utils.budget`). For a
run written before the trainer recorded its history, the history is read from its
``metrics.csv`` and the status follows from it by the same rule; nothing is taken from
anywhere else, so a report draws the learning curves from ``metrics.json`` alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pfgraph.eval.metrics import training_section
from pfgraph.io.metrics_csv import read_metrics_csv
from pfgraph.utils import budget


def _summary(run_dir: Path) -> dict[str, Any] | None:
    from pfgraph.training.trainer import SUMMARY

    try:
        doc = json.loads((run_dir / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _history_from_csv(run_dir: Path) -> dict[str, list[Any]] | None:
    """The per-epoch history from the run's metrics.csv (None when it has none)."""
    from pfgraph.training.run_folder import METRICS

    rows = read_metrics_csv(run_dir / METRICS)
    if not rows:
        return None

    def plain(x: Any) -> Any:
        return None if isinstance(x, float) and not math.isfinite(x) else x

    return {k: [plain(r[k]) for r in rows] for k in budget.HISTORY_FIELDS}


def training_record(run_dir: str | Path) -> dict[str, Any]:
    """The ``training`` section of ``metrics.json`` for the run folder ``run_dir`` (nulls for what
    the folder does not record)."""
    run_dir = Path(run_dir)
    summary = _summary(run_dir)
    section = training_section(summary)
    if section["history"]["epoch"] is None:
        history = _history_from_csv(run_dir)
        if history is not None:
            section["history"] = history
    history = section["history"]
    if summary is not None and section["status"] is None and isinstance(summary.get("epochs"), int):
        trained = bool(summary.get("params")) and summary.get("target_epochs") not in (None, 0)
        section["status"] = budget.budget_status(history["val_loss"] or [], int(summary["epochs"]),
                                                 int(summary.get("target_epochs") or 0),
                                                 bool(summary.get("stopped_early")), trained)
        section["status_rule"] = budget.RULE
    return section
