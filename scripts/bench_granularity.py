"""Cost against granularity: image and point-cloud models from 56 x 56 to 448 x 448 (issue 28).

    python scripts/bench_granularity.py                                  # 500 events per grid, paper-mode deposits
    python scripts/bench_granularity.py --spread                         # the gauss_b050_gG presets (showers spread)
    python scripts/bench_granularity.py --grids 56 112 --events 16 --small --no-doc   # a check that it runs
    python scripts/bench_granularity.py --spread --layouts --files-only --events 200 --no-doc   # file layouts only

Per grid G (``detector.grid``, the paper's detector ``gauss_b050``; with ``--spread`` the presets
``gauss_b050_g112`` etc. with physical shower widths) ``--events`` events are simulated once
(``--workdir``): file bytes per event and points per event (mean ``npix``, the point cloud's size).
Then per model (image: cnn, unet_attn, residual_cnn; point cloud: edgeconv, pfn, residual_gnn; the
residual ones when registered), each in its own process:

* training: ``pfgraph train --epochs 1`` on the file (``--batch-size``): the trainer's events/s and
  the process's peak resident memory (``ru_maxrss`` of the child, the whole process: interpreter,
  data in memory, model, activations), also divided by the batch size ("peak RSS per batch event");
* inference: ``pfgraph evaluate`` of that run on the same file: the evaluation's inference events/s
  (model forward and to_grid, batches of the evaluation's default size).

With ``--layouts`` every grid's events are also written in both file layouts (``output.dense_images``
``always`` and ``never``: dense image branches, or sparse-first) and each is measured: bytes per event
and load events/s of the image representation (``read_images`` of every event into the dense float32
tensors, rebuilt from the point cloud and the sparse truth for sparse-first files) and of the point
cloud (``load_points``), in this process, median of 3 passes over a file in the page cache.
``--files-only`` skips the models.

A command that runs over ``--time-limit`` seconds or whose resident memory passes ``--memory-limit``
GiB is stopped; the model is then marked "over the limit" at that grid and not run at finer grids
(the cost only grows). Writes the ``## Granularity`` section of docs/BENCHMARKS.md and the log-log
figure docs/figures/granularity.png unless ``--no-doc`` (then both go to the work folder only).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.benchdoc import machine, update_section  # noqa: E402

IMAGE_MODELS = ("cnn", "unet_attn", "residual_cnn")
POINT_MODELS = ("edgeconv", "pfn", "residual_gnn")
#: --small: tiny configurations (a check that the script runs, not a measurement)
SMALL = {"cnn": ["model.encoder=[4,8]", "model.decoder=[4]"], "unet_attn": ["model.channels=[4,8]"],
         "edgeconv": ["model.widths=[8,8]", "model.head=[8]"], "pfn": ["model.encoder=[8,8]", "model.decoder=[8]"]}
SECTION = "Granularity"
FIGURE = ROOT / "docs" / "figures" / "granularity.png"


def _rss_mib(pid: int) -> float:
    """Current resident memory of ``pid`` in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_limited(cmd: list[str], cwd: Path, time_limit: float, memory_gib: float) -> dict[str, Any]:
    """Run ``cmd``; returns ``status`` (ok | failed | time | memory), ``wall_s``, ``peak_rss_mib``, ``stderr``."""
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    status, usage, rc = "ok", None, None
    while True:
        pid, code, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            rc = os.waitstatus_to_exitcode(code)
            proc.returncode = rc
            break
        over_time = time.perf_counter() - t0 > time_limit
        over_mem = _rss_mib(proc.pid) > memory_gib * 1024
        if over_time or over_mem:
            status = "time" if over_time else "memory"
            proc.kill()
            _, code, usage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            break
        time.sleep(0.2)
    if status == "ok" and rc != 0:
        status = "failed"
    err.seek(0)
    return {"status": status, "wall_s": time.perf_counter() - t0, "peak_rss_mib": usage.ru_maxrss / 1024 if usage else None,
            "stderr": err.read().decode(errors="replace")[-400:]}


