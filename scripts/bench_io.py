"""ROOT I/O: file size and write/read events/s of pfgraph event files per compression codec,
level, chunk size and format (TTree/RNTuple), on simulated paper-mode events.

    python scripts/bench_io.py [--events 1000] [--repeat 3]

Writes its figures to docs/BENCHMARKS.md (section "ROOT I/O"); ratios are against the default
(TTree, lz4:1, 500-event chunks) measured in the same run. Each timing is the best of
``--repeat`` rounds over all cases (the machine is shared).
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

import numpy as np  # noqa: E402

from pfgraph.config import load_config, resolve_config_path  # noqa: E402
from pfgraph.io import schema  # noqa: E402
from pfgraph.io.root import DEFAULT_COMPRESSION, EventFiles, EventWriter, make_meta  # noqa: E402
from pfgraph.sim.detector import SimConfig  # noqa: E402
from pfgraph.sim.generate import simulate_batch  # noqa: E402
from scripts.benchdoc import machine, update_section  # noqa: E402

#: (format, compression, chunk): the default first (the baseline of every ratio).
CASES: list[tuple[str, str, int]] = [
    ("ttree", "lz4:1", 500),
    ("ttree", "none", 500),
    ("ttree", "zstd:1", 500),
    ("ttree", "zstd:3", 500),
    ("ttree", "zstd:5", 500),
    ("ttree", "zlib:1", 500),
    ("ttree", "zlib:4", 500),
    ("ttree", "lz4:1", 100),
    ("ttree", "lz4:1", 2000),
    ("rntuple", "lz4:1", 500),
    ("rntuple", "zstd:1", 500),
]


def main() -> None:
    """Run the benchmark and record it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-doc", action="store_true", help="print only, do not update docs/BENCHMARKS.md")
    args = ap.parse_args()

    cfg = load_config(SimConfig, resolve_config_path("gauss_b050", "sim"), [f"events={args.events}"])
    batch = simulate_batch(cfg, range(args.events))
    meta = make_meta("events", {"name": cfg.name}, seed=cfg.seed)
    raw = sum(batch[c].nbytes for c in schema.IMAGE_CHANNELS) / args.events
    fixed = [b.name for b in schema.EVENT_BRANCHES if not b.optional and b.kind != "jagged"]
    jagged = [b.name for b in schema.EVENT_BRANCHES if b.kind == "jagged"]
    tmp = Path(tempfile.mkdtemp(prefix="pfgraph-bench-io-"))
    rows = []
    sizes: dict[tuple[str, str, int], float] = {}
    try:
        with EventWriter(tmp / "warmup.root", meta) as w:  # imports, codec set-up, caches
            w.write({k: v[:50] for k, v in batch.items()})
        EventFiles(tmp / "warmup.root").read(fixed + jagged)
        best: dict[tuple[str, str, int], list[float]] = {case: [np.inf] * 3 for case in CASES}
        for _ in range(args.repeat):  # round robin: a busy spell of the shared machine hits every case alike
            for case in CASES:
                fmt, comp, chunk = case
                path = tmp / f"{fmt}_{comp.replace(':', '')}_{chunk}.root"
                t0 = time.perf_counter()
                with EventWriter(path, meta, compression=comp, format=fmt) as w:
                    for a in range(0, args.events, chunk):
                        w.write({k: v[a:a + chunk] for k, v in batch.items()})
                t1 = time.perf_counter()
                EventFiles(path).read(fixed)
                t2 = time.perf_counter()
                EventFiles(path).read(jagged)
                t3 = time.perf_counter()
                best[case] = [min(old, new) for old, new in zip(best[case], (t1 - t0, t2 - t1, t3 - t2))]
                got = EventFiles(path).read(["truth"], stop=5)
                assert np.array_equal(got["truth"], batch["truth"][:5])
                sizes[case] = path.stat().st_size / args.events
        for case in CASES:
            fmt, comp, chunk = case
            t_write, t_img, t_pts = best[case]
            rows.append((fmt, comp, chunk, sizes[case], args.events / t_write, args.events / t_img, args.events / t_pts))
            print(f"{fmt:8s} {comp:7s} chunk {chunk:5d}: {sizes[case] / 1024:6.1f} KiB/event  write {rows[-1][4]:7.0f} ev/s  "
                  f"read dense {rows[-1][5]:7.0f} ev/s  read points {rows[-1][6]:7.0f} ev/s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base = rows[0]
    lines = [
        f"Command: `python scripts/bench_io.py --events {args.events} --repeat {args.repeat}`  ",
        f"Machine: {machine()}; uproot writer, one process.  ",
        f"Data: {args.events} simulated B=0.5 paper-mode events (gauss_b050); six dense 56x56 float32 images "
        f"({raw / 1024:.1f} KiB/event raw) + point cloud + scalars. Write = `EventWriter` in chunks of the given "
        "size (point cloud extraction included); read dense = `EventFiles.read` of the images and scalars "
        "(numpy, NaN/Inf check included); read points = the 11 jagged branches (awkward). Best of "
        f"{args.repeat} round-robin rounds; ratios against the default (first row) in the same run.",
        "",
        "| format | compression | chunk | KiB/event | size vs default | write ev/s | vs default | read dense ev/s "
        "| vs default | read points ev/s | vs default |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for fmt, comp, chunk, size, w, ri, rp in rows:
        lines.append(f"| {fmt} | {comp} | {chunk} | {size / 1024:.1f} | {size / base[3]:.2f} | {w:.0f} | "
                     f"{w / base[4]:.2f} | {ri:.0f} | {ri / base[5]:.2f} | {rp:.0f} | {rp / base[6]:.2f} |")
    by = {(f, c, k): r for f, c, k, *r in rows}
    lz4, zstd, zlib = by[("ttree", "lz4:1", 500)], by[("ttree", "zstd:1", 500)], by[("ttree", "zlib:1", 500)]
    none = by[("ttree", "none", 500)]
    c100, c2000, rnt = by[("ttree", "lz4:1", 100)], by[("ttree", "lz4:1", 2000)], by[("rntuple", "lz4:1", 500)]
    # Rule: among TTree codecs at 500-event chunks that at least halve the file, the fastest writer
    # (writing limits `pfgraph simulate`; reading dense images is served by pfgraph's basket reader).
    candidates = {c: r for (f, c, k), r in by.items() if f == "ttree" and k == 500 and c != "none" and r[0] <= 0.5 * none[0]}
    best = max(candidates, key=lambda c: candidates[c][1])
    verdict = (f"so the measurements support the default `{DEFAULT_COMPRESSION}`" if best == DEFAULT_COMPRESSION else
               f"so in this run `{best}` beats the default `{DEFAULT_COMPRESSION}` "
               "(consider changing `output.compression`)")
    lines += [
        "",
        f"Default: TTree, `{DEFAULT_COMPRESSION}`, 500-event chunks (`output.compression`, `output.chunk`). "
        f"LZ4(1) stores {lz4[0] / 1024:.1f} KiB/event ({100 * lz4[0] / none[0]:.0f}% of uncompressed); "
        f"ZSTD(1) is {100 * (1 - zstd[0] / lz4[0]):.0f}% smaller than LZ4(1) at {zstd[1] / lz4[1]:.2f}x its write "
        f"rate and {zstd[2] / lz4[2]:.2f}x its dense read rate; ZLIB(1) is {100 * (1 - zlib[0] / lz4[0]):.0f}% "
        f"smaller at {zlib[1] / lz4[1]:.2f}x the write rate. Higher levels gain little size for much speed. "
        "Rule: writing limits `pfgraph simulate` (DESIGN target 2 000 events/s end to end), so the default is "
        "the fastest-writing codec among those that at least halve the file (TTree, 500-event chunks): "
        f"here `{best}`, {verdict}. Use `--compression zstd:1` for archival copies where size matters more "
        "than speed. uproot's LZ4 (cramjam block mode) writes identical bytes at every level, so only "
        f"level 1 is listed. Chunks of 100 / 2000 events instead of 500 change the write rate by "
        f"{c100[1] / lz4[1]:.2f}x / {c2000[1] / lz4[1]:.2f}x and the dense read rate by {c100[2] / lz4[2]:.2f}x / "
        f"{c2000[2] / lz4[2]:.2f}x at the same size; 500 keeps the writer's buffers at ~40 MiB. RNTuple "
        f"(uproot's writer) with LZ4(1) is {rnt[0] / lz4[0]:.2f}x the size, {rnt[1] / lz4[1]:.2f}x the write and "
        f"{rnt[2] / lz4[2]:.2f}x the dense read rate of the TTree: offered for ROOT 6.34+ users, not for speed.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_doc:
        update_section("ROOT I/O", body)


if __name__ == "__main__":
    main()
