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

from pfgraph.io import schema  # noqa: E402
from pfgraph.utils.atomic import atomic_path  # noqa: E402

#: Okabe-Ito colour-blind-safe palette.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
EXTENT = (-np.pi, np.pi, -schema.MAX_ETA, schema.MAX_ETA)
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


def save(fig: Any, path: str | Path) -> Path:
    """Save a figure atomically as PNG and close it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    return path


def overlay_histograms(series: Mapping[str, np.ndarray], bins: np.ndarray, xlabel: str, title: str,
                       path: str | Path, fits: Mapping[str, tuple[float, float]] | None = None,
                       logy: bool = False) -> Path:
    """Normalised step histograms of several models, with optional Gaussian fit curves (mu, sigma)."""
    style()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    centres = 0.5 * (bins[1:] + bins[:-1])
    width = np.diff(bins)
    for i, (name, values) in enumerate(series.items()):
        look = line_style(i)
        colour = look["color"]
        counts, _ = np.histogram(values, bins=bins)
        density = counts / max(counts.sum(), 1) / width
        label = name
        if fits and name in fits and fits[name] is not None and np.isfinite(fits[name][1]):
            mu, sigma = fits[name]
            label = f"{name}: $\\mu$={mu:.3f}, $\\sigma$={sigma:.3f}"
            core = np.abs(centres - mu) < 3 * sigma
            peak = density[core].max() if core.any() else 0
            ax.plot(centres[core], peak * np.exp(-0.5 * ((centres[core] - mu) / sigma) ** 2), color=colour, ls="--", lw=1)
        ax.step(centres, density, where="mid", label=label, **look)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("normalised entries / bin width")
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    return save(fig, path)


def width_vs_energy(rows: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path) -> Path:
    """Residual 68 % half-width versus true pixel energy, one line per model."""
    style()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (name, (centres, widths)) in enumerate(rows.items()):
        ax.plot(centres, widths, marker="o", ms=3, label=name, **line_style(i))
    ax.set_xscale("log")
    ax.set_xlabel("true pixel energy $E_{true}$ [GeV]")
    ax.set_ylabel("residual 68 % half-width")
    ax.set_title("Per-pixel energy resolution")
    ax.legend(fontsize=8)
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
