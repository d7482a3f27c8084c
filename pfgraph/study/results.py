"""RESULTS.md from a study folder (``pfgraph study``), never from typed-in numbers.

Reads only the study folder: ``study.yaml`` (the resolved study), every
``evals/<test set>/<model>/seed<k>/metrics.json``, every run's ``train_summary.json`` and
``metrics.csv``, and the step ledgers ``steps/*.json``. Writes, per test set, a table per model
with its seeds (mean +- standard deviation over seeds; the 68 % bootstrap interval when one
seed), each run's budget status, the compute actually spent, the paper's claims decided on the
paper's own metric (Eq. 1, ``abs_norm_half_width_68``) with the relative figure r beside it, and
how each model's rank moves between MSE, abs_norm and r.

Verdicts come from intervals (:func:`pfgraph.eval.bootstrap.verdict`): a difference counts only
where two 68 % intervals do not overlap ("agrees" / "disagrees"; otherwise "inconclusive"). A
model trained with several seeds gets the interval mean +- sqrt(s^2 + b^2), s the standard
deviation over seeds and b the mean half-length of the seeds' bootstrap intervals (seed spread
and test-set sampling); one seed keeps its bootstrap interval.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pfgraph.eval.bootstrap import verdict
from pfgraph.eval.metrics import common_norm_scale, norm_scale_sentence, on_norm_scale
from pfgraph.utils.atomic import atomic_write_text

PAPER = ("mlp", "cnn", "cnn_attn", "cnn3d", "unet", "unet_attn", "rnn")
IMPROVED = {"mlp_plus": "mlp", "cnn_attn_plus": "cnn_attn", "unet_attn_plus": "unet_attn", "calibrated": "cnn",
            "calibrated_tail_flat": "cnn", "calibrated_gnn": "edgeconv"}
POINT = ("edgeconv", "pfn", "calibrated_gnn", "calibrated_gnn_flat")
#: Issue 15's A/Bs on the jet energy scale |jet dE/E median|: label -> (the run it varies, what changed):
#: the same model and seeds trained with loss weights flat in log E, on the paper or the hard-tail file.
JET_AB = {"calibrated_tail_flat": ("calibrated", "flat-log loss weights on the hard-tail file"),
          "calibrated_gnn_flat": ("calibrated_gnn", "loss weights flat in log E (train.reweight=flat_log)")}
#: The paper's own figure (Eq. 1: dE_nor = (E_pred - E_true) / S over truth pixels): the paper's claims use it.
PAPER_METRIC = "abs_norm_half_width_68"
#: The relative residual r = (E_pred - E_true) / E_true: our headline, shown beside; DESIGN §6 targets use it.
RANK = "residual_half_width_68"
RANK_JET = "jet_energy_rel_half_width_68"
JET_SCALE = "jet_energy_rel_median"
MSE = "mse_per_image"
INCONCLUSIVE = "inconclusive"

#: Columns of the per-test-set table: (header, headline figure, format).
FIGURE_COLUMNS: list[tuple[str, str, str]] = [
    ("r: 68% half-width", RANK, ".3f"),
    ("r: median", "residual_median", ".3f"),
    ("dE/S 68% half-width (paper Eq. 1)", PAPER_METRIC, ".3g"),
    ("MSE per image [GeV^2]", MSE, ".3g"),
    ("missed truth pixels", "missed_pixel_fraction", ".3f"),
    ("fake energy", "fake_energy_fraction", ".3f"),
]
JET_COLUMNS: list[tuple[str, str, str]] = [
    ("jet eff.", "jet_efficiency", ".3f"),
    ("dE/E median (truth-jet pixels)", JET_SCALE, ".3f"),
    ("dE/E 68% half-width (truth-jet pixels)", RANK_JET, ".3f"),
    ("dE/E median (matched jets)", "jet_energy_match_rel_median", ".3f"),
]

Fig = dict[str, Any]  # {"value", "lo", "hi", "std", "n"}
Figures = dict[str, dict[str, Fig]]  # model -> headline key -> figure


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


def read_history(run_dir: Path) -> list[dict[str, float]]:
    """The run's per-epoch rows from ``metrics.csv`` (numbers; unreadable cells left out)."""
    rows = []
    try:
        with (run_dir / "metrics.csv").open() as f:
            for row in csv.DictReader(f):
                parsed = {}
                for k, v in row.items():
                    try:
                        parsed[k] = float(v)
                    except (TypeError, ValueError):
                        continue
                if "epoch" in parsed:
                    rows.append(parsed)
    except OSError:
        return []
    return rows


