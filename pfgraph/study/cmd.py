"""``pfgraph study``: run a study file end to end, resumably, or list its steps for a batch system.

    pfgraph study cpu_b050 [--out DIR]          # every step not yet done
    pfgraph study cpu_b050 --list [--format text|json]             # steps, dependencies, commands
    pfgraph study cpu_b050 --out DIR --only train:cnn:1            # one step (its dependencies done)
    torchrun --standalone --nproc_per_node 2 -m pfgraph.cli study cpu_b050 --out DIR --only train:cnn:1
    pfgraph study cpu_b050 --dry-run                               # what would run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the ``study`` sub-command."""
    p = sub.add_parser(
        "study", help="run a study (datasets, models, seeds, budgets in one YAML file): resumable, step by step",
        description="Simulate, train every (model, seed), evaluate on every test set, write one report per test "
        "set and RESULTS.md, as the study file says. Re-running resumes; --list prints every step with its "
        "dependencies and the command that runs it alone (for a batch system's job array or a workflow engine).")
    p.add_argument("study", help="study file, or preset in pfgraph/presets/study (e.g. cpu_b050)")
    p.add_argument("--out", help="output folder (default: studies/<name>)")
    p.add_argument("--list", action="store_true", help="print every step, its dependencies and its command; run nothing")
    p.add_argument("--format", choices=("text", "json"), default="text", help="--list output format (default text)")
    p.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps (refused when a dependency "
                   "is not done)")
    p.add_argument("--dry-run", action="store_true", help="print the steps that would run; run nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``pfgraph study``."""
    from pfgraph.errors import PfgraphError
    from pfgraph.study.config import load_study
    from pfgraph.study.runner import Study, step_table
    from pfgraph.training import ddp

    cfg, _ = load_study(args.study)
    out = Path(args.out) if args.out else Path("studies") / cfg.name
    study = Study(cfg, out, source=args.study)  # as given: a preset name stays portable to other machines
    if args.format != "text" and not args.list:
        raise PfgraphError("--format applies to --list")
    if args.list:
        rows = step_table(study)
        if args.format == "json":
            print(json.dumps({"study": cfg.name, "out": str(out), "steps": rows}, indent=2))
        else:
            for r in rows:
                state = "done" if r["done"] else "todo"
                needs = " ".join(r["needs"]) or "-"
                print(f"{r['id']}\t[{state}]\tneeds: {needs}\t{r['command']}")
        return 0
    if args.dry_run:
        todo = study.pending(args.only)
        for s in todo:
            print(f"would run {s.id}" + (f" (needs {' '.join(s.needs)})" if s.needs else ""))
        if not todo:
            print("nothing to run")
        return 0
    if ddp.launched_by_torchrun():
        only = args.only or []
        if len(only) != 1 or not only[0].startswith("train:"):
            raise PfgraphError("under torchrun, run exactly one training step: --only train:<model>:<seed>")
        info = ddp.init(cfg.training.device)
        try:
            study.run(only, dist=info)
        finally:
            ddp.shutdown(info)
        return 0
    study.run(args.only)
    print(f"study {cfg.name}: done -> {out}")
    return 0
