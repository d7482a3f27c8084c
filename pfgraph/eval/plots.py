"""PNG figures of one evaluation: residual histogram with its fit, residual vs E_true, jets.

Every figure is written atomically (temporary file in the same folder, then renamed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pfgraph.eval.energy import E_TRUE_EDGES, RESIDUAL_BINS, RESIDUAL_RANGE
from pfgraph.utils.atomic import atomic_path
from pfgraph.utils.ownership import PNG_METADATA


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata=PNG_METADATA)
    plt.close(fig)
    return path


def _gauss_curve(ax: Any, fit: Mapping[str, Any], bin_width: float, color: str = "C3") -> None:
    if fit.get("status") != "ok":
        return
    lo, hi = fit["window"]
    x = np.linspace(lo, hi, 200)
    mu, s, amp = fit["mu"], fit["sigma"], fit["amplitude"]
    y = amp * bin_width * np.exp(-0.5 * ((x - mu) / s) ** 2) / (s * np.sqrt(2 * np.pi))
    gaussian = fit.get("core_gaussian") is not False
    ax.plot(x, y, color=color, lw=1.8, ls="-" if gaussian else ":",
            label=rf"fit: $\mu$={mu:.4g}$\pm${fit['mu_err']:.2g}, "
            rf"$\sigma$={s:.4g}$\pm${fit['sigma_err']:.2g}, $\chi^2$/ndf={fit['chi2_ndf']:.2f}"
            + ("" if gaussian else "\nnon-Gaussian core: not a resolution"))


def _text(ax: Any, robust: Mapping[str, Any]) -> None:
    if not robust.get("n"):
        return
    lines = [f"n = {robust['n']:,}", f"median = {robust['median']:.4g}", f"68% half-width = {robust['half_width_68']:.4g}",
             f"RMS = {robust['rms']:.4g}"]
    if robust.get("tail_fraction") is not None:
        lines.append(f"|x| > {robust['tail_cut']:g}: {100 * robust['tail_fraction']:.2f}%")
    ax.text(0.02, 0.97, "\n".join(lines), transform=ax.transAxes, va="top", ha="left", fontsize=8,
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.7", "alpha": 0.9})


def residual_histogram(r: np.ndarray, summary: Mapping[str, Any], path: Path, title: str,
                       missed: np.ndarray | None = None, missed_share: float | None = None) -> Path:
    """Histogram of r (1000 bins over [-5, 2], log y) with the core fit; a zoom on the core beside it.

    The filled histogram is what the core fit saw (truth pixels not missed); the outline adds
    the missed truth pixels (``missed`` mask; r = -1), which are their own figure.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    width = (RESIDUAL_RANGE[1] - RESIDUAL_RANGE[0]) / RESIDUAL_BINS
    kept = r if missed is None else r[~missed]
    for ax, zoom in zip(axes, (False, True)):
        ax.hist(kept, bins=RESIDUAL_BINS, range=RESIDUAL_RANGE, histtype="stepfilled", color="C0", alpha=0.55,
                label="fitted: truth pixels not missed")
        if missed is not None and missed.any():
            ax.hist(r, bins=RESIDUAL_BINS, range=RESIDUAL_RANGE, histtype="step", color="0.4", lw=0.8,
                    label="all truth pixels (missed: " + (f"{100 * missed_share:.2f}%" if missed_share is not None
                                                          else f"{int(missed.sum())}") + " at r = -1)")
        _gauss_curve(ax, summary["fit"], width)
        ax.set_xlabel(r"$r = (E_{pred} - E_{true}) / E_{true}$")
        ax.set_ylabel(f"pixels / {width:g}")
        if zoom and summary["fit"].get("status") == "ok":
            mu, s = summary["fit"]["mu"], summary["fit"]["sigma"]
            ax.set_xlim(max(RESIDUAL_RANGE[0], mu - 5 * s), min(RESIDUAL_RANGE[1], mu + 5 * s))
            ax.set_title("core")
        else:
            ax.set_yscale("log")
            ax.set_title(title)
            _text(ax, summary["robust"])
        ax.legend(loc="upper right" if zoom else "lower left", fontsize=7)
    return _save(fig, path)