#: The budget rule used when a run folder records no status of its own (the trainer's rule).
WINDOW, MIN_IMPROVEMENT = 3, 0.01
STATUS_RULE = (f"'stopped early': early stopping fired; at the epoch cap, 'still improving' if the best validation "
               f"loss of the last {WINDOW} epochs is more than {100 * MIN_IMPROVEMENT:g} % below the best before "
               f"them (runs of <= {WINDOW} epochs: below the first epoch's; a 1-epoch cap counts as improving), "
               "else 'hit its cap'; 'not finished' below the cap without an early stop; 'not trained' without "
               "training")


def derive_status(val_losses: Sequence[float], epochs: int, cap: int, stopped_early: bool, trained: bool) -> str:
    """A run's budget status by :data:`STATUS_RULE`, for run folders that record none."""
    if not trained or epochs <= 0:
        return "not trained"
    if stopped_early:
        return "stopped early"
    if epochs < cap:
        return "not finished"
    v = [x for x in val_losses if math.isfinite(x)]
    if len(v) <= 1:
        return "still improving"
    before = min(v[:-WINDOW]) if len(v) > WINDOW else v[0]
    recent = min(v[-WINDOW:]) if len(v) > WINDOW else min(v[1:])
    return "still improving" if recent < before * (1.0 - MIN_IMPROVEMENT) else "hit its cap"


@dataclass
class Run:
    """One (model, seed) training as its run folder records it."""

    model: str
    seed: int
    cap: int
    summary: dict[str, Any] | None
    history: list[dict[str, float]]
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
            return "not run"
        trained = bool(self.history) or bool(self.summary and self.summary.get("target_epochs"))
        stopped = bool(self.summary and self.summary.get("stopped_early"))
        return derive_status([r.get("val_loss", math.nan) for r in self.history], self.epochs or 0,
                             self.cap, stopped, trained) + ("" if self.summary else " (no train_summary.json)")

    @property
    def wall_s(self) -> float | None:
        """Training wall seconds (the summary's wall time, else its training time, else metrics.csv's)."""
        for key in ("wall_time_s", "train_time_s"):
            if self.summary and isinstance(self.summary.get(key), (int, float)):
                return float(self.summary[key])
        if self.history:
            return sum(r.get("wall_s", r.get("epoch_time_s", 0.0)) for r in self.history)
        return None


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
                                  read_history(root / "runs" / m.label / f"seed{s}")) for s in cfg.seeds(m)]
    sets = [ds for ds in cfg.datasets if any(ds in cfg.eval_sets(m) for m in cfg.models)]
    for ds in sets:
        per_model: dict[str, list[dict[str, Any]]] = {}
        for m in cfg.models:
            if ds not in cfg.eval_sets(m):
                continue
            docs = [d for s in cfg.seeds(m)
                    if (d := _read_json(root / "evals" / ds / m.label / f"seed{s}" / "metrics.json")) is not None]
            if docs:
                per_model[m.label] = docs
        if per_model:  # the paper's dE/S on one S: that of the models trained on the study's file
            own = [d for m in cfg.models if m.label in per_model and cfg.train_set(m) == cfg.train_on
                   for d in per_model[m.label]]
            scale = common_norm_scale([d for docs in per_model.values() for d in docs], own)
            data.evals[ds] = {label: [on_norm_scale(d, scale) for d in docs] for label, docs in per_model.items()}
            data.norm_scales[ds] = scale
    for per_model in data.evals.values():  # metrics.json documents that carry the run's status (schema 4)
        for label, docs in per_model.items():
            for run in data.runs.get(label, []):
                status = next((_get(d, "training.status") for d in docs if _get(d, "training.seed") == run.seed
                               and isinstance(_get(d, "training.status"), str)), None)
                run.evaluated_status = run.evaluated_status or status
    data.ledgers = [d for p in sorted((root / "steps").glob("*.json")) if (d := _read_json(p)) is not None]
    from pfgraph.study.runner import Study

    data.steps = [s.id for s in Study(cfg, root).steps()]
    return data


