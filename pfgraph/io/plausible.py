"""Plausibility bounds of event-file values, derived from the file's own generation config.

A finite value can still be impossible: a truth pixel of 1e30 GeV, a truth image with -500 GeV
or a bit flip in an uncompressed basket (uncompressed baskets carry no checksum). Such a
value passes every schema and NaN/Inf check and silently ruins a normalisation or a training
run. The bounds here are what the simulation in ``pfgraph_meta["config"]`` can produce, so
values outside them are corrupt data, never physics:

* **truth is never negative** (``truth``, ``truth_neutral``, ``jet`` and their ``pix_``
  points, ``e_total``) and never exceeds the most the event can hold: every background
  particle's energy is ``|N(0, sigma)|`` with ``sigma = hypot(g1_sigma, g2_sigma)``, so the
  event's total is bounded by Gaussian concentration,
  ``multiplicity * sigma * sqrt(2/pi) + K * sigma * sqrt(multiplicity)`` (exceeded with a
  probability below ``exp(-K**2 / 2)`` = 3e-18 per event for ``K`` = 9), plus, for jet samples, the
  whole Pythia event ``e_cm * cosh(max_eta)`` (a boost to eta = 0 keeps pT, and a particle
  inside the grid has ``|eta| <= max_eta``), and with a hard tail (``hard_tail_fraction``) a
  Chernoff bound on the number of tail particles times ``hard_tail_max``. One pixel cannot
  hold more than its event.
* **inputs** (``emcal``, ``hcal``, ``trk_neg``, ``trk_pos``) are bounded above by all energy
  that reaches the detector (background, pile-up and jet) times the largest smearing gain
  ``1 + K * resolution``, plus ``K`` noise widths; they are **negative only as far as the
  noise model allows**: ``K * noise`` for calorimeter noise, a smearing gain that can go
  negative (``K * resolution > 1``), or a response ``E - nonlin * sqrt(E)`` below zero when
  the threshold is under ``nonlin**2``. In paper mode none applies: inputs are never negative.

Files whose meta has no generation config (hand-made or foreign files) get generic bounds:
truth never negative, no value beyond ``GENERIC_LIMIT_GEV`` in magnitude.

The checks reuse the reductions the readers already make for their NaN/Inf test (a pixel
minimum and maximum per piece), so they cost no extra pass over the data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pfgraph import geometry
from pfgraph.errors import DataError
from pfgraph.io import schema

#: Standard deviations of a Gaussian draw treated as "never happens": P(|N(0,1)| > 9) = 2.3e-19 per
#: draw, so a 10 000-event file (5e7 draws) exceeds it with a probability of about 1e-11.
K_SIGMA = 9.0
#: Bound on |value| (GeV) for files without a generation config: beyond any collider's energy.
GENERIC_LIMIT_GEV = 1.0e5
#: Jet-sample allowance on the number of injected constituents (for the nonlinearity bound only).
JET_CONSTITUENTS_MAX = 10_000

TRUTH_CHANNELS = ("truth", "truth_neutral", schema.JET_IMAGE)

# Defaults of the generation config (pfgraph.sim.detector), repeated here so that this module
# needs no simulator import (the detector's come from pfgraph.geometry); a key missing from a
# file's config takes these values.
_PARTICLE_DEFAULTS = {"multiplicity": 1600, "g1_sigma": 1.0, "g2_sigma": 2.0, "hard_tail_fraction": 0.0,
                      "hard_tail_max": 300.0}
_DETECTOR_DEFAULTS = dict(geometry.DETECTOR_DEFAULTS)  # the detector's paper-mode response (one definition)
_PILEUP_DEFAULTS = {"mu": 0.0, "energy_scale": 0.5}
_JET_DEFAULTS = {"enabled": False, "e_cm": 7000.0}


@dataclass(frozen=True)
class Bounds:
    """Allowed range ``[lo, hi]`` (GeV) of every energy branch of one events file."""

    lo: Mapping[str, float] = field(default_factory=dict)
    hi: Mapping[str, float] = field(default_factory=dict)
    #: Where the bounds come from, for messages: "its config <name>" or "generic bounds".
    source: str = "generic bounds"

    def limits(self, name: str) -> tuple[float, float] | None:
        """``(lo, hi)`` of branch ``name`` (``pix_<channel>`` and ``tpix_<channel>`` take their channel's);
        None if unchecked."""
        key = name.split("_", 1)[1] if name.startswith(("pix_", "tpix_")) else name
        if key not in self.hi:
            return None
        return self.lo[key], self.hi[key]

    def describe(self) -> str:
        """One line: the bounds of truth and inputs."""
        t_lo, t_hi = self.lo["truth"], self.hi["truth"]
        i_lo = min(self.lo[c] for c in schema.INPUT_CHANNELS)
        i_hi = max(self.hi[c] for c in schema.INPUT_CHANNELS)
        return (f"truth {_g(t_lo)}..{_g(t_hi)} GeV, inputs {_g(i_lo)}..{_g(i_hi)} GeV per pixel "
                f"({self.source})")


def _g(x: float) -> str:
    return "0" if x == 0 else f"{x:.4g}"


def generic_bounds() -> Bounds:
    """Bounds for a file without a generation config: truth >= 0, |value| <= GENERIC_LIMIT_GEV."""
    lo = {c: -GENERIC_LIMIT_GEV for c in schema.INPUT_CHANNELS}
    lo.update({c: 0.0 for c in (*TRUTH_CHANNELS, "e_total")})
    hi = {c: GENERIC_LIMIT_GEV for c in lo}
    return Bounds(lo, hi, "generic bounds: the file records no generation config")


def _section(config: Mapping[str, Any], name: str, defaults: Mapping[str, Any]) -> dict[str, float]:
    raw = config.get(name)
    raw = raw if isinstance(raw, Mapping) else {}
    out: dict[str, float] = {}
    for key, default in defaults.items():
        value = raw.get(key, default)
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            out[key] = float(default)
        if not math.isfinite(out[key]):
            out[key] = float(default)
    return out


def _half_normal_sum_max(n: float, sigma: float) -> float:
    """Upper bound of a sum of ``n`` half-normal energies of width ``sigma`` (Gaussian concentration)."""
    if n <= 0 or sigma <= 0:
        return 0.0
    return n * sigma * math.sqrt(2.0 / math.pi) + K_SIGMA * sigma * math.sqrt(n)


def _hard_tail_max(n: float, fraction: float, e_max: float) -> float:
    """Upper bound of the energy of the hard-tail particles among ``n`` (each in the tail with
    probability ``fraction``, at most ``e_max``): a Chernoff bound on their number times ``e_max``."""
    if n <= 0 or fraction <= 0:
        return 0.0
    mean = n * min(fraction, 1.0)
    return min(n, mean + K_SIGMA * math.sqrt(mean) + K_SIGMA**2) * max(e_max, 0.0)


def bounds_from_meta(meta: Mapping[str, Any] | None) -> Bounds:
    """The bounds of an events file from its ``pfgraph_meta`` (generic ones without a config).

    A config counts as the file's generation record when it has ``particles`` and ``detector``
    sections (what ``pfgraph simulate`` writes); keys it lacks take the simulator's defaults.
    """
    config = (meta or {}).get("config")
    if not isinstance(config, Mapping) or not isinstance(config.get("particles"), Mapping) \
            or not isinstance(config.get("detector"), Mapping):
        return generic_bounds()
    part = _section(config, "particles", _PARTICLE_DEFAULTS)
    det = _section(config, "detector", _DETECTOR_DEFAULTS)
    pu = _section(config, "pileup", _PILEUP_DEFAULTS)
    jets = config.get("jets") if isinstance(config.get("jets"), Mapping) else {}
    jet_on = bool(jets.get("enabled", _JET_DEFAULTS["enabled"])) or bool((meta or {}).get("with_jet"))
    e_cm = _section(config, "jets", {"e_cm": _JET_DEFAULTS["e_cm"]})["e_cm"]
    max_eta = float((meta or {}).get("max_eta", geometry.MAX_ETA))

    sigma = math.hypot(max(part["g1_sigma"], 0.0), max(part["g2_sigma"], 0.0))
    n_bg = max(part["multiplicity"], 0.0)
    tail_f, tail_max = max(part["hard_tail_fraction"], 0.0), part["hard_tail_max"]
    truth_bg = _half_normal_sum_max(n_bg, sigma) + _hard_tail_max(n_bg, tail_f, tail_max)
    truth_jet = e_cm * math.cosh(max_eta) if jet_on else 0.0
    truth_max = truth_bg + truth_jet
    # Pile-up: Poisson(mu) particles (Chernoff: P(N >= 2 mu + 80) is negligible), energies scaled.
    mu = max(pu["mu"], 0.0)
    n_pu = 2.0 * mu + 80.0 if mu > 0 else 0.0
    scale = max(pu["energy_scale"], 0.0)
    reach = truth_max + _half_normal_sum_max(n_pu, sigma * scale) + _hard_tail_max(n_pu, tail_f, tail_max) * scale
    n_all = n_bg + n_pu + (JET_CONSTITUENTS_MAX if jet_on else 0)

    lo: dict[str, float] = {c: 0.0 for c in (*TRUTH_CHANNELS, "e_total")}
    hi: dict[str, float] = {c: truth_max for c in (*TRUTH_CHANNELS, "e_total")}
    res = {"trk": det["trk_res"], "emcal": det["emc_res"], "hcal": det["hcal_res"]}
    for ch in schema.INPUT_CHANNELS:
        kind = "trk" if ch.startswith("trk") else ch
        r = max(res[kind] * det["res_scale"], 0.0)
        gain_hi, gain_lo = 1.0 + K_SIGMA * r, 1.0 - K_SIGMA * r
        noise = K_SIGMA * max(det.get(f"noise_{ch}", 0.0), 0.0) if kind != "trk" else 0.0
        negative = noise
        if gain_lo < 0:
            negative += -gain_lo * reach
        if kind != "trk":
            nonlin = max(det["nonlin"], 0.0)
            threshold = det["ecal_threshold"] if ch == "emcal" else det["hcal_threshold"]
            if nonlin > 0 and threshold < nonlin**2:
                negative += n_all * nonlin**2 / 4.0 * gain_hi
        lo[ch] = -negative
        hi[ch] = reach * gain_hi + noise
    name = config.get("name")
    return Bounds(lo, hi, f"bounds from its config{f' {name}' if name else ''}")


def out_of_bounds(values: Any, lo: float, hi: float) -> np.ndarray | None:
    """Per-event mask of ``values`` (numpy (n, ...)) holding a value outside [lo, hi] or NaN/Inf."""
    arr = np.asarray(values)
    if arr.dtype.kind != "f" or arr.size == 0:
        return None
    flat = arr.reshape(len(arr), -1) if arr.ndim > 1 else arr.reshape(-1, 1)
    with np.errstate(invalid="ignore"):
        ok = (flat >= lo) & (flat <= hi)  # False for NaN
    bad = ~ok.all(axis=1)
    return bad if bad.any() else None


def raise_implausible(path: Path | str, event: int, name: str, value: float, lo: float, hi: float,
                      source: str) -> None:
    """The one DataError line for a value outside its bounds (NaN/Inf keep their own wording)."""
    if not math.isfinite(value):
        raise DataError("NaN or Inf value, expected finite numbers", path=path, entry=event, field=name)
    side = f"below the lowest possible {_g(lo)} GeV" if value < lo else f"above the highest possible {_g(hi)} GeV"
    channel = name[4:] if name.startswith("pix_") else name
    if value < lo and channel in (*TRUTH_CHANNELS, "e_total"):
        what = "truth is never negative"
    elif value < lo and lo == 0:
        what = f"no noise in {source.replace('bounds from ', '')} can make an input negative"
    else:
        what = source
    raise DataError(f"implausible value {value:.6g} GeV, {side} ({what}): corrupt file?", path=path, entry=event,
                    field=name)


def check_plausible(values: Any, path: Path | str, name: str, entry_start: int, bounds: Bounds | None) -> None:
    """Raise a DataError naming file, event, branch and value if ``values`` leave ``bounds``.

    ``values`` is a chunk of one branch (numpy (n, ...) or awkward jagged, events first);
    branches without bounds are not checked. NaN/Inf count as out of bounds.
    """
    if bounds is None:
        return
    limits = bounds.limits(name)
    if limits is None:
        return
    lo, hi = limits
    import awkward as ak

    if isinstance(values, ak.Array):
        flat = ak.to_numpy(ak.flatten(values, axis=None))
        if flat.dtype.kind != "f" or flat.size == 0:
            return
        with np.errstate(invalid="ignore"):
            if float(flat.min()) >= lo and float(flat.max()) <= hi:
                return
            bad_flat = int(np.flatnonzero(~((flat >= lo) & (flat <= hi)))[0])
        counts = ak.to_numpy(ak.num(values, axis=1))
        event = int(np.searchsorted(np.cumsum(counts), bad_flat, side="right"))
        raise_implausible(path, entry_start + event, name, float(flat[bad_flat]), lo, hi, bounds.source)
        return
    arr = np.asarray(values)
    if arr.dtype.kind != "f" or arr.size == 0:
        return
    with np.errstate(invalid="ignore"):
        if float(arr.min()) >= lo and float(arr.max()) <= hi:
            return
    bad = out_of_bounds(arr, lo, hi)
    if bad is None:
        return
    first = int(np.flatnonzero(bad)[0])
    row = arr[first].reshape(-1)
    with np.errstate(invalid="ignore"):
        value = float(row[np.flatnonzero(~((row >= lo) & (row <= hi)))[0]])
    raise_implausible(path, entry_start + first, name, value, lo, hi, bounds.source)
