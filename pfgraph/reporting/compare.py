"""The comparison report: many evaluation folders (any models, any representations) -> one page.

Reads each folder's ``metrics.json`` and ``predictions.root`` and writes a self-contained
``index.html`` (relative links only; opens without network), PNG figures, ``summary.json``
and ``summary.md``. The report **renders the evaluation's numbers; it never recomputes a
figure**: table cells are metrics.json values (headline figures with their 68 % bootstrap
intervals; on a data file with the ``oracle`` image, an oracle row from ``baselines.oracle``,
the measured floor), residual histograms and fit curves are metrics.json's histogram and fit, the
resolution-vs-energy figure is its per-E_true robust widths, and jet distributions are the
per-event branches of the ``jets`` tree that the evaluation itself summarised. Fits whose core
is not Gaussian are marked and drawn dotted; missed truth pixels are shown as their own figure.
Where one model was trained with several seeds, a table gives the mean and spread over seeds.
Each model's learning curves (validation loss and validation residual half-width per epoch) and
a table of its training budget (epochs against the cap, wall time, budget status and the rule it
was decided by) come from metrics.json's ``training`` section, the run's own record.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pfgraph import geometry
from pfgraph.errors import DataError, PfgraphError
from pfgraph.eval.energy import GAUSSIAN_RULE
from pfgraph.eval.folder import check_evaluations
from pfgraph.eval.metrics import common_norm_scale, norm_scale_sentence, on_norm_scale, read_metrics
from pfgraph.io import schema
from pfgraph.io.root import EventFiles, open_root, read_meta
from pfgraph.reporting import plots
from pfgraph.utils.atomic import atomic_folder, atomic_write_text
from pfgraph.utils.budget import STILL_IMPROVING
from pfgraph.utils.degenerate import DEGENERATE_RULE
from pfgraph.utils.ownership import check_not_inside, foreign_entries, refuse_foreign, text_marker, written_by_pfgraph

REPORT_VERSION = 3
N_DISPLAYS = 3


@dataclass
class EvalRun:
    """One evaluation folder, loaded."""

    folder: Path
    metrics: dict[str, Any]
    name: str
    repr: str
    pred: np.ndarray
    truth: np.ndarray
    event_id: np.ndarray
    jets: dict[str, np.ndarray] = field(default_factory=dict)
    group: str = ""  # the configuration, its seed left out (set by build_report; "" = the name)
    has_predictions: bool = True
    """False for an evaluation read from its metrics alone (its predictions.root is not on this
    machine): it is in the tables, residual histograms and learning curves, not in the jet
    histograms and event displays."""


def metric(metrics: dict[str, Any], path: str) -> Any:
    """The value at dotted ``path`` of a metrics document (:mod:`pfgraph.eval.metrics`), or None."""
    node: Any = metrics
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def load_eval(folder: str | Path, metrics_only_ok: bool = False) -> EvalRun:
    """Load an evaluation folder; one clear error line if anything needed is missing.

    ``metrics_only_ok``: a folder without its predictions.root (a study folder restored from
    version control) loads from its metrics alone (``has_predictions`` False)."""
    folder = Path(folder)
    mfile = folder / "metrics.json"
    pfile = folder / "predictions.root"
    if not mfile.exists():
        raise DataError(f"{folder}: no metrics.json (is this a 'pfgraph evaluate' output folder?)")
    if not pfile.exists() and metrics_only_ok:
        metrics = read_metrics(mfile)
        empty = np.zeros((0, geometry.PAPER_GRID_SIZE, geometry.PAPER_GRID_SIZE), np.float32)  # no images: never read
        return EvalRun(folder, metrics, str(metric(metrics, "model.name") or folder.name),
                       str(metric(metrics, "model.repr") or "?"), empty, empty, np.zeros(0, np.int64),
                       has_predictions=False)
    if not pfile.exists():
        raise DataError(f"{folder}: no predictions.root")
    metrics = read_metrics(mfile)
    f = open_root(pfile)
    size = geometry.grid_of_meta(read_meta(f, pfile)).size
    if schema.PREDICTIONS_TREE not in f:
        raise DataError(f"{pfile}: tree '{schema.PREDICTIONS_TREE}' missing")
    tree = f[schema.PREDICTIONS_TREE]
    for b in ("event_id", "pred", "truth"):
        if b not in tree:
            raise DataError(f"{pfile}: branch '{b}' missing from tree '{schema.PREDICTIONS_TREE}'")
    arrays = tree.arrays(["event_id", "pred", "truth"], library="np")
    for b in ("pred", "truth"):
        if arrays[b].shape[1:] != (size, size):
            raise DataError(f"{pfile}: branch '{b}' has shape {arrays[b].shape[1:]}, expected "
                            f"({size}, {size}), the grid of its meta (a prediction file of another grid size)")
    jets: dict[str, np.ndarray] = {}
    if schema.JETS_TREE in f:
        jt = f[schema.JETS_TREE]
        for name in jt.keys():
            arr = jt[name].array(library="ak")
            jets[name] = arr
    name = str(metric(metrics, "model.name") or folder.name)
    repr_name = str(metric(metrics, "model.repr") or "?")
    return EvalRun(folder, metrics, name, repr_name, arrays["pred"], arrays["truth"], arrays["event_id"], jets)


def is_degenerate(metrics: dict[str, Any]) -> bool:
    """The evaluation's own ``degenerate`` flag (metrics.json; older documents get it on reading)."""
    return bool(metric(metrics, "degenerate.flag"))