# ------------------------------------------------------------------------------ figures over seeds
def combine(figs: Sequence[Fig]) -> Fig | None:
    """One figure from the seeds' figures: the value itself with its bootstrap interval for one seed;
    mean, standard deviation and the interval mean +- sqrt(s^2 + b^2) for several."""
    have = [f for f in figs if isinstance(f, dict) and f.get("value") is not None]
    if not have:
        return None
    if len(have) == 1:
        f = have[0]
        return {"value": float(f["value"]), "lo": f.get("lo"), "hi": f.get("hi"), "std": None, "n": 1}
    vals = [float(f["value"]) for f in have]
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
    halves = [(float(f["hi"]) - float(f["lo"])) / 2 for f in have if f.get("lo") is not None and f.get("hi") is not None]
    b = sum(halves) / len(halves) if len(halves) == len(have) else 0.0
    width = math.sqrt(std ** 2 + b ** 2)
    return {"value": mean, "lo": mean - width, "hi": mean + width, "std": std, "n": len(vals)}


def figures(per_model: dict[str, list[dict[str, Any]]]) -> Figures:
    """model -> headline key -> combined figure, for every headline figure the documents carry."""
    out: Figures = {}
    for model, docs in per_model.items():
        keys = {k for d in docs for k in (_get(d, "headline.figures") or {})}
        out[model] = {k: c for k in keys if (c := combine([_get(d, f"headline.figures.{k}") for d in docs]))}
    return out


def _mean_std(mean: float, std: float) -> str:
    """``mean +- std`` with the spread to two significant digits and the mean to the same decimal
    place (0.0102 +- 0.00041 reads 0.01020 +- 0.00041, not 0.01 +- 0.00041)."""
    if not (math.isfinite(mean) and math.isfinite(std)) or std <= 0:
        return f"{mean:.3g} +- {std:.2g}"
    decimals = 1 - math.floor(math.log10(std))  # two significant digits of the spread
    if decimals <= 0:
        return f"{round(mean, decimals):.0f} +- {round(std, decimals):.0f}"
    return f"{mean:.{decimals}f} +- {std:.{decimals}f}"


def show(fig: Fig | None, how: str = ".3f") -> str:
    """A figure as text: ``mean +- std (n seeds)`` or ``value [lo, hi]``. Fixed-point formats keep
    their decimals; significant-digit formats (``g``) give the mean as many decimals as the spread's
    two significant digits need."""
    if fig is None:
        return "-"
    if fig["n"] > 1:
        if how.endswith("g"):
            return _mean_std(float(fig["value"]), float(fig["std"]))
        return f"{format(fig['value'], how)} +- {format(fig['std'], how)}"
    if fig.get("lo") is None:
        return format(fig["value"], how)
    return f"{format(fig['value'], how)} [{format(float(fig['lo']), how)}, {format(float(fig['hi']), how)}]"


# ------------------------------------------------------------------------------ claims
Verdict = tuple[bool | str | None, str]
Check = Callable[[Figures, str], Verdict]


@dataclass
class Claim:
    """A qualitative statement, the rule that checks it, and the figure it is decided on
    (``None``: the figure asked for, the paper's metric for the paper's claims)."""

    source: str
    text: str
    check: Check
    metric: str | None = None
    needs: tuple[str, ...] = ()  # a study without one of these models leaves the claim out (our own A/B claims)


def _how(key: str) -> str:
    """How a headline figure is shown: the small absolute figures (dE/S, MSE) to three significant
    digits, the others to three decimals."""
    return ".3g" if key in (PAPER_METRIC, MSE) else ".3f"


def _fig(figs: Figures, model: str, key: str) -> Fig | None:
    return figs.get(model, {}).get(key)


def _word(v: str) -> bool | str:
    return True if v == "lower" else False if v == "higher" else INCONCLUSIVE


