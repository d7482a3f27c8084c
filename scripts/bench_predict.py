"""Inference benchmark: CPU events/s of torch vs onnxruntime for the same models, events and batches, one run.

    python scripts/bench_predict.py                                  # 2000 simulated events (cached), 1 thread
    python scripts/bench_predict.py --data data/b050.root --events 2000 --threads 4
    python scripts/bench_predict.py --events 64 --small --no-doc     # a quick check that it works

For each model (cnn, unet_attn, edgeconv, pfn, and residual_cnn / residual_gnn when registered) a run
is made with ``--epochs 0`` (the preset's architecture, untrained: inference time does not depend on
the weights) and exported with :func:`pfgraph.training.export.export_bytes`. The events are loaded into
batches once; then the model alone is timed over all batches in torch (``torch.no_grad``, eval mode)
and in onnxruntime (CPU execution provider, the exported file: normalisation inside), with the same
number of intra-op threads, after one warm-up batch each. The outputs are compared (max |diff| /
output scale). Writes the ``## Inference: torch vs onnxruntime`` section of docs/BENCHMARKS.md
unless ``--no-doc``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.benchdoc import machine, update_section  # noqa: E402

DEFAULT_CACHE = ROOT / "data" / "bench" / "predict_2000.root"
MODELS = ("cnn", "unet_attn", "edgeconv", "pfn", "residual_cnn", "residual_gnn")
#: --small: tiny configurations (a check that the script runs, not a measurement)
SMALL = {"cnn": ["model.encoder=[4,8]", "model.decoder=[4]"], "unet_attn": ["model.channels=[4,8]"],
         "edgeconv": ["model.widths=[8,8]", "model.head=[8]"], "pfn": ["model.encoder=[8,8]", "model.decoder=[8]"]}
SECTION = "Inference: torch vs onnxruntime"


def data_file(args: argparse.Namespace) -> Path:
    """The events file: --data, or a cached simulation of max(--events, 2000) events."""
    if args.data:
        return Path(args.data)
    if not DEFAULT_CACHE.exists():
        import pfgraph

        DEFAULT_CACHE.parent.mkdir(parents=True, exist_ok=True)
        pfgraph.simulate("gauss_b050", DEFAULT_CACHE, events=max(args.events, 2000), seed=7)
    return DEFAULT_CACHE


def bench_model(name: str, data: Path, work: Path, args: argparse.Namespace) -> dict:
    """Times of torch and onnxruntime over the same batches of ``args.events`` events."""
    import onnxruntime as ort

    from pfgraph.cli import main
    from pfgraph.io.root import EventFiles
    from pfgraph.repr.base import Normalisation
    from pfgraph.training.export import OnnxModel, export_bytes
    from pfgraph.training.predict import load_run
    from pfgraph.training.trainer import iter_batches

    run_dir = work / name
    overrides = SMALL.get(name, []) if args.small else []
    rc = main(["train", "--model", name, "--data", str(data), "--out", str(run_dir), "--epochs", "0",
               "--max-events", str(min(args.events, 500)), "train.threads=1", *overrides])
    if rc != 0:
        raise SystemExit(f"bench_predict: training {name} failed")
    run = load_run(run_dir, "cpu")
    onnx_bytes, _ = export_bytes(run)
    engine = OnnxModel(onnx_bytes, threads=args.threads)
    files = EventFiles(data)
    idx = np.arange(min(args.events, files.num_events))
    rep = run.repr
    unit = Normalisation([1.0] * 4, 1.0, run.target)
    torch_batches = list(iter_batches(rep, rep.make_dataset(files, idx, run.norm, with_target=False), args.batch_size))
    gev_batches = list(iter_batches(rep, rep.make_dataset(files, idx, unit, with_target=False), args.batch_size))
    torch.set_num_threads(args.threads)
    scale = float(run.norm.target_scale)
    with torch.no_grad():
        rep.forward(run.model, torch_batches[0])  # warm-up
        t0 = time.perf_counter()
        want = [rep.forward(run.model, b) * scale for b in torch_batches]
        t_torch = time.perf_counter() - t0
    engine(gev_batches[0])  # warm-up
    t0 = time.perf_counter()
    got = [engine(b) for b in gev_batches]
    t_ort = time.perf_counter() - t0
    out_scale = max(float(max(w.abs().max() for w in want)), 1e-3 * scale)
    diff = max(float((g.reshape(w.shape) - w).abs().max()) for g, w in zip(got, want)) / out_scale
    params = sum(p.numel() for p in run.model.parameters())
    print(f"{name}: torch {len(idx) / t_torch:.1f} events/s, onnxruntime {len(idx) / t_ort:.1f} events/s "
          f"({t_torch / t_ort:.2f}x), max |diff| {diff:.1e} x output scale", flush=True)
    return {"model": name, "repr": rep.name, "params": params, "events": len(idx), "t_torch": t_torch,
            "t_ort": t_ort, "diff": diff, "ort": ort.__version__}


def main() -> int:
    """Command line: see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="events file (default: simulate/cache data/bench/predict_2000.root)")
    p.add_argument("--events", type=int, default=2000, help="events to predict (2000)")
    p.add_argument("--batch-size", type=int, default=64, help="events per batch (64)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads, torch and onnxruntime alike (1)")
    p.add_argument("--models", nargs="+", default=None, help=f"models (default: those of {', '.join(MODELS)} registered)")
    p.add_argument("--small", action="store_true", help="tiny model configs: checks the script, measures nothing")
    p.add_argument("--no-doc", action="store_true", help="do not write docs/BENCHMARKS.md")
    args = p.parse_args()

    from pfgraph.models.registry import available

    models = args.models or [m for m in MODELS if m in available()]
    data = data_file(args)
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        rows = [bench_model(m, data, Path(tmp), args) for m in models]
    if args.no_doc:
        return 0
    cmd = "python scripts/bench_predict.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    table = ("| model | repr | parameters | torch events/s | onnxruntime events/s | onnxruntime / torch | "
             "max abs diff / output scale |\n|---|---|---|---|---|---|---|\n")
    for r in rows:
        table += (f"| {r['model']} | {r['repr']} | {r['params']:,} | {r['events'] / r['t_torch']:.1f} | "
                  f"{r['events'] / r['t_ort']:.1f} | {r['t_torch'] / r['t_ort']:.2f}x | {r['diff']:.1e} |\n")
    small = " **Tiny model configs (`--small`): a check that the script runs, not a measurement.**" if args.small else ""
    body = f"""Command: `{cmd.strip()}` (`scripts/bench_predict.py`), on {machine()}, onnxruntime {rows[0]['ort'] if rows else '?'}.{small}

{rows[0]['events'] if rows else 0} events of {data.name}, batches of {args.batch_size}, {args.threads} intra-op thread(s) for
torch and for onnxruntime (CPU execution provider). The preset architectures, untrained (`--epochs 0`): inference
time does not depend on the weights. Timed: the model alone over batches loaded beforehand (torch: the checkpoint's
normalisation applied by the loader; onnxruntime: the exported file, GeV in and out, normalisation inside), after one
warm-up batch each, in the same process. `pfgraph predict` adds reading the events and writing the output.

{table}"""
    update_section(SECTION, body)
    print(f"wrote the '## {SECTION}' section of docs/BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