def report_files(out: Path) -> set[str] | None:
    """The files the report in ``out`` wrote (its summary.json lists them); None when ``out`` holds no report."""
    path = out / "summary.json"
    if not written_by_pfgraph(path):
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if "report_version" not in doc:
        return None
    if isinstance(doc.get("files"), list):
        return {*(str(f) for f in doc["files"]), "summary.json"}
    # a report of an older pfgraph lists no files: its figures, pages and any PNG (stale figures included)
    return {*(str(f) for f in doc.get("figures") or []), *(p.name for p in out.glob("*.png")), "index.html",
            "summary.md", "summary.json"}


def check_report_target(out: Path, force: bool = False) -> None:
    """Refuse an ``--out`` that is not a folder, or an existing folder holding files no report wrote
    (the report folder is replaced as a whole), unless ``force``."""
    if out.exists() and not out.is_dir():
        raise PfgraphError(f"{out}: exists and is not a folder; --out expects a report folder")
    if not out.is_dir():
        return
    listed = report_files(out) or set()
    refuse_foreign(out, foreign_entries(out, lambda p: p.name in listed and p.is_file()), "report", force,
                   "the report folder is replaced as a whole and would delete them")


def figure(metrics: dict[str, Any], key: str) -> dict[str, Any]:
    """Headline figure ``key`` of a metrics document: ``{"value", "lo", "hi"}`` (nulls if absent)."""
    node = metric(metrics, f"headline.figures.{key}")
    return dict(node) if isinstance(node, dict) else {"value": None, "lo": None, "hi": None}


def residual_hist(run: EvalRun) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(edges, counts of every truth pixel, counts of the fitted (non-missed) pixels) from metrics.json."""
    h = metric(run.metrics, "energy.residual.hist") or {}
    lo, hi = h.get("range") or (-5.0, 2.0)
    counts = np.asarray(h.get("counts") or [], dtype=np.float64)
    edges = np.linspace(lo, hi, (h.get("bins") or len(counts)) + 1)
    fitted = h.get("fitted_counts")
    return edges, counts, None if fitted is None else np.asarray(fitted, dtype=np.float64)


def jet_branch(run: EvalRun, branch: str) -> np.ndarray | None:
    """Per-event values of a ``jets``-tree branch, on the events the evaluation used for it.

    ``d_jet`` and ``de_match_rel``: events with a truth and a prediction jet; ``de_jet_rel`` and
    ``de_jet_norm``: events with a truth jet. None when the file lacks the branch.
    """
    j = run.jets
    if branch not in j or "truth_rank" not in j or "pred_rank" not in j:
        return None
    values = np.asarray(j[branch], dtype=np.float64)
    sel = np.asarray(j["truth_rank"]) >= 0
    if branch in ("d_jet", "deta_pix", "dphi_pix", "de_match_rel"):
        sel &= np.asarray(j["pred_rank"]) >= 0
    values = values[sel]
    return values[np.isfinite(values)]


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if isinstance(x, (float, np.floating)):
        return "-" if not np.isfinite(x) else f"{x:.{digits}g}"
    return html.escape(str(x))


def fmt_interval(fig: dict[str, Any] | None, digits: int = 3) -> str:
    """``value [lo, hi]`` (68 % interval), ``value`` without an interval, ``-`` without a value."""
    if not fig or fig.get("value") is None:
        return "-"
    if fig.get("lo") is None or fig.get("hi") is None:
        return _fmt(fig["value"], digits)
    return f"{_fmt(fig['value'], digits)} [{_fmt(fig['lo'], digits)}, {_fmt(fig['hi'], digits)}]"


def fmt_fit(fit: dict[str, Any] | None) -> str:
    """A core fit's sigma, marked when the core is not Gaussian (never a resolution then)."""
    if not fit or fit.get("status") != "ok" or fit.get("sigma") is None:
        return "-" if not fit else f"({fit.get('status')})"
    text = f"{_fmt(fit['sigma'])} ({_fmt(fit['chi2_ndf'], 2)})"
    return text if fit.get("core_gaussian") is not False else f"{text} non-Gaussian"


