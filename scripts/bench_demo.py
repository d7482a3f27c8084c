"""Wall time of ``pfgraph demo`` (the README's main job), step by step, as a user runs it.

    python scripts/bench_demo.py [--quick] [--out DIR] [--no-doc]

Runs ``python -m pfgraph.cli demo --out DIR`` in a fresh process into a fresh folder (a
temporary one unless ``--out``), times every step the demo prints (``$ pfgraph ...``) and the
whole command, notes the machine's load, and writes the section "Demo" of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.benchdoc import machine, update_section  # noqa: E402


def run_demo(out: Path, quick: bool) -> tuple[float, float, list[tuple[str, float]], list[float], int]:
    """Run the demo; (wall seconds, CPU seconds of it and its children, [(step command, seconds)],
    the 1-minute load average at every step's start and at the end, exit status)."""
    cmd = [sys.executable, "-m", "pfgraph.cli", "demo", "--out", str(out), *(["--quick"] if quick else [])]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    steps: list[tuple[str, float]] = []
    loads: list[float] = []
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    last_name, last_t = None, t0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            if line.startswith("$ pfgraph "):
                loads.append(os.getloadavg()[0])
                now = time.perf_counter()
                if last_name is not None:
                    steps.append((last_name, now - last_t))
                last_name, last_t = line[2:].strip().replace(str(out), "DIR"), now
        status = proc.wait()
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    if last_name is not None:
        steps.append((last_name, time.perf_counter() - last_t))
    loads.append(os.getloadavg()[0])
    return wall, cpu, steps, loads, status


def main() -> None:
    """Run the benchmark and record it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="time pfgraph demo --quick instead")
    ap.add_argument("--out", type=Path, help="demo folder (must not exist; default: a temporary folder)")
    ap.add_argument("--no-doc", action="store_true", help="print only, do not update docs/BENCHMARKS.md")
    args = ap.parse_args()
    if args.out is not None and args.out.exists():
        raise SystemExit(f"{args.out}: exists; the demo resumes finished steps, so time it into a fresh folder")
    out = args.out or Path(tempfile.mkdtemp(prefix="pfgraph-bench-demo-")) / "demo"
    try:
        wall, cpu, steps, loads, status = run_demo(out, args.quick)
    finally:
        if args.out is None:
            shutil.rmtree(out.parent, ignore_errors=True)
    if status != 0:
        raise SystemExit(f"pfgraph demo failed with status {status}")
    variant = "pfgraph demo --quick" if args.quick else "pfgraph demo"
    flag = " --quick" if args.quick else ""
    body = [
        f"Command: `python scripts/bench_demo.py{flag}`, which times `python -m pfgraph.cli demo{flag} --out DIR` "
        "(what `make demo` runs) in a fresh process into an empty folder.  ",
        f"Machine: {machine()}; 1-minute load average sampled at every step: mean {sum(loads) / len(loads):.1f}, "
        f"max {max(loads):.1f} (above 2, other work shared the two cores and the demo took longer than on an idle "
        "machine).",
        "",
        f"**{variant}: {wall / 60:.1f} minutes** ({wall:.0f} s wall time, Python start-up and imports included; "
        f"{cpu / 60:.1f} CPU minutes over all its processes, user + system).",
        "",
        "| step | wall time [s] |",
        "|---|---:|",
        *[f"| `{name}` | {dt:.0f} |" for name, dt in steps],
    ]
    text = "\n".join(body)
    print(text)
    if not args.no_doc:
        update_section("Demo, quick" if args.quick else "Demo", text)


if __name__ == "__main__":
    main()
