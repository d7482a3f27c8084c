"""``pfgraph demo``: the embedded default, a small end-to-end run on CPU in minutes.

Simulates a small B=0.5 training set and a Pythia 8 jet set, trains the quick baselines and
the two flagship models (``unet_attn`` on images, ``edgeconv`` on point clouds) briefly,
evaluates every model on the jet set with the one common evaluation, and writes the
comparison report. Each step is the real sub-command, so the demo exercises exactly what a
user runs. Re-running resumes: finished steps are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pfgraph.errors import PfgraphError


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of one demo run."""

    train_events: int
    jet_events: int
    models: tuple[tuple[str, str, int], ...]  # (repr, model, epochs)


#: The README's main job, timed by scripts/bench_demo.py (docs/BENCHMARKS.md, section "Demo":
#: 5.3 minutes on the 2-core reference machine with its cores nearly free, 46 with three other
#: jobs on them; training is most of it): 960 training events, a few epochs for the fast models, one for the slow
#: per-pixel ``mlp``. Enough to show every stage and a first comparison, not a converged
#: study (that is ``scripts/reproduce_paper.sh``).
FULL = DemoPlan(train_events=1200, jet_events=200, models=(
    ("image", "analytic", 0), ("image", "mlp", 1), ("image", "cnn", 4), ("image", "unet_attn", 4),
    ("graph", "edgeconv", 2)))
#: The CI variant (tests/report/test_demo.py): every stage, an image and a graph model, ~1-2 minutes.
QUICK = DemoPlan(train_events=200, jet_events=30, models=(
    ("image", "analytic", 0), ("image", "cnn", 1), ("graph", "edgeconv", 1)))


def _run(argv: Sequence[str]) -> None:
    from pfgraph.cli import main

    print("$ pfgraph " + " ".join(argv), flush=True)
    status = main(list(argv))
    if status in (130, 143):  # the step was interrupted and has said so: stop here without a second line
        raise SystemExit(status)
    if status != 0:
        raise PfgraphError(f"demo step failed (exit {status}): pfgraph {' '.join(argv)}")


def run_demo(out: str | Path, quick: bool = False, seed: int = 1) -> Path:
    """Run the demo into folder ``out``; returns the report's index.html."""
    plan = QUICK if quick else FULL
    out = Path(out)
    data = out / "data"
    t0 = time.perf_counter()
    train_file = data / "b050.root"
    jet_file = data / "b050_jet.root"
    if not train_file.exists():
        _run(["simulate", "--config", "gauss_b050", "--events", str(plan.train_events), "--seed", str(seed),
              "--out", str(train_file)])
    if not jet_file.exists():
        _run(["simulate", "--config", "gauss_b050_jet", "--events", str(plan.jet_events), "--seed", str(seed + 1),
              "--out", str(jet_file), "--workers", "0"])
    evals = []
    for repr_name, model, epochs in plan.models:
        run_dir = out / "runs" / model
        _run(["train", "--repr", repr_name, "--model", model, "--data", str(train_file), "--out", str(run_dir),
              "--epochs", str(epochs), "--seed", str(seed)])
        eval_dir = out / "evals" / model
        if not (eval_dir / "manifest.json").exists():  # written last: the evaluation is complete
            _run(["evaluate", str(run_dir), "--data", str(jet_file), "--out", str(eval_dir)])
        evals.append(str(eval_dir))
    report = out / "report"
    _run(["report", *evals, "--out", str(report)])
    print(f"demo: {len(evals)} models trained and evaluated in {time.perf_counter() - t0:.0f} s; "
          f"open {report / 'index.html'}")
    return report / "index.html"
