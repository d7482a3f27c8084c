"""``pfgraph demo``: the embedded default, a small end-to-end run on CPU in minutes.

Simulates a small B=0.5 training set and a Pythia 8 jet set, trains the quick baselines and
the two flagship models (``unet_attn`` on images, ``edgeconv`` on point clouds) briefly,
evaluates every model on the jet set with the one common evaluation, and writes the
comparison report. Each step calls the stage function behind its sub-command
(:func:`pfgraph.simulate`, :func:`pfgraph.train`, :func:`pfgraph.evaluate`, :func:`pfgraph.report`)
and prints the equivalent command line. Re-running resumes: finished steps are skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


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
#: The CI variant (tests/reporting/test_demo.py): every stage, an image and a graph model, ~1-2 minutes.
QUICK = DemoPlan(train_events=200, jet_events=30, models=(
    ("image", "analytic", 0), ("image", "cnn", 1), ("graph", "edgeconv", 1)))


def run_demo(out: str | Path, quick: bool = False, seed: int = 1) -> Path:
    """Run the demo into folder ``out``; returns the report's index.html."""
    from pfgraph.eval.stage import evaluate
    from pfgraph.reporting.stage import report
    from pfgraph.sim.stage import simulate
    from pfgraph.training.stage import train

    plan = QUICK if quick else FULL
    out = Path(out)
    data = out / "data"
    t0 = time.perf_counter()
    train_file = data / "b050.root"
    jet_file = data / "b050_jet.root"
    if not train_file.exists():
        _step(f"simulate --config gauss_b050 --events {plan.train_events} --seed {seed} --out {train_file}")
        simulate("gauss_b050", train_file, events=plan.train_events, seed=seed)
    if not jet_file.exists():
        _step(f"simulate --config gauss_b050_jet --events {plan.jet_events} --seed {seed + 1} --out {jet_file} "
              "--workers 0")
        simulate("gauss_b050_jet", jet_file, events=plan.jet_events, seed=seed + 1, workers=0)
    evals = []
    for repr_name, model, epochs in plan.models:
        run_dir = out / "runs" / model
        _step(f"train --repr {repr_name} --model {model} --data {train_file} --out {run_dir} --epochs {epochs} "
              f"--seed {seed}")
        print(train(model, run_dir, train_file, repr=repr_name, epochs=epochs, seed=seed).summary_line(), flush=True)
        eval_dir = out / "evals" / model
        if not (eval_dir / "manifest.json").exists():  # written last: the evaluation is complete
            _step(f"evaluate {run_dir} --data {jet_file} --out {eval_dir}")
            result = evaluate(run_dir, jet_file, eval_dir)
            print(f"{result.summary} -> {result.out}", flush=True)
        evals.append(str(eval_dir))
    _step(f"report {' '.join(evals)} --out {out / 'report'}")
    index = report(evals, out / "report")
    print(f"demo: {len(evals)} models trained and evaluated in {time.perf_counter() - t0:.0f} s; open {index}")
    return index


def _step(command: str) -> None:
    """Print the ``pfgraph`` command a step is equivalent to (so a user can rerun it alone)."""
    print(f"$ pfgraph {command}", flush=True)
