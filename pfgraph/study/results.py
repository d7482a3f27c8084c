"""RESULTS.md from a study folder (``pfgraph study``), never from typed-in numbers.

Reads only the study folder: ``study.yaml`` (the resolved study), every
``evals/<test set>/<model>/seed<k>/metrics.json`` (each checked against its evaluation's
``manifest.json`` and the run's current best checkpoint, as the study runner checks it; an
evaluation that fails is left out and named), every run's ``train_summary.json`` and
``metrics.csv``, and the step ledgers ``steps/*.json``.

What the page states, per test set: a table per model over its seeds, the model flagged when
:mod:`pfgraph.utils.degenerate` calls it degenerate (never ranked, never making a claim agree);
rankings on figures a bias cannot win (|median| + 68 % half-width), overall and per E_true bin;
issue 15's targets checked on every seed (met only when every seed meets them); the claims of the
paper's text, its v2 and DESIGN §6, each decided on the figure and the comparator it names; per
study: every model's validation figure at a common training budget beside its final one, and the
compute spent.

Statistics over seeds (:mod:`pfgraph.utils.stats`): a mean over n >= 2 seeds comes with the t-based
68 % interval for the mean (mean +- t(0.84, n-1) s / sqrt(n)) and the seed standard deviation s,
both named. A one-seed model borrows the pooled seed standard deviation of its family (stated
which; interval value +- t s), else it is marked "1 seed: no spread" and decides nothing. A model
without training (the analytic inversion) keeps the bootstrap interval over test events. Two models
trained with the same seeds are compared through their per-seed differences (paired); otherwise a
difference counts where the two intervals do not overlap. A claim is "not converged" where a model
it compares was still improving at the compared budget (the largest budget every compared model
reached), never "agrees" or "disagrees".
"""

from __future__ import annotations

import functools
import json
import math
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pfgraph.eval.bootstrap import verdict
from pfgraph.eval.metrics import common_norm_scale, norm_scale_sentence, on_norm_scale
from pfgraph.io.metrics_csv import read_metrics_csv
from pfgraph.study.plan import plan_steps
from pfgraph.utils import budget as budget_rule  # ('budget' names a training budget here)
from pfgraph.utils.atomic import atomic_write_text
from pfgraph.utils.degenerate import DEGENERATE_RULE, degenerate_reasons
from pfgraph.utils.stats import (
    SEED_CONFIDENCE,
    paired_difference,
    pooled_std,
    t_interval,
    t_quantile,
    variance_ratio_interval,
)

PAPER = ("mlp", "cnn", "cnn_attn", "cnn3d", "unet", "unet_attn", "rnn")
IMPROVED = {"mlp_plus": "mlp", "cnn_attn_plus": "cnn_attn", "unet_attn_plus": "unet_attn", "calibrated": "cnn",
            "calibrated_tail_flat": "cnn", "calibrated_gnn": "edgeconv"}
POINT = ("edgeconv", "edgeconv_dgcnn", "pfn", "calibrated_gnn", "calibrated_gnn_flat", "residual_gnn")
RESIDUAL = ("residual_cnn", "residual_gnn")
#: Families whose seed spread a one-seed member borrows (the pooled seed standard deviation of the
#: family's models with >= 2 seeds on the same test set and figure).
FAMILIES: dict[str, tuple[str, ...]] = {
    "CNN": ("cnn", "cnn_attn", "cnn_attn_code", "cnn3d", "cnn_attn_plus", "calibrated", "calibrated_tail_flat",
            "residual_cnn", "residual_cnn_tail", "residual_cnn_long", "cnn3d_large"),
    "U-Net": ("unet", "unet_attn", "unet_attn_plus"),
    "MLP": ("mlp", "mlp_plus"),
    "RNN": ("rnn",),
    "point cloud": ("edgeconv", "edgeconv_dgcnn", "pfn", "calibrated_gnn", "calibrated_gnn_flat", "residual_gnn",
                    "residual_gnn_tail", "residual_gnn_long"),
}
#: Issue 15's A/Bs on the jet energy scale |jet dE/E median|: label -> (the run it varies, what changed):
#: the same model and seeds trained with loss weights flat in log E, on the paper or the hard-tail file.
JET_AB = {"calibrated_tail_flat": ("calibrated", "flat-log loss weights on the hard-tail file"),
          "calibrated_gnn_flat": ("calibrated_gnn", "loss weights flat in log E (train.reweight=flat_log)"),
          "residual_cnn_tail": ("residual_cnn", "trained on the hard-tail file"),
          "residual_gnn_tail": ("residual_gnn", "trained on the hard-tail file")}
#: The paper's own figure (Eq. 1: dE_nor = (E_pred - E_true) / S over truth pixels).
PAPER_METRIC = "abs_norm_half_width_68"
#: The relative residual r = (E_pred - E_true) / E_true: our headline; DESIGN §6 targets use it.
RANK = "residual_half_width_68"
RANK_JET = "jet_energy_rel_half_width_68"
JET_SCALE = "jet_energy_rel_median"
#: The paper's jet energy (anti-kt jets of the predicted image matched to the truth jets) and position.
JET_MATCH_SCALE = "jet_energy_match_rel_median"
JET_MATCH_WIDTH = "jet_energy_match_rel_half_width_68"
JET_POSITION = "jet_position_median"
JET_POSITION_SPREAD = "jet_position_half_width_68"
MSE = "mse_per_image"
INCONCLUSIVE = "inconclusive"
NOT_CONVERGED = "not converged"
#: A partial page's word (``pfgraph study --results-now``) for a model, test set or claim the study
#: has planned but not trained or evaluated yet: never "not measured", which says it cannot be.
NOT_RUN_YET = "not run yet"

#: Figures a bias cannot win: |median| + 68 % half-width (a model predicting nothing has r = -1
#: everywhere, a half-width of 0 and a reach of 1). name -> (median figure, half-width figure).
REACH: dict[str, tuple[str, str]] = {
    "residual_reach_68": ("residual_median", RANK),
    "abs_norm_reach_68": ("abs_norm_median", PAPER_METRIC),
    "jet_energy_rel_reach_68": (JET_SCALE, RANK_JET),
    "jet_energy_match_rel_reach_68": (JET_MATCH_SCALE, JET_MATCH_WIDTH),
}
#: What claims and rankings are decided on: the paper's dE/S and our r, each as |median| + half-width.
PAPER_DECIDE = "abs_norm_reach_68"
RANK_DECIDE = "residual_reach_68"
#: The E_true bins of the per-bin ranking (GeV): the evaluation's bins from 0.5 GeV up.
BIN_MIN_GEV = 0.5

#: Columns of the per-test-set table: (header, headline figure, format).
FIGURE_COLUMNS: list[tuple[str, str, str]] = [
    ("r: 68% half-width", RANK, ".3f"),
    ("r: median", "residual_median", ".3f"),
    ("r: \\|median\\| + half-width", RANK_DECIDE, ".3f"),
    ("dE/S 68% half-width (paper Eq. 1)", PAPER_METRIC, ".3g"),
    ("MSE per image [GeV^2]", MSE, ".3g"),
    ("missed truth pixels", "missed_pixel_fraction", ".3f"),
    ("fake energy", "fake_energy_fraction", ".3f"),
]
JET_COLUMNS: list[tuple[str, str, str]] = [
    ("jet eff.", "jet_efficiency", ".3f"),
    ("dE/E median (truth-jet pixels)", JET_SCALE, ".3f"),
    ("dE/E 68% half-width (truth-jet pixels)", RANK_JET, ".3f"),
    ("dE/E median (matched jets)", JET_MATCH_SCALE, ".3f"),
    ("jet D median [px]", JET_POSITION, ".2f"),
]

#: A figure over seeds: value, interval (lo, hi), seed standard deviation ``std``, number of seeds
#: ``n``, per-seed values ``seeds`` ({seed: value}), and ``spread`` (how the interval was made).
Fig = dict[str, Any]
Figures = dict[str, dict[str, Fig]]  # model -> figure key -> figure


# ------------------------------------------------------------------------------ reading the folder
def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _get(doc: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def evaluation_problem(folder: Path, run_dir: Path) -> str | None:
    """Why the evaluation in ``folder`` may not be read (None: it may): the study runner's check.

    The folder must pass :func:`pfgraph.eval.folder.verify_folder` (a readable manifest listing
    ``metrics.json`` with its size and SHA-256; predictions and plots may be absent, as in a study
    folder kept in git), and the checkpoint its manifest names must be the run's current best
    (the file's SHA-256 when present, else the one ``train_summary.json`` recorded).
    """
    from pfgraph.errors import PfgraphError
    from pfgraph.eval.folder import verify_folder
    from pfgraph.training.run_folder import BEST, read_summary
    from pfgraph.utils.atomic import file_sha256

    try:
        manifest = verify_folder(folder, content=True, local_only_may_miss=True)
    except PfgraphError as exc:
        return str(exc)
    evaluated = _get(manifest, "model.checkpoint_sha256")
    current = (file_sha256(run_dir / BEST) if (run_dir / BEST).is_file()
               else (read_summary(run_dir) or {}).get("checkpoint_sha256"))
    if isinstance(current, str) and current and evaluated != current:
        return (f"{folder}: stale: it evaluated checkpoint {str(evaluated)[:12]}, the run's best is now "
                f"{current[:12]} (re-run the study to re-evaluate)")
    return None


@dataclass
class Run:
    """One (model, seed) training as its run folder records it."""

    model: str
    seed: int
    cap: int
    summary: dict[str, Any] | None
    history: list[dict[str, Any]]
    evaluated_status: str | None = None  # the status an evaluation's metrics.json copied from the run, if any

    @property
    def epochs(self) -> int | None:
        """Epochs run."""
        if self.summary and isinstance(self.summary.get("epochs"), int):
            return int(self.summary["epochs"])
        return int(self.history[-1]["epoch"]) if self.history else None

    @property
    def status(self) -> str:
        """The run's budget status (recorded by the trainer, else derived from metrics.csv)."""
        if self.summary and isinstance(self.summary.get("status"), str):
            return str(self.summary["status"])
        if self.evaluated_status:
            return self.evaluated_status
        if self.summary is None and not self.history:
            return NOT_RUN_YET
        trained = bool(self.history) or bool(self.summary and self.summary.get("target_epochs"))
        stopped = bool(self.summary and self.summary.get("stopped_early"))
        return budget_rule.budget_status([r.get("val_loss", math.nan) for r in self.history], self.epochs or 0,
                                    self.cap, stopped, trained) + ("" if self.summary else " (no train_summary.json)")

    @property
    def wall_s(self) -> float | None:
        """Training wall seconds (the summary's wall time, else its training time, else metrics.csv's)."""
        for key in ("wall_time_s", "train_time_s"):
            if self.summary and isinstance(self.summary.get(key), (int, float)):
                return float(self.summary[key])
        if self.history:
            return sum(w if math.isfinite(w := r.get("wall_s", math.nan)) else r.get("epoch_time_s", 0.0)
                       for r in self.history)
        return None


    def curve(self) -> list[dict[str, float]]:
        """The run's epochs on the compute axes: cumulative wall seconds (``wall_s`` per epoch, else
        ``epoch_time_s``) as ``cum_wall_s``, cumulative ``train_flops`` where metrics.csv records
        them (already cumulative), with ``val_half_width`` and ``val_loss``."""
        out, wall = [], 0.0
        for row in self.history:
            step = row.get("wall_s", math.nan)
            if step is None or not math.isfinite(step):  # an older metrics.csv: the epoch's training time
                step = row.get("epoch_time_s", math.nan)
            wall += float(step) if step is not None and math.isfinite(step) else math.nan
            out.append({"epoch": row["epoch"], "cum_wall_s": wall, "train_flops": row.get("train_flops", math.nan),
                        "val_half_width": row.get("val_half_width", math.nan),
                        "val_loss": row.get("val_loss", math.nan)})
        return out


#: The compute axes of RESULTS.md: train_flops (issue 27; metrics.csv's cumulative training FLOPs)
#: where every compared run records them, else cumulative wall seconds.
AXES = {"train_flops": "training FLOPs (cumulative, metrics.csv train_flops)",
        "cum_wall_s": "training wall seconds (cumulative, metrics.csv wall_s; the machine's load moves them)"}
IMPROVING = (budget_rule.STILL_IMPROVING, budget_rule.NOT_FINISHED, "no epoch within the budget")


def compute_axis(runs: Sequence[Run]) -> str:
    """``train_flops`` when every trained run records them in every epoch, else ``cum_wall_s``."""
    trained = [r for r in runs if r.history]
    if trained and all(math.isfinite(p["train_flops"]) for r in trained for p in r.curve()):
        return "train_flops"
    return "cum_wall_s"


def run_total(run: Run, axis: str) -> float | None:
    """The budget a run reached on ``axis`` (None: no epoch recorded, e.g. nothing to train)."""
    curve = run.curve()
    if not curve or not math.isfinite(curve[-1][axis]):
        return None
    return float(curve[-1][axis])


def _within(curve: Sequence[dict[str, float]], axis: str, budget: float) -> list[dict[str, float]]:
    return [p for p in curve if math.isfinite(p[axis]) and p[axis] <= budget * (1 + 1e-9)]


def value_at(run: Run, axis: str, budget: float) -> float | None:
    """The validation r half-width the run would have at ``budget``: that of its best epoch (lowest
    validation loss, as checkpoint_best.pt is chosen) among the epochs finished within the budget."""
    rows = [p for p in _within(run.curve(), axis, budget) if math.isfinite(p["val_loss"])]
    if not rows:
        return None
    best = min(rows, key=lambda p: p["val_loss"])
    return float(best["val_half_width"]) if math.isfinite(best["val_half_width"]) else None


def status_at(run: Run, axis: str, budget: float | None) -> str:
    """The run's budget status at ``budget``: its own status where it ended within it, else
    the budget rule (:data:`pfgraph.utils.budget.RULE`) on its epochs within the budget ('still
    improving' or 'levelled off')."""
    total = run_total(run, axis)
    if budget is None or total is None or total <= budget * (1 + 1e-9):
        return run.status
    rows = _within(run.curve(), axis, budget)
    if not rows:
        return "no epoch within the budget"
    st = budget_rule.budget_status([p["val_loss"] for p in rows], len(rows), len(rows), False, True)
    return "levelled off" if st == budget_rule.HIT_CAP else st


def improving(status: str) -> bool:
    """True for a status that leaves the figure still moving ('still improving', 'not finished', ...)."""
    return status.startswith(IMPROVING)


@dataclass
class StudyData:
    """What a study folder holds."""

    root: Path
    study: dict[str, Any]
    evals: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)  # set -> model -> docs
    runs: dict[str, list[Run]] = field(default_factory=dict)  # model -> runs
    ledgers: list[dict[str, Any]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)  # every step of the study, in run order
    norm_scales: dict[str, float | None] = field(default_factory=dict)  # set -> the one S of its dE/S figures
    left_out: list[str] = field(default_factory=list)  # evaluations that failed the manifest check, with why
    eval_labels: dict[str, list[str]] = field(default_factory=dict)  # set -> the study's models evaluated on it
    oracles: dict[str, dict[str, Any]] = field(default_factory=dict)  # set -> its oracle (baselines.oracle), on its S


