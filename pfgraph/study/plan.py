"""A study's steps and their dependencies, from its configuration alone (no files read).

Shared by the runner (:mod:`pfgraph.study.runner`), the results page (:mod:`pfgraph.study.results`)
and the Snakefile writer (:mod:`pfgraph.study.snakefile`), so none of them imports another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pfgraph.study.config import StudyConfig


@dataclass
class Step:
    """One unit of work: its id, kind (one of :data:`pfgraph.study.config.STEP_KINDS`), the steps it
    needs and what it is about."""

    id: str
    kind: str
    needs: list[str] = field(default_factory=list)
    dataset: str | None = None
    model: str | None = None
    seed: int | None = None


def plan_steps(cfg: StudyConfig) -> list[Step]:
    """Every step of the study in an order that respects the dependencies (each training followed
    by its evaluations; a report after every evaluation on its dataset; results last).

    Trainings go in rounds of seeds: every model's first seed, then every model's second, and so on
    (in the study file's model order within a round), so a study interrupted part-way (a long CPU
    study runs across sessions) has one seed of as many models as possible, not three of a few.
    """
    used = {cfg.train_set(m) for m in cfg.models} | {d for m in cfg.models for d in cfg.eval_sets(m)}
    steps = [Step(f"simulate:{ds}", "simulate", dataset=ds) for ds in cfg.datasets if ds in used]
    evals: dict[str, list[str]] = {ds: [] for ds in cfg.datasets}
    seeds = {m.label: list(cfg.seeds(m)) for m in cfg.models}
    rounds = max((len(s) for s in seeds.values()), default=0)
    for i in range(rounds):
        for m in (m for m in cfg.models if i < len(seeds[m.label])):
            seed, train_ds = seeds[m.label][i], cfg.train_set(m)
            train_id = f"train:{m.label}:{seed}"
            steps.append(Step(train_id, "train", [f"simulate:{train_ds}"], train_ds, m.label, seed))
            for ds in cfg.eval_sets(m):
                eid = f"evaluate:{m.label}:{seed}:{ds}"
                needs = [train_id] + ([f"simulate:{ds}"] if ds != train_ds else [])
                steps.append(Step(eid, "evaluate", needs, ds, m.label, seed))
                evals[ds].append(eid)
    reports = [Step(f"report:{ds}", "report", ids, ds) for ds, ids in evals.items() if ids]
    return steps + reports + [Step("results", "results", [r.id for r in reports])]