#: Table columns: (key, header, kind); kind "fig" = headline figure with interval, "fit" = a core
#: fit (sigma and chi2/ndf, flagged), "val" = a plain metrics value.
COLUMNS: list[tuple[str, str, str]] = [
    ("model", "model", "model"), ("repr", "representation", "val"), ("dataset", "data set", "val"),
    ("seed", "seed", "val"), ("parameters", "parameters", "val"), ("epochs", "epochs", "val"),
    ("train_time_s", "train time [s]", "val"), ("inference_events_per_s", "inference [events/s]", "val"),
    ("residual_median", "r median", "fig"), ("residual_half_width_68", "r 68% half-width", "fig"),
    ("residual_tail_fraction", "share |r| > 0.5", "fig"),
    ("residual_fit", "r core fit sigma (chi2/ndf)", "fit"),
    ("missed_pixel_fraction", "missed truth pixels", "fig"), ("missed_energy_fraction", "missed truth energy", "fig"),
    ("fake_energy_fraction", "fake energy fraction", "fig"), ("fake_pixels_per_event", "fake pixels / event", "fig"),
    ("out_of_reach_fraction", "out-of-reach truth pixels", "val"),
    ("abs_norm_half_width_68", "dE/S 68% half-width (paper Eq. 1)", "fig"),
    ("train_max_gev", "training range max [GeV]", "val"),
    ("energy_fraction_above", "truth energy above training range", "val"),
    ("half_width_above", "r 68% half-width above training range", "val"),
    ("events", "events", "val"),
]
#: The jet table (jet samples): model, data set, then these.
JET_COLUMNS: list[tuple[str, str, str]] = [
    ("jet_efficiency", "jet efficiency", "fig"), ("jet_position_median", "jet D median [px]", "fig"),
    ("jet_energy_rel_median", "jet dE/E median (truth-jet pixels)", "fig"),
    ("jet_energy_rel_half_width_68", "jet dE/E 68% half-width (truth-jet pixels)", "fig"),
    ("jet_energy_match_rel_median", "jet dE/E median (matched jets)", "fig"),
    ("jet_energy_match_rel_half_width_68", "jet dE/E 68% half-width (matched jets)", "fig"),
]
ALL_COLUMNS = COLUMNS + JET_COLUMNS
#: Figures whose mean and spread over seeds are shown when a model has several seeds.
SEED_FIGURES = ("residual_median", "residual_half_width_68", "missed_pixel_fraction", "fake_energy_fraction",
                "abs_norm_half_width_68", "jet_position_median", "jet_energy_rel_median",
                "jet_energy_rel_half_width_68", "jet_energy_match_rel_half_width_68")


def summary_rows(runs: Sequence[EvalRun]) -> list[dict[str, Any]]:
    """One row per evaluation, every cell a metrics.json value (headline figures with intervals)."""
    rows = []
    for run in runs:
        m = run.metrics
        row: dict[str, Any] = {
            "model": run.name, "group": run.group or run.name, "repr": run.repr, "dataset": metric(m, "dataset.name"),
            "seed": metric(m, "training.seed"), "parameters": metric(m, "training.parameters"),
            "epochs": metric(m, "training.epochs"), "train_time_s": metric(m, "training.train_time_s"),
            "inference_events_per_s": metric(m, "timing.inference_events_per_s"),
            "residual_fit": metric(m, "energy.residual.fit"),
            "out_of_reach_fraction": metric(m, "energy.out_of_reach.pixel_fraction"),
            "train_max_gev": metric(m, "energy.extrapolation.train_max_gev"),
            "energy_fraction_above": metric(m, "energy.extrapolation.energy_fraction_above"),
            "half_width_above": metric(m, "energy.extrapolation.above.robust.half_width_68"),
            "events": metric(m, "dataset.n_events"),
            "degenerate": metric(m, "degenerate.reasons") or [] if is_degenerate(m) else [],
            "ranked": not is_degenerate(m),
        }
        for key, _, kind in ALL_COLUMNS:
            if kind == "fig":
                row[key] = figure(m, key)
        rows.append(row)
    return rows


#: The name of the oracle's row (the data file's ``oracle`` image, metrics.json ``baselines.oracle``).
ORACLE_ROW = "oracle (each particle from its own measurements)"


def oracle_rows(runs: Sequence[EvalRun], scale: float | None) -> list[dict[str, Any]]:
    """The oracle's row: the first evaluation that carries ``baselines.oracle`` (every evaluation of a
    report is of one data set, so they all carry the same), its figures on the report's one S; [] without."""
    for run in runs:
        oracle = metric(run.metrics, "baselines.oracle")
        if not isinstance(oracle, dict):
            continue
        m = on_norm_scale({**oracle, "settings": {"target_scale": metric(run.metrics, "settings.target_scale")}}, scale)
        row: dict[str, Any] = {k: None for k, _, kind in ALL_COLUMNS if kind != "fig"}
        row.update({"model": ORACLE_ROW, "group": ORACLE_ROW, "repr": "-", "dataset": metric(run.metrics, "dataset.name"),
                    "residual_fit": metric(m, "energy.residual.fit"),
                    "out_of_reach_fraction": metric(m, "energy.out_of_reach.pixel_fraction"),
                    "events": metric(m, "energy.n_events")})
        for key, _, kind in ALL_COLUMNS:
            if kind == "fig":
                row[key] = figure(m, key)
        return [row]
    return []