def load_study_folder(root: str | Path) -> StudyData:
    """Read a study folder (see the module docstring); one clear line when it is not one."""
    from pfgraph.config import read_yaml
    from pfgraph.errors import PfgraphError
    from pfgraph.study.config import study_from_dict

    root = Path(root)
    if not (root / "study.yaml").exists():
        raise PfgraphError(f"{root}: not a study folder (no study.yaml; run pfgraph study first)")
    cfg = study_from_dict(read_yaml(root / "study.yaml"), str(root / "study.yaml"))
    data = StudyData(root, read_yaml(root / "study.yaml"))
    for m in cfg.models:
        data.runs[m.label] = [Run(m.label, s, cfg.epochs(m), _read_json(root / "runs" / m.label / f"seed{s}" /
                                                                       "train_summary.json"),
                                  read_metrics_csv(root / "runs" / m.label / f"seed{s}" / "metrics.csv"))
                              for s in cfg.seeds(m)]
    sets = [ds for ds in cfg.datasets if any(ds in cfg.eval_sets(m) for m in cfg.models)]
    for ds in sets:
        data.eval_labels[ds] = [m.label for m in cfg.models if ds in cfg.eval_sets(m)]
        per_model: dict[str, list[dict[str, Any]]] = {}
        for m in cfg.models:
            if ds not in cfg.eval_sets(m):
                continue
            docs = []
            for s in cfg.seeds(m):
                folder = root / "evals" / ds / m.label / f"seed{s}"
                if not (folder / "metrics.json").exists():
                    continue
                problem = evaluation_problem(folder, root / "runs" / m.label / f"seed{s}")
                doc = _read_json(folder / "metrics.json") if problem is None else None
                if doc is None:
                    data.left_out.append(problem or f"{folder}: metrics.json unreadable")
                    continue
                docs.append(doc)
            if docs:
                per_model[m.label] = docs
        if per_model:  # the paper's dE/S on one S: that of the models trained on the study's file
            own = [d for m in cfg.models if m.label in per_model and cfg.train_set(m) == cfg.train_on
                   for d in per_model[m.label]]
            scale = common_norm_scale([d for docs in per_model.values() for d in docs], own)
            data.evals[ds] = {label: [on_norm_scale(d, scale) for d in docs] for label, docs in per_model.items()}
            data.norm_scales[ds] = scale
            # the measured floor: every evaluation of the set carries the same oracle (the data file's image)
            oracle = next((o for docs in per_model.values() for d in docs
                           if isinstance(o := _get(d, "baselines.oracle"), dict)), None)
            if oracle is not None:
                data.oracles[ds] = on_norm_scale(oracle, scale)
    for per_model in data.evals.values():  # metrics.json documents that carry the run's status (schema 4)
        for label, docs in per_model.items():
            for run in data.runs.get(label, []):
                status = next((_get(d, "training.status") for d in docs if _get(d, "training.seed") == run.seed
                               and isinstance(_get(d, "training.status"), str)), None)
                run.evaluated_status = run.evaluated_status or status
    data.ledgers = [d for p in sorted((root / "steps").glob("*.json")) if (d := _read_json(p)) is not None]
    data.steps = [s.id for s in plan_steps(cfg)]
    return data


# ------------------------------------------------------------------------------ figures over seeds
def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(float(x)):
        return None
    return float(x)


def combine(figs: Sequence[Fig | None], seeds: Sequence[Any] | None = None, trained: bool = True) -> Fig | None:
    """One figure from the seeds' figures (``seeds``: the seed of each, default 1, 2, ...).

    n >= 2: the mean, the seed standard deviation ``std`` and the t-based 68 % interval for the
    mean (``spread`` 't68'). One seed: the value, no interval (``spread`` '1 seed: no spread';
    :func:`borrow_spread` may give it its family's), unless ``trained`` is False (nothing trained:
    the bootstrap interval over test events, ``spread`` 'bootstrap').
    """
    seeds = list(seeds) if seeds is not None else list(range(1, len(figs) + 1))
    have = [(s, f) for s, f in zip(seeds, figs) if isinstance(f, dict) and _number(f.get("value")) is not None]
    if not have:
        return None
    per_seed = {s: float(f["value"]) for s, f in have}
    if len(have) == 1:
        s, f = have[0]
        boot = (_number(f.get("lo")), _number(f.get("hi")))
        fig = {"value": float(f["value"]), "lo": None, "hi": None, "std": None, "n": 1, "seeds": per_seed,
               "spread": "1 seed: no spread", "boot": boot if None not in boot else None}
        if not trained and fig["boot"] is not None:
            fig.update(lo=boot[0], hi=boot[1], spread="bootstrap")
        return fig
    t = t_interval(list(per_seed.values()))
    return {"value": t["mean"], "lo": t["lo"], "hi": t["hi"], "std": t["std"], "n": t["n"], "seeds": per_seed,
            "spread": "t68", "boot": None}


def _reach(median: Fig | None, width: Fig | None) -> Fig | None:
    """|median| + half-width of one evaluation (with the bootstrap ends added: a conservative interval)."""
    if median is None or width is None or _number(median.get("value")) is None or _number(width.get("value")) is None:
        return None
    m = _magnitude(median)
    value = float(m["value"]) + float(width["value"])
    ends = [m.get("lo"), m.get("hi"), width.get("lo"), width.get("hi")]
    if any(_number(e) is None for e in ends):
        return {"value": value, "lo": None, "hi": None}
    return {"value": value, "lo": float(ends[0]) + float(ends[2]), "hi": float(ends[1]) + float(ends[3])}


def seed_figures(doc: Mapping[str, Any]) -> dict[str, Fig]:
    """Every figure RESULTS.md reads from one evaluation: the headline figures (value with bootstrap
    interval), the reaches |median| + half-width (:data:`REACH`), the jet position spread and
    the reach of r per E_true bin from 0.5 GeV (``bin:<lo>-<hi>``, ``bin:><lo>``; no interval)."""
    out: dict[str, Fig] = {k: dict(v) for k, v in (_get(doc, "headline.figures") or {}).items() if isinstance(v, dict)}
    for name, (med, width) in REACH.items():
        if (r := _reach(out.get(med), out.get(width))) is not None:
            out[name] = r
    spread = _number(_get(doc, "jets.position.robust.half_width_68"))
    if spread is not None and _get(doc, "jets.available"):
        out[JET_POSITION_SPREAD] = {"value": spread, "lo": None, "hi": None}
    for b in _get(doc, "energy.residual_vs_etrue.bins") or []:
        lo, hi = _number(b.get("lo")), _number(b.get("hi"))
        med, width = _number(_get(b, "robust.median")), _number(_get(b, "robust.half_width_68"))
        if lo is None or lo < BIN_MIN_GEV or med is None or width is None:
            continue
        out[bin_key(lo, hi)] = {"value": abs(med) + width, "lo": None, "hi": None}
    return out


def bin_key(lo: float, hi: float | None) -> str:
    """The figure name of an E_true bin: ``bin:0.5-1`` or ``bin:>32``."""
    return f"bin:{lo:g}-{hi:g}" if hi is not None else f"bin:>{lo:g}"


def family_of(name: str) -> str | None:
    """The family (:data:`FAMILIES`) of a model name, or of the name a ``_b000``-style label ends in."""
    for fam, members in FAMILIES.items():
        if name in members or any(name.startswith(m + "_b") for m in members):
            return fam
    return None


def borrow_spread(figs: Figures, names: Mapping[str, str]) -> None:
    """Give every one-seed model the seed spread of its family (in place): the pooled seed standard
    deviation s of the family's models with >= 2 seeds, for the same figure, and the interval
    value +- t(0.84, dof) s (a single draw around the model's mean). ``names``: label -> model name."""
    for label, per_key in figs.items():
        fam = family_of(names.get(label, label)) or family_of(label)
        if fam is None:
            continue
        mates = [m for m in figs if m != label and (family_of(names.get(m, m)) or family_of(m)) == fam]
        for key, fig in per_key.items():
            if fig["spread"] != "1 seed: no spread":
                continue
            groups = {m: list(figs[m][key]["seeds"].values()) for m in mates
                      if key in figs[m] and figs[m][key]["n"] >= 2 and figs[m][key]["spread"] == "t68"}
            pooled = pooled_std(list(groups.values()))
            if pooled is None:
                continue
            s, dof = pooled
            t = t_quantile(dof + 1)
            fig.update(std=s, lo=fig["value"] - t * s, hi=fig["value"] + t * s,
                       spread=f"family {fam}: pooled seed SD of {', '.join(sorted(groups))} ({dof} dof)")


def figures(per_model: dict[str, list[dict[str, Any]]], untrained: Sequence[str] = ()) -> Figures:
    """model -> figure key -> figure over its seeds (:func:`combine`, then :func:`borrow_spread`);
    ``untrained``: labels with nothing trained (their one evaluation keeps its bootstrap interval)."""
    out: Figures = {}
    names = {}
    for model, docs in per_model.items():
        per_seed = [seed_figures(d) for d in docs]
        seeds = [_get(d, "training.seed") if _get(d, "training.seed") is not None else i + 1
                 for i, d in enumerate(docs)]
        keys = {k for f in per_seed for k in f}
        out[model] = {k: c for k in keys if (c := combine([f.get(k) for f in per_seed], seeds,
                                                         trained=model not in untrained))}
        names[model] = str(_get(docs[0], "model.name") or model)
    borrow_spread(out, names)
    return out


def degenerate_seeds(docs: Sequence[Mapping[str, Any]]) -> dict[Any, list[str]]:
    """seed -> the reasons its evaluation is degenerate (only degenerate seeds): the ``degenerate``
    object of metrics.json where it has one, else :func:`degenerate_reasons` on its headline figures."""
    out: dict[Any, list[str]] = {}
    for i, d in enumerate(docs):
        seed = _get(d, "training.seed") if _get(d, "training.seed") is not None else i + 1
        rec = d.get("degenerate")
        if isinstance(rec, dict) and isinstance(rec.get("flag"), bool):
            reasons = [str(r) for r in rec.get("reasons") or []] if rec["flag"] else []
            if rec["flag"] and not reasons:
                reasons = ["flagged by the evaluation"]
        else:
            reasons = degenerate_reasons(_get(d, "headline.figures") or {})
        if reasons:
            out[seed] = reasons
    return out


def cell(text: str) -> str:
    """Text for a Markdown table cell: every ``|`` not escaped yet escaped."""
    return re.sub(r"(?<!\\)\|", r"\\|", text)


def degenerate_text(seeds: Mapping[Any, list[str]]) -> str:
    """'seed 1: missed_pixel_fraction 1 > 0.5 (...); seed 2: ...' (table-safe)."""
    return cell("; ".join(f"seed {s}: {', '.join(r)}" for s, r in seeds.items()))


def _decimals(std: float) -> int:
    return 1 - math.floor(math.log10(std))  # two significant digits of the spread


