"""RESULTS.md from a study folder (``pfgraph study``): a thin wrapper of :mod:`pfgraph.study.results`.

    python scripts/results_table.py STUDY_DIR [--out docs/RESULTS.md] [--keep DIR]

Every ``metrics.json`` is read only when its evaluation folder passes the check the study runner
applies (its ``manifest.json`` lists the file with this size and SHA-256, and names the run's current
best checkpoint); an evaluation that fails is left out and named on the page.

The study's own ``results`` step writes ``STUDY_DIR/RESULTS.md``; this script writes the page
elsewhere (the repository's recorded ``docs/RESULTS.md``) and, with ``--keep``, copies the files
every figure comes from (study.yaml, metrics.json, train_summary.json, metrics.csv, step ledgers)
to DIR so that each number can be traced back to a file (for a study folder that is not kept in git;
the recorded cpu_b050 study is, so its page needs no copy).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pfgraph.errors import PfgraphError  # noqa: E402
from pfgraph.study.results import write_results  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Write RESULTS.md; one line and exit 2 on a folder that is not a study."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path, help="the study's output folder (pfgraph study ... --out)")
    ap.add_argument("--out", type=Path, help="where RESULTS.md goes (default: STUDY/RESULTS.md)")
    ap.add_argument("--keep", type=Path, help="copy the evidence (metrics, summaries, ledgers) here")
    args = ap.parse_args(argv)
    try:
        path = write_results(args.study, args.out, args.keep)
    except PfgraphError as exc:
        print(f"results_table: error: {exc}", file=sys.stderr)
        return 2
    print(f"results_table: {path} from {args.study}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
