"""``pfgraph study``: run a study file end to end, resumably, or list its steps for a batch system;
``pfgraph demo``: the demo study.

    pfgraph study cpu_b050 [--out DIR]          # every step not yet done
    pfgraph study cpu_b050 --list [--format text|json]             # steps, dependencies, commands
    pfgraph study cpu_b050 --out DIR --only train:cnn:1            # one step (its dependencies done)
    torchrun --standalone --nproc_per_node 2 -m pfgraph.cli study cpu_b050 --out DIR --only train:cnn:1
    pfgraph study cpu_b050 --dry-run                               # what would run
    pfgraph study cpu_b050 --out DIR --snakefile Snakefile         # the study as a Snakemake workflow
    pfgraph study cpu_b050 --results-now                           # RESULTS.md so far, beside a running study
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
    p.add_argument("--snakefile", metavar="PATH", help="write the study as a Snakemake workflow (one rule per step, "
                   "each running 'pfgraph study ... --only STEP'); run nothing. Then: snakemake -s PATH --cores N, "
                   "or --executor slurm on a cluster")
    p.add_argument("--force", action="store_true", help="write into an --out folder that is not a study folder, and "
                   "replace a RESULTS.md pfgraph did not write")
    p.add_argument("--results-now", action="store_true", help="write the results page and the per-test-set reports "
                   "from the steps done so far into OUT/reports/partial/ (its header: trainings done of those "
                   "planned, compute spent; anything not reached yet is marked 'not run yet'); trains and evaluates "
                   "nothing and takes no lock, so it is safe beside the running study")
    p.add_argument("--no-reports", action="store_true", help="with --results-now: the page only, no reports")
    p.set_defaults(func=run)
    d = sub.add_parser("demo", help="small end-to-end run on CPU: simulate, train, evaluate, report (the demo study)",
                       description="The demo study (pfgraph/presets/study/demo.yaml): simulates small B=0.5 training "
                       "and Pythia jet sets, trains baselines, unet_attn and edgeconv briefly, evaluates them and writes "
                       "the comparison report into OUT/report/index.html. Runs through the study runner: re-running "
                       "resumes, and redoes an evaluation whose checkpoint changed.")
    d.add_argument("--out", default="demo", help="output folder (default demo/)")
    d.add_argument("--quick", action="store_true", help="smaller, faster variant (the demo_quick study; used in CI)")
    d.add_argument("--seed", type=int, default=1, help="training seed (the data sets use it and the next one; "
                   "default 1)")
    d.set_defaults(func=run_demo)


def _write_snakefile(args: argparse.Namespace, study: Any, path: Path) -> int:
    """``--snakefile``: write the workflow; its rules name the preset, or the study file's absolute path."""
    from pfgraph.config import looks_like_path
    from pfgraph.errors import PfgraphError
    from pfgraph.study.snakefile import write_snakefile

    if args.list or args.only or args.dry_run:
        raise PfgraphError("--snakefile writes the whole workflow; it takes none of --list, --only, --dry-run")
    source = str(path.resolve()) if looks_like_path(args.study) else args.study
    written = write_snakefile(study, source, args.snakefile)
    print(f"study {study.cfg.name}: {len(study.steps())} steps -> {written}; run it with: snakemake -s {written} "
          "--cores N (or --executor slurm --jobs N on a cluster)")
    return 0


def _results_now(args: argparse.Namespace, out: Path, name: str) -> int:
    """``--results-now``: :func:`pfgraph.study.partial.write_partial` (reads the folder, takes no lock)."""
    from pfgraph.errors import PfgraphError
    from pfgraph.study.partial import write_partial

    clash = [flag for flag, on in (("--list", args.list), ("--only", args.only), ("--dry-run", args.dry_run),
                                   ("--snakefile", args.snakefile), ("--force", args.force)) if on]
    if clash:
        raise PfgraphError(f"--results-now only reads the study folder and writes its partial page; it takes none "
                           f"of {', '.join(clash)}")
    written = write_partial(out, reports=not args.no_reports)
    print(f"study {name}: results so far -> {written[0]}" + (
        f" (reports: {', '.join(str(p.parent) for p in written[1:])})" if written[1:] else ""))
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """Run ``pfgraph demo``: :func:`pfgraph.study.demo.run_demo`."""
    from pfgraph.study.demo import run_demo as demo

    demo(args.out, quick=args.quick, seed=args.seed)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``pfgraph study``."""
    import sys

    from pfgraph.errors import PfgraphError
    from pfgraph.study.config import load_study
    from pfgraph.study.runner import Study, step_table
    from pfgraph.study.validate import check_study, study_warnings
    from pfgraph.utils.lock import folder_lock

    cfg, path = load_study(args.study)
    out = Path(args.out) if args.out else Path("studies") / cfg.name
    study = Study(cfg, out, source=args.study)  # as given: a preset name stays portable to other machines
    if args.no_reports and not args.results_now:
        raise PfgraphError("--no-reports applies to --results-now")
    if args.results_now:
        return _results_now(args, out, cfg.name)
    if args.format != "text" and not args.list:
        raise PfgraphError("--format applies to --list")
    check_study(study)  # every dataset and model resolves: a bad entry fails now, not hours later
    for line in study_warnings(study):
        print(f"pfgraph: warning: {line}", file=sys.stderr)
    if args.snakefile:
        return _write_snakefile(args, study, path)
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
    check_study_target(out, path, args.force)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "study", shared=bool(args.only)):  # one whole-study run per folder
        return _run(study, args, cfg, out)


def _run(study: Any, args: argparse.Namespace, cfg: Any, out: Path) -> int:
    from pfgraph.errors import PfgraphError
    from pfgraph.training import ddp

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


#: What a study folder holds (:mod:`pfgraph.study.runner`; ``.snakemake`` is Snakemake's bookkeeping when the
#: study runs through its Snakefile, whose workdir is the study folder): anything else in an existing --out is the user's.
STUDY_LAYOUT = ("data", "runs", "evals", "reports", "steps", "study.yaml", "RESULTS.md", ".snakemake")


def check_study_target(out: Path, source: Path, force: bool = False) -> None:
    """Refuse an ``--out`` the study must not write: an unwritable folder, an existing folder holding
    anything but a study's own layout (:data:`STUDY_LAYOUT`), a ``study.yaml`` or ``RESULTS.md``
    pfgraph did not write (unless ``force``), or one of the study's outputs being the study file read
    (a ``study.yaml`` that is the study file read is left as it is)."""
    from pfgraph.study.runner import RESULTS, STUDY_COPY
    from pfgraph.utils.atomic import check_creatable_dir
    from pfgraph.utils.ownership import check_not_input, check_replaceable, foreign_entries, refuse_foreign, same_file

    check_creatable_dir(out)
    check_not_input(out / RESULTS, [source], "the study file being read")
    if not out.is_dir():
        return
    refuse_foreign(out, foreign_entries(out, lambda p: p.name in STUDY_LAYOUT), "study", force,
                   "it is not a study folder")
    copy = out / STUDY_COPY
    if not (copy.exists() and same_file(copy, source)):
        check_replaceable(copy, force)
    check_replaceable(out / RESULTS, force)