def residual_vs_etrue(r: np.ndarray, e_true: np.ndarray, binned: list[Mapping[str, Any]], path: Path, title: str) -> Path:
    """2D histogram of r vs E_true (log x) with the per-bin median, 68 % band and fitted sigma."""
    plt = _pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    pos = e_true > 0
    if pos.any():
        lo = max(float(e_true[pos].min()), 1e-3)
        hi = max(float(e_true[pos].max()), lo * 10)
        xb = np.logspace(np.log10(lo), np.log10(hi), 80)
        ax.hist2d(e_true[pos], np.clip(r[pos], *RESIDUAL_RANGE), bins=[xb, np.linspace(*RESIDUAL_RANGE, 141)],
                  cmap="Blues", norm=_lognorm())
        ax.set_xscale("log")
    centres, med, q16, q84, sig, sig_err = [], [], [], [], [], []
    for b in binned:
        if not b["robust"]["n"]:
            continue
        hi_edge = b["hi"] if b["hi"] is not None else max(float(e_true.max()) if e_true.size else 1.0, b["lo"] * 2)
        c = np.sqrt(max(b["lo"], 1e-2) * hi_edge)
        centres.append(c)
        med.append(b["robust"]["median"])
        q16.append(b["robust"]["q16"])
        q84.append(b["robust"]["q84"])
        ok = b["fit"]["status"] == "ok"
        sig.append(b["fit"]["sigma"] if ok else np.nan)
        sig_err.append(b["fit"]["sigma_err"] if ok else np.nan)
    if centres:
        ax.plot(centres, med, "o-", color="C3", ms=4, lw=1.2, label="median")
        ax.fill_between(centres, q16, q84, color="C3", alpha=0.2, label="central 68%")
        ax.legend(loc="lower right", fontsize=7)
        h68 = 0.5 * (np.asarray(q84) - np.asarray(q16))
        ax2.errorbar(centres, sig, yerr=sig_err, fmt="o-", label=r"fit $\sigma$")
        ax2.plot(centres, h68, "s--", label="68% half-width")
        ax2.set_xscale("log")
        ax2.legend(fontsize=8)
    ax.set_ylim(*RESIDUAL_RANGE)
    ax.set_xlabel(r"$E_{true}$ [GeV]")
    ax.set_ylabel(r"$r$")
    ax.set_title(title)
    ax2.set_xlabel(r"$E_{true}$ [GeV] (bins: " + ", ".join(f"{e:g}" for e in E_TRUE_EDGES[1:-1]) + ")")
    ax2.set_ylabel("resolution of r")
    ax2.set_title("width vs energy")
    return _save(fig, path)


def _lognorm() -> Any:
    from matplotlib.colors import LogNorm

    return LogNorm()


def _summary_hist(ax: Any, values: np.ndarray, summary: Mapping[str, Any], xlabel: str) -> None:
    v = values[np.isfinite(values)]
    if v.size == 0:
        ax.text(0.5, 0.5, "no entries", transform=ax.transAxes, ha="center")
        ax.set_xlabel(xlabel)
        return
    fit = summary["fit"]
    if fit.get("status") == "ok" and fit.get("hist_range"):
        lo, hi = fit["hist_range"]
    else:
        lo, hi = np.percentile(v, [0.5, 99.5])
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
    bins = 60
    ax.hist(v, bins=bins, range=(lo, hi), histtype="stepfilled", alpha=0.55, color="C0")
    _gauss_curve(ax, fit, (hi - lo) / bins)
    _text(ax, summary["robust"])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("events")
    if fit.get("status") == "ok":
        ax.legend(loc="upper right", fontsize=6)


def jet_deviations(match: Mapping[str, np.ndarray], jets: Mapping[str, Any], path: Path, title: str) -> Path:
    """Jet position deviation (D, deta, dphi in pixels) and energy deviation (/S, /E) histograms."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    sel_t = match["truth_rank"] >= 0
    sel = sel_t & (match["pred_rank"] >= 0)
    _summary_hist(axes[0, 0], match["d_jet"][sel], jets["position"], r"$D_{jet}$ [pixels]")
    _summary_hist(axes[0, 1], match["deta_pix"][sel], jets["position_deta"], r"$\Delta\eta$ [pixels]")
    _summary_hist(axes[0, 2], match["dphi_pix"][sel], jets["position_dphi"], r"$\Delta\phi$ [pixels]")
    _summary_hist(axes[1, 0], match["de_jet_norm"][sel_t], jets["energy_norm"], r"$\Delta E_{jet} / S$")
    _summary_hist(axes[1, 1], match["de_jet_rel"][sel_t], jets["energy_rel"],
                  r"$\sum_{truth\ jet\ pixels}\Delta E / E_{truth\,jet}$")
    _summary_hist(axes[1, 2], match["de_match_rel"][sel], jets["energy_match_rel"],
                  r"$(E_{pred\,jet} - E_{truth\,jet}) / E_{truth\,jet}$")
    eff = jets.get("efficiency")
    axes[0, 0].text(0.98, 0.55, "\n".join([
        title, f"anti-kt R = {jets['radius']}, E-scheme", f"pixels above {jets['threshold_gev']} GeV",
        f"backend: {jets['backend']}", f"events with a truth jet: {jets['n_truth_jets']}",
        f"efficiency (pred jet within R): {eff:.4f}" if eff is not None else "efficiency: -",
    ]), va="top", ha="right", fontsize=7, transform=axes[0, 0].transAxes)
    fig.suptitle(title)
    return _save(fig, path)


def write_plots(out: str | os.PathLike[str], energy: Mapping[str, Any], r: np.ndarray, e_true: np.ndarray,
                jets: Mapping[str, Any] | None = None, match: Mapping[str, np.ndarray] | None = None,
                title: str = "", missed: np.ndarray | None = None) -> list[Path]:
    """All figures of one evaluation into folder ``out``; returns their paths (``missed``: mask of r)."""
    out = Path(out)
    share = (energy.get("missed") or {}).get("pixel_fraction")
    paths = [
        residual_histogram(r, energy["residual"], out / "residual.png", title, missed, share),
        residual_vs_etrue(r, e_true, energy["residual_vs_etrue"]["bins"], out / "residual_vs_etrue.png", title),
    ]
    if jets is not None and jets.get("available") and match is not None:
        paths.append(jet_deviations(match, jets, out / "jets.png", title))
    return paths
