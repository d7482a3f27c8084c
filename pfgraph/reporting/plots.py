"""Matplotlib figures in one consistent HEP style (colour-blind-safe palette, units on axes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from pfgraph import geometry  # noqa: E402
from pfgraph.utils.atomic import atomic_path  # noqa: E402
from pfgraph.utils.ownership import PNG_METADATA  # noqa: E402

#: Okabe-Ito colour-blind-safe palette.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
EXTENT = (-np.pi, np.pi, -geometry.MAX_ETA, geometry.MAX_ETA)
#: Line styles cycled once the palette is used up (more than 8 models in one figure).
LINESTYLES = ("-", ":", "-.")


def line_style(i: int) -> dict[str, str]:
    """Colour and line style of the ``i``-th model: unique for up to 24 models."""
    return {"color": PALETTE[i % len(PALETTE)], "ls": LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)]}


def style() -> None:
    """Apply the pfgraph figure style."""
    plt.rcParams.update({
        "figure.dpi": 110, "font.size": 10, "axes.grid": True, "grid.alpha": 0.3, "axes.prop_cycle":
        matplotlib.cycler(color=PALETTE), "legend.frameon": False, "xtick.direction": "in", "ytick.direction": "in",
        "xtick.top": True, "ytick.right": True,
    })


def legend(ax: Any, **kwargs: Any) -> None:
    """A legend, if anything in ``ax`` carries a label (an empty figure gets none, and no warning)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def save(fig: Any, path: str | Path) -> Path:
    """Save a figure atomically as PNG and close it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", metadata=PNG_METADATA)
    plt.close(fig)
    return path


def overlay_histograms(series: Mapping[str, np.ndarray], bins: np.ndarray, xlabel: str, title: str,
                       path: str | Path, logy: bool = False) -> Path:
    """Normalised step histograms of several models' per-event values (no fit curves)."""
    style()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    centres = 0.5 * (bins[1:] + bins[:-1])
    width = np.diff(bins)
    for i, (name, values) in enumerate(series.items()):
        counts, _ = np.histogram(values, bins=bins)
        density = counts / max(counts.sum(), 1) / width
        ax.step(centres, density, where="mid", label=f"{name} (median {np.median(values):.3g})", **line_style(i))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("normalised entries / bin width")
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    legend(ax, fontsize=8)
    return save(fig, path)


def width_vs_energy(rows: Mapping[str, Sequence[Mapping[str, Any]]], path: str | Path,
                    train_max: Mapping[str, float | None] | None = None) -> Path:
    """Residual 68 % half-width versus true pixel energy, one line per model.

    ``rows``: model -> the evaluation's ``energy.residual_vs_etrue.bins`` (robust figures per
    E_true bin); each point sits at the bin's geometric centre (the open last bin at twice its
    lower edge). ``train_max``: model -> largest training truth pixel (GeV), drawn as a vertical
    line (the training range ends there).
    """
    style()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    marked: set[float] = set()
    for i, (name, bins) in enumerate(rows.items()):
        edge = (train_max or {}).get(name)
        if edge is not None and round(edge, 3) not in marked:
            marked.add(round(edge, 3))
            ax.axvline(edge, color=line_style(i)["color"], ls="--", lw=0.8,
                       label=f"training range ends ({edge:.1f} GeV)")
        pts = [(float(np.sqrt(max(b["lo"], 0.1) * (b["hi"] if b.get("hi") is not None else 2 * b["lo"]))),
                b["robust"]["half_width_68"]) for b in bins
               if b.get("robust") and b["robust"].get("half_width_68") is not None]
        if pts:
            x, y = zip(*pts)
            ax.plot(x, y, marker="o", ms=3, label=name, **line_style(i))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("true pixel energy $E_{true}$ [GeV]")
    ax.set_ylabel("residual 68 % half-width")
    ax.set_title("Per-pixel energy resolution")
    legend(ax, fontsize=8)
    return save(fig, path)


def fit_curve(fit: Mapping[str, Any], entries: float, x: np.ndarray) -> np.ndarray:
    """The Gaussian of a core fit as a density normalised to a histogram of ``entries`` entries.

    The fit's ``amplitude`` is the number of entries its Gaussian holds (extended likelihood), so
    ``amplitude / entries * N(x; mu, sigma)`` is on the scale of ``counts / (entries * bin width)``.
    """
    mu, sigma, amp = fit["mu"], fit["sigma"], fit["amplitude"]
    return amp / entries * np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))


