"""A training run's ``metrics.csv``: one row per epoch, written by the trainer, read by the trainer
(resume), the evaluation (runs that record no history of their own) and a study's RESULTS.md.

The one reader and writer of that file (issue 30): every consumer parses it the same way.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from pfgraph.utils.atomic import atomic_write_text

#: The columns, in file order.
METRIC_FIELDS = ("epoch", "stage_events", "train_loss", "val_loss", "lr", "best", "epoch_time_s",
                 "train_events_per_s", "val_half_width", "wall_s", "train_flops")
#: Columns a metrics.csv written before they existed lacks (read as NaN).
OPTIONAL_METRIC_FIELDS = ("val_half_width", "wall_s", "train_flops")
#: Integer columns.
INT_FIELDS = ("epoch", "stage_events", "best")


def read_metrics_csv(path: str | Path, upto_epoch: int | None = None) -> list[dict[str, Any]]:
    """Rows of ``metrics.csv`` (every column of :data:`METRIC_FIELDS`, integers where integral, and
    any further numeric column as a float), those with epoch <= ``upto_epoch`` when given (later
    rows belong to a lost epoch). A missing file gives no rows; a malformed row is left out."""
    path = Path(path)
    rows: list[dict[str, Any]] = []
    try:
        f = path.open(newline="")
    except OSError:
        return rows
    with f:
        for row in csv.DictReader(f):
            try:
                parsed: dict[str, Any] = {
                    k: float(row[k]) if row.get(k) not in (None, "") or k not in OPTIONAL_METRIC_FIELDS
                    else float("nan") for k in METRIC_FIELDS}
                for k in INT_FIELDS:
                    parsed[k] = int(parsed[k])
            except (KeyError, TypeError, ValueError):
                continue
            for k, v in row.items():  # columns beyond METRIC_FIELDS (a newer writer's): numbers where they are
                if k not in parsed and k is not None:
                    try:
                        parsed[k] = float(v)
                    except (TypeError, ValueError):
                        pass
            if upto_epoch is None or parsed["epoch"] <= upto_epoch:
                rows.append(parsed)
    return rows


def write_metrics_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write ``metrics.csv`` atomically (floats with 8 significant digits)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{r[k]:.8g}" if isinstance(r[k], float) else r[k]) for k in METRIC_FIELDS})
    atomic_write_text(Path(path), buf.getvalue())
