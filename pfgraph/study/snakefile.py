"""``pfgraph study NAME --snakefile PATH``: the study as a Snakemake workflow.

One rule per step of the study (:mod:`pfgraph.study.plan`). A rule's outputs are the files its
step writes, its ledger ``steps/<step>.json`` among them (written last, once the step is done: the
completion marker); its inputs are the outputs of the steps it needs. Each rule runs the step
through the study runner, ``pfgraph study SRC --out DIR --only STEP``, so a step run by Snakemake
and one run by ``pfgraph study`` do the same thing and write the same folder (resume, ledger,
refusal of a step whose dependency is not done). ``SRC`` is the study's preset name or the
absolute path of its file and ``DIR`` the absolute study folder (the Snakefile's ``workdir``), so
the Snakefile runs from any directory:

    snakemake -s PATH --cores 2                                       # on this machine
    snakemake -s PATH --executor slurm --jobs 50 --profile PROFILE    # on a Slurm cluster

Each rule asks for the resources of its step kind (the study's ``resources``; threads, mem_mb,
runtime in minutes, and ``gpu`` for a training or evaluation that uses GPUs, the name the Slurm
executor plugin reads). A training step with more than one GPU runs under ``torchrun
--standalone --nproc_per_node <gpus>`` (DDP, one process per GPU, :mod:`pfgraph.training.ddp`).
The command that runs pfgraph is the workflow's config value ``pfgraph`` (default ``pfgraph``;
``snakemake --config pfgraph="python -m pfgraph.cli"``), and torchrun's is ``torchrun``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from pfgraph.study.plan import Step
from pfgraph.study.runner import LEDGER_DIR, RESULTS, Study, ledger_name
from pfgraph.training.run_folder import SUMMARY
from pfgraph.utils.atomic import atomic_write_text


def step_outputs(study: Study, step: Step) -> list[str]:
    """The files a step writes, relative to the study folder, its ledger last."""
    root = study.out
    ds, model, seed = str(step.dataset), str(step.model), int(step.seed or 0)
    if step.kind == "simulate":
        files = [study.data_path(ds)]
    elif step.kind == "train":
        files = [study.run_dir(model, seed) / SUMMARY]
    elif step.kind == "evaluate":
        folder = study.eval_dir(ds, model, seed)
        files = [folder / "metrics.json", folder / "manifest.json"]
    elif step.kind == "report":
        files = [study.report_dir(ds) / "index.html"]
    else:
        files = [root / RESULTS]
    return [str(f.relative_to(root)) for f in files] + [f"{LEDGER_DIR}/{ledger_name(step.id)}"]


def rule_names(steps: list[Step]) -> dict[str, str]:
    """A Snakemake rule name (a Python identifier) for every step id, unique within the workflow."""
    names: dict[str, str] = {}
    taken = {"all"}
    for s in steps:
        base = re.sub(r"\W", "_", s.id)
        name, k = base, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        names[s.id] = name
    return names


def _braces(text: str) -> str:
    """``text`` inside a shell command Snakemake formats: its braces doubled."""
    return text.replace("{", "{{").replace("}", "}}")


def snakefile_text(study: Study, source: str) -> str:
    """The Snakefile of ``study`` (``source``: the preset name or absolute path its rules name)."""
    cfg = study.cfg
    out = str(study.out.resolve())
    steps = study.steps()
    names = rule_names(steps)
    outputs = {s.id: step_outputs(study, s) for s in steps}
    last = steps[-1]
    lines = [
        f"# The pfgraph study '{cfg.name}' as a Snakemake workflow, one rule per step; written by",
        f"#   pfgraph study {shlex.quote(source)} --out {shlex.quote(out)} --snakefile PATH",
        "# Run it: snakemake -s PATH --cores N (this machine) or snakemake -s PATH --executor slurm --jobs N",
        "# (a cluster; README, 'Running a study on a cluster'). Each rule runs one step with pfgraph study ... --only",
        "# STEP; its outputs are the files the step writes, its ledger steps/<step>.json last (the completion",
        "# marker). The pfgraph command: --config pfgraph='python -m pfgraph.cli' (default: pfgraph).",
        "",
        'PFGRAPH = config.get("pfgraph", "pfgraph")',
        'TORCHRUN = config.get("torchrun", "torchrun")',
        "",
        f"workdir: {out!r}",
        "",
        "",
        "rule all:",
        "    default_target: True",
        f"    input: {', '.join(repr(f) for f in outputs[last.id])}",
    ]
    for s in steps:
        res = cfg.step_resources(s.kind)
        inputs = [f for need in s.needs for f in outputs[need]]
        study_cmd = _braces(f"study {shlex.quote(source)} --out {shlex.quote(out)} --only {shlex.quote(s.id)}")
        if s.kind == "train" and res.gpus > 1:
            shell = "{params.torchrun} --standalone --nproc_per_node {resources.gpu} -m pfgraph.cli " + study_cmd
        else:
            shell = "{params.pfgraph} " + study_cmd
        resources = [f"mem_mb={res.mem_mb}"]
        if res.runtime is not None:
            resources.append(f"runtime={res.runtime}")
        if res.gpus:
            resources.append(f"gpu={res.gpus}")
        lines += [
            "",
            "",
            f"rule {names[s.id]}:  # {s.id}",
            *([f"    input: {', '.join(repr(f) for f in inputs)}"] if inputs else []),
            f"    output: {', '.join(repr(f) for f in outputs[s.id])}",
            f"    threads: {res.threads}",
            f"    resources: {', '.join(resources)}",
            "    params: pfgraph=PFGRAPH, torchrun=TORCHRUN",
            f"    shell: {shell!r}",
        ]
    return "\n".join(lines) + "\n"


def write_snakefile(study: Study, source: str, path: str | Path) -> Path:
    """Write the Snakefile of ``study`` to ``path`` (atomically); returns its path."""
    path = Path(path)
    atomic_write_text(path, snakefile_text(study, source))
    return path