def overlay_counts(series: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]], xlabel: str, title: str,
                   path: str | Path, fits: Mapping[str, Mapping[str, Any] | None] | None = None,
                   missed: Mapping[str, float | None] | None = None, logy: bool = False,
                   xlim: tuple[float, float] | None = None) -> Path:
    """Histograms given as counts (an evaluation's own), each with its core fit on the same normalisation.

    ``series``: name -> (edges, counts of all entries, counts of the fitted entries or None).
    The fitted histogram is drawn (density = counts / (entries * bin width)), and the fit's
    Gaussian over its window on that same normalisation (:func:`fit_curve`): dashed for a
    Gaussian core, dotted where the fit is flagged non-Gaussian. ``missed``: name -> share of
    entries left out of the fit (shown in the legend).
    """
    style()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (name, (edges, counts, fitted)) in enumerate(series.items()):
        look = line_style(i)
        shown = fitted if fitted is not None else counts
        entries = float(shown.sum())
        if entries <= 0:
            continue
        width = np.diff(edges)
        centres = 0.5 * (edges[1:] + edges[:-1])
        label = name
        share = (missed or {}).get(name)
        if share is not None:
            label += f" (missed {100 * share:.1f}%)"
        fit = (fits or {}).get(name)
        if fit and fit.get("status") == "ok" and fit.get("sigma"):
            lo, hi = fit["window"]
            x = np.linspace(lo, hi, 200)
            gaussian = fit.get("core_gaussian") is not False
            ax.plot(x, fit_curve(fit, entries, x), color=look["color"], ls="--" if gaussian else ":", lw=1.2)
            label += f": $\\mu$={fit['mu']:.3f}, $\\sigma$={fit['sigma']:.3f}" + ("" if gaussian else " (non-Gaussian)")
        ax.step(centres, shown / (entries * width), where="mid", label=label, **look)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("entries / (all fitted entries x bin width)")
    ax.set_title(title)
    if xlim:
        ax.set_xlim(*xlim)
    if logy:
        ax.set_yscale("log")
    legend(ax, fontsize=7)
    return save(fig, path)


def event_display(inputs: Mapping[str, np.ndarray], truth: np.ndarray, preds: Mapping[str, np.ndarray],
                  path: str | Path, title: str = "",
                  jets: Mapping[str, Sequence[tuple[float, float]]] | None = None) -> Path:
    """Inputs, truth, and each model's prediction and residual for one event (log colour scale).

    ``jets`` maps a panel name ("truth" or a model) to jet axes (eta, phi) drawn as circles.
    """
    style()
    panels: list[tuple[str, np.ndarray, str]] = [(k, v, "GeV") for k, v in inputs.items()]
    panels.append(("truth", truth, "GeV"))
    for name, pred in preds.items():
        panels.append((name, pred, "GeV"))
        panels.append((f"{name} - truth", pred - truth, "GeV"))
    ncol = 4
    nrow = int(np.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol, 3.0 * nrow), squeeze=False)
    positive = np.concatenate([p[1][p[1] > 0].ravel() for p in panels if not p[0].endswith("truth")] + [truth[truth > 0]])
    vmin = max(float(np.percentile(positive, 1)) if positive.size else 1e-2, 1e-3)
    vmax = max(float(positive.max()) if positive.size else 1.0, vmin * 10)
    for ax, (name, img, unit) in zip(axes.ravel(), panels):
        if name.endswith("- truth"):
            lim = max(float(np.abs(img).max()), 1e-3)
            im = ax.imshow(img, origin="lower", extent=EXTENT, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
        else:
            im = ax.imshow(np.where(img > 0, img, np.nan), origin="lower", extent=EXTENT, aspect="auto",
                           cmap="viridis", norm=LogNorm(vmin=vmin, vmax=vmax))
        key = name.replace(" - truth", "")
        for eta, phi in (jets or {}).get(key, []):
            ax.add_patch(plt.Circle((phi, eta), 0.4, fill=False, color="red", lw=1))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(r"$\phi$ [rad]")
        ax.set_ylabel(r"$\eta$")
        ax.grid(False)
        fig.colorbar(im, ax=ax, label=unit, fraction=0.046)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


def learning_curves(histories: Mapping[str, Mapping[str, Sequence[Any] | None]], path: str | Path,
                    best_epochs: Mapping[str, int | None] | None = None) -> Path:
    """Each model's validation loss (log scale) and validation residual 68 % half-width per epoch,
    one panel each, from the runs' recorded histories (``training.history`` of metrics.json).

    A model's best epoch (``best_epochs``) is marked with a filled point on both curves.
    """
    style()
    fig, (ax_loss, ax_hw) = plt.subplots(1, 2, figsize=(11.0, 4.2))
    best_epochs = best_epochs or {}
    positive = True
    for i, (name, h) in enumerate(histories.items()):
        epochs = np.asarray(h.get("epoch") or [], dtype=np.float64)
        st = line_style(i)
        best = best_epochs.get(name)
        for ax, key in ((ax_loss, "val_loss"), (ax_hw, "val_half_width")):
            values = np.asarray([np.nan if v is None else v for v in (h.get(key) or [])], dtype=np.float64)
            if values.size != epochs.size or not np.isfinite(values).any():
                continue
            ax.plot(epochs, values, marker="o", ms=3, label=name, **st)
            if key == "val_loss" and np.nanmin(values) <= 0:
                positive = False
            if best is not None and best in epochs:
                j = int(np.flatnonzero(epochs == best)[0])
                ax.plot([best], [values[j]], "o", ms=7, color=st["color"], mfc=st["color"], mec="k", mew=0.6)
    if positive and ax_loss.lines:
        ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("validation loss (each run's own units)")
    ax_loss.set_title("Validation loss")
    ax_hw.set_xlabel("epoch")
    ax_hw.set_ylabel(r"validation $r$ 68 % half-width")
    ax_hw.set_title("Validation residual half-width")
    for ax in (ax_loss, ax_hw):
        ax.xaxis.get_major_locator().set_params(integer=True)
    legend(ax_loss, fontsize=8)
    legend(ax_hw, fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def _series(h: Mapping[str, Sequence[Any] | None], key: str) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in (h.get(key) or [])], dtype=np.float64)