def _cell(row: dict[str, Any], key: str, kind: str) -> str:
    if kind == "model":
        return _fmt(row[key]) + (" DEGENERATE (never ranked)" if row.get("degenerate") else "")
    if kind == "fig":
        return fmt_interval(row[key])
    if kind == "fit":
        return fmt_fit(row[key])
    return _fmt(row[key])


def seed_spread(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over training seeds of each headline figure, per (model, data set).

    Only models evaluated with two or more distinct seeds on the same data set appear.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        base = str(row["group"])  # the configuration (summary_rows), never the model name alone
        groups.setdefault((base, str(row["dataset"])), []).append(row)
    out = []
    for (model, dataset), members in groups.items():
        seeds = {r["seed"] for r in members if r["seed"] is not None}
        if len(seeds) < 2:
            continue
        entry: dict[str, Any] = {"model": model, "dataset": dataset, "seeds": sorted(seeds), "figures": {}}
        for key in SEED_FIGURES:
            vals = np.array([r[key]["value"] for r in members if r[key]["value"] is not None], dtype=np.float64)
            entry["figures"][key] = ({"mean": float(vals.mean()), "std": float(vals.std(ddof=1)), "n": int(vals.size)}
                                     if vals.size >= 2 else None)
        out.append(entry)
    return out


#: Figures drawn across the page (two panels side by side).
WIDE_FIGURES = ("learning_curves.png", "accuracy_vs_compute.png")
WIDE = ' class="wide"'
#: The training-budget table: (key, header) of :func:`budget_rows`.
BUDGET_COLUMNS: list[tuple[str, str]] = [
    ("model", "model"), ("seed", "seed"), ("epochs", "epochs"), ("epoch_cap", "epoch cap"),
    ("wall_time_s", "wall time [s]"), ("status", "status"), ("best_epoch", "best epoch"),
    ("best_val_loss", "best val loss"), ("best_val_half_width", "val r 68% half-width at best"),
    ("scheduler", "lr schedule"), ("train_flops", "training FLOPs"), ("precision", "precision"),
]


def budget_rows(runs: Sequence[EvalRun]) -> list[dict[str, Any]]:
    """One row per evaluation: the run's training budget and status as metrics.json records them."""
    rows = []
    for run in runs:
        t = metric(run.metrics, "training") or {}
        row = {k: t.get(k) for k, _ in BUDGET_COLUMNS if k != "model"}
        row["model"] = run.name
        rows.append(row)
    return rows


def status_rule(runs: Sequence[EvalRun]) -> str | None:
    """The budget-status rule the evaluations' metrics.json record (``training.status_rule``): one
    text, or the distinct ones joined when runs were judged by different rules; None when none does."""
    rules = list(dict.fromkeys(r for run in runs if isinstance(r := metric(run.metrics, "training.status_rule"), str)
                               and r))
    return " | ".join(rules) if rules else None


def _rule_sentence(rule: str | None) -> str:
    return f"Status rule: {rule}." if rule else "Status rule: not recorded by these evaluations."


def _budget_markdown(rows: list[dict[str, Any]], rule: str | None) -> str:
    if not rows:
        return ""
    text = "\n## Training budget\n\n| " + " | ".join(h for _, h in BUDGET_COLUMNS) + " |\n|"
    text += "---|" * len(BUDGET_COLUMNS) + "\n"
    text += "".join("| " + " | ".join(_fmt(r[k]) for k, _ in BUDGET_COLUMNS) + " |\n" for r in rows)
    return text + f"\n{_rule_sentence(rule)}\n"


def _jet_columns(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The jet table's columns, or none when no evaluation has jets."""
    if not any(row["jet_efficiency"]["value"] is not None for row in rows):
        return []
    return [c for c in COLUMNS if c[0] in ("model", "dataset")] + JET_COLUMNS


def _markdown(rows: list[dict[str, Any]], spread: list[dict[str, Any]]) -> str:
    text = ""
    for cols in (COLUMNS, _jet_columns(rows)):
        if not cols:
            continue
        head = "| " + " | ".join(c[1] for c in cols) + " |\n|" + "---|" * len(cols) + "\n"
        body = "".join("| " + " | ".join(_cell(row, k, kind) for k, _, kind in cols) + " |\n" for row in rows)
        text += head + body + "\n"
    text = (text + "Figures: value [68 % bootstrap interval over events]. Fit columns: sigma (chi2/ndf); "
            "'non-Gaussian' marks a core fit that fails the stated rule and is never used to rank. "
            f"DEGENERATE marks a model never ranked ({DEGENERATE_RULE}).\n")
    if spread:
        text += "\n## Spread over training seeds (mean +- standard deviation)\n\n| model | data set | seeds | "
        text += " | ".join(SEED_FIGURES) + " |\n|" + "---|" * (3 + len(SEED_FIGURES)) + "\n"
        for e in spread:
            cells = [f"{f['mean']:.4g} +- {f['std']:.2g}" if f else "-" for f in e["figures"].values()]
            text += f"| {e['model']} | {e['dataset']} | {len(e['seeds'])} | " + " | ".join(cells) + " |\n"
    return text


def unique_labels(names: Sequence[str], folders: Sequence[str | Path]) -> list[str]:
    """One label per evaluation: its model name, and where several share a name the shortest tail
    of their folder paths that tells them apart ("cnn (seed1)"; a study's two configurations of one
    model, "calibrated (calibrated_tail_flat/seed1)" against "calibrated (calibrated/seed1)")."""
    parts = [Path(f).resolve().parts for f in folders]
    labels = list(names)
    for name in set(names):
        group = [i for i, n in enumerate(names) if n == name]
        if len(group) < 2:
            continue
        for depth in range(1, max(len(parts[i]) for i in group) + 1):
            tails = ["/".join(parts[i][-depth:]) for i in group]
            if len(set(tails)) == len(tails):
                break
        else:  # the same folder given twice: number them
            tails = [f"{t} #{k}" for k, t in enumerate(tails, 1)]
        for i, tail in zip(group, tails):
            labels[i] = f"{name} ({tail})"
    return labels


def seed_group(name: str, label: str) -> str:
    """The configuration a labelled evaluation belongs to, its seed left out: the label without the
    last folder of its tail ("cnn (seed1)" -> "cnn"; "calibrated (calibrated_tail_flat/seed1)" ->
    "calibrated (calibrated_tail_flat)"). Seeds are averaged within a group, never across groups."""
    if label == name or not label.startswith(f"{name} (") or not label.endswith(")"):
        return name
    parts = label[len(name) + 2:-1].split("/")
    return name if len(parts) == 1 else f"{name} ({'/'.join(parts[:-1])})"


def build_report(eval_dirs: Sequence[str | Path], out: str | Path, metrics_only_ok: bool = False,
                 force: bool = False) -> Path:
    """Write the comparison report into ``out``; returns the path of ``index.html``.

    ``metrics_only_ok``: evaluations whose predictions.root is absent (a study folder restored
    from version control, :data:`pfgraph.eval.folder.LOCAL_ONLY`) are reported from their
    metrics; the jet histograms and event displays, which need the per-event predictions, name
    the evaluations they leave out. The same folder given twice is reported once. The report
    folder changes as one unit (:func:`pfgraph.utils.atomic.atomic_folder`): an interrupted
    report leaves the previous one as it was, and no figure of an earlier report stays beside a
    new one. An existing ``out`` must be a report folder (or empty); ``force`` replaces any
    folder (its files are deleted). Degenerate models (:mod:`pfgraph.utils.degenerate`) are
    flagged and listed after the others, never ranked."""
    if not eval_dirs:
        raise PfgraphError("report: give at least one evaluation folder")
    eval_dirs = list(dict.fromkeys(str(Path(d).resolve()) for d in eval_dirs))  # one row per folder
    out = Path(out)
    check_not_inside(out, [*eval_dirs, Path.cwd()], "an input of this report or the current folder")
    check_report_target(out, force)
    runs = [load_eval(d, metrics_only_ok) for d in eval_dirs]
    check_evaluations(eval_dirs, local_only_may_miss=metrics_only_ok)  # complete, unmixed, one dataset
    runs.sort(key=lambda r: bool(is_degenerate(r.metrics)))  # degenerate models last (stable otherwise)
    for r, label in zip(runs, unique_labels([r.name for r in runs], [r.folder for r in runs])):
        r.group = seed_group(r.name, label)
        r.name = label  # every table, plot and fit is keyed by it: two evaluations must never share one
    with atomic_folder(out, "report", lambda o: check_report_target(o, force)) as work:
        _write_report(runs, work)
    return out / "index.html"


def _write_report(runs: list[EvalRun], out: Path) -> None:
    """Write every file of the report of ``runs`` into the (private, new) folder ``out``."""
    scale = common_norm_scale([r.metrics for r in runs])  # the paper's dE/S on one S for every model
    for r in runs:
        r.metrics = on_norm_scale(r.metrics, scale)
    rescaled = {r.name: own for r in runs if (own := metric(r.metrics, "settings.norm_rescaled_from")) is not None}
    note = norm_scale_sentence(scale, rescaled, "the largest training truth pixel most of the evaluated models share")
    figures: list[tuple[str, str]] = []

    hists = {r.name: residual_hist(r) for r in runs}
    fits = {r.name: metric(r.metrics, "energy.residual.fit") for r in runs}
    missed = {r.name: figure(r.metrics, "missed_pixel_fraction")["value"] for r in runs}
    plots.overlay_counts(hists, r"$(E_{pred} - E_{true}) / E_{true}$", "Per-pixel energy residual, all models",
                         out / "residual_all.png", fits, missed, logy=True)
    figures.append(("residual_all.png", "Per-pixel energy residual of every model (log scale) with its Gaussian "
                    "core fit drawn on the histogram's own normalisation (dashed; dotted where the core is not "
                    "Gaussian). Missed truth pixels (predicted empty, r = -1) are not part of the fitted histogram; "
                    "their share is in the legend."))
    for rep in sorted({r.repr for r in runs}):
        sub = {r.name: hists[r.name] for r in runs if r.repr == rep}
        fname = f"residual_{rep}.png"
        plots.overlay_counts(sub, r"$(E_{pred} - E_{true}) / E_{true}$", f"Per-pixel energy residual: {rep} models",
                             out / fname, fits, missed, xlim=(-1.0, 1.0))
        figures.append((fname, f"Residual core, {rep} representation (same histograms and fits, linear scale)."))
    plots.width_vs_energy({r.name: metric(r.metrics, "energy.residual_vs_etrue.bins") or [] for r in runs},
                          out / "width_vs_energy.png",
                          {r.name: metric(r.metrics, "energy.extrapolation.train_max_gev") for r in runs})
    figures.append(("width_vs_energy.png", "Residual 68 % half-width versus true pixel energy (the evaluation's "
                    "E_true bins; missed pixels included, as in the headline figure). Vertical lines: the largest "
                    "truth pixel each model was trained on; to their right every model extrapolates."))

    jet_figs = [("d_jet", (0.0, 6.0), "jet position deviation $D_{jet}$ [pixels]",
                 "Jet position deviation (anti-kt R=0.4)", "jet_position.png",
                 "Distance between predicted and truth jet axes, in pixels (branch d_jet)."),
                ("de_jet_rel", None,
                 r"$\sum_{truth\ jet\ pixels}(E_{pred} - E_{true}) / E^{jet}_{true}$",
                 "Jet energy deviation over the truth jet's pixels", "jet_energy.png",
                 "Jet energy deviation summed over the truth jet's pixels, / truth jet energy (branch de_jet_rel; "
                 "the table's 'truth-jet pixels' columns)."),
                ("de_match_rel", None, r"$(E^{jet}_{pred} - E^{jet}_{true}) / E^{jet}_{true}$",
                 "Matched-jet energy deviation", "jet_energy_matched.png",
                 "Energy of the matched prediction jet against the truth jet (branch de_match_rel; the table's "
                 "'matched jets' columns).")]
    absent = [r.name for r in runs if not r.has_predictions]
    left_out = (f" Not shown (their predictions.root is not on this machine; their figures are in the tables): "
                f"{', '.join(absent)}.") if absent else ""
    for branch, span, xlabel, title, fname, caption in jet_figs:
        series = {r.name: v for r in runs if (v := jet_branch(r, branch)) is not None and v.size}
        caption += left_out if any(metric(r.metrics, "jets.available") for r in runs if not r.has_predictions) else ""
        if series:
            if span is None:  # every model's bulk in view: 0.5-99.5 % of all values, at least [-0.2, 0.2]
                both = np.concatenate(list(series.values()))
                lo, hi = np.percentile(both, [0.5, 99.5])
                span = (min(float(lo), -0.2), max(float(hi), 0.2))
            plots.overlay_histograms(series, np.linspace(span[0], span[1], 81), xlabel, title, out / fname)
            figures.append((fname, caption))

    histories = {r.name: h for r in runs if isinstance(h := metric(r.metrics, "training.history"), dict)
                 and h.get("epoch")}
    if histories:
        plots.learning_curves(histories, out / "learning_curves.png",
                              {name: metric(r.metrics, "training.best_epoch") for r in runs
                               if (name := r.name) in histories})
        figures.insert(0, ("learning_curves.png", "Learning curves: each model's validation loss (log scale) and "
                           "validation residual 68 % half-width per epoch, as its run recorded them; the large "
                           "point marks the best epoch (the evaluated checkpoint). The training-budget table says "
                           "whether each run stopped early, hit its epoch cap or was still improving. A validation "
                           "loss is in its run's own units (its loss function, on targets divided by its own S), so "
                           "compare its shape across models, not its level; the half-width panel is one figure for "
                           "all."))
        _, no_flops = plots.accuracy_vs_compute(histories, out / "accuracy_vs_compute.png",
                                                {name: metric(r.metrics, "training.best_epoch") for r in runs
                                                 if (name := r.name) in histories})
        figures.insert(1, ("accuracy_vs_compute.png",
                           "Accuracy against compute: each model's validation residual 68 % half-width after every "
                           "epoch against the training FLOPs spent so far (forward + backward, counted by the "
                           "trainer, docs/METRICS.md) and against the epochs' wall seconds so far (training, "
                           "validation and checkpoints; data loading left out; this machine's, so comparable only "
                           "between runs on one machine), log x; the large point marks the best epoch. Compare "
                           "models at equal compute: a curve still falling at its right end was still improving."
                           + (f" Not in the FLOPs panel (trained before the trainer counted FLOPs): "
                              f"{', '.join(no_flops)}." if no_flops else "")))

    shown = [r for r in runs if r.has_predictions]
    displays = _event_displays(shown, out) if shown else []
    figures += [(f, c + left_out) for f, c in displays]
    rows = summary_rows(runs)
    spread = seed_spread(rows)
    rows += oracle_rows(runs, scale)  # the measured floor beside the models (not a model: no seeds)
    budget = budget_rows(runs)
    rule = status_rule(runs)
    summary = {"report_version": REPORT_VERSION, "models": rows, "seed_spread": spread, "training_budget": budget,
               "status_rule": rule,
               "evaluations": [str(r.folder) for r in runs], "figures": [f for f, _ in figures],
               "metrics_only": [str(r.folder) for r in runs if not r.has_predictions],
               "norm_scale": scale, "norm_rescaled_from": rescaled,
               "gaussian_rule": GAUSSIAN_RULE}
    summary["created_by"] = "pfgraph report"
    summary["degenerate_rule"] = DEGENERATE_RULE
    summary["files"] = sorted({*(f for f, _ in figures), "index.html", "summary.json", "summary.md"})
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=float))
    md = (text_marker("report", "<!--") + "\n# pfgraph comparison\n\n" + _markdown(rows, spread)
          + (f"\n{note}\n" if note else "") + _budget_markdown(budget, rule))
    atomic_write_text(out / "summary.md", md)
    atomic_write_text(out / "index.html", _html(rows, spread, figures, budget, note, rule))


