"""Training throughput per image model and the ROOT -> batched-tensor loading rate.

    python scripts/bench_train.py [--events 2000] [--train-events 256] [--cli-events 600] [--no-doc]
    python scripts/bench_train.py --only-precision [--precision-models cnn,unet_attn] [--precision-threads 2]

Writes its figures to docs/BENCHMARKS.md (sections "Training" and "bf16 training"). Measures, on
the CPU (and on CUDA with AMP when a GPU is present):
* loading: events/s from the ROOT file to normalised, batched tensors (dataset build + batch
  iteration), against the time of one training step of a batch (target >= 20 000 events/s,
  DESIGN §6, so that loading never stalls a GPU);
* training: events/s of each model's optimisation steps (paper configs and the improved
  variants, batch 32), and the projected time of one 8000-event epoch;
* end to end: ``pfgraph train --epochs 1 --max-events N`` for every paper model (the issue's
  acceptance run), wall time and exit status;
* fp32 against bf16 (``train.precision``, :mod:`pfgraph.training.precision`), in the same run:
  training events/s per model at ``--precision-threads`` threads (fp32, bf16, and bf16 without
  the channels-last layout, taking turns round by round), and the validation figures of
  ``pfgraph train`` runs with equal seeds after the same number of epochs in each precision
  (the paired difference against the fp32 seed spread).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PFGRAPH_NO_PROGRESS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pfgraph.config import load_config, resolve_config_path  # noqa: E402
from pfgraph.io import datasets  # noqa: E402
from pfgraph.io.datasets import BlockBatchSampler  # noqa: E402
from pfgraph.io.root import EventFiles  # noqa: E402
from pfgraph.models.registry import get  # noqa: E402
from pfgraph.repr.base import fit_normalisation  # noqa: E402
from pfgraph.repr.registry import get_representation  # noqa: E402
from pfgraph.sim.detector import SimConfig  # noqa: E402
from pfgraph.sim.generate import generate  # noqa: E402
from pfgraph.training import precision as prec  # noqa: E402
from pfgraph.training.config import DataConfig, load_model_section  # noqa: E402
from pfgraph.training.trainer import split_indices  # noqa: E402
from scripts.benchdoc import machine, update_section  # noqa: E402

PAPER = ("mlp", "cnn", "cnn_attn", "cnn3d", "unet", "unet_attn", "rnn")
VARIANTS = ("cnn_attn_code", "mlp_plus", "cnn_attn_plus", "unet_attn_plus", "calibrated")
BATCH = 32


def loading_rate(files: EventFiles, n: int, repeats: int = 5,
                 indices: np.ndarray | None = None) -> tuple[float, float, float, float]:
    """(events/s ROOT -> batched tensors, best of ``repeats``; the same for the first repeat, which
    pays the process's first page faults for the dataset's memory; events/s of the dataset build
    alone, best; events/s of fit_normalisation) for the events ``indices`` (default: the first
    ``n``), counting loaded events.

    Each repeat builds a fresh dataset and iterates it in shuffled batches, then frees it, so the
    next repeat reuses that memory as a training run streaming blocks does.
    """
    rep = get_representation("image")
    idx = np.arange(n) if indices is None else np.sort(np.asarray(indices, dtype=np.int64))
    n = len(idx)
    t0 = time.perf_counter()
    norm = fit_normalisation(files, idx)
    fit_rate = n / (time.perf_counter() - t0)
    rates, builds = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ds = rep.make_dataset(files, idx, norm)
        t1 = time.perf_counter()
        loader = torch.utils.data.DataLoader(ds, batch_sampler=BlockBatchSampler(len(ds), BATCH, seed=1),
                                             collate_fn=rep.collate)
        seen = sum(b.num_events for b in loader)
        t2 = time.perf_counter()
        assert seen == n
        rates.append(n / (t2 - t0))
        builds.append(n / (t1 - t0))
        del ds, loader
    return max(rates), rates[0], max(builds), fit_rate


def train_rate(name: str, files: EventFiles, n: int, device: torch.device) -> tuple[int, float, float]:
    """(parameters, training events/s, seconds per batch-32 step) of preset ``name``."""
    section = load_model_section(name, "image")
    entry = get(section.arch, "image")
    torch.manual_seed(0)
    model = entry.builder(section.params)
    rep = get_representation("image")
    norm = fit_normalisation(files, np.arange(min(n, files.num_events)))
    if hasattr(model, "configure_from_data"):
        model.configure_from_data(files.meta, norm)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ds = rep.make_dataset(files, np.arange(min(n + BATCH, files.num_events)), norm)
    batches = [rep.collate(ds.__getitems__(list(range(i, i + BATCH)))).to(device)
               for i in range(0, len(ds) - BATCH + 1, BATCH)]
    use_amp = device.type == "cuda"

    def step(b: object) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            out = rep.forward(model, b)
        loss = torch.nn.functional.mse_loss(out.float(), rep.target(b))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(batches[0])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    timed = batches[1:1 + max(1, n // BATCH)]
    t0 = time.perf_counter()
    for b in timed:
        step(b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return params, len(timed) * BATCH / dt, dt / len(timed)


def precision_rate(name: str, files: EventFiles, n: int, precision: str, channels_last: bool,
                   rounds: int = 2) -> list[float]:
    """Training events/s of preset ``name`` (its own representation) on the CPU in ``precision``
    (``fp32`` | ``bf16``), with the trainer's channels-last rule or without; one rate per round
    (batch 32, ``n`` events timed after a warm-up step; the loss in fp32 as the trainer does)."""
    from pfgraph.training.trainer import iter_batches

    section = load_model_section(name)
    torch.manual_seed(0)
    model = get(section.arch, section.repr).builder(dict(section.params))
    rep = get_representation(section.repr)
    norm = fit_normalisation(files, np.arange(min(n, files.num_events)))
    if hasattr(model, "configure_from_data"):
        model.configure_from_data(files.meta, norm)
    if channels_last:
        prec.use_channels_last(model)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ds = rep.make_dataset(files, np.arange(min(n + BATCH, files.num_events)), norm)
    batches = list(iter_batches(rep, ds, BATCH))
    autocast = prec.Precision(precision)

    def step(b: object) -> None:
        with autocast.autocast(torch.device("cpu")):
            out = rep.forward(model, b)
        loss = torch.nn.functional.mse_loss(out.float(), rep.target(b).float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    rates = []
    with prec.flush_denormal():
        step(batches[0])  # warm-up
        timed = batches[1:] or batches
        for _ in range(rounds):
            t0 = time.perf_counter()
            seen = 0
            for b in timed:
                step(b)
                seen += b.num_events if hasattr(b, "num_events") else int(b.num_graphs)
            rates.append(seen / (time.perf_counter() - t0))
    return rates


def precision_run(name: str, data: Path, out: Path, precision: str, seed: int, epochs: int, events: int,
                  threads: int) -> dict[str, float | str]:
    """``pfgraph train`` of ``name`` in ``precision``: the last epoch's validation figures, the run's
    training events/s and its resolved precision."""
    import csv
    import json

    run = out / f"{name}_{precision}_s{seed}"
    cmd = [sys.executable, "-m", "pfgraph.cli", "train", "--model", name, "--data", str(data), "--out", str(run),
           "--epochs", str(epochs), "--max-events", str(events), "--seed", str(seed), "--device", "cpu",
           f"train.threads={threads}", f"train.precision={precision}", "train.early_stop.patience=0"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"bench_train: {' '.join(cmd)} failed: {(res.stderr.strip().splitlines() or [''])[-1]}")
    with (run / "metrics.csv").open() as f:
        last = list(csv.DictReader(f))[-1]
    summary = json.loads((run / "train_summary.json").read_text())
    return {"val_half_width": float(last["val_half_width"]), "val_loss": float(last["val_loss"]),
            "events_per_s": float(summary["events_per_s"]), "precision": str(summary.get("precision"))}


def precision_section(args: argparse.Namespace, files: EventFiles, data: Path, tmp: Path, command: str) -> str:
    """The fp32-against-bf16 comparison (events/s and validation figures), as a BENCHMARKS section."""
    torch.set_num_threads(args.precision_threads)
    models = [m for m in args.precision_models.split(",") if m]
    seeds = [int(x) for x in args.precision_seeds.split(",") if x]
    rate_rows = []
    for name in models:
        rates: dict[str, list[float]] = {"fp32": [], "bf16": [], "bf16_contig": []}
        for _ in range(args.precision_rounds):  # taking turns: the machine's drift hits all three alike
            rates["fp32"] += precision_rate(name, files, args.train_events, "fp32", True, rounds=1)
            rates["bf16"] += precision_rate(name, files, args.train_events, "bf16", True, rounds=1)
            rates["bf16_contig"] += precision_rate(name, files, args.train_events, "bf16", False, rounds=1)
        best = {k: max(v) for k, v in rates.items()}
        section = load_model_section(name)
        torch.manual_seed(0)
        model = get(section.arch, section.repr).builder(dict(section.params))
        auto = prec.resolve("auto", torch.device("cpu"), model).name
        cl = prec.use_channels_last(model)
        rate_rows.append((name, best["fp32"], best["bf16"], best["bf16_contig"], auto, cl))
        print(f"{name:15s} fp32 {best['fp32']:7.1f}  bf16 {best['bf16']:7.1f} ({best['bf16'] / best['fp32']:.2f}x)  "
              f"bf16 contiguous {best['bf16_contig']:7.1f} events/s; auto -> {auto}", flush=True)
    val_rows = []
    if args.precision_epochs > 0:
        for name in models:
            figs: dict[str, list[dict[str, float | str]]] = {"fp32": [], "bf16": []}
            for seed in seeds:
                for p in ("fp32", "bf16"):
                    figs[p].append(precision_run(name, data, tmp / "precision", p, seed, args.precision_epochs,
                                                 args.precision_events, args.precision_threads))
            hw32 = np.array([f["val_half_width"] for f in figs["fp32"]], dtype=float)
            hw16 = np.array([f["val_half_width"] for f in figs["bf16"]], dtype=float)
            diff = hw16 - hw32
            spread = float(hw32.std(ddof=1)) if hw32.size >= 2 else float("nan")
            verdict = ("1 seed: no spread" if not np.isfinite(spread) else
                       "within the seed spread" if abs(diff.mean()) <= spread else "beyond the seed spread")
            val_rows.append((name, len(seeds), hw32.mean(), hw16.mean(), diff.mean(), spread, verdict,
                             float(np.mean([f["events_per_s"] for f in figs["fp32"]])),
                             float(np.mean([f["events_per_s"] for f in figs["bf16"]]))))
            print(f"{name:15s} val r half-width fp32 {hw32.mean():.4f} bf16 {hw16.mean():.4f} (paired diff "
                  f"{diff.mean():+.4f}, fp32 seed spread {spread:.4f}): {verdict}", flush=True)
    lines = [
        f"Command: `{command}` (machine: {machine()}; {args.precision_threads} torch threads; native bf16 on this "
        f"CPU: {'yes' if prec.cpu_has_native_bf16() else 'no'}; load average {os.getloadavg()[0]:.1f} at the end).",
        "",
        f"**Training events/s** (optimisation steps, batch {BATCH}, {args.train_events} events timed after a "
        f"warm-up step, best of {args.precision_rounds} rounds taking turns; bf16 = autocast forward, fp32 weights, "
        "loss and Adam state; channels-last as the trainer applies it (models with only 2-D convolutions), the "
        "last column without it):",
        "",
        "| model | fp32 | bf16 | bf16 / fp32 | bf16, contiguous | channels-last | `auto` picks |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for name, r32, r16, r16c, auto, cl in rate_rows:
        lines.append(f"| {name} | {r32:,.1f} | {r16:,.1f} | {r16 / r32:.2f}x | {r16c:,.1f} | {'yes' if cl else 'no'} "
                     f"| {auto} |")
    if val_rows:
        lines += ["", f"**Validation figures after {args.precision_epochs} epoch{'s' if args.precision_epochs != 1 else ''}** (per model, seed and precision, e.g. "
                  f"`pfgraph train --model cnn --data DATA.root --out RUN --epochs {args.precision_epochs} --max-events "
                  f"{args.precision_events} --seed 1 train.precision=bf16 train.early_stop.patience=0`, seeds {', '.join(map(str, seeds))}, equal in both precisions; "
                  "validation r 68 % half-width of the last epoch, validation in fp32; paired difference bf16 - "
                  "fp32 over the seeds against the fp32 runs' seed standard deviation):", "",
                  "| model | seeds | fp32 half-width | bf16 half-width | bf16 - fp32 (paired mean) | fp32 seed s.d. "
                  "| verdict | fp32 events/s | bf16 events/s |", "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
        for name, n, a, b, d, s_, v, e32, e16 in val_rows:
            lines.append(f"| {name} | {n} | {a:.4f} | {b:.4f} | {d:+.4f} | {s_:.4f} | {v} | {e32:,.1f} | {e16:,.1f} |")
    lines += ["", "A precision that moves the validation figures beyond the seed spread is not the default: "
              f"`train.precision: auto` resolves by the rule {prec.AUTO_RULE!r}."]
    return "\n".join(lines)


def cli_run(name: str, data: Path, out: Path, events: int, threads: int) -> tuple[int, float, str]:
    """The acceptance command for one model: (exit status, wall seconds, summary line)."""
    cmd = [sys.executable, "-m", "pfgraph.cli", "train", "--repr", "image", "--model", name, "--data", str(data),
           "--out", str(out / name), "--epochs", "1", "--max-events", str(events), "--device", "cpu",
           f"train.threads={threads}"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    lines = (res.stdout.strip().splitlines() or [""]) if res.returncode == 0 else (res.stderr.strip().splitlines() or [""])
    return res.returncode, dt, lines[-1].split(" -> ")[0]


def main() -> None:
    """Run the benchmark and record it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2000, help="events simulated for the loading benchmark")
    ap.add_argument("--train-events", type=int, default=256, help="events timed per model (after one warm-up batch)")
    ap.add_argument("--cli-events", type=int, default=600, help="--max-events of the end-to-end CLI runs (0: skip)")
    ap.add_argument("--models", default=",".join(PAPER + VARIANTS), help="comma-separated presets to time")
    ap.add_argument("--threads", default="0", help="comma-separated torch CPU thread counts to time the models "
                    "with (0: torch's default); the first one is used for loading and the CLI runs")
    ap.add_argument("--no-doc", action="store_true", help="print only, do not update docs/BENCHMARKS.md")
    ap.add_argument("--only-precision", action="store_true", help="run only the fp32-against-bf16 comparison")
    ap.add_argument("--no-precision", action="store_true", help="skip the fp32-against-bf16 comparison")
    ap.add_argument("--precision-models", default="cnn,unet_attn,cnn_attn,cnn3d,unet,mlp,rnn,calibrated,edgeconv,pfn",
                    help="comma-separated presets of the fp32-against-bf16 comparison")
    ap.add_argument("--precision-threads", type=int, default=2, help="torch CPU threads of the comparison")
    ap.add_argument("--precision-rounds", type=int, default=2, help="rounds of the events/s comparison")
    ap.add_argument("--precision-epochs", type=int, default=3,
                    help="epochs of the comparison's training runs (0: events/s only)")
    ap.add_argument("--precision-events", type=int, default=1000, help="--max-events of the comparison's runs")
    ap.add_argument("--precision-seeds", default="1,2,3", help="comma-separated seeds of the comparison's runs")
    args = ap.parse_args()
    default_threads = torch.get_num_threads()
    thread_settings = [int(t) or default_threads for t in args.threads.split(",")]
    torch.set_num_threads(thread_settings[0])
    command = "python scripts/bench_train.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    tmp = Path(tempfile.mkdtemp(prefix="pfgraph-bench-train-"))
    data = tmp / "b050.root"
    cfg = load_config(SimConfig, resolve_config_path("gauss_b050", "sim"), [f"events={args.events}"])
    generate(cfg, data, workers=1)
    files = EventFiles(data)
    if args.only_precision:
        body = precision_section(args, files, data, tmp, command)
        print(body)
        if not args.no_doc:
            update_section("bf16 training", body)
        return

    # pfgraph's reader (uproot's memory-mapped source) against the baseline of uproot's default
    # (fsspec) source, taking turns, 3 rounds of 5 repeats each: on this shared machine the rate
    # drifts within a minute, so one after the other would measure the drift.
    source, rounds = datasets._SOURCE, {"mmap": [], "base": []}
    for _ in range(3):
        for key, src in (("mmap", source), ("base", None)):
            datasets._SOURCE = src
            rounds[key].append(loading_rate(files, args.events))
    datasets._SOURCE = source
    load_all, load_build = max(r[0] for r in rounds["mmap"]), max(r[2] for r in rounds["mmap"])
    load_first, fit_rate = rounds["mmap"][0][1], rounds["mmap"][0][3]
    base_all, base_build = max(r[0] for r in rounds["base"]), max(r[2] for r in rounds["base"])
    dcfg = DataConfig()
    train_idx = split_indices(args.events, dcfg.split, dcfg.split_seed)["train"]
    split_all, split_first, _, _ = loading_rate(files, args.events, indices=train_idx)
    print(f"loading: training split {split_all:.0f} events/s (first repeat {split_first:.0f})", flush=True)
    print(f"loading: {load_all:.0f} events/s ROOT -> batched tensors (first repeat {load_first:.0f}; "
          f"{load_build:.0f} dataset build, {fit_rate:.0f} normalisation fit); uproot's default source: "
          f"{base_all:.0f} ({base_build:.0f} build)", flush=True)

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for name in [m for m in args.models.split(",") if m]:
        for dev in devices:
            for threads in thread_settings if dev.type == "cpu" else [thread_settings[0]]:
                torch.set_num_threads(threads)
                params, rate, step_s = train_rate(name, files, args.train_events, dev)
                label = f"{dev.type} ({threads} thr)" if dev.type == "cpu" else dev.type
                rows.append((name, label, params, rate, step_s))
                print(f"{name:15s} {label:12s} {params:>10,d} params {rate:8.1f} events/s  {step_s * 1e3:8.1f} ms/step  "
                      f"8000-event epoch {8000 / rate / 60:6.1f} min", flush=True)
    torch.set_num_threads(thread_settings[0])

    cli_rows = []
    if args.cli_events > 0:
        for name in PAPER:
            rc, dt, line = cli_run(name, data, tmp / "runs", args.cli_events, thread_settings[0])
            cli_rows.append((name, rc, dt, line))
            print(f"cli {name}: exit {rc} in {dt:.0f} s: {line}", flush=True)

    step_ref = min(r[4] for r in rows if r[1].startswith("cpu")) if rows else float("nan")
    load_batch_ms = BATCH / load_all * 1e3
    lines = [
        f"Command: `{command}` (machine: {machine()}; torch threads {thread_settings[0]} unless stated; shared "
        f"machine, load average {os.getloadavg()[0]:.1f} at the end of the run, so rates vary by 2x or more "
        "between runs).",
        "",
        f"**Loading** (paper B=0.5 file, {args.events} events, LZ4): ROOT -> normalised batched tensors "
        f"**{load_all:,.0f} events/s** (target >= 20 000; best of 3 rounds of 5 repeats, each a fresh dataset "
        f"built and iterated in shuffled batches of {BATCH}; the very first repeat, which also pays the "
        f"process's first page faults for the dataset's memory, {load_first:,.0f} events/s); dataset build "
        f"alone {load_build:,.0f} events/s; "
        f"normalisation fit (training-split maxima) {fit_rate:,.0f} events/s. Baseline in the same run, taking "
        f"turns with it round by round, the baskets read through uproot's default (fsspec) source instead of "
        f"its memory-mapped one: "
        f"{base_all:,.0f} events/s (build {base_build:,.0f}), so memory-mapping gives {load_all / base_all:.2f}x. "
        f"The trainer's own case, the default random {dcfg.split[0]:.0%} training split of the same file "
        f"({len(train_idx)} events, so every basket is decompressed and a fifth of it not kept): "
        f"{split_all:,.0f} loaded events/s (first repeat {split_first:,.0f}). "
        f"One batch of {BATCH} loads in "
        f"{load_batch_ms:.1f} ms, against {step_ref * 1e3:.0f} ms for the fastest model's CPU training step: "
        f"loading is {step_ref * 1e3 / load_batch_ms:.0f}x faster than training.",
        "",
        f"**Training** (optimisation steps only, batch {BATCH}, {args.train_events} events timed after a warm-up "
        "batch; model presets (pfgraph/presets/model); CPU rows in fp32, CUDA rows with bfloat16 autocast; "
        "fp32 against bf16 on the CPU: section \"bf16 training\"):",
        "",
        "| model | device (CPU threads) | parameters | events/s | ms/step | 8000-event epoch |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, dev, params, rate, step_s in rows:
        lines.append(f"| {name} | {dev} | {params:,} | {rate:,.1f} | {step_s * 1e3:,.0f} | {8000 / rate / 60:.1f} min |")
    if cli_rows:
        lines += ["", f"**End to end** (`pfgraph train --repr image --model M --data b050.root --out runs/M --epochs 1 "
                  f"--max-events {args.cli_events} --device cpu`, a fresh process each, import + load + "
                  "train + validate + checkpoints):", "",
                  "| model | exit | wall time | summary |", "|---|---:|---:|---|"]
        for name, rc, dt, line in cli_rows:
            lines.append(f"| {name} | {rc} | {dt:.0f} s | {line.replace('|', '/')} |")
    if not torch.cuda.is_available():
        lines += ["", "No GPU on this machine: the CUDA rows appear when the script runs where one is available."]
    cpu_rows = sorted((r for r in rows if r[1].startswith("cpu")), key=lambda r: r[3])
    if cpu_rows:
        slow, fast = cpu_rows[0], cpu_rows[-1]
        lines += ["", f"Slowest on this CPU: `{slow[0]}` ({slow[3]:.1f} events/s); fastest: `{fast[0]}` "
                  f"({fast[3]:.1f} events/s). The per-pixel MLPs apply a 1024x1024 layer to every non-empty pixel "
                  "(~1.6 GMAC per event forward), which makes them compute-bound on a CPU whatever their "
                  "modest parameter count. On a shared 2-core machine torch's two OpenMP threads can stall "
                  "when other processes hold the cores; `train.threads=1` is then often faster (compare "
                  "`--threads 0,1`)."]
    body = "\n".join(lines)
    print(body)
    if not args.no_doc:
        update_section("Training", body)
    if not args.no_precision:
        body = precision_section(args, files, data, tmp, command)
        print(body)
        if not args.no_doc:
            update_section("bf16 training", body)


if __name__ == "__main__":
    main()