def compute_axes(h: Mapping[str, Sequence[Any] | None]) -> dict[str, np.ndarray]:
    """A recorded history's compute axes, one value per epoch: ``flops`` (the cumulative training
    FLOPs the run recorded, ``train_flops``) and ``wall_s`` (the running sum of the epochs' wall
    seconds: training, validation and checkpoints, data loading left out); NaN where the run
    recorded none."""
    wall = _series(h, "wall_s")
    return {"flops": _series(h, "train_flops"), "wall_s": np.cumsum(wall) if wall.size else wall}


def accuracy_vs_compute(histories: Mapping[str, Mapping[str, Sequence[Any] | None]], path: str | Path,
                        best_epochs: Mapping[str, int | None] | None = None) -> tuple[Path, list[str]]:
    """Each model's validation residual 68 % half-width against its cumulative training FLOPs
    (left) and its cumulative epoch wall seconds (right), all models on one log x axis each, from
    the runs' recorded histories (``training.history`` of metrics.json; :func:`compute_axes`).

    The best epoch (``best_epochs``) gets a filled point. Returns the path and the models left
    out of the FLOPs panel (histories recorded before ``train_flops`` existed).
    """
    style()
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.2))
    best_epochs = best_epochs or {}
    no_flops: list[str] = []
    for i, (name, h) in enumerate(histories.items()):
        epochs = _series(h, "epoch")
        hw = _series(h, "val_half_width")
        st = line_style(i)
        best = best_epochs.get(name)
        for ax, (key, x) in zip(axes, compute_axes(h).items()):
            ok = np.isfinite(x) & np.isfinite(hw) & (x > 0) if x.size == hw.size == epochs.size else np.zeros(0, bool)
            if not ok.any():
                if key == "flops":
                    no_flops.append(name)
                continue
            ax.plot(x[ok], hw[ok], marker="o", ms=3, label=name, **st)
            if best is not None and best in epochs[ok]:
                j = int(np.flatnonzero(epochs == best)[0])
                ax.plot([x[j]], [hw[j]], "o", ms=7, color=st["color"], mfc=st["color"], mec="k", mew=0.6)
    for ax, xlabel, title in ((axes[0], "cumulative training FLOPs (forward + backward)", "Accuracy against compute"),
                              (axes[1], "cumulative epoch wall time [s]", "Accuracy against wall time")):
        if ax.lines:
            ax.set_xscale("log")
            if ax is axes[1]:  # seconds as plain numbers (3, 10, 300), minor ones only over a short span
                ax.xaxis.set_major_formatter(matplotlib.ticker.LogFormatter())
                ax.xaxis.set_minor_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=False,
                                                                            minor_thresholds=(1.2, 0.6)))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(r"validation $r$ 68 % half-width")
        ax.set_title(title)
        legend(ax, fontsize=8)
    fig.tight_layout()
    return save(fig, path), no_flops