def better(a: str, b: str) -> Check:
    """``a`` is lower than ``b``: agrees if a's interval lies below b's, disagrees if above, else inconclusive."""
    def check(figs: Figures, key: str) -> Verdict:
        fa, fb = _fig(figs, a, key), _fig(figs, b, key)
        if fa is None or fb is None:
            return None, f"{a} or {b} not evaluated"
        return _word(verdict(fa, fb)), f"{a} {show(fa, _how(key))} vs {b} {show(fb, _how(key))}"
    return check


def all_better(models: Sequence[str], than: str) -> Check:
    """Every evaluated one of ``models`` is lower than ``than``; disagrees if any is higher, inconclusive if any overlaps."""
    def check(figs: Figures, key: str) -> Verdict:
        ref = _fig(figs, than, key)
        have = {m: f for m in models if (f := _fig(figs, m, key)) is not None}
        if ref is None or not have:
            return None, f"{than} or the others not evaluated"
        verdicts = {m: verdict(f, ref) for m, f in have.items()}
        text = f"{than} {show(ref, _how(key))}; " + ", ".join(f"{m} {show(f, _how(key))}" for m, f in have.items())
        worse = [m for m, v in verdicts.items() if v == "higher"]
        unsure = [m for m, v in verdicts.items() if v == INCONCLUSIVE]
        if worse:
            return False, text + f" (worse: {', '.join(worse)})"
        if unsure:
            return INCONCLUSIVE, text + f" (overlapping: {', '.join(unsure)})"
        return True, text
    return check


def within(a: str, others: Sequence[str], tolerance: float) -> Check:
    """``a`` is within ``tolerance`` (relative) of the best of ``others``: compared with the best's interval x (1 + tolerance)."""
    def check(figs: Figures, key: str) -> Verdict:
        fa = _fig(figs, a, key)
        vals = {m: f for m in others if m != a and (f := _fig(figs, m, key)) is not None}
        if fa is None or not vals:
            return None, f"{a} or the others not evaluated"
        best = min(vals, key=lambda m: vals[m]["value"])
        fb = vals[best]
        scaled = {k: (None if fb.get(k) is None else fb[k] * (1 + tolerance)) for k in ("value", "lo", "hi")}
        missing = [m for m in others if m != a and m not in vals]
        return (_word(verdict(fa, scaled)),
                f"{a} {show(fa, _how(key))} vs best of the others {best} {show(fb, _how(key))} (ratio {_ratio(fa, fb)}; "
                f"within {tolerance:.0%} means at most {1 + tolerance:g})"
                + (f"; not evaluated here: {', '.join(missing)}" if missing else ""))
    return check


def _ratio(a: Fig, b: Fig) -> str:
    return f"{a['value'] / b['value']:.2g}" if b["value"] else "-"


def _magnitude(f: Fig) -> Fig:
    """|f| with its interval (an interval that holds zero becomes [0, its larger end])."""
    v, lo, hi = abs(float(f["value"])), f.get("lo"), f.get("hi")
    if lo is None or hi is None:
        return {**f, "value": v}
    lo, hi = float(lo), float(hi)
    ends = (0.0, max(-lo, hi)) if lo <= 0.0 <= hi else tuple(sorted((abs(lo), abs(hi))))
    return {**f, "value": v, "lo": ends[0], "hi": ends[1]}


def closer_to_zero(a: str, b: str) -> Check:
    """``a``'s figure is closer to zero than ``b``'s (a bias): compared as |a| against |b| with their intervals."""
    def check(figs: Figures, key: str) -> Verdict:
        fa, fb = _fig(figs, a, key), _fig(figs, b, key)
        if fa is None or fb is None:
            return None, f"{a} or {b} not evaluated"
        return _word(verdict(_magnitude(fa), _magnitude(fb))), f"{a} {show(fa, _how(key))} vs {b} {show(fb, _how(key))}"
    return check


def best_of(a: str, models: Sequence[str]) -> Check:
    """``a`` is at least as good as the best of ``models``: disagrees if its interval lies above the best's."""
    def check(figs: Figures, key: str) -> Verdict:
        fa = _fig(figs, a, key)
        vals = {m: f for m in models if m != a and (f := _fig(figs, m, key)) is not None}
        if fa is None or not vals:
            return None, f"{a} or the image models not evaluated"
        best = min(vals, key=lambda m: vals[m]["value"])
        v = verdict(fa, vals[best])
        return (True if v == "lower" else False if v == "higher" else INCONCLUSIVE,
                f"{a} {show(fa, _how(key))} vs best image model {best} {show(vals[best], _how(key))}")
    return check