def _fmt(x: float, how: str, decimals: int | None) -> str:
    if decimals is None:
        return format(x, how)
    return f"{round(x, decimals):.{max(decimals, 0)}f}"


def show(fig: Fig | None, how: str = ".3f") -> str:
    """A figure as text, its spread named: ``mean [lo, hi] t68; s = std`` over seeds (the t-based 68 %
    interval for the mean, the seed standard deviation), ``value [lo, hi] s = std (family ...)`` for a
    model with its family's spread, ``value [lo, hi] bootstrap`` with nothing trained, ``value
    (1 seed: no spread)``. Significant-digit formats (``g``) give the mean as many decimals as the
    spread's two significant digits need."""
    if fig is None:
        return "-"
    std = fig.get("std")
    dec = None
    if how.endswith("g") and std is not None and math.isfinite(std) and std > 0:
        dec = _decimals(std)
    v = _fmt(float(fig["value"]), how, dec)
    if fig.get("lo") is None or fig.get("hi") is None:
        return f"{v} (1 seed: no spread)" if fig.get("spread") == "1 seed: no spread" else v
    interval = f"[{_fmt(float(fig['lo']), how, dec)}, {_fmt(float(fig['hi']), how, dec)}]"
    spread = str(fig.get("spread") or ("t68" if fig.get("n", 1) > 1 and std is not None else "interval"))
    if spread == "bootstrap":
        return f"{v} {interval} bootstrap"
    if spread == "interval" or std is None:
        return f"{v} {interval}"
    s = _fmt(float(std), how if not how.endswith("g") else ".2g", dec) if std is not None else "-"
    if spread == "t68":
        return f"{v} {interval} t68; s = {s}"
    return f"{v} {interval} s = {s} ({spread.split(':')[0]})"


# ------------------------------------------------------------------------------ comparisons
def _magnitude(f: Fig) -> Fig:
    """|f| with its interval (an interval that holds zero becomes [0, its larger end])."""
    v, lo, hi = abs(float(f["value"])), f.get("lo"), f.get("hi")
    if lo is None or hi is None:
        return {**f, "value": v}
    lo, hi = float(lo), float(hi)
    ends = (0.0, max(-lo, hi)) if lo <= 0.0 <= hi else tuple(sorted((abs(lo), abs(hi))))
    return {**f, "value": v, "lo": ends[0], "hi": ends[1]}


def _scaled(f: Fig, factor: float) -> Fig:
    return {**f, **{k: (None if f.get(k) is None else float(f[k]) * factor) for k in ("value", "lo", "hi")}}


def compare(fa: Fig, fb: Fig, factor: float = 1.0, magnitude: bool = False) -> tuple[str, str]:
    """``a`` against ``factor`` x ``b`` (``magnitude``: |a| against |b|): 'lower', 'higher' or
    'inconclusive', and how it was decided. Two models trained with the same seeds (>= 2 in
    common) are compared by the mean of their per-seed differences and its t-based 68 % interval
    (paired); otherwise a difference counts where the two 68 % intervals do not overlap."""
    g = abs if magnitude else (lambda x: x)
    if fa.get("spread") == "t68" and fb.get("spread") == "t68":
        d = paired_difference({s: g(v) for s, v in fa["seeds"].items()},
                              {s: factor * g(v) for s, v in fb["seeds"].items()})
        if d is not None:
            word = "lower" if d["hi"] < 0 else "higher" if d["lo"] > 0 else INCONCLUSIVE
            what = "|a| - |b|" if magnitude else "a - b" if factor == 1.0 else f"a - {factor:g} b"
            return word, (f"paired over seeds {', '.join(str(s) for s in d['seeds'])}: {what} = {d['mean']:+.3g} "
                          f"[{d['lo']:+.3g}, {d['hi']:+.3g}] t68")
    a = _magnitude(fa) if magnitude else fa
    b = _scaled(_magnitude(fb) if magnitude else fb, factor)
    if a.get("lo") is None or b.get("lo") is None:
        who = "a" if a.get("lo") is None else "b"
        return INCONCLUSIVE, f"no interval for {who} (1 seed: no spread)"
    return verdict(a, b), "68 % intervals"


@dataclass
class Context:
    """What a claim is decided with on one test set: the figures by model name, which models are
    degenerate, the parameter counts, and the names the study has (for 'not measured' reasons)."""

    figs: Figures
    degenerate: dict[str, dict[Any, list[str]]] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)
    in_study: set[str] = field(default_factory=set)
    partial: bool = False  # a page written while the study runs: a planned model is "not run yet"

    def missing(self, models: Sequence[str]) -> str | None:
        """Why some of ``models`` cannot be compared (None: all evaluated here)."""
        gone = [m for m in models if m not in self.figs]
        if not gone:
            return None
        pending = NOT_RUN_YET if self.partial else "not evaluated here yet"
        out = [f"{m}: {pending if m in self.in_study else 'not in this study'}" for m in gone]
        return "; ".join(out)

    def usable(self, models: Sequence[str], key: str) -> tuple[list[str], list[str]]:
        """The evaluated, non-degenerate ``models`` with figure ``key``, and the degenerate ones left out."""
        ok = [m for m in models if m in self.figs and key in self.figs[m] and not self.degenerate.get(m)]
        bad = [m for m in models if self.degenerate.get(m)]
        return ok, bad


@dataclass
class Decision:
    """A claim's outcome before the degenerate and budget rules: True / False / 'inconclusive' /
    None (not measured), what it rests on, the models it compared and those it claims are better."""

    ok: bool | str | None
    text: str
    used: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)


Check = Callable[[Context, str], Decision]


def _key(own: str | None, key: str) -> str:
    return own or key


def _how(key: str) -> str:
    """How a figure is shown: the small absolute figures (dE/S, MSE) to three significant digits,
    jet positions to two decimals, the others to three decimals."""
    return ".3g" if key in (PAPER_METRIC, PAPER_DECIDE, MSE, "abs_norm_median") else ".3f"


def _word(v: str) -> bool | str:
    return True if v == "lower" else False if v == "higher" else INCONCLUSIVE


def _pair_text(ctx: Context, a: str, b: str, key: str, how: str) -> str:
    return f"{a} {show(ctx.figs[a][key], _how(key))} vs {b} {show(ctx.figs[b][key], _how(key))} ({how})"


def _pending(ctx: Context, models: Sequence[str]) -> str:
    """'; <why>' for those of ``models`` the study has but has not evaluated here ('' if none)."""
    why = ctx.missing([m for m in models if m in ctx.in_study])
    return f"; {why}" if why else ""


def better(a: str, b: str, key: str | None = None) -> Check:
    """``a`` is lower than ``b`` (:func:`compare`)."""
    def check(ctx: Context, claim_key: str) -> Decision:
        k = _key(key, claim_key)
        if (why := ctx.missing([a, b])) is not None:
            return Decision(None, why)
        if any(k not in ctx.figs[m] for m in (a, b)):
            return Decision(None, f"no {k} for {a} or {b}")
        word, how = compare(ctx.figs[a][k], ctx.figs[b][k])
        return Decision(_word(word), _pair_text(ctx, a, b, k, how), [a, b], [a])
    return check


def beats_all(a: str, others: Sequence[str], key: str | None = None, magnitude: bool = False,
              require_all: bool = True) -> Check:
    """``a`` is lower than each of ``others`` (``magnitude``: |a| against |other|): agrees when lower
    than all, disagrees when any other is lower, else inconclusive. Degenerate others are left out
    (named); ``require_all``: every other must be evaluated here, else 'not measured'."""
    def check(ctx: Context, claim_key: str) -> Decision:
        k = _key(key, claim_key)
        rest = [m for m in others if m != a]
        if (why := ctx.missing([a])) is not None or (require_all and (why := ctx.missing(rest)) is not None):
            return Decision(None, why)
        ok, bad = ctx.usable(rest, k)
        if k not in ctx.figs[a] or not ok:
            return Decision(None, f"no {k} for {a} or its comparators" + _pending(ctx, rest))
        words = {m: compare(ctx.figs[a][k], ctx.figs[m][k], magnitude=magnitude) for m in ok}
        text = f"{a} {show(ctx.figs[a][k], _how(k))}; " + ", ".join(
            f"{m} {show(ctx.figs[m][k], _how(k))} ({w}, {h})" for m, (w, h) in words.items())
        if bad:
            text += f"; left out as degenerate: {', '.join(bad)}"
        vs = [w for w, _ in words.values()]
        res: bool | str = False if "higher" in vs else INCONCLUSIVE if INCONCLUSIVE in vs else True
        return Decision(res, text, [a, *ok], [a])
    return check


def all_better(models: Sequence[str], than: str, key: str | None = None, require_all: bool = False) -> Check:
    """Every evaluated one of ``models`` is lower than ``than``; disagrees if any is higher,
    inconclusive if any is not resolved. A degenerate one of ``models`` disagrees (it beats nothing)."""
    def check(ctx: Context, claim_key: str) -> Decision:
        k = _key(key, claim_key)
        rest = [m for m in models if m != than]
        if (why := ctx.missing([than])) is not None or (require_all and (why := ctx.missing(rest)) is not None):
            return Decision(None, why)
        have = [m for m in rest if m in ctx.figs and k in ctx.figs[m]]
        if k not in ctx.figs[than] or not have:
            return Decision(None, f"{than} or the others not evaluated" + _pending(ctx, rest))
        words = {m: compare(ctx.figs[m][k], ctx.figs[than][k]) for m in have if not ctx.degenerate.get(m)}
        text = f"{than} {show(ctx.figs[than][k], _how(k))}; " + ", ".join(
            f"{m} {show(ctx.figs[m][k], _how(k))} ({w}, {h})" for m, (w, h) in words.items())
        vs = [w for w, _ in words.values()]
        res: bool | str = False if "higher" in vs else INCONCLUSIVE if INCONCLUSIVE in vs else True
        return Decision(res, text, [than, *have], have)
    return check


def within(a: str, others: Sequence[str] | Callable[[Context], Sequence[str]], tolerance: float,
           key: str | None = None) -> Check:
    """``a`` is within ``tolerance`` (relative) of the best non-degenerate one of ``others`` (a list,
    or a function of the context choosing them): a against (1 + tolerance) x the best."""
    def check(ctx: Context, claim_key: str) -> Decision:
        k = _key(key, claim_key)
        pool = [m for m in (others(ctx) if callable(others) else others) if m != a]
        if (why := ctx.missing([a])) is not None:
            return Decision(None, why)
        ok, bad = ctx.usable(pool, k)
        if k not in ctx.figs[a] or not ok:
            named = ", ".join(pool) or "none qualifies"
            text = f"no comparator evaluated here ({named})"
            if pool:  # the study's comparators still to come, else why each is missing
                text += _pending(ctx, pool) or (f"; {ctx.missing(pool)}" if ctx.missing(pool) else "")
            elif callable(others):  # chosen by size among models: those not evaluated yet have no size
                wait = _pending(ctx, [m for m in getattr(others, "candidates", ()) if m != a and m not in ctx.figs])
                text += f"; not evaluated, so of unknown size{wait}" if wait else ""
            return Decision(None, text)
        best = min(ok, key=lambda m: ctx.figs[m][k]["value"])
        word, how = compare(ctx.figs[a][k], ctx.figs[best][k], factor=1 + tolerance)
        fa, fb = ctx.figs[a][k], ctx.figs[best][k]
        text = (f"{a} {show(fa, _how(k))} vs the best of {', '.join(ok)}: {best} {show(fb, _how(k))} (ratio "
                f"{fa['value'] / fb['value']:.2g}; within {tolerance:.0%} means at most {1 + tolerance:g}; {how})"
                if fb["value"] else f"{a} vs {best}: zero figure")
        if (gone := ctx.missing(pool)) is not None:
            text += f"; {gone}"
        if bad:
            text += f"; left out as degenerate: {', '.join(bad)}"
        return Decision(_word(word), text, [a, *ok], [a])
    return check


def below_zero(a: str, key: str | None = None) -> Check:
    """``a``'s figure (a bias) is below zero: its interval lies below 0."""
    def check(ctx: Context, claim_key: str) -> Decision:
        k = _key(key, claim_key)
        if (why := ctx.missing([a])) is not None:
            return Decision(None, why)
        f = ctx.figs[a].get(k)
        if f is None:
            return Decision(None, f"no {k} for {a}")
        if f.get("hi") is None:
            return Decision(INCONCLUSIVE, f"{a} {show(f, _how(k))}", [a], [a])
        res: bool | str = True if f["hi"] < 0 else False if f["lo"] > 0 else INCONCLUSIVE
        return Decision(res, f"{a} {show(f, _how(k))} against 0", [a], [a])
    return check


