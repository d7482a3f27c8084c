"""Anti-kt benchmark: batched torch anti-kt (CPU; CUDA when available) vs FastJet, same events, same run.

    python scripts/bench_antikt.py                      # 1000-event Pythia jet set (simulated once, cached)
    python scripts/bench_antikt.py --data data/b050_jet.root --events 1000
    python scripts/bench_antikt.py --synthetic          # jet-like synthetic images, no Pythia needed

Clusters the ``truth`` images (pixels above ``--threshold`` GeV as massless pseudojets, the
evaluation's tie-break offsets, anti-kt R = ``--radius``, E-scheme) with FastJet's multi-event
API and with :func:`pfgraph.eval.antikt.cluster`, checks that both give the same jets (same
constituents in every event, kinematics to 1e-12), and reports events/s and the ratio. Writes
the ``## Anti-kt`` section of docs/BENCHMARKS.md unless ``--no-doc``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pfgraph.eval.antikt import (  # noqa: E402
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BATCH_CUDA,
    TIE_BREAK,
    Jets,
    cluster,
    cluster_fastjet,
    pixel_momenta,
)
from scripts.benchdoc import machine, update_section  # noqa: E402

DEFAULT_CACHE = ROOT / "data" / "bench" / "jet_1000.root"


def jet_images(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    """The truth images to cluster and a description of where they come from."""
    if args.synthetic:
        from pfgraph.eval.jets import synthetic_jet_images

        return synthetic_jet_images(args.events, seed=1), f"{args.events} synthetic jet-like events " \
            "(1600 background particles + a 150-400 GeV jet core; pfgraph.eval.jets.synthetic_jet_images)"
    from pfgraph.io.root import EventFiles

    path = Path(args.data) if args.data else DEFAULT_CACHE
    if not path.exists():
        if args.data:
            raise SystemExit(f"{path}: no such file")
        from pfgraph.config import load_config, resolve_config_path
        from pfgraph.sim.detector import SimConfig
        from pfgraph.sim.generate import generate

        print(f"simulating the {args.events}-event Pythia jet set into {path} (once) ...", flush=True)
        cfg = load_config(SimConfig, resolve_config_path("gauss_b050_jet", "sim"), [f"events={args.events}"])
        path.parent.mkdir(parents=True, exist_ok=True)
        generate(cfg, path, workers=0)
    files = EventFiles(path)
    n = min(args.events, files.num_events)
    truth = files.read(["truth"], 0, n)["truth"]
    name = (files.meta.get("config") or {}).get("name", path.name)
    return truth, f"{n} events of the Pythia jet set {name} ({path.name}; DESIGN 2), truth images"


def same_jets(a: Jets, b: Jets) -> tuple[int, float]:
    """(events whose jets differ in count or constituents, max relative pT/E difference)."""
    n = a.constituent_jet.shape[0]
    ca, cb = a.constituent_jet.cpu(), b.constituent_jet.cpu()
    width = max(ca.shape[1], cb.shape[1])
    ca = torch.nn.functional.pad(ca, (0, width - ca.shape[1]), value=-1)
    cb = torch.nn.functional.pad(cb, (0, width - cb.shape[1]), value=-1)
    bad = (ca != cb).any(1) | (a.n_jets.cpu() != b.n_jets.cpu())
    m = a.mask.cpu() & b.mask.cpu() & ~bad[:, None]
    worst = 0.0
    for name in ("pt", "e"):
        x, y = getattr(a, name).cpu()[m], getattr(b, name).cpu()[m]
        if x.numel():
            worst = max(worst, float(((x - y).abs() / y.abs().clamp(min=1e-300)).max()))
    return int(bad.sum()) if n else 0, worst


def timed(fn, repeat: int) -> tuple[float, object]:  # noqa: ANN001
    """Best wall time of ``repeat`` calls (s) and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> int:
    """Run the benchmark; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="jet-sample events file (default: simulate/cache data/bench/jet_1000.root)")
    p.add_argument("--synthetic", action="store_true", help="synthetic jet-like images instead of the Pythia set")
    p.add_argument("--events", type=int, default=1000, help="events to cluster (1000)")
    p.add_argument("--threshold", type=float, default=0.1, help="pixel threshold in GeV (0.1, the evaluation default)")
    p.add_argument("--radius", type=float, default=0.4, help="anti-kt R (0.4)")
    p.add_argument("--batch", type=int, default=DEFAULT_MAX_BATCH,
                   help=f"events per torch batch on the CPU ({DEFAULT_MAX_BATCH}; CUDA: {DEFAULT_MAX_BATCH_CUDA})")
    p.add_argument("--threads", type=int, default=1, help="torch CPU intra-op threads for the torch path (1)")
    p.add_argument("--repeat", type=int, default=1, help="repetitions, best time kept (1)")
    p.add_argument("--no-doc", action="store_true", help="do not write docs/BENCHMARKS.md")
    args = p.parse_args()

    images, source = jet_images(args)
    n = len(images)
    px, py, pz, e, mask, _ = pixel_momenta(images, args.threshold, TIE_BREAK)
    counts = mask.sum(1).numpy()
    print(f"{source}\n{n} events, {counts.mean():.0f} pseudojets/event (max {counts.max()}), "
          f"threshold {args.threshold} GeV, R = {args.radius}", flush=True)

    t_fj, fj = timed(lambda: cluster_fastjet(px, py, pz, e, mask, args.radius), args.repeat)
    print(f"FastJet (multi-event API): {t_fj:.2f} s, {n / t_fj:.0f} events/s, {1e3 * t_fj / n:.2f} ms/event", flush=True)
    t_cpu, tj = timed(lambda: cluster(px, py, pz, e, mask, args.radius, max_batch=args.batch, cpu_threads=args.threads),
                      args.repeat)
    bad_cpu, diff_cpu = same_jets(tj, fj)
    print(f"torch CPU ({args.threads} thread(s), batch {args.batch}): {t_cpu:.2f} s, {n / t_cpu:.1f} events/s, "
          f"{t_cpu / t_fj:.1f}x FastJet's time; events with different jets: {bad_cpu}, max rel. diff {diff_cpu:.1e}",
          flush=True)
    rows = [("FastJet 3.5 (multi-event API, CPU)", t_fj, "reference"),
            (f"torch CPU, {args.threads} thread(s), batch {args.batch}", t_cpu,
             f"{bad_cpu} of {n} events differ; max rel. pT/E diff {diff_cpu:.1e}")]
    cuda_note = "No CUDA device on this machine: the GPU figure is still to be measured."
    if torch.cuda.is_available():
        dev = "cuda"
        args_gpu = [a.to(dev) for a in (px, py, pz, e, mask)]
        cluster(*(a[:8] for a in args_gpu), radius=args.radius)  # warm-up (kernels, allocator)
        torch.cuda.synchronize()

        def run_gpu() -> Jets:
            out = cluster(*args_gpu, radius=args.radius, max_batch=DEFAULT_MAX_BATCH_CUDA)
            torch.cuda.synchronize()
            return out

        t_gpu, tg = timed(run_gpu, args.repeat)
        bad_gpu, diff_gpu = same_jets(tg, fj)
        print(f"torch {torch.cuda.get_device_name(0)}: {t_gpu:.2f} s, {n / t_gpu:.1f} events/s, "
              f"{t_fj / t_gpu:.1f}x faster than FastJet; events with different jets: {bad_gpu}", flush=True)
        rows.append((f"torch CUDA ({torch.cuda.get_device_name(0)}), batch {DEFAULT_MAX_BATCH_CUDA}", t_gpu,
                     f"{bad_gpu} of {n} events differ; max rel. pT/E diff {diff_gpu:.1e}"))
        cuda_note = ""
    if args.no_doc:
        return 0
    cmd = "python scripts/bench_antikt.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    table = "| implementation | time [s] | events/s | ms/event | vs FastJet | same jets as FastJet |\n|---|---|---|---|---|---|\n"
    for name, t, note in rows:
        ratio = "1" if t == t_fj else (f"{t / t_fj:.1f}x slower" if t > t_fj else f"{t_fj / t:.1f}x faster")
        table += f"| {name} | {t:.2f} | {n / t:.1f} | {1e3 * t / n:.2f} | {ratio} | {note} |\n"
    body = f"""Command: `{cmd.strip()}` (`scripts/bench_antikt.py`), on {machine()}.

Data: {source}; {n} events, {counts.mean():.0f} pseudojets per event on average (max {counts.max()}): pixels above
{args.threshold} GeV as massless pseudojets (the evaluation's tie-break offsets), anti-kt R = {args.radius}, E-scheme,
all inclusive jets. Both implementations cluster the same pseudojets in the same run; "same jets" means the same
number of jets and the same constituents in every event, with pT and E compared to FastJet's.

{table}
Targets (DESIGN 6): on CPU FastJet stays the default (`--jet-backend auto`) and the torch path is exact with its
ratio measured (within 3x of FastJet is the stretch goal, not reached: the sequential clustering takes one batched
step per pseudojet, ~100 small torch operations per step, each over ~150-300 tiled candidates per event);
on a GPU the target is >= 10x faster than FastJet. {cuda_note}
"""
    update_section("Anti-kt", body)
    print("wrote the '## Anti-kt' section of docs/BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