PAPER_REF = "arXiv:2410.07250"
IMAGE = (*PAPER, "cnn_attn_code", *(m for m in IMPROVED if m not in POINT))
CLAIMS = [
    Claim(PAPER_REF, "deep image models (CNN, U-Net, attention and 3D variants) reconstruct the energy image better "
          "than the per-pixel MLP", all_better(("cnn", "cnn_attn", "cnn3d", "unet", "unet_attn"), "mlp")),
    Claim(PAPER_REF, "self-attention improves the CNN (cnn_attn as the paper's text builds it)", better("cnn_attn", "cnn")),
    Claim(PAPER_REF, "self-attention improves the CNN (cnn_attn_code, as the authors' code builds it)",
          better("cnn_attn_code", "cnn")),
    Claim(PAPER_REF, "self-attention improves the U-Net", better("unet_attn", "unet")),
    Claim(PAPER_REF, "3D convolutions over the detector layers improve the CNN", better("cnn3d", "cnn")),
    Claim(PAPER_REF + " (v2)", "the ~90k-parameter SE-block CNN matches much larger baselines (within 10 % of the best "
          "of unet, cnn_attn, rnn)", within("cnn", ("unet", "cnn_attn", "rnn"), 0.10)),
    Claim("DESIGN §6", "every learned model beats the analytic physics baseline",
          all_better((*PAPER, "cnn_attn_code", *POINT, *IMPROVED, *JET_AB), "analytic"), RANK),
    *[Claim("DESIGN §6", f"the improved {v} beats its paper version {b}", better(v, b), RANK, (v,))
      for v, b in IMPROVED.items()],
    Claim("DESIGN §6", "edgeconv is within 10 % of the best image model (residual 68 % half-width)",
          within("edgeconv", IMAGE, 0.10), RANK),
]
JET_CLAIMS = [
    Claim("DESIGN §6", "edgeconv is at least as good as the best image model on the jet set (jet energy 68% half-width)",
          best_of("edgeconv", IMAGE), RANK_JET),
    *[Claim("issue 15", f"the improved {v} has a jet energy scale closer to the truth than its paper version {b}",
            closer_to_zero(v, b), JET_SCALE, (v,)) for v, b in IMPROVED.items()],
    *[Claim("issue 15", f"{what} ({t}) brings {b}'s jet energy scale closer to the truth",
            closer_to_zero(t, b), JET_SCALE, (t,)) for t, (b, what) in JET_AB.items()],
]


def _verdict_word(ok: bool | str | None) -> str:
    return ok if isinstance(ok, str) else "not measured" if ok is None else ("agrees" if ok else "disagrees")


def claims_table(figs: Figures, claims: Sequence[Claim], models: Sequence[str] | None = None) -> str:
    """Each claim: its verdict on the figure it is decided on, and, for a claim decided on the paper's
    metric, the verdict on r beside it. ``models``: the study's models (a claim that ``needs`` a model
    the study does not have is left out; None: every claim)."""
    lines = ["| source | claim | decided on | verdict | figures | on r (relative) |", "|---|---|---|---|---|---|"]
    for c in claims:
        if models is not None and not set(c.needs) <= set(models):
            continue
        key = c.metric or PAPER_METRIC
        ok, text = c.check(figs, key)
        side = "-"
        if key == PAPER_METRIC:
            ok_r, text_r = c.check(figs, RANK)
            side = f"{_verdict_word(ok_r)}: {text_r}"
        lines.append(f"| {c.source} | {c.text} | `{key}` | **{_verdict_word(ok)}** | {text} | {side} |")
    return "\n".join(lines) + "\n"