def more_stable(a: str, others: Sequence[str], key: str | None = None) -> Check:
    """``a`` varies less from seed to seed than each of ``others``: the F-based 68 % interval of the
    ratio of seed variances s_a^2 / s_o^2 lies below 1 (needs >= 2 seeds on each side)."""
    def check(ctx: Context, claim_key: str) -> Decision:
        k = _key(key, claim_key)
        if (why := ctx.missing([a, *others])) is not None:
            return Decision(None, why)
        figs = {m: ctx.figs[m].get(k) for m in (a, *others)}
        few = [m for m, f in figs.items() if f is None or f["spread"] != "t68"]
        if few:
            return Decision(None, f"stability needs >= 2 seeds each: {', '.join(few)} has fewer")
        fa = figs[a]
        parts, words = [], []
        for m in others:
            ratio, lo, hi = variance_ratio_interval(fa["std"], fa["n"], figs[m]["std"], figs[m]["n"])
            words.append("lower" if hi < 1 else "higher" if lo > 1 else INCONCLUSIVE)
            parts.append(f"s({a})^2/s({m})^2 = {ratio:.2g} [{lo:.2g}, {hi:.2g}] F68")
        res: bool | str = False if "higher" in words else INCONCLUSIVE if INCONCLUSIVE in words else True
        return Decision(res, "; ".join(parts), [a, *others], [a])
    return check


def both(*checks: Check) -> Check:
    """Every part holds: disagrees if one disagrees, not measured if one is, inconclusive if one is."""
    def check(ctx: Context, claim_key: str) -> Decision:
        parts = [c(ctx, claim_key) for c in checks]
        oks = [p.ok for p in parts]
        if None in oks:  # not measured: why, each reason once
            reasons = [r for p in parts if p.ok is None for r in p.text.split("; ")]
            return Decision(None, "; ".join(dict.fromkeys(reasons)))
        res: bool | str = False if False in oks else INCONCLUSIVE if INCONCLUSIVE in oks else True
        return Decision(res, " AND ".join(f"({_verdict_word(p.ok)}) {p.text}" for p in parts),
                        list(dict.fromkeys(m for p in parts for m in p.used)),
                        list(dict.fromkeys(m for p in parts for m in p.subjects)))
    return check


def larger_baselines(model: str, factor: float = 5.0, pool: Sequence[str] = (*PAPER, "cnn_attn_code")) -> Callable[
        [Context], list[str]]:
    """The models of ``pool`` with at least ``factor`` x the parameters of ``model`` (metrics.json)."""
    def choose(ctx: Context) -> list[str]:
        mine = ctx.params.get(model)
        if not mine:
            return []
        return [m for m in pool if m != model and ctx.params.get(m, 0) >= factor * mine]
    choose.candidates = tuple(pool)  # type: ignore[attr-defined]  # the models it chooses among
    return choose


# ------------------------------------------------------------------------------ claims
@dataclass
class Claim:
    """A qualitative statement, the rule that checks it, the figure it is decided on (``None``: the
    paper's dE/S reach for the paper's claims), and where it applies: ``b050`` (the B = 0.5 test
    sets), ``b0`` (B = 0), ``jet`` (jet sets)."""

    source: str
    text: str
    check: Check
    metric: str | None = None
    needs: tuple[str, ...] = ()  # a study without one of these models leaves the claim out (our own A/B claims)
    where: str = "b050"
    why: str = ""  # why the claim may be unmeasurable here (a model this machine cannot train, ...)
    #: The comparator is an untrained reference (the analytic inversion): a subject that beats it while still
    #: improving keeps beating it (the evaluated checkpoint is the run's best validation loss so far), so an
    #: 'agrees' stands; any other verdict with a subject still improving is 'not converged'.
    untrained_reference: bool = False


PAPER_REF = "arXiv:2410.07250"
V2 = PAPER_REF + " (v2)"
IMAGE = (*PAPER, "cnn_attn_code", *(m for m in IMPROVED if m not in POINT), "residual_cnn")
LEARNED = (*PAPER, "cnn_attn_code", *POINT, *IMPROVED, *JET_AB, *RESIDUAL)
NOT_CNN = tuple(m for m in PAPER if m not in ("cnn", "unet"))
CLAIMS = [
    Claim(PAPER_REF, "B = 0.5: the MLP fails (every other paper image model is better)",
          all_better(tuple(m for m in PAPER if m != "mlp"), "mlp", require_all=True)),
    Claim(PAPER_REF, "B = 0: the MLP does well (within 10 % of the best other paper image model)",
          within("mlp", tuple(m for m in PAPER if m != "mlp"), 0.10), where="b0"),
    Claim(PAPER_REF, "rnn and cnn improve on mlp ('modestly': the size of the gain is shown, not tested)",
          both(better("rnn", "mlp"), better("cnn", "mlp"))),
    Claim(PAPER_REF, "unet improves on cnn", better("unet", "cnn")),
    Claim(PAPER_REF, "cnn_attn and cnn3d improve (significantly) on cnn",
          both(better("cnn_attn", "cnn"), better("cnn3d", "cnn"))),
    Claim(PAPER_REF, "self-attention improves the CNN (cnn_attn as the paper's text builds it)", better("cnn_attn", "cnn")),
    Claim(PAPER_REF, "self-attention improves the CNN (cnn_attn_code, as the authors' code builds it)",
          better("cnn_attn_code", "cnn"), needs=("cnn_attn_code",)),
    Claim(PAPER_REF, "self-attention is the most precise and the most stable of the CNN variants (cnn_attn against "
          "cnn and cnn3d: figure and seed-to-seed spread)",
          both(beats_all("cnn_attn", ("cnn", "cnn3d")), more_stable("cnn_attn", ("cnn", "cnn3d")))),
    Claim(PAPER_REF, "self-attention improves the U-Net", better("unet_attn", "unet")),
    Claim(PAPER_REF, "3D convolutions over the detector layers improve the CNN", better("cnn3d", "cnn")),
    Claim(PAPER_REF, "unet_attn is the best of all (paper) models", beats_all("unet_attn", PAPER)),
    Claim(V2, "the ~90k-parameter SE-block CNN is close to much larger baselines (v2: 'a 5M-parameter baseline'; "
          "no paper config here is that large, so: within 10 % of the best paper model run with >= 5x its "
          "parameters)", within("cnn", larger_baselines("cnn"), 0.10)),
    Claim(V2, "a 25M-parameter 3D CNN (cnn3d_large) is the best model", beats_all("cnn3d_large", PAPER, require_all=False),
          why="cnn3d_large (25.6M parameters) is trained only in the `paper` (GPU) study: on the 2-core CPU one "
          "training step costs ~140x the cnn3d's, ~2 h per 8000-event epoch in bf16 (measured; cpu_paper.yaml)"),
    Claim("DESIGN §6", "every learned model beats the analytic physics baseline", all_better(LEARNED, "analytic"),
          RANK_DECIDE),
    *[Claim("DESIGN §6", f"the improved {v} beats its paper version {b}", better(v, b), RANK_DECIDE, (v,))
      for v, b in IMPROVED.items()],
    Claim("DESIGN §6", "edgeconv is within 10 % of the best paper image model (r: |median| + 68 % half-width)",
          within("edgeconv", PAPER, 0.10), RANK_DECIDE),
    Claim("DESIGN §6", "the dynamic-graph DGCNN (edgeconv_dgcnn) is within 10 % of the best paper image model",
          within("edgeconv_dgcnn", PAPER, 0.10), RANK_DECIDE, ("edgeconv_dgcnn",)),
    Claim("issue 27", "a dynamic graph (edgeconv_dgcnn) improves on the static-graph edgeconv",
          better("edgeconv_dgcnn", "edgeconv"), RANK_DECIDE, ("edgeconv_dgcnn",)),
]
#: Issue 26: every residual model (and its hard-tail variant) against its own untrained start, the analytic
#: inversion (the model with its correction at zero), and the two representations against each other.
RESIDUAL_LABELS = (*RESIDUAL, "residual_cnn_tail", "residual_gnn_tail", "residual_cnn_long", "residual_gnn_long")
RESIDUAL_CLAIMS = [
    *[Claim("issue 26", f"{m} beats its own untrained start, the analytic inversion (r: |median| + 68 % half-width)",
            better(m, "analytic"), RANK_DECIDE, (m,), where=w, untrained_reference=True)
      for w in ("b050", "jet") for m in RESIDUAL_LABELS],
    *[Claim("issue 26", "residual_gnn is within 10 % of residual_cnn per pixel (r: |median| + 68 % half-width; "
            "equal training time: both ~600 s caps)", within("residual_gnn", ("residual_cnn",), 0.10), RANK_DECIDE,
            RESIDUAL, where=w) for w in ("b050", "jet")],
]
JET_CLAIMS = [
    Claim(PAPER_REF, "rnn is more accurate in jet position than cnn and unet (D median)",
          beats_all("rnn", ("cnn", "unet")), JET_POSITION, where="jet"),
    Claim(PAPER_REF, "cnn3d improves jet position over cnn and has the smallest position spread of the paper models",
          both(better("cnn3d", "cnn", JET_POSITION), beats_all("cnn3d", PAPER, JET_POSITION_SPREAD)),
          JET_POSITION, where="jet"),
    Claim(PAPER_REF, "unet_attn has the best jet position (D median)", beats_all("unet_attn", PAPER),
          JET_POSITION, where="jet"),
    Claim(PAPER_REF, "unet has the most accurate jet energy (matched-jet dE/E median closest to zero)",
          beats_all("unet", PAPER, magnitude=True), JET_MATCH_SCALE, where="jet"),
    Claim(PAPER_REF, "cnn3d's jet energies are concentrated (smallest matched-jet dE/E half-width) but low "
          "(median below 0)", both(beats_all("cnn3d", PAPER, JET_MATCH_WIDTH), below_zero("cnn3d", JET_MATCH_SCALE)),
          JET_MATCH_WIDTH, where="jet"),
    Claim(PAPER_REF, "cnn and unet are the weakest on jet energy (every other paper model is better: matched-jet "
          "dE/E |median| + half-width)",
          both(all_better(NOT_CNN, "cnn", require_all=True), all_better(NOT_CNN, "unet", require_all=True)),
          "jet_energy_match_rel_reach_68", where="jet"),
    Claim("DESIGN §6", "edgeconv is at least as good as the best paper image model on the jet set (truth-jet dE/E "
          "|median| + half-width)", beats_all("edgeconv", PAPER, require_all=False), "jet_energy_rel_reach_68",
          where="jet"),
    *[Claim("issue 15", f"the improved {v} has a jet energy scale closer to the truth than its paper version {b}",
            beats_all(v, (b,), magnitude=True), JET_SCALE, (v,), where="jet") for v, b in IMPROVED.items()],
    *[Claim("issue 15", f"{what} ({t}) brings {b}'s jet energy scale closer to the truth",
            beats_all(t, (b,), magnitude=True), JET_SCALE, (t,), where="jet") for t, (b, what) in JET_AB.items()],
]
ALL_CLAIMS = CLAIMS + JET_CLAIMS + RESIDUAL_CLAIMS


def _verdict_word(ok: bool | str | None) -> str:
    return ok if isinstance(ok, str) else "not measured" if ok is None else ("agrees" if ok else "disagrees")


@dataclass
class Budgets:
    """The runs of the study by the names claims use, for the compute side of a claim."""

    runs: dict[str, list[Run]] = field(default_factory=dict)

    def trained(self, models: Sequence[str]) -> dict[str, list[Run]]:
        """The models of ``models`` that trained (their runs with an epoch recorded)."""
        return {m: [r for r in self.runs.get(m, []) if r.history] for m in models
                if any(r.history for r in self.runs.get(m, []))}

    def at_common(self, models: Sequence[str]) -> tuple[str, float | None, dict[str, list[tuple[int, str, float | None]]]]:
        """The axis, the compared budget (the largest every trained run of ``models`` reached) and,
        per model, each seed's (seed, status at the budget, validation r half-width at it)."""
        runs = self.trained(models)
        every = [r for rs in runs.values() for r in rs]
        axis = compute_axis(every)
        totals = [t for r in every if (t := run_total(r, axis)) is not None]
        budget = min(totals) if totals else None
        out = {m: [(r.seed, status_at(r, axis, budget), value_at(r, axis, budget) if budget is not None else None)
                   for r in rs] for m, rs in runs.items()}
        return axis, budget, out


def budget_text(axis: str, budget: float | None, per: Mapping[str, list[tuple[int, str, float | None]]]) -> str:
    """The compute side of a claim: the budget and each model's validation figure and status at it."""
    if budget is None or not per:
        return "-"
    unit = "FLOP" if axis == "train_flops" else "s"
    cells = []
    for m, seeds in per.items():
        vals = [v for _, _, v in seeds if v is not None]
        val = (f"{sum(vals) / len(vals):.3f}" if vals else "-")
        statuses = sorted({st for _, st, _ in seeds})
        cells.append(f"{m} {val} ({', '.join(statuses)})")
    return f"B = {budget:.3g} {unit}: " + "; ".join(cells)