def _event_displays(runs: Sequence[EvalRun], out: Path) -> list[tuple[str, str]]:
    """Inputs, truth, and each model's prediction for the same events (events common to all runs)."""
    common = set(runs[0].event_id.tolist())
    for r in runs[1:]:
        common &= set(r.event_id.tolist())
    if not common:
        return []
    chosen = sorted(common)[:N_DISPLAYS]
    dataset = metric(runs[0].metrics, "dataset.path") or []
    inputs_by_event: dict[int, dict[str, np.ndarray]] = {}
    if dataset and all(Path(p).exists() for p in dataset):
        try:
            files = EventFiles(dataset)
            data = files.read(["event_id", *schema.INPUT_CHANNELS], 0, min(files.num_events, max(chosen) + 1 + 1000))
            for i, eid in enumerate(data["event_id"].tolist()):
                if eid in chosen:
                    inputs_by_event[eid] = {c: data[c][i] for c in schema.INPUT_CHANNELS}
        except PfgraphError:
            inputs_by_event = {}
    figs = []
    for eid in chosen:
        preds = {}
        truth = None
        for r in runs:
            i = int(np.flatnonzero(r.event_id == eid)[0])
            preds[r.name] = r.pred[i]
            truth = r.truth[i] if truth is None else truth
        fname = f"event_{eid}.png"
        plots.event_display(inputs_by_event.get(eid, {}), truth, preds, out / fname, title=f"event {eid}",
                            jets=_jet_axes(runs, eid))
        figs.append((fname, f"Event {eid}: inputs, truth, each model's prediction and residual; anti-kt jet axes circled."))
    return figs


