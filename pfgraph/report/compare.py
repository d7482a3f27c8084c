"""The comparison report: many evaluation folders (any models, any representations) -> one page.

Reads each folder's ``metrics.json`` and ``predictions.root`` and writes a self-contained
``index.html`` (relative links only; opens without network), PNG figures, ``summary.json``
and ``summary.md``. Residual and jet distributions are recomputed from the prediction files
with the same definitions as :mod:`pfgraph.eval` (DESIGN §5), so every model is shown the
same way.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from pfgraph.errors import DataError, PfgraphError
from pfgraph.eval.folder import check_evaluations
from pfgraph.eval.metrics import read_metrics
from pfgraph.io import schema
from pfgraph.io.root import EventFiles, open_root, read_meta
from pfgraph.report import plots
from pfgraph.utils.atomic import atomic_write_text, ensure_writable_dir

REPORT_VERSION = 1
RESIDUAL_BINS = np.linspace(-5.0, 2.0, 1001)
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


def metric(metrics: dict[str, Any], path: str) -> Any:
    """The value at dotted ``path`` of a metrics document (:mod:`pfgraph.eval.metrics`), or None."""
    node: Any = metrics
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def load_eval(folder: str | Path) -> EvalRun:
    """Load an evaluation folder; one clear error line if anything needed is missing."""
    folder = Path(folder)
    mfile = folder / "metrics.json"
    pfile = folder / "predictions.root"
    if not mfile.exists():
        raise DataError(f"{folder}: no metrics.json (is this a 'pfgraph evaluate' output folder?)")
    if not pfile.exists():
        raise DataError(f"{folder}: no predictions.root")
    metrics = read_metrics(mfile)
    f = open_root(pfile)
    read_meta(f, pfile)
    if schema.PREDICTIONS_TREE not in f:
        raise DataError(f"{pfile}: tree '{schema.PREDICTIONS_TREE}' missing")
    tree = f[schema.PREDICTIONS_TREE]
    for b in ("event_id", "pred", "truth"):
        if b not in tree:
            raise DataError(f"{pfile}: branch '{b}' missing from tree '{schema.PREDICTIONS_TREE}'")
    arrays = tree.arrays(["event_id", "pred", "truth"], library="np")
    for b in ("pred", "truth"):
        if arrays[b].shape[1:] != (schema.IMSIZE, schema.IMSIZE):
            raise DataError(f"{pfile}: branch '{b}' has shape {arrays[b].shape[1:]}, expected "
                            f"({schema.IMSIZE}, {schema.IMSIZE}) (a prediction file of another grid size)")
    jets: dict[str, np.ndarray] = {}
    if schema.JETS_TREE in f:
        jt = f[schema.JETS_TREE]
        for name in jt.keys():
            arr = jt[name].array(library="ak")
            jets[name] = arr
    name = str(metric(metrics, "model.name") or folder.name)
    repr_name = str(metric(metrics, "model.repr") or "?")
    return EvalRun(folder, metrics, name, repr_name, arrays["pred"], arrays["truth"], arrays["event_id"], jets)


def residuals(run: EvalRun) -> tuple[np.ndarray, np.ndarray]:
    """(r, E_true) over pixels with E_true > 0: r = (E_pred - E_true) / E_true."""
    sel = run.truth > 0
    t = run.truth[sel].astype(np.float64)
    return (run.pred[sel] - t) / t, t


def width68(values: np.ndarray) -> float:
    """Half-width of the central 68 % interval."""
    if values.size == 0:
        return float("nan")
    lo, hi = np.percentile(values, [15.865, 84.135])
    return float(0.5 * (hi - lo))


def width_by_energy(r: np.ndarray, t: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """68 % half-width of ``r`` in bins of ``t``."""
    idx = np.digitize(t, edges) - 1
    centres = np.sqrt(edges[1:] * edges[:-1])
    widths = np.array([width68(r[idx == i]) if (idx == i).sum() >= 20 else np.nan for i in range(len(centres))])
    return centres, widths


def _jet_series(run: EvalRun, kind: str) -> np.ndarray | None:
    """Per-event jet deviation from the jets tree: 'position' (pixels) or 'energy' (/ E_truth_jet)."""
    j = run.jets
    need = ("truth_jet_eta", "truth_jet_phi", "pred_jet_eta", "pred_jet_phi", "truth_jet_energy", "pred_jet_energy")
    if not all(k in j for k in need):
        return None
    first = {k: ak.to_numpy(ak.fill_none(ak.firsts(j[k]), np.nan)) for k in need}
    ok = np.isfinite(first["truth_jet_eta"]) & np.isfinite(first["pred_jet_eta"])
    if kind == "position":
        deta = (first["pred_jet_eta"] - first["truth_jet_eta"]) / schema.ETA_PIXEL
        dphi = np.mod(first["pred_jet_phi"] - first["truth_jet_phi"] + np.pi, 2 * np.pi) - np.pi
        return np.hypot(deta, dphi / schema.PHI_PIXEL)[ok]
    return ((first["pred_jet_energy"] - first["truth_jet_energy"]) / first["truth_jet_energy"])[ok]


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if isinstance(x, (float, np.floating)):
        return "-" if not np.isfinite(x) else f"{x:.{digits}g}"
    return html.escape(str(x))


def summary_rows(runs: Sequence[EvalRun]) -> list[dict[str, Any]]:
    """One row of headline figures per model (from metrics.json, robust widths recomputed)."""
    rows = []
    for run in runs:
        r, _ = residuals(run)
        m = run.metrics
        pos = _jet_series(run, "position")
        ene = _jet_series(run, "energy")
        rows.append({
            "model": run.name,
            "repr": run.repr,
            "parameters": metric(m, "training.parameters"),
            "train_time_s": metric(m, "training.train_time_s"),
            "epochs": metric(m, "training.epochs"),
            "inference_events_per_s": metric(m, "timing.inference_events_per_s"),
            "residual_fit_mu": metric(m, "energy.residual.fit.mu"),
            "residual_fit_sigma": metric(m, "energy.residual.fit.sigma"),
            "residual_median": float(np.median(r)) if r.size else None,
            "residual_width68": width68(r),
            "fake_energy_fraction": metric(m, "energy.fake.energy_fraction"),
            "out_of_reach_fraction": metric(m, "energy.out_of_reach.pixel_fraction"),
            "jet_position_fit_sigma": metric(m, "jets.position.fit.sigma"),
            "jet_position_median_px": float(np.median(pos)) if pos is not None and pos.size else None,
            "jet_energy_fit_sigma": metric(m, "jets.energy_rel.fit.sigma"),
            "jet_energy_width68": width68(ene) if ene is not None else None,
            "jet_efficiency": metric(m, "jets.efficiency"),
            "events": int(len(run.event_id)),
        })
    return rows


COLUMNS = [
    ("model", "model"), ("repr", "representation"), ("parameters", "parameters"),
    ("train_time_s", "train time [s]"), ("epochs", "epochs"), ("inference_events_per_s", "inference [events/s]"),
    ("residual_fit_mu", "residual fit mu"), ("residual_fit_sigma", "residual fit sigma"),
    ("residual_median", "residual median"), ("residual_width68", "residual 68% half-width"),
    ("fake_energy_fraction", "fake energy fraction"), ("out_of_reach_fraction", "out-of-reach truth pixels"),
    ("jet_position_fit_sigma", "jet D fit sigma [px]"), ("jet_position_median_px", "jet D median [px]"),
    ("jet_energy_fit_sigma", "jet dE/E fit sigma"), ("jet_energy_width68", "jet dE/E 68% half-width"),
    ("jet_efficiency", "jet efficiency"), ("events", "events"),
]


def _markdown(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(c[1] for c in COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    body = "".join("| " + " | ".join(_fmt(row[c[0]]) for c in COLUMNS) + " |\n" for row in rows)
    return head + body


def build_report(eval_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Write the comparison report into ``out``; returns the path of ``index.html``."""
    if not eval_dirs:
        raise PfgraphError("report: give at least one evaluation folder")
    out = ensure_writable_dir(out)
    runs = [load_eval(d) for d in eval_dirs]
    check_evaluations(eval_dirs)  # complete, unmixed folders (manifest.json) of one dataset
    names = [r.name for r in runs]
    if len(set(names)) != len(names):  # same model evaluated twice: label by folder
        for r in runs:
            r.name = f"{r.name} ({r.folder.name})"
    figures: list[tuple[str, str]] = []

    res = {r.name: residuals(r) for r in runs}
    fits = {r.name: (metric(r.metrics, "energy.residual.fit.mu"), metric(r.metrics, "energy.residual.fit.sigma"))
            for r in runs}
    fits = {k: v for k, v in fits.items() if v[0] is not None and v[1] is not None}
    plots.overlay_histograms({k: v[0] for k, v in res.items()}, RESIDUAL_BINS[::10],
                             r"$(E_{pred} - E_{true}) / E_{true}$", "Per-pixel energy residual, all models",
                             out / "residual_all.png", fits, logy=True)
    figures.append(("residual_all.png", "Per-pixel energy residual of every model (log scale), Gaussian core fits dashed."))
    for rep in sorted({r.repr for r in runs}):
        sub = {r.name: res[r.name][0] for r in runs if r.repr == rep}
        fname = f"residual_{rep}.png"
        plots.overlay_histograms(sub, np.linspace(-1.0, 1.0, 201), r"$(E_{pred} - E_{true}) / E_{true}$",
                                 f"Per-pixel energy residual: {rep} models", out / fname, fits)
        figures.append((fname, f"Residual core, {rep} representation."))
    edges = np.geomspace(0.05, 20.0, 16)
    plots.width_vs_energy({k: width_by_energy(v[0], v[1], edges) for k, v in res.items()}, out / "width_vs_energy.png")
    figures.append(("width_vs_energy.png", "Residual 68 % half-width versus true pixel energy."))

    pos = {r.name: s for r in runs if (s := _jet_series(r, "position")) is not None}
    ene = {r.name: s for r in runs if (s := _jet_series(r, "energy")) is not None}
    if pos:
        plots.overlay_histograms(pos, np.linspace(0, 6, 61), "jet position deviation $D_{jet}$ [pixels]",
                                 "Jet position deviation (anti-kt R=0.4)", out / "jet_position.png")
        figures.append(("jet_position.png", "Distance between predicted and truth jet axes, in pixels."))
    if ene:
        plots.overlay_histograms(ene, np.linspace(-0.5, 0.5, 101), r"$(E^{jet}_{pred} - E^{jet}_{true}) / E^{jet}_{true}$",
                                 "Jet energy deviation (anti-kt R=0.4)", out / "jet_energy.png")
        figures.append(("jet_energy.png", "Relative jet energy deviation."))

    figures += _event_displays(runs, out)
    rows = summary_rows(runs)
    summary = {"report_version": REPORT_VERSION, "models": rows,
               "evaluations": [str(r.folder) for r in runs], "figures": [f for f, _ in figures]}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=float))
    md = "# pfgraph comparison\n\n" + _markdown(rows)
    atomic_write_text(out / "summary.md", md)
    index = out / "index.html"
    atomic_write_text(index, _html(rows, figures))
    return index


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


