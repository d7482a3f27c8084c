"""Point clouds: size, memory, the static grid graph vs torch-cluster, and training rates of the graph models.

    python scripts/bench_graph.py [--events 2000] [--batch-size 32] [--train-events 96] [--rounds 3]
                                  [--ab-seconds 90] [--epoch-events 0] [--loading-only]

Simulates ``--events`` B=0.5 paper-mode events (or reads ``--data``) and measures, on this
machine: points per event; bytes per event of a training batch (graph vs dense images) and of
the stored static graph; loading rates (the static graph is built while loading); the static
(eta, phi) graph of a batch built on the grid (:func:`pfgraph.repr.knn.grid_knn`) vs
torch-cluster's KD-tree, and feature-space kNN per backend; training events/s of ``edgeconv``
before (``impl: pyg``, the former default) and after, at the former width and as the new
default, of ``pfn`` and of the image model ``cnn`` in the same run (``--rounds`` interleaved
rounds, median rate, ratios per round); activation memory per batch (bytes of the tensors
autograd keeps for the backward pass); an A/B of static vs dynamic graphs per block at equal
training time (``--ab-seconds`` per variant, slices taken in turn, validation MSE after); with
``--epoch-events N`` also a full ``pfgraph train`` epoch. Writes section "Graph
representation" of docs/BENCHMARKS.md unless ``--no-doc``. ``--loading-only`` measures only the
loading rates: the static graph read off the pixel order vs the former ``grid_knn`` build vs no
graph, interleaved in one run (printed, never written to the doc).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PFGRAPH_NO_PROGRESS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from pfgraph import geometry, presets  # noqa: E402
from pfgraph.config import load_config, resolve_config_path  # noqa: E402
from pfgraph.io import schema  # noqa: E402
from pfgraph.io.root import EventFiles  # noqa: E402
from pfgraph.models.edgeconv import build_edgeconv  # noqa: E402
from pfgraph.models.pfn import build_pfn  # noqa: E402
from pfgraph.models.registry import get  # noqa: E402
from pfgraph.repr.base import fit_normalisation  # noqa: E402
from pfgraph.repr.graph import (  # noqa: E402
    STATIC_K,
    GraphRepresentation,
    load_points,
    point_features,
    point_positions,
    stream_batches,
)
from pfgraph.repr.grid import reach_summary  # noqa: E402
from pfgraph.repr.knn import WITH_TORCH_CLUSTER, grid_knn, knn_graph  # noqa: E402
from pfgraph.repr.registry import get_representation  # noqa: E402
from pfgraph.sim.detector import SimConfig  # noqa: E402
from pfgraph.sim.generate import generate  # noqa: E402
from pfgraph.training.config import load_model_section  # noqa: E402
from scripts.benchdoc import machine, update_section  # noqa: E402

PRESET = yaml.safe_load(presets.find("model", "edgeconv").read_text())
PFN_PRESET = yaml.safe_load(presets.find("model", "pfn").read_text())
#: The former default edgeconv (torch-geometric EdgeConv, KD-tree position graph, dynamic blocks 2-3).
BEFORE = dict(PRESET, impl="pyg", widths=[32, 32, 32], head=[64, 32], dynamic_from=1)
#: The new blocks at the former width, graphs and head.
SAME_WIDTH = dict(BEFORE, impl="gather_max")


def best_of(fn: Callable[[], Any], repeat: int, sync: bool = False) -> float:
    """Smallest wall time of ``repeat`` calls (seconds)."""
    times = []
    for _ in range(repeat):
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def batch_nbytes(batch: Any, skip: tuple[str, ...] = ()) -> int:
    """Bytes of every tensor a graph batch carries (but the fields ``skip``)."""
    return sum(v.numel() * v.element_size() for k, v in batch if isinstance(v, torch.Tensor) and k not in skip)


class Trainer:
    """One model, its optimiser and its batches: timed training steps (forward + backward + Adam)."""

    def __init__(self, label: str, model: torch.nn.Module, rep: Any, batches: list[Any], device: torch.device) -> None:
        self.label, self.rep, self.device = label, rep, device
        self.model = model.to(device).train()
        self.params = sum(p.numel() for p in model.parameters())
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.batches = [b.to(device) for b in batches]
        self.pos = 0
        self.step()  # warm-up
        self.rates: list[float] = []

    def step(self) -> None:
        """One optimisation step on the next batch."""
        b = self.batches[self.pos % len(self.batches)]
        self.pos += 1
        loss = ((self.rep.forward(self.model, b) - self.rep.target(b)) ** 2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def timed(self, n_steps: int) -> float:
        """Events/s over ``n_steps`` steps (recorded)."""
        sync = self.device.type == "cuda"
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        events = 0
        for _ in range(n_steps):
            events += self.batches[self.pos % len(self.batches)].num_events
            self.step()
        if sync:
            torch.cuda.synchronize()
        rate = events / (time.perf_counter() - t0)
        self.rates.append(rate)
        return rate

    def activation_bytes(self) -> int:
        """Bytes of the distinct tensors autograd keeps for the backward pass of one batch."""
        seen: dict[tuple[int, int], int] = {}
        params = {p.data_ptr() for p in self.model.parameters()}

        def pack(t: torch.Tensor) -> torch.Tensor:
            if t.data_ptr() not in params:
                seen[(t.data_ptr(), t.numel())] = t.numel() * t.element_size()
            return t

        b = self.batches[0]
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = self.rep.forward(self.model, b)
        del out
        return sum(seen.values()) // max(1, b.num_events)


def ab_train(variants: dict[str, dict[str, Any]], train_batches: list[Any], val_batches: list[Any], seconds: float,
             slice_s: float = 10.0) -> list[tuple[str, int, int, float, float]]:
    """Each variant trained for ``seconds`` of its own step time (slices of ``slice_s`` taken in turn, so the
    machine's drift is shared), then its validation MSE: (label, params, events seen, seconds, val MSE)."""
    rep = GraphRepresentation()
    runs = []
    for label, cfg in variants.items():
        torch.manual_seed(0)
        t = Trainer(label, build_edgeconv(cfg), rep, train_batches, torch.device("cpu"))
        runs.append([t, 0.0, 0])
    while any(r[1] < seconds for r in runs):
        for r in runs:
            t0 = time.perf_counter()
            while r[1] + (time.perf_counter() - t0) < seconds and time.perf_counter() - t0 < slice_s:
                r[2] += r[0].batches[r[0].pos % len(r[0].batches)].num_events
                r[0].step()
            r[1] += time.perf_counter() - t0
    out = []
    for t, spent, seen in runs:
        t.model.eval()
        with torch.no_grad():
            sq = sum(float(((rep.forward(t.model, b) - rep.target(b)) ** 2).sum()) for b in val_batches)
            n = sum(int(b.y.numel()) for b in val_batches)
        out.append((t.label, t.params, seen, spent, sq / n))
    return out


def full_epoch(data: Path, n_train: int, batch_size: int, workdir: Path) -> dict[str, Any]:
    """``pfgraph train --repr graph --model edgeconv --epochs 1`` over ``n_train`` training events."""
    from pfgraph import train

    max_events = int(round(n_train / 0.8))
    out = workdir / "run_edgeconv"
    t0 = time.perf_counter()
    train("edgeconv", out, data, repr="graph", epochs=1, max_events=max_events, batch_size=batch_size, device="cpu")
    wall = time.perf_counter() - t0
    summary = json.loads((out / "train_summary.json").read_text())
    summary["wall_s"] = wall
    # as a user would type it: the script's temporary data file and run folder (gone when it ends) by name
    summary["command"] = (f"pfgraph train --repr graph --model edgeconv --data {data.name} --out runs/edgeconv "
                          f"--epochs 1 --max-events {max_events} --batch-size {batch_size} --device cpu")
    summary["data_name"] = data.name
    return summary


def loading_only(files: EventFiles, n: int, norm: Any, bs: int, repeat: int, argv_text: str) -> None:
    """Loading rates with the static graph read off the pixel order (now) and built by ``grid_knn`` (before),
    and without any static graph (the ceiling), interleaved in one run; prints a markdown table."""
    import pfgraph.repr.graph as graph_mod
    from pfgraph.repr.grid import split_pixel

    fast = graph_mod.grid_knn_ordered_numpy

    def former(pix: np.ndarray, offsets: np.ndarray, k: int, *args: Any, loop: bool = True,
               phi_wrap: bool = True) -> np.ndarray:
        """The build of the previous commit: grid_knn on the points' positions, then event-local."""
        p = torch.from_numpy(pix)
        counts = np.diff(offsets)
        event = torch.from_numpy(np.repeat(np.arange(len(counts), dtype=np.int64), counts))
        table = grid_knn(point_positions(p, 56), k, event, loop=loop, phi_wrap=phi_wrap, pixels=split_pixel(p, 56)).numpy()
        start = np.repeat(offsets[:-1], counts)[:, None]
        np.subtract(table, start, out=table, where=table >= 0)
        return table.astype(np.int16)

    def no_graph(pix: np.ndarray, offsets: np.ndarray, k: int, *args: Any, **kwargs: Any) -> np.ndarray:
        return np.full((len(pix), k), -1, dtype=np.int16)

    graph_mod.pixel_order()  # the one-off table, outside the timing
    variants = {"now: read off the pixel order": fast, "before: grid_knn": former,
                "no static graph (ceiling)": no_graph}
    times: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    stores = {}
    try:
        for _ in range(repeat):
            for label, impl in variants.items():
                graph_mod.grid_knn_ordered_numpy = impl
                t0 = time.perf_counter()
                stores[label] = load_points(files, np.arange(n), norm)
                t1 = time.perf_counter()
                sum(b.num_events for b in stream_batches(files, norm, bs, np.arange(n)))
                times[label].append((t1 - t0, time.perf_counter() - t1))
    finally:
        graph_mod.grid_knn_ordered_numpy = fast
    same = np.array_equal(stores["now: read off the pixel order"].nbr, stores["before: grid_knn"].nbr)
    base = "before: grid_knn"
    best = {v: (min(t[0] for t in ts), min(t[1] for t in ts)) for v, ts in times.items()}
    print(f"Command: `python scripts/bench_graph.py {argv_text}`  ")
    print(f"{n} events, batches of {bs}, best of {repeat} interleaved rounds; torch threads {torch.get_num_threads()}; "
          f"load average {os.getloadavg()[0]:.1f}; stored graphs identical now vs before: {same}")
    print()
    print("| static graph build | `load_points` events/s | x before | `stream_batches` events/s | x before |")
    print("|---|---:|---:|---:|---:|")
    for v, (ts, tb) in best.items():
        print(f"| {v} | {n / ts:,.0f} | {best[base][0] / ts:.2f} | {n / tb:,.0f} | {best[base][1] / tb:.2f} |")


def main() -> None:
    """Run the benchmark and record it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="event file to use instead of simulating")
    ap.add_argument("--events", type=int, default=2000, help="events to simulate (without --data)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--train-events", type=int, default=96, help="events timed per model and round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the training rates")
    ap.add_argument("--ab-seconds", type=float, default=90.0, help="training seconds per A/B variant (0: skip)")
    ap.add_argument("--epoch-events", type=int, default=0, help="also run a full 1-epoch pfgraph train over N events")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-doc", action="store_true", help="print only, do not update docs/BENCHMARKS.md")
    ap.add_argument("--loading-only", action="store_true",
                    help="measure only the loading rates, the static graph read off the pixel order vs the former "
                         "grid_knn build in the same run (interleaved, best of --repeat); prints, never writes the doc")
    args = ap.parse_args()
    argv_text = " ".join(sys.argv[1:])
    torch.manual_seed(0)
    rep = GraphRepresentation()  # also keeps freed CPU memory in the process (see reuse_cpu_memory)
    tmp = Path(tempfile.mkdtemp(prefix="pfgraph-bench-graph-"))
    cpu = torch.device("cpu")
    try:
        n_needed = max(args.events, int(round(args.epoch_events / 0.8)))
        if args.data:
            path = Path(args.data)
        else:
            cfg = load_config(SimConfig, resolve_config_path("gauss_b050", "sim"), [f"events={n_needed}"])
            path = tmp / "b050.root"
            generate(cfg, path, workers=min(2, os.cpu_count() or 1))
        files = EventFiles(path)
        n = min(files.num_events, args.events)
        n_fit = int(0.8 * n)
        norm = fit_normalisation(files, np.arange(n_fit))
        bs = args.batch_size
        if args.loading_only:
            loading_only(files, n, norm, bs, args.repeat, argv_text)
            return

        # -- loading: ROOT -> compact store (static graph included), and ROOT -> training batches (streamed)
        t_store = best_of(lambda: load_points(files, np.arange(n), norm), args.repeat)
        t_stream = best_of(lambda: sum(b.num_events for b in stream_batches(files, norm, bs, np.arange(n))),
                           args.repeat)
        store = load_points(files, np.arange(n), norm)
        t_collate = best_of(lambda: [store.batch(np.arange(s, min(s + bs, n))) for s in range(0, n, bs)],
                            args.repeat)

        # -- sizes and memory
        counts = np.diff(store.offsets)
        whole = store.batch(np.arange(n))
        reach = rep.out_of_reach(whole)
        reach = reach_summary(reach["truth_pixels"], reach["out_pixels"], reach["truth_energy"], reach["out_energy"])
        b0 = store.batch(np.arange(bs))
        graph_bytes = batch_nbytes(b0, skip=("nbr",)) / bs
        nbr_bytes = batch_nbytes(b0) / bs - graph_bytes
        dense_bytes = (len(schema.INPUT_CHANNELS) + 1) * geometry.IMSIZE * geometry.IMSIZE * 4
        work_bytes = (point_features(b0.x, b0.pix, 56).nbytes + point_positions(b0.pix, 56).nbytes) / bs
        store_bytes = store.nbytes / n
        store_nbr_bytes = store.nbr.nbytes / n

        # -- static graph per batch: grid vs torch-cluster's KD-tree; dynamic kNN per backend
        k = PRESET["k"]
        devices = [cpu] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
        knn_rows = []
        probe = build_edgeconv(SAME_WIDTH).eval()
        for dev in devices:
            b = b0.to(dev)
            sync = dev.type == "cuda"
            pos = point_positions(b.pix, 56)
            t_grid = best_of(lambda pos=pos, ev=b.batch: grid_knn(pos, STATIC_K, ev), args.repeat, sync)
            t_grid_flat = best_of(lambda pos=pos, ev=b.batch: grid_knn(pos, STATIC_K, ev, phi_wrap=False),
                                  args.repeat, sync)
            t_tc = (best_of(lambda pos=pos, ev=b.batch: knn_graph(pos, STATIC_K, ev, loop=True,
                                                                  backend="torch_cluster"), args.repeat, sync)
                    if WITH_TORCH_CLUSTER else float("nan"))
            knn_rows.append((f"(eta, phi) static graph, k={STATIC_K}", dev.type, t_grid, t_grid_flat, t_tc))
            m = probe.to(dev)
            with torch.no_grad():
                feats = m.convs[0](point_features(b.x, b.pix, 56), m.position_table(pos, b.batch, b.nbr))
            row = [f"features after block 1 ({feats.shape[1]}-D), k={k}", dev.type]
            for backend in ("torch_cluster", "torch"):
                if backend == "torch_cluster" and not WITH_TORCH_CLUSTER:
                    row.append(float("nan"))
                    continue
                row.append(best_of(lambda f=feats, ev=b.batch, be=backend: knn_graph(f, k, ev, loop=True, backend=be),
                                   args.repeat, sync))
            knn_rows.append((row[0], row[1], float("nan"), row[2], row[3]))

        # -- training rates, interleaved rounds; cnn (image) in the same run
        n_steps = max(1, args.train_events // bs)
        graph_batches = [store.batch(np.arange(s, s + bs)) for s in range(0, min(n, (n_steps + 1) * bs) - bs + 1, bs)]
        image = get_representation("image")
        ids = np.arange(min(n, (n_steps + 1) * bs))
        ds = image.make_dataset(files, ids, norm)
        image_batches = [image.collate(ds.__getitems__(list(range(s, s + bs)))) for s in range(0, len(ds) - bs + 1, bs)]
        section = load_model_section("cnn", "image")
        variants = [
            ("edgeconv before: impl pyg, widths [32, 32, 32], dynamic from block 2 (the former default)", "g", BEFORE),
            ("edgeconv gather_max, the former width, graphs and head", "g", SAME_WIDTH),
            ("edgeconv gather_max, the former width and head, static graph in every block", "g",
             dict(SAME_WIDTH, dynamic_from=None)),
            ("edgeconv split (DGCNN exactly, BatchNorm on edges), the former width and head, static graphs", "g",
             dict(SAME_WIDTH, impl="split", dynamic_from=None)),
            ("edgeconv new default (`pfgraph/presets/model/edgeconv.yaml`)", "g", PRESET),
            ("pfn default (`pfgraph/presets/model/pfn.yaml`)", "p", PFN_PRESET),
            ("cnn default (image; `pfgraph/presets/model/cnn.yaml`)", "i", None),
        ]
        train_rows = []
        for dev in devices:
            trainers = []
            for label, kind, cfg in variants:
                torch.manual_seed(0)
                if kind == "i":
                    model = get(section.arch, "image").builder(section.params)
                    trainers.append(Trainer(label, model, image, image_batches, dev))
                else:
                    model = build_edgeconv(cfg) if kind == "g" else build_pfn(cfg)
                    trainers.append(Trainer(label, model, rep, graph_batches, dev))
            ratios: dict[str, list[float]] = {t.label: [] for t in trainers}
            for _ in range(args.rounds):
                rates = {t.label: t.timed(n_steps) for t in trainers}
                for t in trainers:
                    ratios[t.label].append((rates[t.label] / rates[trainers[0].label],
                                            rates[t.label] / rates[trainers[-1].label]))
            for t in trainers:
                before = statistics.median(r[0] for r in ratios[t.label])
                vs_cnn = statistics.median(r[1] for r in ratios[t.label])
                mem = t.activation_bytes() if dev.type == "cpu" else 0
                train_rows.append((t.label, dev.type, t.params, statistics.median(t.rates), before, vs_cnn, mem))
            del trainers

        # -- A/B: static vs dynamic graphs per block at equal training time
        ab_rows = []
        if args.ab_seconds > 0:
            n_train = int(0.8 * n)
            tb = [store.batch(np.arange(s, s + bs)) for s in range(0, n_train - bs + 1, bs)]
            vb = [store.batch(np.arange(s, min(s + bs, n))) for s in range(n_train, n, bs)]
            depth = len(PRESET["widths"])
            ab = {"gather_max, static graph in every block": dict(PRESET, dynamic_from=None)}
            for first in range(depth - 1, 0, -1):
                ab[f"gather_max, dynamic graphs from block {first + 1}"] = dict(PRESET, dynamic_from=first)
            ab["split (BatchNorm on edges, DGCNN), static graphs"] = dict(PRESET, impl="split", dynamic_from=None)
            ab_rows = ab_train(ab, tb, vb, args.ab_seconds)
            n_val_events = n - n_train
        epoch = full_epoch(path, args.epoch_events, bs, tmp) if args.epoch_events > 0 else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    load_rate, stream_rate = n / t_store, n / t_stream
    params = sum(p.numel() for p in build_edgeconv(PRESET).parameters())

    def ms(t: float) -> str:
        return "n/a" if t != t else f"{t * 1e3:.1f}"

    body = [
        f"Command: `python scripts/bench_graph.py {argv_text}`".rstrip() + "  ",
        f"Machine: {machine()}; torch threads {torch.get_num_threads()}; shared with other jobs (load average "
        f"{os.getloadavg()[0]:.1f} at the end), so rates are compared within the run.  ",
        f"Data: {n} simulated B=0.5 paper-mode events (gauss_b050); batches of {bs} events; best of {args.repeat}; "
        f"default model = `pfgraph/presets/model/edgeconv.yaml` ({params:,} parameters, k={PRESET['k']}, widths "
        f"{PRESET['widths']}, impl {PRESET['impl']}).",
        "",
        "| what | value |",
        "|---|---:|",
        f"| points per event: mean / min / max | {counts.mean():.0f} / {counts.min()} / {counts.max()} |",
        f"| occupancy (points / 3136 pixels) | {counts.mean() / (geometry.IMSIZE ** 2):.1%} |",
        f"| out of reach: truth pixels without any input (share of truth pixels / of truth energy) | "
        f"{reach['pixel_fraction']:.2%} / {reach['energy_fraction']:.3%} |",
        f"| bytes/event, graph training batch without the static graph (x, y, pix, batch, ptr, out-of-reach target) "
        f"| {graph_bytes:,.0f} |",
        f"| bytes/event, static graph in a batch (`nbr`, {STATIC_K} int32 per point) | {nbr_bytes:,.0f} |",
        f"| bytes/event, dense batch (4 input + 1 target float32 images) | {dense_bytes:,} |",
        f"| bytes/event, model inputs built on the device (8 features + 2-D positions) | {work_bytes:,.0f} |",
        f"| bytes/event, in-memory dataset (`PointStore`), of which the static graph ({STATIC_K} int16 per point) | "
        f"{store_bytes:,.0f} / {store_nbr_bytes:,.0f} |",
        f"| ROOT -> in-memory dataset incl. the static graph (`load_points`) | {load_rate:,.0f} events/s |",
        f"| ROOT -> training batches, streamed (`stream_batches`) | {stream_rate:,.0f} events/s "
        f"({'target >= 5 000 met' if stream_rate >= 5000 else 'target >= 5 000 NOT met'}) |",
        f"| in-memory dataset -> batch (`collate`, per event) | {n / t_collate:,.0f} events/s |",
        "",
        f"Graphs per batch of {bs} events (ms). Static graph: `grid_knn` on the 56x56 occupancy map (phi periodic, "
        "as stored; and without wrap-around) vs torch-cluster's KD-tree on the same positions (no wrap-around; "
        "same neighbour sets, tests/repr/test_knn.py). The static graph is built once, while loading, and stored "
        "with the points. Dynamic graph: kNN on the first block's outputs (freshly initialised model).",
        "",
        "| graph | device | grid, phi periodic | grid without wrap / torch backend | torch-cluster |",
        "|---|---|---:|---:|---:|",
        *[f"| {r[0]} | {r[1]} | {ms(r[2])} | {ms(r[3])} | {ms(r[4])} |" for r in knn_rows],
        "",
        f"Training, steady state (forward + backward + Adam; {args.rounds} interleaved rounds of {n_steps} batches "
        "after a warm-up step; median events/s; ratios are medians of the per-round ratios). Activation memory = "
        "bytes per event of the distinct tensors autograd keeps for the backward pass (CPU).",
        "",
        "| model | device | parameters | events/s | x before | x cnn | activation memory / event |",
        "|---|---|---:|---:|---:|---:|---:|",
        *[f"| {r[0]} | {r[1]} | {r[2]:,} | {r[3]:.1f} | {r[4]:.2f} | {r[5]:.2f} | "
          f"{'n/a' if not r[6] else f'{r[6] / 2**20:.1f} MiB'} |" for r in train_rows],
    ]
    cpu_rows = [r for r in train_rows if r[1] == "cpu"]
    if cpu_rows:
        same = next(r for r in cpu_rows if r[0].startswith("edgeconv gather_max, the former width and head, static"))
        new = next(r for r in cpu_rows if r[0].startswith("edgeconv new default"))
        body += [
            "",
            f"Targets (CPU, this run): edgeconv at the former width {same[4]:.1f}x the former implementation "
            f"(target >= 5x: {'met' if same[4] >= 5 else 'NOT met'}); new default {new[2]:,} parameters at "
            f"{new[5]:.2f}x cnn's events/s (targets >= 50k and >= 0.3x: "
            f"{'met' if new[2] >= 50_000 and new[5] >= 0.3 else 'NOT met'}).",
        ]
    if ab_rows:
        body += [
            "",
            f"A/B of the graphs (default widths, k={PRESET['k']}): each variant trained for {args.ab_seconds:.0f} s of "
            f"its own step time on the first {int(0.8 * n)} events (seed 0, slices of 10 s taken in turn), then the "
            f"MSE (normalised units) on the other {n_val_events} events:",
            "",
            "| variant | parameters | events trained | seconds | validation MSE |",
            "|---|---:|---:|---:|---:|",
            *[f"| {r[0]} | {r[1]:,} | {r[2]:,} | {r[3]:.0f} | {r[4]:.3e} |" for r in ab_rows],
            "",
            f"Lowest validation MSE at equal time: {min(ab_rows, key=lambda r: r[4])[0]}.",
        ]
    if epoch is not None:
        body += [
            "",
            f"Full epoch (`{epoch['data_name']}`: the gauss_b050 events this script simulates into a temporary "
            f"folder): `{epoch['command']}` trained {epoch['n_train']} events in {epoch['train_time_s']:.0f} s "
            f"({epoch['events_per_s']:.1f} events/s; data loading {epoch['data_load_s']:.1f} s, "
            f"whole command {epoch['wall_s']:.0f} s incl. validation on {epoch['n_val']} events).",
        ]
    text = "\n".join(body)
    print(text)
    if not args.no_doc:
        update_section("Graph representation", text)


if __name__ == "__main__":
    main()
