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

import pfgraph.sim.generate as generate_module  # noqa: E402
from pfgraph.config import load_config, resolve_config_path  # noqa: E402
from pfgraph.io.root import EventFiles  # noqa: E402
from pfgraph.sim.detector import SimConfig  # noqa: E402
from pfgraph.sim.generate import generate, simulate_batch  # noqa: E402
from pfgraph.sim.particles import sample_event  # noqa: E402
from pfgraph.utils.memory import reuse_cpu_memory  # noqa: E402
from scripts.benchdoc import machine, update_section  # noqa: E402
from tests.sim.oracle import simulate_particles  # noqa: E402


def main() -> None:
    """Run the benchmark and record it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10000)
    ap.add_argument("--oracle-events", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2, help="round-robin repeats of the end-to-end runs (best kept)")
    ap.add_argument("--no-doc", action="store_true", help="print only, do not update docs/BENCHMARKS.md")
    args = ap.parse_args()
    cfg = load_config(SimConfig, resolve_config_path("gauss_b050", "sim"), [f"events={args.events}"])

    # Baseline: the per-particle oracle (same physics, same random numbers), simulation only.
    t0 = time.perf_counter()
    for eid in range(args.oracle_events):
        p, _ = sample_event(cfg.seed, eid, 0, cfg.particles, cfg.pileup)
        simulate_particles(p, 1, cfg.detector)
    oracle_rate = args.oracle_events / (time.perf_counter() - t0)

    # Vectorised simulation only, one process, in the writer's chunks (heap reused, as generate does).
    reuse_cpu_memory()
    chunk = cfg.output.chunk
    simulate_batch(cfg, range(chunk))
    t0 = time.perf_counter()
    for lo in range(0, 4 * chunk, chunk):
        simulate_batch(cfg, range(lo, lo + chunk))
    sim_rate = 4 * chunk / (time.perf_counter() - t0)

    threads = generate_module.compress_threads(1)  # the default on this machine
    other = 0 if threads else 2

    def compressing(n: int) -> str:
        return f"with {n} compression threads" if n else "compressing inline"

    packed = generate_module.WORKER_COMPRESSED
    # label, shards, workers, writer in a background thread, writer's compression threads (None: the default),
    # image baskets the simulation worker compresses
    configs = [(f"1 file, 1 sim worker compressing {'+'.join(packed)} + writer {compressing(threads)} (the default)",
                1, 1, False, None, packed),
               ("1 file, 1 sim worker + writer compressing every basket (not the default)", 1, 1, False, None, ()),
               (f"1 file, 1 sim worker + writer {compressing(other)} (not the default here)", 1, 1, False, other, packed),
               ("1 file, 1 sim worker + writer in a background thread (not the default)", 1, 1, True, None, packed),
               ("1 file, 2 sim workers + writer (`--workers 2`)", 1, 2, False, None, packed),
               ("2 shards written in parallel (`--shards 2 --workers 2`)", 2, 2, False, None, packed)]
    tmp = Path(tempfile.mkdtemp(prefix="pfgraph-bench-"))
    best_rate = [0.0] * len(configs)
    sizes = [0.0] * len(configs)
    try:
        for _ in range(args.repeat):  # round-robin, best of the repeats: the machine is shared
            for i, (_label, shards, workers, background, n_threads, in_worker) in enumerate(configs):
                out = tmp / f"b050_{shards}.root"
                generate_module.BACKGROUND_WRITE, generate_module.COMPRESS_THREADS = background, n_threads
                generate_module.WORKER_COMPRESSED = in_worker
                t0 = time.perf_counter()
                try:
                    paths = generate(cfg, out, shards=shards, workers=workers)
                finally:
                    generate_module.BACKGROUND_WRITE, generate_module.COMPRESS_THREADS = False, None
                    generate_module.WORKER_COMPRESSED = packed
                dt = time.perf_counter() - t0
                n = EventFiles(paths).num_events
                sizes[i] = sum(p.stat().st_size for p in paths) / n / 1024
                best_rate[i] = max(best_rate[i], n / dt)
                for p in paths:
                    p.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [(label, rate, size) for (label, *_), rate, size in zip(configs, best_rate, sizes)]

    best = max(r[1] for r in rows)
    default, writer_all, alternative, background = (rows[i][1] for i in range(4))
    load = os.getloadavg()[0]
    body = [
        f"Command: `python scripts/bench_simulate.py --events {args.events} --oracle-events {args.oracle_events} "
        f"--repeat {args.repeat}`  ",
        f"Machine: {machine()}; compression {cfg.output.compression}, {cfg.output.chunk}-event chunks; "
        f"1-minute load average {load:.1f} at the end (above 2, other jobs held the cores and every rate is lower "
        "than on an idle machine).",
        "",
        "| what | events/s | ratio to per-particle oracle |",
        "|---|---:|---:|",
        f"| per-particle loop oracle (tests/sim/oracle.py), simulation only | {oracle_rate:.2f} | 1 |",
        f"| vectorised simulation only, 1 process ({chunk}-event batches) | {sim_rate:.0f} | {sim_rate / oracle_rate:.0f}x |",
    ]
    for label, rate, size in rows:
        body.append(f"| simulate + write {args.events} events, {label} ({size:.1f} KiB/event) | {rate:.0f} | {rate / oracle_rate:.0f}x |")
    body += ["", f"Target: >= 2 000 events/s end to end by the default single-file `pfgraph simulate` "
             f"({'met' if default >= 2000 else 'NOT met'}: {default:.0f}; best of all modes {best:.0f}); "
             f">= 30x the oracle ({'met' if default / oracle_rate >= 30 else 'NOT met'}). In this run the writer "
             f"compressing every basket itself gave {writer_all / default:.2f}x the default's rate "
             "(`pfgraph.sim.generate.WORKER_COMPRESSED`); "
             f"{compressing(other)} gave {alternative / default:.2f}x the rate of {compressing(threads)} (the default on "
             f"{len(os.sched_getaffinity(0))} cores: `pfgraph.sim.generate.compress_threads`); the writer's background "
             f"thread {background / default:.2f}x the default's rate (`pfgraph.sim.generate.BACKGROUND_WRITE`, off).",
             "",
             "End to end = `generate()` as `pfgraph simulate` runs it, best of the repeats (round-robin over the rows), "
             "file written, fsynced and renamed. Simulation workers fill shared-memory batch slots that the writer "
             "process reads in place (no images pickled through a pipe), every process keeps its freed heap "
             "(`pfgraph.utils.memory.reuse_cpu_memory`: page faults are expensive here). Each sub-batch of 32 events "
             "draws its particles from the events' own generators into one buffer and computes their response with "
             "whole-array arithmetic (one weighted `np.bincount` per image). LZ4 compression is about two thirds of the "
             "writer's work, so the simulation worker, which now has time to spare, compresses the baskets of "
             f"{' and '.join(packed)} itself into its slot, and the writer hands them to uproot. Where cores are left "
             "over (4 and more), the writer also compresses its other large baskets in threads while uproot lays out "
             "the chunk (`EventWriter(threads=N)`; LZ4 releases the GIL). Either way uproot takes a result only for a "
             "block equal byte for byte to its own, so the file is the one inline compression writes (tested). The "
             "background-thread row also hands uproot's `extend` to a thread of the writer process "
             "(`EventWriter(background=True)`). With `--shards 2 --workers 2` each worker simulates and writes "
             "its own file, so both cores do both."]
    text = "\n".join(body)
    print(text)
    if not args.no_doc:
        update_section("Simulation", text)


if __name__ == "__main__":
    main()