def decide(claim: Claim, ctx: Context, budgets: Budgets, key: str) -> tuple[str, str, str]:
    """A claim's verdict word, its figures and its compute side on one test set, after the rules:
    a model it needs is missing -> 'not measured' with why; a degenerate model it claims is better
    -> 'disagrees'; a degenerate comparator -> 'not measured'; a model it compares still improving at
    the compared budget -> 'not converged'."""
    d = claim.check(ctx, key)
    if d.ok is None:
        if ctx.partial and NOT_RUN_YET in d.text and "not in this study" not in d.text:
            return NOT_RUN_YET, d.text, "-"  # planned: the study has not got there yet
        return "not measured", d.text + (f" ({claim.why})" if claim.why else ""), "-"
    bad = [m for m in d.subjects if ctx.degenerate.get(m)]
    axis, budget, per = budgets.at_common(d.used)
    side = budget_text(axis, budget, per)
    if bad:
        return "disagrees", d.text + "; degenerate: " + "; ".join(
            f"{m} ({degenerate_text(ctx.degenerate[m])})" for m in bad), side
    others = [m for m in d.used if ctx.degenerate.get(m) and m not in d.subjects]
    if others:
        return "not measured", d.text + "; its comparator is degenerate: " + "; ".join(
            f"{m} ({degenerate_text(ctx.degenerate[m])})" for m in others), side
    moving = sorted({m for m, seeds in per.items() for _, st, _ in seeds if improving(st)})
    if moving and claim.untrained_reference and d.ok is True and set(moving) <= set(d.subjects):
        return "agrees", (d.text + f"; still improving at the compared budget: {', '.join(moving)} (against an "
                          "untrained reference an 'agrees' stands: more training keeps the best checkpoint)"), side
    if moving:
        return NOT_CONVERGED, (d.text + f"; still improving at the compared budget: {', '.join(moving)} (the "
                               f"figures alone would read '{_verdict_word(d.ok)}')"), side
    return _verdict_word(d.ok), d.text, side


def claims_table(figs: Figures, claims: Sequence[Claim], models: Sequence[str] | None = None,
                 ctx: Context | None = None, budgets: Budgets | None = None) -> str:
    """Each claim: its verdict on the figure it is decided on (:func:`decide`), for a claim decided on
    the paper's dE/S the verdict on r beside it, and its compute side (the compared budget, each
    model's validation r half-width and status there). ``models``: the study's models (a claim that
    ``needs`` a model the study does not have is left out; None: every claim)."""
    ctx = ctx or Context(figs)
    budgets = budgets or Budgets()
    lines = ["| source | claim | decided on | verdict | figures | on r (relative) | at the compared budget "
             "(validation r half-width, status) |", "|---|---|---|---|---|---|---|"]
    for c in claims:
        if models is not None and not set(c.needs) <= set(models):
            continue
        key = c.metric or PAPER_DECIDE
        word, text, side = decide(c, ctx, budgets, key)
        beside = "-"
        if key == PAPER_DECIDE:
            w_r, t_r, _ = decide(c, ctx, budgets, RANK_DECIDE)
            beside = f"{w_r}: {t_r}"
        lines.append(f"| {c.source} | {cell(c.text)} | `{key}` | **{word}** | {cell(text)} | {cell(beside)} | "
                     f"{cell(side)} |")
    return "\n".join(lines) + "\n"


def _resolved(figs: Figures, key: str, models: Sequence[str]) -> tuple[dict[str, int], set[str]]:
    """Ranks of ``models`` by ``key`` (1 = best, by the value) and the ones whose interval overlaps a
    neighbour's in that order."""
    have = sorted((figs[m][key]["value"], m) for m in models if key in figs[m])
    ranks = {m: i + 1 for i, (_, m) in enumerate(have)}
    tied = set()
    for (_, m1), (_, m2) in zip(have, have[1:]):
        if compare(figs[m1][key], figs[m2][key])[0] == INCONCLUSIVE:
            tied |= {m1, m2}
    return ranks, tied


RANK_KEYS = (MSE, PAPER_DECIDE, RANK_DECIDE)


def ranking_table(figs: Figures, degenerate: Mapping[str, Any] | None = None) -> str:
    """Each model's rank by test-set MSE, by the paper's dE/S and by r, the last two as |median| +
    68 % half-width (figures a bias cannot win; 1 = best). A degenerate model is listed, flagged and
    not ranked."""
    degenerate = degenerate or {}
    ranked = [m for m in figs if not degenerate.get(m)]
    res = {k: _resolved(figs, k, ranked) for k in RANK_KEYS}
    lines = ["| model | MSE per image (rank) | dE/S \\|median\\| + 68% half-width, Eq. 1 (rank) | r \\|median\\| + 68% "
             "half-width (rank) | moves |", "|---|---:|---:|---:|---|"]
    for m, f in figs.items():
        if degenerate.get(m):
            cells = [f"{show(f.get(k), '.3g')} (not ranked)" for k in RANK_KEYS]
            lines.append(f"| {m} | " + " | ".join(cells) + " | **degenerate**: not ranked |")
            continue
        cells = [f"{show(f.get(k), '.3g')} ({res[k][0].get(m, '-')}{'=' if m in res[k][1] else ''})" for k in RANK_KEYS]
        r = [res[k][0].get(m) for k in RANK_KEYS]
        moves = "-" if None in r else ("same rank" if len(set(r)) == 1 else
                                      f"MSE {r[0]} -> abs_norm {r[1]} -> r {r[2]}")
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {moves} |")
    return "\n".join(lines) + "\n"


def bin_ranking_table(figs: Figures, degenerate: Mapping[str, Any] | None = None) -> str:
    """Rank by r's |median| + 68 % half-width in each E_true bin from 0.5 GeV (the evaluation's
    bins); a degenerate model is not ranked. Empty without per-bin figures."""
    degenerate = degenerate or {}
    keys = sorted({k for f in figs.values() for k in f if k.startswith("bin:")},
                  key=lambda k: float(k[4:].lstrip(">").split("-")[0]))
    if not keys:
        return ""
    ranked = [m for m in figs if not degenerate.get(m)]
    res = {k: _resolved(figs, k, ranked) for k in keys}
    head = "| model | " + " | ".join(f"{k[4:]} GeV" for k in keys) + " |"
    lines = [head, "|---|" + "---:|" * len(keys)]
    for m, f in figs.items():
        if degenerate.get(m):
            cells = [f"{f[k]['value']:.3f} (-)" if k in f else "-" for k in keys]
            lines.append(f"| {m} (**degenerate**, not ranked) | " + " | ".join(cells) + " |")
            continue
        cells = [f"{f[k]['value']:.3f} ({res[k][0][m]}{'=' if m in res[k][1] else ''})" if k in f else "-"
                 for k in keys]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ the page
def _aliases(per_model: dict[str, list[dict[str, Any]]], labels: Sequence[str] = ()) -> dict[str, str]:
    """label -> the model name claims use: the metrics' model name when no other run of the set and no
    other model of the study meant for this set (``labels``: evaluated yet or not) goes by it, else the
    label (so a study under way never lets a variant stand in for a model it has not evaluated yet,
    while ``mlp_b000``, the only MLP of a B = 0 test set, stands for the MLP there)."""
    names = {label: str(_get(docs[0], "model.name") or label) for label, docs in per_model.items()}
    counts: dict[str, int] = {}
    for n in names.values():
        counts[n] = counts.get(n, 0) + 1
    out = {}
    for label, n in names.items():
        unique = counts[n] == 1 and (n == label or (n not in per_model and n not in labels))
        out[label] = n if unique else label
    return out


def norm_lines(per_model: dict[str, list[dict[str, Any]]], scale: float | None, train_on: str) -> list[str]:
    """The S every dE/S figure of a test set is on, and the models whose figures were rescaled to it."""
    rescaled = {label: own for label, docs in per_model.items() for d in docs
                if (own := _get(d, "settings.norm_rescaled_from")) is not None}
    text = norm_scale_sentence(scale, rescaled, f"the largest truth pixel of the training file of the models "
                                                f"trained on `{train_on}`")
    return [text, ""] if text else []


def run_statuses(runs: Sequence[Run]) -> str:
    """The runs' budget statuses: the one status when they share it, else each with its seeds
    ("still improving (seed 1), stopped early (seeds 2, 3)")."""
    by: dict[str, list[int]] = {}
    for r in runs:
        by.setdefault(r.status, []).append(r.seed)
    if len(by) <= 1:
        return next(iter(by), "-")
    return ", ".join(f"{st} (seed{'s' if len(ss) > 1 else ''} {', '.join(str(x) for x in sorted(ss))})"
                     for st, ss in sorted(by.items(), key=lambda kv: min(kv[1])))


#: The oracle's row in a test set's table (metrics.json ``baselines.oracle``: the data file's oracle image).
ORACLE_LABEL = "oracle (measured floor)"


def oracle_figures(oracle: Mapping[str, Any] | None) -> dict[str, Fig]:
    """The figures of a set's oracle (``baselines.oracle`` of its evaluations): one evaluation of an
    image nobody trained, so each keeps its bootstrap interval over events ({} without an oracle)."""
    if not oracle:
        return {}
    return {k: c for k, f in seed_figures(oracle).items() if (c := combine([f], trained=False)) is not None}


