"""``pfgraph report``: compare evaluations."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the ``report`` sub-command."""
    p = sub.add_parser("report", help="compare evaluation folders: index.html, PNGs, summary.json/.md",
                       description="Compare models and representations side by side from 'pfgraph evaluate' folders.")
    p.add_argument("evals", nargs="+", help="evaluation folders (each with metrics.json and predictions.root)")
    p.add_argument("--out", required=True, help="output folder (replaced as a whole: a new folder, an empty one or "
                   "an earlier report)")
    p.add_argument("--force", action="store_true", help="replace an --out folder no report wrote (its files are deleted)")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Run ``pfgraph report``: :func:`pfgraph.reporting.stage.report`."""
    from pfgraph.reporting.stage import report

    report(args.evals, args.out, force=args.force)
    return 0