def _html(rows: list[dict[str, Any]], figures: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(c[1])}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(row[c[0]])}</td>" for c in COLUMNS) + "</tr>\n" for row in rows)
    figs = "".join(f'<figure><img src="{html.escape(f)}" alt="{html.escape(cap)}"><figcaption>{html.escape(cap)}'
                   f"</figcaption></figure>\n" for f, cap in figures)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pfgraph comparison</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th {{ background: #f0f0f0; }} td:first-child, td:nth-child(2) {{ text-align: left; }}
figure {{ display: inline-block; margin: 1em; max-width: 46%; vertical-align: top; }}
img {{ max-width: 100%; }} figcaption {{ font-size: 0.85em; color: #555; }}
</style></head><body>
<h1>pfgraph: model comparison on the truth grid</h1>
<p>Every model is evaluated identically on the 56x56 truth grid after de-normalisation with its own
training-set scales. Residual r = (E<sub>pred</sub> - E<sub>true</sub>)/E<sub>true</sub> over pixels with
E<sub>true</sub> &gt; 0; fake energy = predicted energy in pixels without truth. Point-cloud models cannot
reach truth pixels without any input (the out-of-reach fraction).</p>
<table><thead><tr>{head}</tr></thead><tbody>
{body}</tbody></table>
{figs}
</body></html>
"""