def model_table(data: StudyData, per_model: dict[str, list[dict[str, Any]]], figs: Figures,
                degenerate: Mapping[str, Mapping[Any, list[str]]] | None = None,
                oracle: Mapping[str, Fig] | None = None) -> str:
    """The test set's table: one row per model, figures over its seeds, how their spread was made,
    and the degenerate flag; first the oracle's row (:func:`oracle_figures`) where the set has one."""
    degenerate = degenerate or {}
    jets = any(_get(d, "jets.available") for docs in per_model.values() for d in docs)
    cols = FIGURE_COLUMNS + (JET_COLUMNS if jets else [])
    head = ("| model | repr | seeds | params | epochs (per seed) | status | degenerate | spread | "
            + " | ".join(c[0] for c in cols) + " |\n|---|---|---:|---:|---|---|---|---|" + "---:|" * len(cols) + "\n")
    rows = []
    if oracle:
        rows.append(f"| {ORACLE_LABEL} | - | - | - | - | not a model | no | bootstrap | "
                    + " | ".join(show(oracle.get(key), how) for _, key, how in cols) + " |")
    for label, docs in per_model.items():
        seeds = sorted({_get(d, "training.seed") for d in docs} - {None})
        runs = [r for r in data.runs.get(label, []) if not seeds or r.seed in seeds]  # the evaluated seeds' runs
        params = _get(docs[0], "training.parameters")
        epochs = ", ".join(str(r.epochs) if r.epochs is not None else "-" for r in runs) + (
            f" / cap {runs[0].cap}" if runs else "")
        if runs and all(r.status == budget_rule.NOT_TRAINED for r in runs):
            epochs = "-"  # nothing to train (the analytic inversion): no cap either
        status = run_statuses(runs)
        flag = f"**yes**: {degenerate_text(degenerate[label])}" if degenerate.get(label) else "no"
        spread = str((figs[label].get(RANK) or {}).get("spread", "-"))
        cells = [show(figs[label].get(key), how) for _, key, how in cols]
        rows.append(f"| {label} | {_get(docs[0], 'model.repr')} | {len(seeds) or len(docs)} | "
                    f"{f'{params:,}' if isinstance(params, int) else '-'} | {epochs} | {status} | {flag} | {spread} | "
                    + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def seed_table(per_model: dict[str, list[dict[str, Any]]]) -> str:
    """Every (model, seed) evaluation on the test set: the ranking figures with their bootstrap
    intervals over test events, and the degenerate flag of each."""
    keys = ((RANK, ".3f"), ("residual_median", ".3f"), (PAPER_METRIC, ".3g"), (MSE, ".3g"))
    lines = ["| model | seed | " + " | ".join(k for k, _ in keys) + " | degenerate |",
             "|---|---:|" + "---:|" * len(keys) + "---|"]
    for label, docs in per_model.items():
        for d in docs:
            figs = _get(d, "headline.figures") or {}
            cells = []
            for k, how in keys:
                f = figs.get(k) or {}
                v, lo, hi = _number(f.get("value")), _number(f.get("lo")), _number(f.get("hi"))
                cells.append("-" if v is None else format(v, how) if lo is None or hi is None
                             else f"{format(v, how)} [{format(lo, how)}, {format(hi, how)}]")
            bad = degenerate_seeds([d])
            flag = "**yes**: " + cell(", ".join(next(iter(bad.values())))) if bad else "no"
            lines.append(f"| {label} | {_get(d, 'training.seed') if _get(d, 'training.seed') is not None else '-'} | "
                         + " | ".join(cells) + f" | {flag} |")
    return "\n".join(lines) + "\n"


#: The architectures a study compares at equal compute (its second common budget): the paper's
#: image models, the point-cloud models and the residual models, without the A/B variants.
ARCHITECTURES = (*PAPER, "cnn_attn_code", "edgeconv", "edgeconv_dgcnn", "pfn", *RESIDUAL)


def compute_table(data: StudyData) -> list[str]:
    """Every trained model's validation r half-width at common budgets beside its final figure, on the
    axis :func:`compute_axis` picks: at the largest budget every trained run of the study reached,
    and at the largest every run of the compared architectures (:data:`ARCHITECTURES`) reached."""
    runs = {label: [r for r in rs if r.history] for label, rs in data.runs.items()}
    runs = {label: rs for label, rs in runs.items() if rs}
    if not runs:
        return ["No run recorded its epochs (metrics.csv): no figure at a common budget."]
    every = [r for rs in runs.values() for r in rs]
    axis = compute_axis(every)
    totals = {label: [run_total(r, axis) for r in rs] for label, rs in runs.items()}

    def common(labels: Sequence[str]) -> float | None:
        have = [t for label in labels for t in totals.get(label, []) if t is not None]
        return min(have) if have else None

    unit = "FLOP" if axis == "train_flops" else "s"
    b_all = common(list(runs))
    if b_all is None:
        return [f"No run recorded its budget on the axis ({AXES[axis]}): no figure at a common budget."]
    arch = [label for label in runs if label in ARCHITECTURES]
    b_arch = common(arch) if arch and set(arch) != set(runs) else None
    budgets = [("B", b_all)] + ([("B_arch", b_arch)] if b_arch is not None else [])

    def mean_sd(vals: Sequence[float | None]) -> str:
        v = [x for x in vals if x is not None and math.isfinite(x)]
        miss = len(vals) - len(v)
        tail = f" ({miss} seed{'s' if miss > 1 else ''} without an epoch within it)" if miss and v else ""
        if not v:
            return "-"
        if len(v) == 1:
            return f"{v[0]:.3f} (1 seed)" + tail
        t = t_interval(v)
        return f"{t['mean']:.3f} [{t['lo']:.3f}, {t['hi']:.3f}] t68; s = {t['std']:.3f}" + tail

    text = (f"Axis: {AXES[axis]}" + ("" if axis == "train_flops" else " (not every run's metrics.csv records "
            "train_flops, so the budgets are wall time)") + f". B = {b_all:.4g} {unit}: the largest budget every "
            "trained run of the study reached.")
    if b_arch is not None:
        text += (f" B_arch = {b_arch:.4g} {unit}: the largest every run of the architectures compared reached "
                 f"({', '.join(arch)}).")
    text += (" A run's figure at a budget is the validation r 68 % half-width of its best epoch (lowest validation "
             "loss) among the epochs it finished within it; its status there follows the budget rule on those "
             "epochs ('levelled off' where the rule finds no further gain).")
    head = (f"| model | seeds | budget reached [{unit}] (per seed) | "
            + " | ".join(f"val r half-width at {n} | status at {n}" for n, _ in budgets)
            + " | final val r half-width (best epoch) | final status |")
    lines = [text, "", head, "|---|---:|---|" + "---|---|" * len(budgets) + "---|---|"]
    for label, rs in runs.items():
        cells = []
        for _, b in budgets:
            cells += [mean_sd([value_at(r, axis, b) for r in rs]), ", ".join(sorted({status_at(r, axis, b) for r in rs}))]
        final = [value_at(r, axis, math.inf) for r in rs]
        reached = ", ".join(f"{t:.3g}" if t is not None else "-" for t in totals[label])
        lines.append(f"| {label} | {len(rs)} | {reached} | " + " | ".join(cells)
                     + f" | {mean_sd(final)} | {run_statuses(rs)} |")
    return [*lines, ""]


def training_table(data: StudyData) -> str:
    """Every (model, seed) training: epochs run against its cap, best epoch, status, wall time."""
    lines = ["| model | seed | epochs / cap | best epoch | best val loss | val r half-width at best | status | "
             "train wall [s] |", "|---|---:|---|---:|---:|---:|---|---:|"]
    for label, runs in data.runs.items():
        for r in runs:
            s = r.summary or {}
            best = s.get("best_epoch")
            if best is None and r.history:
                best = int(min(r.history, key=lambda h: h.get("val_loss", math.inf))["epoch"])
            bvl = s.get("best_val_loss")
            hw = s.get("best_val_half_width")
            wall = r.wall_s
            if r.status == budget_rule.NOT_TRAINED:  # nothing to train (the analytic inversion): no epochs, no cap
                lines.append(f"| {label} | {r.seed} | - | - | {f'{bvl:.4g}' if isinstance(bvl, (int, float)) else '-'}"
                             f" | - | {r.status} | - |")
                continue
            lines.append(f"| {label} | {r.seed} | {r.epochs if r.epochs is not None else '-'} / {r.cap} | "
                         f"{best if best is not None else '-'} | {f'{bvl:.4g}' if isinstance(bvl, (int, float)) else '-'} | "
                         f"{f'{hw:.3f}' if isinstance(hw, (int, float)) else '-'} | {r.status} | "
                         f"{f'{wall:.0f}' if wall is not None else '-'} |")
    return "\n".join(lines) + "\n"


def compute_lines(ledgers: Sequence[dict[str, Any]], steps: Sequence[str] = ()) -> list[str]:
    """The compute actually spent, from the step ledgers: seconds by step kind and in total;
    ``steps`` (every step of the study) adds the ones not run yet."""
    if not ledgers:
        return ["No step ledgers (steps/*.json): compute not recorded."]
    import os

    # the step writing this page is still running: count it as this attempt, not as a failure
    ledgers = [{**r, "status": "done"} if r.get("status") == "running" and r.get("pid") == os.getpid() else r
               for r in ledgers]
    running = [str(r.get("step")) for r in ledgers if r.get("status") == "running"]
    kinds: dict[str, list[dict[str, Any]]] = {}
    for rec in ledgers:
        kinds.setdefault(str(rec.get("kind") or str(rec.get("step", "?")).split(":")[0]), []).append(rec)
    lines = ["| step kind | steps | attempts | repeated attempts | wall [s] | wall [h] |",
             "|---|---:|---:|---:|---:|---:|"]
    total = 0.0
    for kind in ("simulate", "train", "evaluate", "report", "results", *sorted(set(kinds) - {
            "simulate", "train", "evaluate", "report", "results"})):
        recs = kinds.get(kind)
        if not recs:
            continue
        sec = sum(float(r.get("seconds") or 0.0) for r in recs)
        att = sum(int(r.get("attempts") or 0) for r in recs)
        bad = sum(int(r.get("attempts") or 0) - (1 if r.get("status") in ("done", "running") else 0) for r in recs)
        total += sec
        lines.append(f"| {kind} | {len(recs)} | {att} | {bad} | {sec:.0f} | {sec / 3600:.2f} |")
    lines.append(f"| **total** | {len(ledgers)} | | | **{total:.0f}** | **{total / 3600:.2f}** |")
    machines = sorted({str(r.get("machine")) for r in ledgers if r.get("machine")})
    pending = [str(r.get("step")) for r in ledgers if r.get("status") not in ("done", "running")]
    seen = {str(r.get("step")) for r in ledgers}
    never = [s for s in steps if s not in seen and s.split(":")[0] in ("simulate", "train", "evaluate")]
    started = sorted(str(r["started"]) for r in ledgers if r.get("started"))
    finished = sorted(str(r["finished"]) for r in ledgers if r.get("finished"))
    out = [*lines, ""]
    if started and finished:
        out.append(f"Steps ran between {started[0]} and {finished[-1]} (UTC), on: {'; '.join(machines) or '?'}. "
                   "Wall seconds are summed over every attempt of a step, interrupted ones included. An attempt "
                   "is repeated after an interruption or a failure, when a fresh machine simulates the data again, "
                   "and whenever the reports and this page are rewritten (those steps always run); the ledgers do "
                   "not tell these apart.")
    if running:
        out.append(f"Running when this page was written (its seconds counted up to the last heartbeat; a step whose "
                   f"machine was lost counts as an interrupted attempt once it runs again): {', '.join(running)}.")
    if pending:
        out.append(f"Not done when this page was written (interrupted or failed): {', '.join(pending)}.")
    if never:
        out.append(f"Not run yet ({len(never)} of {len(steps)} steps; the tables above lack them): {', '.join(never)}.")
    return out


def _truth_cells(path: str | Path, names: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Chunks of the truth-side images ``names`` of an events file as (events, cells) arrays: the dense
    images flattened, or in a sparse-first file the sparse truth's cells padded with zeros (the same
    maxima, sums and per-event maxima of non-negative truth)."""
    import awkward as ak
    import uproot

    with uproot.open(path) as f:
        sparse = names[0] not in f["events"] and f"tpix_{names[0]}" in f["events"]
    if not sparse:
        for chunk in uproot.iterate(f"{path}:events", list(names), step_size=1000, library="np"):
            yield {n: chunk[n].reshape(len(chunk[n]), -1) for n in names}
        return
    for chunk in uproot.iterate(f"{path}:events", [f"tpix_{n}" for n in names], step_size=1000, library="ak"):
        width = max(1, int(ak.max(ak.num(chunk[f"tpix_{names[0]}"], axis=1), initial=0)))
        yield {n: ak.to_numpy(ak.fill_none(ak.pad_none(chunk[f"tpix_{n}"], width, axis=1, clip=True), 0.0))
               for n in names}


@functools.lru_cache(maxsize=8)
def _truth_max(path: str, mtime_ns: int, size: int) -> float:
    """The largest truth pixel of an event file (GeV); cached per file version (every jet set reads it)."""
    smax = 0.0
    for chunk in _truth_cells(path, ["truth"]):
        smax = max(smax, float(chunk["truth"].max(initial=0.0)))
    return smax


def jet_extrapolation(train_file: Path, jet_file: Path) -> str | None:
    """How far a jet set reaches beyond the training set, measured on the study's data files (None without them)."""
    if not (train_file.exists() and jet_file.exists()):
        return None
    stat = train_file.stat()
    smax = _truth_max(str(train_file), stat.st_mtime_ns, stat.st_size)
    above = total = 0.0
    events = hot = 0
    try:
        it = list(_truth_cells(jet_file, ["truth", "jet"]))
    except Exception:  # noqa: BLE001 - not a jet file: no sentence
        return None
    for chunk in it:
        truth, jet = chunk["truth"], chunk["jet"]
        above += float(jet[truth > smax].sum())
        total += float(jet.sum())
        events += len(truth)
        hot += int((truth.max(1, initial=0.0) > smax).sum())
    if total <= 0:
        return None
    share = f"{100 * above / total:.0f} %"
    text = (f"The largest truth pixel of the training file `{train_file.name}` is {smax:.1f} GeV; in "
            f"`{jet_file.name}` {share} of the injected jets' true energy lies in pixels above "
            f"it ({hot} of {events} events have such a pixel).")
    if hot:
        return text + (f" In those pixels ({share} of the jet energy) every learned model trained on that file "
                       "extrapolates beyond its training range: read their jet energy deviations against the "
                       "analytic inversion's with that in mind.")
    return text + " Models trained on that file do not extrapolate on this set."


#: Issue 15's targets on a jet set, met only when every seed meets them: jet energy (truth-jet
#: pixels) median within +-0.02 and 68 % half-width <= 0.05, the per-pixel residual half-width on the
#: jets at most 1.2x its value on the study's first non-jet test set (seed by seed), jet position
#: median <= 0.2 px, fake energy no larger than the analytic inversion's on the same set.
JET_TARGETS = {"jet_median": 0.02, "jet_width": 0.05, "pixel_ratio": 1.2, "position": 0.2}


def seed_checks(values: Mapping[Any, float], ok: Callable[[float], bool], how: str = ".3f") -> str:
    """'yes (3/3 seeds)' when every seed meets a target, else '**no** (k/n seeds)', then each seed's
    value with 'ok' or 'x'."""
    if not values:
        return "-"
    checks = {s: ok(v) for s, v in values.items()}
    met = sum(checks.values())
    head = f"yes ({met}/{len(checks)} seed{'s' if len(checks) > 1 else ''})" if met == len(checks) else (
        f"**no** ({met}/{len(checks)} seed{'s' if len(checks) > 1 else ''})")
    return head + ": " + ", ".join(f"s{s} {format(v, how)} {'ok' if checks[s] else 'x'}" for s, v in values.items())


def targets_table(figs: Figures, reference: Figures | None, reference_name: str | None,
                  degenerate: Mapping[str, Any] | None = None) -> str:
    """Issue 15's targets for every model on one jet set (``figs``), checked on every seed: a target is
    met only when every seed meets it. The pixel-width ratio is against ``reference`` (the figures of a
    non-jet test set), seed by seed (its mean where the seed is missing there)."""
    degenerate = degenerate or {}

    def seeds(fig: Fig | None) -> dict[Any, float]:
        return dict(fig["seeds"]) if fig else {}

    fake_ref = _fig(figs, "analytic", "fake_energy_fraction")
    head = ("| model | jet dE/E median: \\|median\\| <= 0.02 | jet dE/E 68% half-width: <= 0.05 | r 68% half-width, "
            f"jets / {reference_name or 'test'}: <= 1.2 | jet D median [px]: <= 0.2 | fake energy: <= analytic |")
    lines = [head, "|---|---|---|---|---|---|"]
    for model, f in figs.items():
        ref = _fig(reference or {}, model, RANK)
        ratio = {s: v / (ref["seeds"].get(s) or ref["value"]) for s, v in seeds(f.get(RANK)).items()} if ref else {}
        fake = seeds(f.get("fake_energy_fraction"))
        cells = [seed_checks(seeds(f.get(JET_SCALE)), lambda v: abs(v) <= JET_TARGETS["jet_median"]),
                 seed_checks(seeds(f.get(RANK_JET)), lambda v: v <= JET_TARGETS["jet_width"]),
                 seed_checks(ratio, lambda v: v <= JET_TARGETS["pixel_ratio"], ".2f"),
                 seed_checks(seeds(f.get(JET_POSITION)), lambda v: v <= JET_TARGETS["position"], ".2f"),
                 seed_checks(fake, lambda v: v <= fake_ref["value"], ".4f") if fake_ref else "-"]
        name = f"{model} (**degenerate**)" if degenerate.get(model) else model
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: Issue 26's targets for the residual models, per seed: r 68 % half-width at most this times analytic's.
RESIDUAL_PIXEL_RATIO = 0.8
#: Its stretch target: within this of the oracle's r 68 % half-width.
ORACLE_STRETCH = 1.10


def residual_targets_table(figs: Figures, oracle: Mapping[str, Fig] | None, jets: bool,
                           degenerate: Mapping[str, Any] | None = None) -> str:
    """Issue 26's targets for each residual model evaluated on one test set (``figs``), checked on every
    seed (met only when every seed meets it): r 68 % half-width <= 0.8 x analytic's; MSE per image below
    analytic's and below the best paper model's (lowest mean here); fake energy <= analytic's; on jet sets
    the jet-energy |median| <= 0.02 and 68 % half-width <= analytic's; the stretch, r half-width within
    10 % of the oracle's. '' when no residual model is evaluated here."""
    degenerate = degenerate or {}
    here = [m for m in RESIDUAL_LABELS if m in figs]
    ref = figs.get("analytic", {})
    if not here or RANK not in ref:
        return ""

    def seeds(model: str, key: str) -> dict[Any, float]:
        f = figs[model].get(key)
        return dict(f["seeds"]) if f else {}

    def value(f: Mapping[str, Fig] | None, key: str) -> float | None:
        return float(f[key]["value"]) if f and key in f else None

    paper = [m for m in PAPER if MSE in figs.get(m, {}) and not degenerate.get(m)]
    best_paper = min(paper, key=lambda m: figs[m][MSE]["value"]) if paper else None
    mse_bar = min(v for v in (value(ref, MSE), value(figs.get(best_paper or ""), MSE)) if v is not None)
    width, fake, jet_width = value(ref, RANK), value(ref, "fake_energy_fraction"), value(ref, RANK_JET)
    floor = value(oracle, RANK)
    heads = [f"r 68% half-width / analytic's ({width:.3f}): <= {RESIDUAL_PIXEL_RATIO:g}",
             f"MSE per image [GeV^2] < analytic's and the best paper model's ({mse_bar:.3g}; best paper model "
             f"{best_paper or 'not evaluated here'})",
             "fake energy <= analytic's" + (f" ({fake:.4f})" if fake is not None else "")]
    if jets:
        heads += ["jet dE/E \\|median\\| <= 0.02",
                  "jet dE/E 68% half-width <= analytic's" + (f" ({jet_width:.3f})" if jet_width is not None else "")]
    heads.append(f"stretch: r 68% half-width / oracle's ({floor:.3f}): <= {ORACLE_STRETCH:g}" if floor is not None
                 else "stretch: within 10 % of the oracle")
    lines = ["| model | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    for m in here:
        cells = [seed_checks({s: v / width for s, v in seeds(m, RANK).items()}, lambda v: v <= RESIDUAL_PIXEL_RATIO,
                             ".3f"),
                 seed_checks(seeds(m, MSE), lambda v: v < mse_bar, ".3g"),
                 seed_checks(seeds(m, "fake_energy_fraction"), lambda v: v <= fake, ".4f") if fake is not None else "-"]
        if jets:
            cells += [seed_checks(seeds(m, JET_SCALE), lambda v: abs(v) <= JET_TARGETS["jet_median"]),
                      seed_checks(seeds(m, RANK_JET), lambda v: v <= jet_width) if jet_width is not None else "-"]
        cells.append(seed_checks({s: v / floor for s, v in seeds(m, RANK).items()}, lambda v: v <= ORACLE_STRETCH,
                                 ".2f") if floor else "-")
        name = f"{m} (**degenerate**)" if degenerate.get(m) else m
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fig(figs: Figures, model: str, key: str) -> Fig | None:
    return figs.get(model, {}).get(key)


def field_of(per_model: Mapping[str, list[dict[str, Any]]]) -> float | None:
    """The magnetic field of a test set, read off its evaluations' dataset name (``..._B0.50``)."""
    for docs in per_model.values():
        for d in docs:
            m = re.search(r"_B(\d+(?:\.\d+)?)", str(_get(d, "dataset.name") or ""))
            if m:
                return float(m.group(1))
    return None


def set_kind(per_model: Mapping[str, list[dict[str, Any]]]) -> str:
    """``jet`` (a jet set), ``b0`` (a B = 0 set) or ``b050`` (the others): which claims apply."""
    if any(_get(d, "jets.available") for docs in per_model.values() for d in docs):
        return "jet"
    return "b0" if field_of(per_model) == 0.0 else "b050"


def how_to_read() -> list[str]:
    """The page's section on how figures and verdicts are made."""
    return [
        "## How to read the verdicts",
        "",
        f"**Over seeds.** A figure over n >= 2 training seeds is shown as `mean [lo, hi] t68; s = ...`: the mean, "
        f"the t-based {SEED_CONFIDENCE:.0%} interval for the mean (mean +- t(0.84, n - 1) s / sqrt(n); with 3 seeds "
        "+- 0.76 s) and the seed standard deviation s. A model trained with one seed borrows the pooled seed "
        "standard deviation of its family's multi-seed models on the same figure (`value [lo, hi] s = ... "
        "(family ...)`, interval value +- t s; the spread column names the models pooled), or is marked "
        "`(1 seed: no spread)` and then decides nothing. The analytic inversion trains nothing: its interval is "
        "the 68 % bootstrap over test events (`bootstrap`), which is far narrower than any seed spread.",
        "",
        "**Comparisons.** Two models trained with the same seeds are compared by the mean of their per-seed "
        "differences and its t68 interval (paired); otherwise a difference counts only where the two 68 % "
        "intervals do not overlap. 'agrees' / 'disagrees' where the comparison resolves, else 'inconclusive'.",
        "",
        f"**Figures a bias cannot win.** A model predicting nothing has r = -1 on every truth pixel, so its r "
        f"half-width is 0. Rankings and claims therefore use |median| + 68 % half-width (`{RANK_DECIDE}` for r, "
        f"`{PAPER_DECIDE}` for the paper's dE/S), and a model flagged degenerate is shown but never ranked and "
        f"never makes a claim agree (a claim that it is better than another disagrees). Rule "
        f"(`pfgraph.utils.degenerate`, the `degenerate` object of metrics.json where the evaluation wrote one): "
        f"{DEGENERATE_RULE}.",
        "",
        f"**The paper's claims** are decided on the paper's Eq. (1), dE_nor = E_pred/S - E_true/S over truth pixels "
        f"(S: the training set's largest truth pixel), as |median| + half-width (`{PAPER_DECIDE}`); the verdict on "
        f"r = (E_pred - E_true)/E_true (`{RANK_DECIDE}`) is shown beside, because the two can disagree (an "
        "absolute figure is dominated by the large pixels, r weighs every pixel alike). Jet claims use the figure "
        "they name (jet position D median, matched-jet dE/E). DESIGN §6's targets are stated on r. Each claim "
        "names its comparators; one whose model is missing is 'not measured', with the reason.",
        "",
        "**Equal compute.** A claim's compared budget is the largest budget every model it compares reached "
        "(training FLOPs where every run records them, else training wall seconds). Where any of those models was "
        "still improving at that budget (by the budget rule below, on its epochs within the budget), the verdict "
        f"is **{NOT_CONVERGED}**, never agrees or disagrees: the figures would compare budgets, not "
        "architectures. Where none was, the figures have levelled off and the claim is decided on the test-set "
        "figures; the compute column shows each model's validation r half-width at the budget. One exception: "
        "against an untrained reference (issue 26's 'beats its own untrained start, the analytic inversion'), a "
        "model already ahead while still improving keeps its 'agrees' (its evaluated checkpoint is its best "
        "validation loss so far; more training can only keep or lower it); any other verdict there is "
        f"{NOT_CONVERGED}.",
        "",
        "**Targets** (issue 15 on the jet sets; issue 26 for the residual models on every set) are met only when "
        "every seed meets them; each seed's value is listed with 'ok' or 'x'.",
        "",
        f"Budget status of a run: {budget_rule.RULE}. (Taken from the run's `train_summary.json` when it records "
        "one, else derived from its `metrics.csv` by this rule.)",
        "",
    ]


def progress_lines(data: StudyData) -> list[str]:
    """A partial page's header: the planned trainings and evaluations done (by their ledgers), the
    compute spent so far, and what the page is."""
    by_step = {str(r.get("step")): r for r in data.ledgers}

    def count(kind: str) -> tuple[int, int, int, int]:
        planned = [s for s in data.steps if s.startswith(f"{kind}:")]
        states = [str((by_step.get(s) or {}).get("status")) for s in planned]
        return (len(planned), states.count("done"), states.count("running"),
                sum(st not in ("done", "running", "None") for st in states))

    n_train, done_train, running, stopped = count("train")
    n_eval, done_eval, _, _ = count("evaluate")
    seconds = sum(float(r.get("seconds") or 0.0) for r in data.ledgers)
    train_s = sum(float(r.get("seconds") or 0.0) for r in data.ledgers if str(r.get("step", "")).startswith("train:"))
    return [f"**Partial: {done_train} of {n_train} planned trainings done** ({running} running, {stopped} "
            f"interrupted or failed, {n_train - done_train - running - stopped} not started), {done_eval} of {n_eval} "
            f"evaluations done; compute spent so far {seconds / 3600:.2f} h of wall time ({train_s / 3600:.2f} h "
            "training), summed over the step ledgers.", "",
            f"Written by `pfgraph study {data.study.get('name')} --results-now` from the steps done so far; it "
            "trained and evaluated nothing, and the study may still be running. Every model, test set or claim "
            f"the study has planned but not trained or evaluated yet is marked **{NOT_RUN_YET}** (not 'not "
            "measured'); verdicts, rankings and the common budgets can change as the remaining steps finish.", ""]


def build_results(root: str | Path, evidence: str | None = None, partial: bool = False) -> str:
    """The text of RESULTS.md for the study folder ``root`` (``evidence``: where the files are kept, for
    the note); ``partial``: the page of a study under way (``pfgraph study --results-now``: its progress
    in the header, everything planned and not there yet marked :data:`NOT_RUN_YET`)."""
    data = load_study_folder(root)
    study = data.study
    root = Path(root)
    where = evidence or f"{root}/"
    out = [
        f"# Results so far: study `{study.get('name')}` (partial)" if partial
        else f"# Results: study `{study.get('name')}`",
        "",
        *(progress_lines(data) if partial else []),
        f"Generated by `pfgraph study` ({'--results-now' if partial else 'results step'}, `pfgraph.study.results`) "
        f"from the study folder; nothing "
        f"here is typed in by hand. Every figure comes from the files kept in `{where}`: the resolved study "
        "(`study.yaml`), one `metrics.json` per (model, seed, test set), each run's `train_summary.json` and "
        "`metrics.csv`, and one ledger per step (`steps/*.json`).",
        "",
    ]
    if study.get("description"):
        out += [str(study["description"]).strip(), ""]
    ds = study.get("datasets") or {}
    out += ["Datasets: " + "; ".join(f"`{k}` = {v.get('sim')} ({v.get('events') or 'preset'} events, seed "
                                     f"{v.get('seed') if v.get('seed') is not None else 'preset'})"
                                     for k, v in ds.items()) + f". Training on `{study.get('train_on')}` (its "
            "train/validation split as the train config says); evaluated on " +
            ", ".join(f"`{e}`" for e in study.get("evaluate_on") or []) + ".", ""]
    out += how_to_read()
    if data.left_out:
        out += ["Evaluations left out (they fail the manifest check the study runner applies):", "",
                *[f"- {why}" for why in data.left_out], ""]
    own = [f"`{m.get('name') or m.get('model')}` on `{m['train_on']}`" for m in study.get("models") or []
           if isinstance(m, dict) and m.get("train_on") and m.get("train_on") != study.get("train_on")]
    if own:
        out += ["Trained on another file than the study's: " + ", ".join(own) + ".", ""]
    jet_sets = {name for name, per_model in data.evals.items()
                if any(_get(d, "jets.available") for docs in per_model.values() for d in docs)}
    untrained = [label for label, runs in data.runs.items() if runs and all(r.status == budget_rule.NOT_TRAINED for r in runs)]
    all_figs = {name: figures(per_model, untrained) for name, per_model in data.evals.items()}
    reference_name = next((n for n in data.evals if n not in jet_sets and field_of(data.evals[n]) != 0.0), None)
    reference = all_figs[reference_name] if reference_name else None
    labels = [str(m.get("name") or m.get("model")) for m in study.get("models") or [] if isinstance(m, dict)]
    trained_on = [str(study.get("train_on"))] + [str(m["train_on"]) for m in study.get("models") or []
                                                 if isinstance(m, dict) and m.get("train_on")]
    trained_on = [t for t in dict.fromkeys(trained_on) if t in ds]  # each training file once, the study's first
    across: dict[str, dict[str, str]] = {}
    for name, per_model in data.evals.items():
        figs_by_label = all_figs[name]
        meant = data.eval_labels.get(name, list(per_model))
        alias = _aliases(per_model, meant)
        figs = {alias[label]: f for label, f in figs_by_label.items()}
        degenerate = {label: bad for label, docs in per_model.items() if (bad := degenerate_seeds(docs))}
        kind = set_kind(per_model)
        names_here = set(meant) | {str(m.get("model")) for m in study.get("models") or []
                                   if isinstance(m, dict) and str(m.get("name") or m.get("model")) in meant}
        ctx = Context(figs, {alias[m]: b for m, b in degenerate.items()},
                      {alias[m]: p for m, docs in per_model.items()
                       if isinstance(p := _get(docs[0], "training.parameters"), int)}, names_here | set(figs),
                      partial)
        budgets = Budgets({**data.runs, **{alias[label]: data.runs.get(label, []) for label in per_model}})
        claims = [c for c in ALL_CLAIMS if c.where == kind]
        field_text = "" if field_of(per_model) is None else f" (B = {field_of(per_model):g} T)"
        oracle = oracle_figures(data.oracles.get(name))
        out += [f"## Test set `{name}`{field_text}", "", model_table(data, per_model, figs_by_label, degenerate, oracle),
                ""]
        if oracle:
            out += [f"`{ORACLE_LABEL}`: the data file's oracle image (each particle's energy from its own track, ECAL "
                    "and HCAL measurements alone, docs/METRICS.md), evaluated with the same code on the same events: "
                    "what a reconstruction resolving every overlap would reach. Not a model: never ranked, in no "
                    "claim.", ""]
        if partial and (later := [m for m in meant if m not in per_model]):
            out += [f"**{NOT_RUN_YET}** on this test set (planned, no evaluation yet): "
                    + ", ".join(f"`{m}`" for m in later) + ".", ""]
        out += norm_lines(per_model, data.norm_scales.get(name), str(study.get("train_on")))
        if degenerate:
            out += ["Degenerate here (shown, never ranked, never making a claim agree): "
                    + "; ".join(f"`{m}` ({degenerate_text(b)})" for m, b in degenerate.items()) + ".", ""]
        out += ["Claims on this test set:", "", claims_table(figs, claims, [*labels, *alias.values()], ctx, budgets),
                "Rank by metric (1 = best; '=' marks a model whose interval overlaps its neighbour's in that "
                "order, so the order of the two is not resolved; degenerate models are not ranked):", "",
                ranking_table(figs_by_label, degenerate)]
        bins = bin_ranking_table(figs_by_label, degenerate)
        if bins:
            out += ["Rank by E_true bin (r: |median| + 68 % half-width of the truth pixels in the bin, mean over "
                    "seeds; the evaluation's bins from 0.5 GeV; the > 16 GeV range is its 16-32 GeV bin and, where the "
                    "set has such pixels, its > 32 GeV bin, shown apart: quantiles of two bins cannot be merged "
                    "without the pixels):", "", bins]
        if residual := residual_targets_table(figs_by_label, oracle, kind == "jet", degenerate):
            out += ["Issue 26's targets for the residual models on this set, met only when every seed meets them "
                    "(each seed's value with ok / x; the references are this set's analytic inversion, paper models "
                    "and oracle):", "", residual]
        out += ["Every seed (value [68 % bootstrap interval over test events]):", "", seed_table(per_model)]
        for c in claims:
            if c.text.startswith(("B = 0: the MLP", "B = 0.5: the MLP")):
                across.setdefault(c.text.split(":")[0], {})[name] = decide(c, ctx, budgets, c.metric or PAPER_DECIDE)[0]
        if kind == "jet":
            out += ["Issue 15's targets on this jet set, met only when every seed meets them (each seed's value "
                    f"with ok / x; the per-pixel ratio against `{reference_name}`, seed by seed):", "",
                    targets_table(figs_by_label, reference, reference_name, degenerate)]
            for train in trained_on:
                note = jet_extrapolation(root / "data" / f"{train}.root", root / "data" / f"{name}.root")
                if note:
                    out += [note, ""]
    waiting = [ds_name for ds_name in data.eval_labels if ds_name not in data.evals]
    if partial:
        for ds_name in waiting:
            out += [f"## Test set `{ds_name}`", "", f"**{NOT_RUN_YET}**: no evaluation on this test set so far "
                    "(planned: " + ", ".join(f"`{m}`" for m in data.eval_labels[ds_name]) + ").", ""]
    out += granularity_section(data)
    out += ["## Claims across test sets", "", *mlp_claim(across, pending=partial and bool(waiting)), ""]
    out += ["## Training budgets", "", "The best validation loss is in its run's own units (its loss function, on "
            "targets divided by its own S): compare it within a model, not across models; the validation r "
            "half-width is one figure for all.", "", training_table(data), "",
            "### Figures at equal compute", "", *compute_table(data),
            "## Compute spent", "", *compute_lines(data.ledgers, data.steps), ""]
    return "\n".join(out)


def mlp_claim(parts: Mapping[str, Mapping[str, str]], pending: bool = False) -> list[str]:
    """The paper's 'the MLP does well at B = 0 and fails at B = 0.5': both parts' verdicts (each
    decided on its own test set above) and the claim's, which holds only when both agree.
    ``pending``: a test set of the study has no evaluation yet (a partial page): a missing part is
    :data:`NOT_RUN_YET`, not 'not measured'."""
    b0, b05 = parts.get("B = 0", {}), parts.get("B = 0.5", {})
    words = [*b0.values(), *b05.values()]
    if (not b0 or not b05) and pending:
        word = NOT_RUN_YET
        why = "needs a B = 0 and a B = 0.5 test set; a test set of this study has no evaluation yet" + "".join(
            f"; {part} on `{s}`: {w}" for part, sets in (("B = 0", b0), ("B = 0.5", b05)) for s, w in sets.items())
    elif not b0 or not b05:
        word = "not measured"
        why = "needs a B = 0 and a B = 0.5 test set with the paper image models" + (
            "" if b0 else " (no B = 0 test set in this study)") + ("" if b05 else " (no B = 0.5 test set)")
    else:
        order = ("disagrees", "not measured", NOT_RUN_YET, NOT_CONVERGED, INCONCLUSIVE)
        word = next((w for w in order if w in words), "agrees")
        why = "; ".join(f"{part} on `{s}`: {w}" for part, sets in (("B = 0", b0), ("B = 0.5", b05))
                        for s, w in sets.items())
    return ["| source | claim | verdict | parts |", "|---|---|---|---|",
            f"| {PAPER_REF} | the MLP does well at B = 0 and fails at B = 0.5 | **{word}** | {why} |"]


def keep_evidence(root: str | Path, keep: str | Path) -> None:
    """Copy the files RESULTS.md is built from (study.yaml, metrics.json, train_summary.json,
    metrics.csv, ledgers) under ``keep``, in the study folder's layout."""
    root, keep = Path(root), Path(keep)
    patterns = ("study.yaml", "evals/*/*/*/metrics.json", "runs/*/*/train_summary.json", "runs/*/*/metrics.csv",
                "steps/*.json")
    for pattern in patterns:
        for src in sorted(root.glob(pattern)):
            dst = keep / src.relative_to(root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)


def write_results(root: str | Path, out: str | Path | None = None, keep: str | Path | None = None,
                  partial: bool = False) -> Path:
    """Write RESULTS.md of the study folder ``root`` (default ``root/RESULTS.md``), atomically; with
    ``keep``, copy its evidence there first; ``partial``: the page of a study under way
    (:func:`build_results`). Returns the path written."""
    root = Path(root)
    path = Path(out) if out is not None else root / "RESULTS.md"
    if keep is not None:
        keep_evidence(root, keep)
    atomic_write_text(path, build_results(root, evidence=str(keep) if keep is not None else None, partial=partial))
    return path


# ------------------------------------------------------------------------------ issue 28: granularity
def dataset_grid(spec: Mapping[str, Any]) -> int | None:
    """The grid size (``detector.grid``) a study dataset is simulated on (its preset and overrides); None if unknown."""
    from pfgraph.config import load_config, resolve_config_path
    from pfgraph.sim.detector import SimConfig

    try:
        cfg = load_config(SimConfig, resolve_config_path(str(spec.get("sim")), "sim"), list(spec.get("overrides") or []))
    except Exception:  # noqa: BLE001 - a dataset this pfgraph cannot resolve: no grid, no row
        return None
    return int(cfg.detector.grid)


def _seed_mean(docs: Sequence[Mapping[str, Any]], path: str, how: str = ".3f") -> str:
    """Mean over seeds of the figure at ``path`` (``± std`` over seeds and the seed count when several)."""
    values = [float(v) for d in docs if isinstance(v := _get(d, path), (int, float)) and not isinstance(v, bool)
              and math.isfinite(float(v))]
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return format(mean, how)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{format(mean, how)} ± {format(std, how)} ({len(values)})"


def _cone_path(docs: Sequence[Mapping[str, Any]], radius: float, key: str) -> list[dict[str, Any]]:
    """Per seed, ``{"v": <key of the cone record of radius>}`` (for :func:`_seed_mean`)."""
    out = []
    for d in docs:
        rows = _get(d, "cones.per_radius") or []
        row = next((r for r in rows if isinstance(r, Mapping) and r.get("radius") == radius), None)
        out.append({"v": row.get(key) if row else None})
    return out


def granularity_section(data: StudyData) -> list[str]:
    """RESULTS.md's cross-grid comparison (issue 28) when the evaluated sets span several grid sizes: per
    (set, model) the training compute and the figures that compare across grids (the cone energies around
    the truth at R = 0.1 and 0.4, the jet energy on jet sets) beside the per-pixel r half-width, which
    depends on the cell size. Empty for a study on one grid."""
    datasets = data.study.get("datasets") or {}
    grids = {name: dataset_grid(datasets.get(name) or {}) for name in data.evals}
    if len({g for g in grids.values() if g is not None}) < 2:
        return []
    out = ["## Granularity: the same events on several grids", "",
           "Each model is trained and evaluated on its own grid's files (the same events: the same seeds). The "
           "per-pixel r half-width depends on the cell size (a finer grid splits a particle over more cells); the "
           "cone figures (metrics.json `cones`: the relative deviation of the cell-summed energy in cones of fixed "
           "eta-phi radius around every truth pixel of at least 1 GeV) and the jet figures compare across grids. "
           "Values are means over seeds (± std over seeds, seed count); training wall seconds and FLOPs from the "
           "runs' records.", "",
           "| set | grid | model | repr | train wall s | train FLOPs | r half-width | cone R=0.1 median | "
           "cone R=0.1 half-width | cone R=0.4 median | cone R=0.4 half-width | jet dE/E median | jet dE/E half-width |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    best: dict[tuple[int, str], tuple[float, str]] = {}
    for name in sorted(data.evals, key=lambda n: (grids[n] or 0, n)):
        for label, docs in data.evals[name].items():
            repr_name = str(_get(docs[0], "model.repr") or "-")
            cones = {(r, k): _seed_mean(_cone_path(docs, r, k), "v") for r in (0.1, 0.4) for k in ("median", "half_width_68")}
            jet = _get(docs[0], "jets.available")
            out.append(f"| `{name}` | {grids[name] or '?'} | `{label}` | {repr_name} | "
                       f"{_seed_mean(docs, 'training.wall_time_s', '.0f')} | {_seed_mean(docs, 'training.train_flops', '.3g')} | "
                       f"{_seed_mean(docs, 'energy.residual.robust.half_width_68')} | {cones[0.1, 'median']} | "
                       f"{cones[0.1, 'half_width_68']} | {cones[0.4, 'median']} | {cones[0.4, 'half_width_68']} | "
                       f"{_seed_mean(docs, 'jets.energy_rel.robust.median') if jet else '-'} | "
                       f"{_seed_mean(docs, 'jets.energy_rel.robust.half_width_68') if jet else '-'} |")
            width = [v for d in _cone_path(docs, 0.1, "half_width_68") if isinstance(v := d["v"], (int, float))]
            if width and grids[name] is not None and not jet:
                key = (grids[name], "image" if repr_name == "image" else "point cloud")
                mean = sum(width) / len(width)
                if key not in best or mean < best[key][0]:
                    best[key] = (mean, label)
    out.append("")
    lines = []
    for grid in sorted({g for g, _ in best}):
        parts = [f"{kind} `{best[grid, kind][1]}` ({best[grid, kind][0]:.3f})" for kind in ("image", "point cloud")
                 if (grid, kind) in best]
        lines.append(f"- {grid} x {grid}: " + ", ".join(parts))
    if lines:
        out += ["Best cone R = 0.1 half-width per grid and representation (mean over seeds; smaller is better; "
                "means only: read the seed spread in the table before calling a crossover):", "", *lines, ""]
    return out