def ranking_table(figs: Figures) -> str:
    """Each model's rank by test-set MSE, by the paper's abs_norm and by r (1 = best; by the mean over seeds)."""
    keys = (MSE, PAPER_METRIC, RANK)
    ranks: dict[str, dict[str, int]] = {k: {} for k in keys}
    tied: dict[str, set[str]] = {k: set() for k in keys}
    for k in keys:
        have = sorted((f[k]["value"], m) for m, f in figs.items() if k in f)
        ranks[k] = {m: i + 1 for i, (_, m) in enumerate(have)}
        for (_, m1), (_, m2) in zip(have, have[1:]):  # neighbours in the order whose intervals overlap
            if verdict(figs[m1][k], figs[m2][k]) == INCONCLUSIVE:
                tied[k] |= {m1, m2}
    lines = ["| model | MSE per image (rank) | dE/S 68% half-width, Eq. 1 (rank) | r 68% half-width (rank) | moves |",
             "|---|---:|---:|---:|---|"]
    for m, f in figs.items():
        cells = [f"{show(f.get(k), '.3g')} ({ranks[k].get(m, '-')}{'=' if m in tied[k] else ''})" for k in keys]
        r = [ranks[k].get(m) for k in keys]
        moves = "-" if None in r else ("same rank" if len(set(r)) == 1 else
                                      f"MSE {r[0]} -> abs_norm {r[1]} -> r {r[2]}")
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {moves} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ the page
def _aliases(per_model: dict[str, list[dict[str, Any]]], labels: Sequence[str] = ()) -> dict[str, str]:
    """label -> the model name claims use: the metrics' model name when no other run of the set and no
    other model of the study (``labels``, evaluated yet or not) goes by it, else the label (so a study
    under way never lets a variant stand in for a model it has not evaluated yet)."""
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


