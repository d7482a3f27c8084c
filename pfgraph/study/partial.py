"""``pfgraph study NAME --results-now``: the results page (and the per-test-set reports) of a study
under way, from whatever steps are done.

A long CPU study runs across sessions, and its ``results`` step waits for every step. This writes
the same page early, into its own folder ``reports/partial/`` of the study folder:
``reports/partial/RESULTS.md`` (:func:`pfgraph.study.results.build_results` with ``partial``: the
header says how many of the planned trainings and evaluations are done and the compute spent; every
model, test set or claim the study has planned but not reached is marked "not run yet") and, with
``reports``, ``reports/partial/<test set>/index.html`` from the evaluations done.

It trains and evaluates nothing and takes no lock, so it may run beside the study (which holds the
folder's lock, :mod:`pfgraph.utils.lock`) without waiting for it or blocking it: it only reads, and
only what the study writes atomically or verifies (the resolved ``study.yaml``, the ledgers, each
evaluation's ``metrics.json`` checked against its manifest and the run's current best checkpoint,
as the results step checks it: an evaluation being written fails that check and is left out), and it
writes only under ``reports/partial/``, which no step writes (the study's own ``RESULTS.md`` and
``reports/<test set>/`` are never touched, so its final page cannot be replaced by a partial one).
The resolved ``study.yaml`` in the folder is the study described, whatever the preset says now.
"""

from __future__ import annotations

from pathlib import Path

from pfgraph.errors import PfgraphError

#: Where the partial page and reports go, inside the study folder.
PARTIAL_DIR = Path("reports") / "partial"
PARTIAL_RESULTS = "RESULTS.md"


def evaluated_folders(out: Path) -> dict[str, list[Path]]:
    """Per test set, the evaluation folders of the study folder ``out`` that the results step would
    read (those passing :func:`pfgraph.study.results.evaluation_problem`)."""
    from pfgraph.config import read_yaml
    from pfgraph.study.config import study_from_dict
    from pfgraph.study.results import evaluation_problem

    cfg = study_from_dict(read_yaml(out / "study.yaml"), str(out / "study.yaml"))
    found: dict[str, list[Path]] = {}
    for m in cfg.models:
        for ds in cfg.eval_sets(m):
            for seed in cfg.seeds(m):
                folder = out / "evals" / ds / m.label / f"seed{seed}"
                if (folder / "metrics.json").exists() and evaluation_problem(
                        folder, out / "runs" / m.label / f"seed{seed}") is None:
                    found.setdefault(ds, []).append(folder)
    return found


def write_partial(out: str | Path, reports: bool = True) -> list[Path]:
    """Write ``reports/partial/RESULTS.md`` of the study folder ``out`` and (``reports``) one report
    per test set with an evaluation done; returns the paths written (the page first). One clear line
    when ``out`` holds no study yet or a test set's own report folder is ``reports/partial``."""
    from pfgraph.config import read_yaml
    from pfgraph.study.config import study_from_dict
    from pfgraph.study.results import build_results
    from pfgraph.utils.atomic import atomic_write_text

    out = Path(out)
    if not (out / "study.yaml").is_file():
        raise PfgraphError(f"{out}: no study.yaml: the study has not started there, so there is nothing to report "
                           "yet (run pfgraph study first)")
    cfg = study_from_dict(read_yaml(out / "study.yaml"), str(out / "study.yaml"))
    target = (out / PARTIAL_DIR).resolve()
    for ds in cfg.datasets:
        own = (out / cfg.report_dirs.get(ds, f"reports/{ds}")).resolve()
        if own == target or target in own.parents or own in target.parents:
            raise PfgraphError(f"{out}: the report folder of test set '{ds}' is {own}, where --results-now "
                               f"writes ({PARTIAL_DIR}); rename the test set to use --results-now")
    page = out / PARTIAL_DIR / PARTIAL_RESULTS
    page.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(page, build_results(out, partial=True))
    written = [page]
    if reports:
        import pfgraph

        for ds, folders in evaluated_folders(out).items():
            written.append(pfgraph.report(folders, out / PARTIAL_DIR / ds, metrics_only_ok=True))
    return written