def _jet_axes(runs: Sequence[EvalRun], eid: int) -> dict[str, list[tuple[float, float]]]:
    axes: dict[str, list[tuple[float, float]]] = {}
    for r in runs:
        j = r.jets
        if not all(k in j for k in ("truth_jet_eta", "truth_jet_phi", "pred_jet_eta", "pred_jet_phi")):
            continue
        i = int(np.flatnonzero(r.event_id == eid)[0])
        axes.setdefault("truth", [(float(e), float(p)) for e, p in zip(j["truth_jet_eta"][i], j["truth_jet_phi"][i])][:1])
        axes[r.name] = [(float(e), float(p)) for e, p in zip(j["pred_jet_eta"][i], j["pred_jet_phi"][i])][:1]
    return axes


def _html(rows: list[dict[str, Any]], spread: list[dict[str, Any]], figures: list[tuple[str, str]],
          budget: list[dict[str, Any]] | None = None, note: str = "", rule: str | None = None) -> str:
    tables = ""
    for title, cols in (("Per-pixel energy", COLUMNS), ("Jets", _jet_columns(rows))):
        if not cols:
            continue
        head = "".join(f"<th>{html.escape(c[1])}</th>" for c in cols)
        body = "".join(('<tr class="degenerate">' if row.get("degenerate") else "<tr>") + "".join(
            f'<td class="{"flag" if kind == "fit" and "non-Gaussian" in _cell(row, k, kind) else ""}">'
            f"{_cell(row, k, kind)}</td>" for k, _, kind in cols) + "</tr>\n" for row in rows)
        tables += f"<h2>{title}</h2>\n<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n"
    seeds = ""
    if spread:
        shead = "".join(f"<th>{html.escape(k)}</th>" for k in SEED_FIGURES)
        sbody = "".join(f"<tr><td>{html.escape(e['model'])}</td><td>{html.escape(e['dataset'])}</td>"
                        f"<td>{len(e['seeds'])}</td>" + "".join(
                            f"<td>{f['mean']:.4g} &plusmn; {f['std']:.2g}</td>" if f else "<td>-</td>"
                            for f in e["figures"].values()) + "</tr>\n" for e in spread)
        seeds = (f"<h2>Spread over training seeds</h2><p>Mean &plusmn; standard deviation of each figure over the "
                 f"seeds a model was trained with.</p><table><thead><tr><th>model</th><th>data set</th><th>seeds</th>"
                 f"{shead}</tr></thead><tbody>{sbody}</tbody></table>")
    budget_html = ""
    if budget:
        bhead = "".join(f"<th>{html.escape(h)}</th>" for _, h in BUDGET_COLUMNS)
        bbody = "".join("<tr>" + "".join(
            ('<td class="flag">' if k == "status" and r[k] == STILL_IMPROVING else "<td>") + f"{_fmt(r[k])}</td>"
            for k, _ in BUDGET_COLUMNS) + "</tr>\n" for r in budget)
        budget_html = (f"<h2>Training budget</h2><p>Epochs run against each run's cap, wall time (data loading, "
                       f"training, validation and checkpoints) and where the run stood when it ended; runs still "
                       f"improving at their cap are shaded: their figures describe the budget as much as the "
                       f"architecture. {html.escape(_rule_sentence(rule))}</p>"
                       f"<table><thead><tr>{bhead}</tr></thead><tbody>{bbody}</tbody></table>")
    figs = "".join(f'<figure{WIDE if f in WIDE_FIGURES else ""}><img src="{html.escape(f)}" alt="{html.escape(cap)}"><figcaption>{html.escape(cap)}'
                   f"</figcaption></figure>\n" for f, cap in figures)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pfgraph comparison</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.8em; display: block; overflow-x: auto; max-width: 100%; }}