def model_table(data: StudyData, per_model: dict[str, list[dict[str, Any]]], figs: Figures) -> str:
    """The test set's table: one row per model, figures over its seeds."""
    jets = any(_get(d, "jets.available") for docs in per_model.values() for d in docs)
    cols = FIGURE_COLUMNS + (JET_COLUMNS if jets else [])
    head = ("| model | repr | seeds | params | epochs (per seed) | status | " + " | ".join(c[0] for c in cols)
            + " |\n|---|---|---:|---:|---|---|" + "---:|" * len(cols) + "\n")
    rows = []
    for label, docs in per_model.items():
        seeds = sorted({_get(d, "training.seed") for d in docs} - {None})
        runs = [r for r in data.runs.get(label, []) if not seeds or r.seed in seeds]  # the evaluated seeds' runs
        params = _get(docs[0], "training.parameters")
        epochs = ", ".join(str(r.epochs) if r.epochs is not None else "-" for r in runs) + (
            f" / cap {runs[0].cap}" if runs else "")
        if runs and all(r.status == "not trained" for r in runs):
            epochs = "-"  # nothing to train (the analytic inversion): no cap either
        status = run_statuses(runs)
        cells = [show(figs[label].get(key), how) for _, key, how in cols]
        rows.append(f"| {label} | {_get(docs[0], 'model.repr')} | {len(seeds) or len(docs)} | "
                    f"{f'{params:,}' if isinstance(params, int) else '-'} | {epochs} | {status} | "
                    + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def seed_table(per_model: dict[str, list[dict[str, Any]]]) -> str:
    """Every (model, seed) evaluation on the test set: the ranking figures with their bootstrap intervals."""
    keys = ((RANK, ".3f"), (PAPER_METRIC, ".3g"), (MSE, ".3g"))
    lines = ["| model | seed | " + " | ".join(k for k, _ in keys) + " |", "|---|---:|" + "---:|" * len(keys)]
    for label, docs in per_model.items():
        for d in docs:
            cells = [show(combine([_get(d, f"headline.figures.{k}")]), how) for k, how in keys]
            lines.append(f"| {label} | {_get(d, 'training.seed') if _get(d, 'training.seed') is not None else '-'} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
            if r.status == "not trained":  # nothing to train (the analytic inversion): no epochs, no cap
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


@functools.lru_cache(maxsize=8)
def _truth_max(path: str, mtime_ns: int, size: int) -> float:
    """The largest truth pixel of an event file (GeV); cached per file version (every jet set reads it)."""
    import uproot

    smax = 0.0
    for chunk in uproot.iterate(f"{path}:events", ["truth"], step_size=1000, library="np"):
        smax = max(smax, float(chunk["truth"].max(initial=0.0)))
    return smax


def jet_extrapolation(train_file: Path, jet_file: Path) -> str | None:
    """How far a jet set reaches beyond the training set, measured on the study's data files (None without them)."""
    import uproot

    if not (train_file.exists() and jet_file.exists()):
        return None
    stat = train_file.stat()
    smax = _truth_max(str(train_file), stat.st_mtime_ns, stat.st_size)
    above = total = 0.0
    events = hot = 0
    try:
        it = list(uproot.iterate(f"{jet_file}:events", ["truth", "jet"], step_size=1000, library="np"))
    except Exception:  # noqa: BLE001 - not a jet file: no sentence
        return None
    for chunk in it:
        truth, jet = chunk["truth"], chunk["jet"]
        above += float(jet[truth > smax].sum())
        total += float(jet.sum())
        events += len(truth)
        hot += int((truth.reshape(len(truth), -1).max(1) > smax).sum())
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


def build_results(root: str | Path, evidence: str | None = None) -> str:
    """The text of RESULTS.md for the study folder ``root`` (``evidence``: where the files are kept, for the note)."""
    data = load_study_folder(root)
    study = data.study
    root = Path(root)
    where = evidence or f"{root}/"
    out = [
        f"# Results: study `{study.get('name')}`",
        "",
        f"Generated by `pfgraph study` (results step, `pfgraph.study.results`) from the study folder; nothing "
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
    out += [
        "## How to read the verdicts",
        "",
        f"The paper ranks its models by its Eq. (1), dE_nor = E_pred/S - E_true/S over truth pixels (S: the "
        f"training set's largest truth pixel): an absolute difference, our `abs_norm` figures. **The paper's "
        f"claims are decided on the paper's metric** (`{PAPER_METRIC}`, the robust 68 % half-width of dE_nor), "
        f"because that is the figure the claims were made on; the relative residual r = (E_pred - E_true)/E_true "
        f"(`{RANK}`), our headline, is shown beside each verdict because the two can disagree (an absolute "
        "figure is dominated by the large pixels, r weighs every pixel alike). DESIGN §6's targets are stated on "
        "r, so they are decided on r. A verdict is 'agrees' or 'disagrees' only where the two 68 % intervals do "
        "not overlap, otherwise 'inconclusive'. One seed: the 68 % bootstrap interval over test events; several "
        "seeds: mean +- sqrt(s^2 + b^2), s the standard deviation over seeds, b the mean half-length of the "
        "seeds' bootstrap intervals (tables show mean +- s). The rankings table shows how each model's rank "
        f"moves between the test-set MSE per image (`{MSE}`, what training minimises, up to normalisation), "
        "abs_norm and r.",
        "",
        f"Budget status of a run: {STATUS_RULE}. (Taken from the run's `train_summary.json` when it records "
        "one, else derived from its `metrics.csv` by this rule.)",
        "",
    ]
    own = [f"`{m.get('name') or m.get('model')}` on `{m['train_on']}`" for m in study.get("models") or []
           if isinstance(m, dict) and m.get("train_on") and m.get("train_on") != study.get("train_on")]
    if own:
        out += ["Trained on another file than the study's: " + ", ".join(own) + ".", ""]
    jet_sets = {name for name, per_model in data.evals.items()
                if any(_get(d, "jets.available") for docs in per_model.values() for d in docs)}
    reference_name = next((n for n in data.evals if n not in jet_sets), None)
    reference = figures(data.evals[reference_name]) if reference_name else None
    labels = [str(m.get("name") or m.get("model")) for m in study.get("models") or [] if isinstance(m, dict)]
    trained_on = [str(study.get("train_on"))] + [str(m["train_on"]) for m in study.get("models") or []
                                                 if isinstance(m, dict) and m.get("train_on")]
    trained_on = [t for t in dict.fromkeys(trained_on) if t in ds]  # each training file once, the study's first
    for name, per_model in data.evals.items():
        figs_by_label = figures(per_model)
        alias = _aliases(per_model, labels)
        figs = {alias[label]: f for label, f in figs_by_label.items()}
        is_jet = any(_get(d, "jets.available") for docs in per_model.values() for d in docs)
        out += [f"## Test set `{name}`", "", model_table(data, per_model, figs_by_label), "",
                *norm_lines(per_model, data.norm_scales.get(name), str(study.get("train_on"))),
                "Claims on this test set:", "", claims_table(figs, CLAIMS + (JET_CLAIMS if is_jet else []),
                                                          [*labels, *alias.values()]),
                "Rank by metric (1 = best; '=' marks a model whose interval overlaps its neighbour's in that "
                "order, so the order of the two is not resolved):", "", ranking_table(figs_by_label),
                "Every seed (value [68 % bootstrap interval over test events]):", "", seed_table(per_model)]
        if is_jet:
            out += ["Issue 15's targets on this jet set (checked on the value, the mean over seeds; the per-pixel "
                    f"ratio against `{reference_name}`):", "", targets_table(figs_by_label, reference, reference_name)]
        for train in trained_on if is_jet else ():
            note = jet_extrapolation(root / "data" / f"{train}.root", root / "data" / f"{name}.root")
            if note:
                out += [note, ""]
    out += ["## Training budgets", "", "The best validation loss is in its run's own units (its loss function, on "
            "targets divided by its own S): compare it within a model, not across models; the validation r "
            "half-width is one figure for all.", "", training_table(data), "", "## Compute spent", "", *compute_lines(data.ledgers, data.steps),
            ""]
    return "\n".join(out)


#: Issue 15's targets on a jet set, checked on the value (the mean over seeds): jet energy (truth-jet
#: pixels) median within +-0.02 and 68 % half-width <= 0.05, the per-pixel residual half-width on the
#: jets at most 1.2x its value on the study's first non-jet test set, jet position median <= 0.2 px,
#: fake energy no larger than the analytic inversion's on the same set.
JET_TARGETS = {"jet_median": 0.02, "jet_width": 0.05, "pixel_ratio": 1.2, "position": 0.2}


def targets_table(figs: Figures, reference: Figures | None, reference_name: str | None) -> str:
    """Issue 15's targets for every model on one jet set (``figs``), the pixel-width ratio against
    ``reference`` (the figures of a non-jet test set); 'yes' / '**no**' on the value."""
    def mark(ok: bool | None) -> str:
        return "-" if ok is None else ("yes" if ok else "**no**")

    def value(fig: Fig | None) -> float | None:
        return None if fig is None else float(fig["value"])

    fake_ref = value(_fig(figs, "analytic", "fake_energy_fraction"))
    head = ("| model | jet dE/E median | \\|median\\| <= 0.02 | jet dE/E 68% half-width | <= 0.05 | r 68% half-width, "
            f"jets / {reference_name or 'test'} | <= 1.2 | jet D median [px] | <= 0.2 | fake energy | <= analytic |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for model, f in figs.items():
        med, width = f.get(JET_SCALE), f.get(RANK_JET)
        pos, fake = f.get("jet_position_median"), f.get("fake_energy_fraction")
        mine, ref = value(f.get(RANK)), value(_fig(reference or {}, model, RANK))
        ratio = mine / ref if mine is not None and ref else None
        lines.append(
            f"| {model} | {show(med)} | {mark(None if med is None else abs(value(med)) <= JET_TARGETS['jet_median'])} "
            f"| {show(width)} | {mark(None if width is None else value(width) <= JET_TARGETS['jet_width'])} "
            f"| {'-' if ratio is None else f'{ratio:.2f}'} | {mark(None if ratio is None else ratio <= JET_TARGETS['pixel_ratio'])} "
            f"| {show(pos, '.2f')} | {mark(None if pos is None else value(pos) <= JET_TARGETS['position'])} "
            f"| {show(fake, '.4f')} | {mark(None if fake is None or fake_ref is None else value(fake) <= fake_ref)} |")
    return "\n".join(lines) + "\n"


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


def write_results(root: str | Path, out: str | Path | None = None, keep: str | Path | None = None) -> Path:
    """Write RESULTS.md of the study folder ``root`` (default ``root/RESULTS.md``), atomically; with
    ``keep``, copy its evidence there first. Returns the path written."""
    root = Path(root)
    path = Path(out) if out is not None else root / "RESULTS.md"
    if keep is not None:
        keep_evidence(root, keep)
    atomic_write_text(path, build_results(root, evidence=str(keep) if keep is not None else None))
    return path