def simulate(grid: int, events: int, spread: bool, workdir: Path, layout: str = "auto") -> dict[str, Any]:
    """Simulate the grid's file (kept in ``workdir``; ``layout``: ``output.dense_images``); its bytes and
    points per event."""
    import numpy as np
    import uproot

    path = workdir / f"{'spread' if spread else 'paper'}_g{grid}_{events}{'' if layout == 'auto' else '_' + layout}.root"
    if not path.exists():
        preset = "gauss_b050" if grid == 56 or not spread else f"gauss_b050_g{grid}"
        chunk = max(8, 500 * 56 * 56 // (grid * grid))  # the simulation's batch memory stays that of 500 events at 56
        subprocess.run([sys.executable, "-m", "pfgraph.cli", "simulate", "--config", preset, "--events", str(events),
                        "--seed", "1", "--out", str(path), f"detector.grid={grid}", f"output.dense_images={layout}",
                        f"output.chunk={chunk}"],
                       check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])))
    npix = uproot.open(path)["events"]["npix"].array(library="np")
    return {"path": path, "bytes_per_event": path.stat().st_size / events, "points_per_event": float(np.mean(npix)),
            "occupancy": float(np.mean(npix)) / grid**2}


def load_rates(path: Path, repeats: int = 3) -> dict[str, float]:
    """Load events/s of ``path`` for the image representation (dense float32 tensors of the four inputs and
    the truth, :func:`pfgraph.io.datasets.read_images`) and the point cloud (:func:`pfgraph.repr.graph.load_points`):
    medians of ``repeats`` passes (the first pass also warms the page cache)."""
    import numpy as np

    from pfgraph.io import schema
    from pfgraph.io.datasets import read_images
    from pfgraph.io.root import EventFiles
    from pfgraph.repr.base import Normalisation
    from pfgraph.repr.graph import load_points

    files = EventFiles(path)
    n, g = files.num_events, files.grid
    names = [*schema.INPUT_CHANNELS, "truth"]
    step = max(1, min(n, int(2**30 // (len(names) * g.npix * 4))))  # at most 1 GiB of tensors at a time
    buf = np.empty((step, len(names), g.size, g.size), dtype=np.float32)
    out: dict[str, list[float]] = {"image_load_events_per_s": [], "point_load_events_per_s": []}
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        for lo in range(0, n, step):
            idx = np.arange(lo, min(lo + step, n))
            read_images(files, names, idx, [1.0] * len(names), buf[:len(idx)])
        out["image_load_events_per_s"].append(n / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        load_points(files, None, Normalisation([1.0] * 4, 1.0))
        out["point_load_events_per_s"].append(n / (time.perf_counter() - t0))
    return {k: float(np.median(v[1:])) for k, v in out.items()}


def layouts(grids: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Bytes per event and load events/s of both file layouts at every grid (``--layouts``)."""
    rows = []
    for grid in grids:
        for layout, mode in (("dense", "always"), ("sparse-first", "never")):
            data = simulate(grid, args.events, args.spread, args.workdir, mode)
            row = {"grid": grid, "layout": layout, "bytes_per_event": data["bytes_per_event"],
                   "points_per_event": data["points_per_event"], **load_rates(data["path"])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def layout_table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of the file layouts (``--layouts``)."""
    lines = ["| grid | layout | points / event | file bytes / event | image load events/s | point-cloud load events/s |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['grid']} x {r['grid']} | {r['layout']} | {r['points_per_event']:,.0f} | "
                     f"{r['bytes_per_event']:,.0f} | {r['image_load_events_per_s']:,.0f} | "
                     f"{r['point_load_events_per_s']:,.0f} |")
    return "\n".join(lines)


def registered() -> set[str]:
    """The registered model names (the residual models may not be there yet)."""
    from pfgraph.models.registry import available

    return set(available())


def measure(model: str, grid: int, data: dict[str, Any], args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Train one epoch and evaluate ``model`` on the grid's file (see the module docstring)."""
    from pfgraph.models.registry import get

    repr_name = get(model).repr
    run, ev = workdir / f"run_{model}_g{grid}", workdir / f"ev_{model}_g{grid}"
    for d in (run, ev):
        shutil.rmtree(d, ignore_errors=True)
    extra = SMALL.get(model, []) if args.small else []
    train = run_limited([sys.executable, "-m", "pfgraph.cli", "train", "--repr", repr_name, "--model", model,
                         "--data", str(data["path"]), "--out", str(run), "--epochs", "1", "--batch-size",
                         str(args.batch_size), "--device", args.device, "--seed", "1", *extra],
                        workdir, args.time_limit, args.memory_limit)
    out: dict[str, Any] = {"model": model, "repr": repr_name, "grid": grid, "train": train["status"],
                           "peak_rss_mib": train["peak_rss_mib"], "train_wall_s": train["wall_s"]}
    if train["status"] != "ok":
        out["error"] = train["stderr"].strip().splitlines()[-1:] if train["stderr"].strip() else []
        return out
    summary = json.loads((run / "train_summary.json").read_text())
    out["train_events_per_s"] = summary.get("events_per_s")
    out["rss_per_batch_event_mib"] = (train["peak_rss_mib"] or 0) / args.batch_size
    evaluate = run_limited([sys.executable, "-m", "pfgraph.cli", "evaluate", str(run), "--data", str(data["path"]),
                            "--out", str(ev), "--bootstrap", "0", "--device", args.device],
                           workdir, args.time_limit, args.memory_limit)
    out["evaluate"] = evaluate["status"]
    if evaluate["status"] == "ok":
        timing = json.loads((ev / "metrics.json").read_text())["timing"]
        out["inference_events_per_s"] = timing.get("inference_events_per_s")
    return out


def figure(rows: list[dict[str, Any]], files: dict[int, dict[str, Any]], path: Path) -> None:
    """Log-log cost against the grid size: training and inference events/s, peak RSS, points and bytes per event."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2), constrained_layout=True)
    models = sorted({r["model"] for r in rows}, key=lambda m: (m not in IMAGE_MODELS, m))
    for model in models:
        mine = [r for r in rows if r["model"] == model and r.get("train_events_per_s")]
        style = "-o" if model in IMAGE_MODELS else "--s"
        g = [r["grid"] for r in mine]
        axes[0].plot(g, [r["train_events_per_s"] for r in mine], style, label=model)
        inf = [r for r in mine if r.get("inference_events_per_s")]
        axes[1].plot([r["grid"] for r in inf], [r["inference_events_per_s"] for r in inf], style, label=model)
        axes[2].plot(g, [r["peak_rss_mib"] for r in mine], style, label=model)
    grids = sorted(files)
    axes[3].plot(grids, [files[g]["points_per_event"] for g in grids], "-o", label="points per event")
    axes[3].plot(grids, [files[g]["bytes_per_event"] for g in grids], "-s", label="file bytes per event")
    axes[3].plot(grids, [g * g for g in grids], ":", color="grey", label="pixels (G^2)")
    titles = ("training events/s", "inference events/s", "peak RSS of training (MiB)", "data per event")
    for ax, title in zip(axes, titles):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(grids, [str(g) for g in grids])
        ax.set_xlabel("grid size G (G x G cells)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # --files-only: no model curves
            ax.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(rows: list[dict[str, Any]], files: dict[int, dict[str, Any]]) -> str:
    """The Markdown tables of the section."""
    lines = ["| grid | points / event | occupancy | file bytes / event |", "|---|---|---|---|"]
    for g in sorted(files):
        f = files[g]
        lines.append(f"| {g} x {g} | {f['points_per_event']:.0f} | {f['occupancy']:.1%} | {f['bytes_per_event']:,.0f} |")
    lines += ["", "| model | repr | grid | train events/s | inference events/s | peak RSS (MiB) | "
              "peak RSS / batch event (MiB) | status |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        status = "ok" if r["train"] == "ok" and r.get("evaluate") == "ok" else (
            f"over the {r['train']} limit" if r["train"] in ("time", "memory") else
            f"evaluate: {r.get('evaluate')}" if r["train"] == "ok" else f"train {r['train']}")

        def num(key: str, fmt: str = ".1f", r: dict[str, Any] = r) -> str:
            v = r.get(key)
            return format(v, fmt) if isinstance(v, (int, float)) else "-"

        lines.append(f"| {r['model']} | {r['repr']} | {r['grid']} | {num('train_events_per_s')} | "
                     f"{num('inference_events_per_s')} | {num('peak_rss_mib', '.0f')} | "
                     f"{num('rss_per_batch_event_mib', '.1f')} | {status} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", type=int, nargs="+", default=[56, 112, 224, 448])
    ap.add_argument("--models", nargs="+", default=[*IMAGE_MODELS, *POINT_MODELS])
    ap.add_argument("--events", type=int, default=500, help="events simulated per grid (trained on: 80 %% of them)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--spread", action="store_true", help="the gauss_b050_gG presets: showers spread in physical units")
    ap.add_argument("--time-limit", type=float, default=600.0, help="seconds per command before a model is stopped")
    ap.add_argument("--memory-limit", type=float, default=24.0, help="GiB of resident memory before a model is stopped")
    ap.add_argument("--small", action="store_true", help="tiny model configurations (a check, not a measurement)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "data" / "bench" / "granularity")
    ap.add_argument("--no-doc", action="store_true", help="write the table and figure to --workdir only")
    ap.add_argument("--layouts", action="store_true",
                    help="also measure both file layouts (dense, sparse-first): bytes per event and load events/s")
    ap.add_argument("--files-only", action="store_true", help="no models: the files (and --layouts) only")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    layout_rows = layouts(sorted(args.grids), args) if args.layouts else []
    if args.files_only:
        models_wanted: list[str] = []
    else:
        models_wanted = list(args.models)
    known = registered()
    models = [m for m in models_wanted if m in known]
    skipped = [m for m in models_wanted if m not in known]
    files: dict[int, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    stopped: set[str] = set()
    for grid in sorted(args.grids):
        files[grid] = simulate(grid, args.events, args.spread, args.workdir)
        print(f"grid {grid}: {files[grid]['points_per_event']:.0f} points/event, "
              f"{files[grid]['bytes_per_event']:,.0f} bytes/event", flush=True)
        for model in models:
            if model in stopped:
                rows.append({"model": model, "repr": "-", "grid": grid, "train": "skipped (over a limit at a coarser grid)"})
                continue
            r = measure(model, grid, files[grid], args, args.workdir)
            rows.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "error"}), flush=True)
            if r["train"] in ("time", "memory") or r.get("evaluate") in ("time", "memory"):
                stopped.add(model)
    command = "python scripts/bench_granularity.py " + shlex.join(sys.argv[1:])
    fig_path = args.workdir / "granularity.png" if args.no_doc else FIGURE
    figure(rows, files, fig_path)
    body = "\n".join([
        f"Command: `{command}`. Machine: {machine()}.",
        f"{'Showers spread in physical units (gauss_b050_gG presets)' if args.spread else 'Paper-mode deposits (gauss_b050 at detector.grid=G)'}; "
        f"{args.events} events per grid, batch {args.batch_size}, limits {args.time_limit:.0f} s and "
        f"{args.memory_limit:g} GiB per command{'; tiny model configurations (--small): a check, not a measurement' if args.small else ''}."
        + (f" Not registered, so not run: {', '.join(skipped)}." if skipped else ""),
        "Peak RSS: `ru_maxrss` of the training process (interpreter, data, model, activations).",
        "", table(rows, files), "", f"![cost against granularity]({os.path.relpath(fig_path, ROOT / 'docs')})",
        *(["", "File layouts (`--layouts`): the same events written with `output.dense_images=always` (dense image "
            "branches) and `never` (sparse-first: the point cloud and the sparse truth); load events/s of the image "
            "representation (dense tensors of the four inputs and the truth, rebuilt from the sparse branches for "
            "sparse-first files) and of the point cloud, medians of 3 passes in the page cache.", "",
            layout_table(layout_rows)] if layout_rows else []),
    ])
    (args.workdir / "granularity.md").write_text(body + "\n")
    if not args.no_doc:
        update_section(SECTION, body)
    print(body)


if __name__ == "__main__":
    main()