th, td {{ border: 1px solid #ccc; padding: 4px 6px; text-align: right; }}
th {{ background: #f0f0f0; }} td:first-child, td:nth-child(2), td:nth-child(3) {{ text-align: left; }}
td.flag {{ background: #fff0e0; }} tr.degenerate td {{ background: #f4d6d6; }}
figure {{ display: inline-block; margin: 1em; max-width: 46%; vertical-align: top; }}
figure.wide {{ display: block; max-width: 95%; }}
img {{ max-width: 100%; }} figcaption {{ font-size: 0.85em; color: #555; }}
</style></head><body>
<h1>pfgraph: model comparison on the truth grid</h1>
<p>Every model is evaluated identically on the G x G truth grid after de-normalisation with its own
training-set scales, and every number below is the evaluation's own (metrics.json). Residual
r = (E<sub>pred</sub> - E<sub>true</sub>)/E<sub>true</sub> over pixels with E<sub>true</sub> &gt; 0; its median,
68 % half-width and tail share are the ranking figures. Each figure is shown as value [68 % bootstrap interval over
events]; two models differ on a figure only where their intervals do not overlap. <b>Missed truth pixels</b> (predicted
empty, r = -1) are counted on their own and left out of the Gaussian core fit. A core fit is a resolution only if
its core is Gaussian ({html.escape(GAUSSIAN_RULE)}); fits that fail it are marked non-Gaussian (shaded) and are
never used to rank. A model whose figures bias alone could win is flagged <b>DEGENERATE</b> (red rows, listed
last) and never ranked ({html.escape(DEGENERATE_RULE)}): a model that predicts nothing misses every truth pixel, and
its half-width is then 0. Fake energy = predicted energy in pixels without truth. Point-cloud models cannot reach truth
pixels without any input (the out-of-reach share). Jet energy has two definitions, both from the evaluation:
the sum over the truth jet's pixels of (E<sub>pred</sub> - E<sub>true</sub>) / E<sub>truth jet</sub> and the
matched jets' own energies (E<sub>pred jet</sub> - E<sub>truth jet</sub>) / E<sub>truth jet</sub>.
Where the data file carries the oracle image, the row "{html.escape(ORACLE_ROW)}" is the measured floor: every
particle's energy estimated from its own track and calorimeter measurements alone, evaluated with the same code
(docs/METRICS.md); the analytic model is the physics baseline.</p>
{f"<p>{html.escape(note)}</p>" if note else ""}
{tables}
{budget_html}
{seeds}
{figs}
</body></html>
"""
