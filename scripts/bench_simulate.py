"""Simulate + write throughput of the 10 000-event B=0.5 paper dataset vs the per-particle oracle.

    python scripts/bench_simulate.py [--events 10000] [--oracle-events 4]

Writes its figures to docs/BENCHMARKS.md (section "Simulation"). Targets (DESIGN §6):
>= 2 000 events/s end to end, >= 30x the per-particle loop implementation of the same physics.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PFGRAPH_NO_PROGRESS", "1")

from pfgraph.config import load_config, resolve_config_path  # noqa: E402
from pfgraph.io.root import EventFiles  # noqa: E402
from pfgraph.sim.detector import SimConfig  # noqa: E402
from pfgraph.sim.generate import generate, simulate_batch  # noqa: E402
from pfgraph.sim.particles import Particles, sample_event  # noqa: E402
from scripts.benchdoc import machine, update_section  # noqa: E402
from tests.sim.oracle import simulate_particles  # noqa: E402


def main() -> None:
    """Run the benchmark and record it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10000)
    ap.add_argument("--oracle-events", type=int, default=4)
    ap.add_argument("--no-doc", action="store_true", help="print only, do not update docs/BENCHMARKS.md")
    args = ap.parse_args()
    cfg = load_config(SimConfig, resolve_config_path("gauss_b050", "sim"), [f"events={args.events}"])

    # Baseline: the per-particle oracle (same physics, same random numbers), simulation only.
    t0 = time.perf_counter()
    for eid in range(args.oracle_events):
        p, _ = sample_event(cfg.seed, eid, 0, cfg.particles, cfg.pileup)
        simulate_particles(p, 1, cfg.detector)
    oracle_rate = args.oracle_events / (time.perf_counter() - t0)

    # Vectorised simulation only, one process.
    simulate_batch(cfg, range(32))
    t0 = time.perf_counter()
    simulate_batch(cfg, range(1000))
    sim_rate = 1000 / (time.perf_counter() - t0)

    tmp = Path(tempfile.mkdtemp(prefix="pfgraph-bench-"))
    rows = []
    try:
        for label, shards, workers in [("1 file, 1 sim worker + writer", 1, 1),
                                       ("2 shards written in parallel (2 workers)", 2, 2)]:
            out = tmp / f"b050_{shards}.root"
            t0 = time.perf_counter()
            paths = generate(cfg, out, shards=shards, workers=workers)
            dt = time.perf_counter() - t0
            n = EventFiles(paths).num_events
            size = sum(p.stat().st_size for p in paths) / n / 1024
            rows.append((label, n / dt, size))
            for p in paths:
                p.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    best = max(r[1] for r in rows)
    body = [
        f"Command: `python scripts/bench_simulate.py --events {args.events} --oracle-events {args.oracle_events}`  ",
        f"Machine: {machine()}; compression {cfg.output.compression}, {cfg.output.chunk}-event chunks.",
        "",
        "| what | events/s | ratio to per-particle oracle |",
        "|---|---:|---:|",
        f"| per-particle loop oracle (tests/sim/oracle.py), simulation only | {oracle_rate:.2f} | 1 |",
        f"| vectorised simulation only, 1 process | {sim_rate:.0f} | {sim_rate / oracle_rate:.0f}x |",
    ]
    for label, rate, size in rows:
        body.append(f"| simulate + write {args.events} events, {label} ({size:.1f} KiB/event) | {rate:.0f} | {rate / oracle_rate:.0f}x |")
    body += ["", f"Target: >= 2 000 events/s end to end ({'met' if best >= 2000 else 'NOT met'}: best {best:.0f}); "
             f">= 30x the oracle ({'met' if best / oracle_rate >= 30 else 'NOT met'})."]
    text = "\n".join(body)
    print(text)
    if not args.no_doc:
        update_section("Simulation", text)


if __name__ == "__main__":
    main()
