"""Bootstrap-interval benchmark: the cost of the headline intervals next to the energy evaluation itself.

    python scripts/bench_bootstrap.py                 # 1000 jet-like events, 200 replicas
    python scripts/bench_bootstrap.py --events 1000 --resamples 200 --repeats 3

Builds ``--events`` jet-like truth images (:func:`pfgraph.eval.jets.synthetic_jet_images`: 1600
background particles and a jet, ~1 250 truth pixels per event as in the Pythia jet set) and a
prediction smeared by 10 % with 5 % of the truth pixels missed and some fake energy, then times,
alternating in one run: the per-pixel evaluation (``EnergyAccumulator`` update + result, with its
core fits) as the baseline, and :func:`pfgraph.eval.bootstrap.headline` (every energy figure plus
the jet figures of a matching table) with ``--resamples`` replicas. Writes the
``## Bootstrap intervals`` section of docs/BENCHMARKS.md unless ``--no-doc``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pfgraph.eval.bootstrap import headline  # noqa: E402
from pfgraph.eval.energy import EnergyAccumulator  # noqa: E402
from pfgraph.eval.jets import MATCH_FIELDS, synthetic_jet_images  # noqa: E402
from scripts.benchdoc import machine, update_section  # noqa: E402


def main() -> None:
    """Run the benchmark and record it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--resamples", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-doc", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = ap.parse_args()

    truth = synthetic_jet_images(args.events, seed=1)
    rng = np.random.default_rng(2)
    pred = truth * rng.normal(1.0, 0.1, truth.shape).astype(np.float32)
    pred[(truth > 0) & (rng.random(truth.shape) < 0.05)] = 0.0
    pred = (pred + (rng.random(truth.shape) < 0.02) * 0.3).astype(np.float32)
    jets = {k: rng.normal(0.0, 0.05, args.events) for k in MATCH_FIELDS}
    jets.update(truth_rank=np.zeros(args.events, np.int32), pred_rank=np.zeros(args.events, np.int32),
                matched=np.ones(args.events, bool))
    base, boot = [], []
    n_pixels = 0
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        acc = EnergyAccumulator(target_scale=20.0)
        for s in range(0, args.events, 128):
            acc.update(pred[s:s + 128], truth[s:s + 128])
        acc.result()
        base.append(time.perf_counter() - t0)
        data = acc.event_data()
        n_pixels = len(data["r"])
        t0 = time.perf_counter()
        headline(data, jets, n_resamples=args.resamples)
        boot.append(time.perf_counter() - t0)
    b, e = float(np.median(boot)), float(np.median(base))
    cmd = "python scripts/bench_bootstrap.py " + shlex.join(sys.argv[1:])
    body = f"""Command: `{cmd.strip()}` ({machine()}).

68 % bootstrap intervals of every headline figure (`pfgraph.eval.bootstrap.headline`: residual median and
68 % half-width, tail share, missed pixels and energy, fake energy and pixels, dE/S, MSE, and the seven jet
figures), {args.resamples} replicas over {args.events} jet-like events ({n_pixels:,} truth pixels), median of
{args.repeats} repeats; baseline in the same run: the per-pixel evaluation itself (`EnergyAccumulator` update +
result with its core fits).

| what | seconds | per 1000 events |
|---|---:|---:|
| per-pixel evaluation (baseline) | {e:.2f} | {1000 * e / args.events:.2f} |
| bootstrap intervals, {args.resamples} replicas | {b:.2f} | {1000 * b / args.events:.2f} |
| ratio bootstrap / evaluation | {b / e:.2f}x | |
"""
    print(body)
    if not args.no_doc:
        update_section("Bootstrap intervals", body)


if __name__ == "__main__":
    main()
