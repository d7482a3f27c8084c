"""The report stage as a Python function: :func:`report` (``pfgraph report`` maps its arguments onto it).

    from pfgraph import report
    index = report(["evals/cnn", "evals/edgeconv"], "reports/compare")

The report renders the evaluations' own figures (metrics.json and the jets tree); it
recomputes nothing and refuses evaluations of different datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def report(evals: Sequence[str | Path], out: str | Path, metrics_only_ok: bool = False, force: bool = False) -> Path:
    """Compare the evaluation folders ``evals`` into the folder ``out``; returns its ``index.html``.

    Prints one line naming the dataset the evaluations share. ``out`` is replaced as one unit; an
    existing folder that no report wrote is refused unless ``force``. ``metrics_only_ok``: evaluations
    without their predictions.root (a study folder restored from version control) are reported
    from their metrics (:func:`pfgraph.reporting.compare.build_report`).
    """
    from pfgraph.eval.folder import read_manifest
    from pfgraph.io.identity import describe
    from pfgraph.reporting.compare import build_report
    from pfgraph.utils.args import check_path, check_paths

    check_paths("report", "evals", evals)
    check_path("report", "out", out)
    evals = [str(e) for e in ([evals] if isinstance(evals, (str, Path)) else evals)]
    index = build_report(evals, out, metrics_only_ok, force)
    dataset = describe(read_manifest(evals[0]).get("data_identity"))
    n = len({str(Path(e).resolve()) for e in evals})
    print(f"report: {n} evaluations of {dataset} -> {index}")
    return index
