"""The versioned ``metrics.json`` schema (one for every model) and :func:`evaluate_arrays`.

Document layout (``schema == "pfgraph.metrics"``, ``schema_version == METRICS_VERSION``)::

    schema, schema_version, pfgraph_version, created_by
    model:     name, repr (image|graph), run_dir, checkpoint, checkpoint_sha256
    training:  parameters, epochs, best_epoch, best_val_loss, train_time_s, train_events_per_s,
               n_train, device, seed, epoch_cap, status, status_rule, wall_time_s,
               best_val_half_width, scheduler, train_flops, precision, history (per-epoch epoch,
               train_loss, val_loss, val_half_width, lr, wall_s, train_flops) (from the run folder,
               :mod:`pfgraph.eval.training`; null when not known)
    dataset:   path (list of files), name (from the file meta), n_events, has_jet_image
    settings:  target_scale, target_scale_source, batch_size, device, max_events
    timing:    inference_s, inference_events_per_s, jets_s, jets_events_per_s, total_s
    energy:    see pfgraph.eval.energy.EnergyAccumulator.result
    jets:      see pfgraph.eval.jets.JetAccumulator.result (same keys, null values, when the
               data file has no ``jet`` image)
    headline:  the ranking figures with 68 % bootstrap intervals over events
               (pfgraph.eval.bootstrap.headline): figures.<key> = {value, lo, hi}
    baselines: oracle: null, or (data files with the ``oracle`` image) the oracle evaluated with the
               same code on the same events: {energy, jets, headline}, keys as the model's sections
               (pfgraph.eval.baselines)
    degenerate:    flag, reasons, rule: the model is degenerate by the one rule of
                   pfgraph.utils.degenerate (set from the headline figures; never ranked)
    data_mismatch: flag, reasons: the evaluation data differs from the run's training data in its
                   detector/generation config, or is the training data itself (null: not known)

Every document has exactly the keys of :func:`template` (values may be null); a model that
needs a representation-specific figure adds it under ``extra`` and never changes the rest.
Older documents are read and migrated: version 1 (no ``training`` section) gets it null;
version 2 (no missed pixels, Gaussian-core flags, matched-jet energy, headline) gets those
keys null and its headline values copied from its robust figures, without intervals;
version 3 (no course of training) gets the training keys of version 4 null; version 4 (no
baselines) gets ``baselines.oracle`` null; version 5 (no compute record) gets
``training.train_flops``, ``training.precision`` and the history's ``train_flops`` null;
version 6 gets ``degenerate`` computed from its headline figures and ``data_mismatch`` null.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pfgraph import __version__
from pfgraph.errors import DataError, PfgraphError
from pfgraph.eval.antikt import TIE_BREAK
from pfgraph.eval.bootstrap import FIGURE_PATHS, N_RESAMPLES, SEED, empty_headline, headline
from pfgraph.eval.cones import ConeAccumulator, empty_cones
from pfgraph.eval.energy import (
    FIT_KEYS_V3,
    MISSED_THRESHOLD,
    EnergyAccumulator,
    check_images,
    flag_core,
    stack_inputs,
)
from pfgraph.eval.jets import DEFAULT_RADIUS, DEFAULT_THRESHOLD, JetAccumulator, empty_jet_metrics
from pfgraph.utils.atomic import atomic_write_text
from pfgraph.utils.budget import HISTORY_FIELDS
from pfgraph.utils.degenerate import degenerate_record

METRICS_SCHEMA = "pfgraph.metrics"
METRICS_VERSION = 8
#: The ``training`` section: its key -> the key of the run's ``train_summary.json`` it is copied from.
TRAINING_KEYS = {"parameters": "params", "epochs": "epochs", "best_epoch": "best_epoch",
                 "best_val_loss": "best_val_loss", "train_time_s": "train_time_s",
                 "train_events_per_s": "events_per_s", "n_train": "n_train", "device": "device",
                 "seed": "seed", "epoch_cap": "target_epochs", "status": "status", "status_rule": "status_rule",
                 "wall_time_s": "wall_time_s", "best_val_half_width": "best_val_half_width",
                 "scheduler": "scheduler", "train_flops": "train_flops", "precision": "precision",
                 "history": "history"}
#: Training keys added in version 3.
TRAINING_KEYS_V3 = ("seed",)
#: Training keys added in version 4 (the course of training: learning curves and budget status).
TRAINING_KEYS_V4 = ("epoch_cap", "status", "status_rule", "wall_time_s", "best_val_half_width", "scheduler",
                    "history")
#: Training keys added in version 6 (the compute a run spent, and its precision).
TRAINING_KEYS_V6 = ("train_flops", "precision")
#: ``training.history`` series added in version 6.
HISTORY_FIELDS_V6 = ("train_flops",)


def template(version: int = METRICS_VERSION) -> dict[str, Any]:
    """A metrics document with every key and null values (the schema by example) of ``version``."""
    energy = EnergyAccumulator(target_scale=1.0).result()
    energy = _nullify(energy)
    doc = {
        "schema": METRICS_SCHEMA,
        "schema_version": METRICS_VERSION,
        "pfgraph_version": __version__,
        "created_by": None,
        "model": {"name": None, "repr": None, "run_dir": None, "checkpoint": None, "checkpoint_sha256": None},
        "training": {**dict.fromkeys(TRAINING_KEYS), "history": dict.fromkeys(HISTORY_FIELDS)},
        "dataset": {"path": None, "name": None, "n_events": None, "has_jet_image": None},
        "settings": {"target_scale": None, "target_scale_source": None, "batch_size": None, "device": None,
                     "max_events": None},
        "timing": {"inference_s": None, "inference_events_per_s": None, "jets_s": None, "jets_events_per_s": None,
                   "total_s": None},
        "energy": energy,
        "jets": empty_jet_metrics(None, None, None, None),
        "headline": _nullify(empty_headline()),
        "baselines": {"oracle": None},
        "degenerate": {"flag": None, "reasons": None, "rule": None},
        "data_mismatch": {"flag": None, "reasons": None},
        "cones": empty_cones(),
        "extra": {},
    }
    doc["settings"].update(missed_threshold_gev=None, bootstrap_resamples=None, bootstrap_seed=None)
    if version < 8:
        del doc["cones"]
    if version < 7:
        del doc["degenerate"], doc["data_mismatch"]
    if version < 6:
        for k in TRAINING_KEYS_V6:
            del doc["training"][k]
        for k in HISTORY_FIELDS_V6:
            del doc["training"]["history"][k]
    if version < 5:
        del doc["baselines"]
    if version < 4:
        for k in TRAINING_KEYS_V4:
            del doc["training"][k]
    if version < 3:
        _strip_v3(doc)
    if version < 2:
        del doc["training"]
    return doc


def _strip_v3(doc: dict[str, Any]) -> None:
    """Remove (in place) the keys that metrics schema 3 added."""
    del doc["headline"]
    for k in ("missed_threshold_gev", "bootstrap_resamples", "bootstrap_seed"):
        del doc["settings"][k]
    for k in TRAINING_KEYS_V3:
        del doc["training"][k]
    del doc["energy"]["missed"]
    del doc["energy"]["extrapolation"]
    del doc["energy"]["residual"]["hist"]["fitted_counts"]
    for b in doc["energy"]["residual_vs_etrue"]["bins"]:
        del b["missed_fraction"]
    del doc["jets"]["energy_match_rel"]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "chi2_ndf" in node:
                for k in FIT_KEYS_V3:
                    node.pop(k, None)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)


def _flag_old_fits(node: Any) -> None:
    """Apply the Gaussian-core rule to the fits of an old document (they fitted every entry, so the
    entries are the robust figures' ``n``)."""
    if isinstance(node, dict):
        fit, robust = node.get("fit"), node.get("robust")
        if (isinstance(fit, dict) and isinstance(robust, dict) and fit.get("status") == "ok"
                and fit.get("core_gaussian") is None and robust.get("n")):
            flag_core(fit, int(robust["n"]))
        for v in node.values():
            _flag_old_fits(v)
    elif isinstance(node, list):
        for v in node:
            _flag_old_fits(v)


def _fill_missing(doc: Any, ref: Any) -> Any:
    """Keys of ``ref`` (a template) missing from ``doc`` added with their (null) template values."""
    if isinstance(doc, dict) and isinstance(ref, dict):
        for k, v in ref.items():
            doc[k] = _fill_missing(doc[k], v) if k in doc else v
    elif isinstance(doc, list) and isinstance(ref, list) and ref and isinstance(ref[0], dict):
        for item in doc:
            _fill_missing(item, ref[0])
    return doc


def headline_from_values(doc: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """A headline section whose values are read from ``doc`` and whose intervals are null."""
    out = empty_headline(None, None, reason)
    for key, path in FIGURE_PATHS.items():
        node: Any = doc
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        out["figures"][key]["value"] = node if isinstance(node, (int, float)) and not isinstance(node, bool) else None
    return out


def training_section(summary: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``training`` section from a run's ``train_summary.json`` (nulls for what it lacks)."""
    summary = summary or {}
    out = {key: summary.get(src) for key, src in TRAINING_KEYS.items()}
    history = out["history"] if isinstance(out["history"], Mapping) else {}
    out["history"] = {k: history.get(k) for k in HISTORY_FIELDS}
    return out


def _nullify(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _nullify(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nullify(v) for v in obj] if obj and isinstance(obj[0], dict) else None
    return None


def key_paths(doc: Mapping[str, Any], prefix: str = "") -> set[str]:
    """All dotted key paths of a document (lists of records contribute their first record's keys)."""
    out: set[str] = set()
    for k, v in doc.items():
        path = f"{prefix}{k}"
        out.add(path)
        if isinstance(v, Mapping):
            out |= key_paths(v, path + ".")
        elif isinstance(v, list) and v and isinstance(v[0], Mapping):
            out |= key_paths(v[0], path + "[].")
    return out


def check_schema(doc: Mapping[str, Any], where: str = "metrics") -> None:
    """Raise a one-line error unless ``doc`` has exactly the template's keys (``extra`` is free)."""
    if doc.get("schema") != METRICS_SCHEMA:
        raise DataError(f"{where}: not a pfgraph metrics document (schema={doc.get('schema')!r})")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DataError(f"{where}: metrics schema version {version!r} is not a positive integer")
    if version > METRICS_VERSION:
        raise DataError(f"{where}: metrics schema version {version!r} is newer than this pfgraph reads ({METRICS_VERSION})")
    want = {k for k in key_paths(template(version)) if not k.startswith(_FREE)}
    have = {k for k in key_paths(doc) if not k.startswith(_FREE)}
    oracle = (doc.get("baselines") or {}).get("oracle") if isinstance(doc.get("baselines"), Mapping) else None
    if oracle is not None:  # null, or the model's own energy / jets / headline sections
        if not isinstance(oracle, Mapping):
            raise DataError(f"{where}: 'baselines.oracle' is neither null nor a section")
        ref = template(version)
        prefix = "baselines.oracle."
        want |= {prefix + k for k in key_paths({s: ref[s] for s in ("energy", "jets", "headline")})}
        have |= {prefix + k for k in key_paths(oracle)}
    missing, unexpected = sorted(want - have), sorted(have - want)
    if missing:
        raise DataError(f"{where}: key '{missing[0]}' missing from the metrics document")
    if unexpected:
        raise DataError(f"{where}: unexpected key '{unexpected[0]}' (not in metrics schema {METRICS_VERSION})")


#: Key paths the schema check leaves free (``extra``) or checks on its own (``baselines.oracle``).
_FREE = ("extra.", "baselines.oracle.")


def _clean(obj: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/Inf to null."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    return obj


def write_metrics(path: str | Path, doc: Mapping[str, Any]) -> None:
    """Check the schema and write ``doc`` atomically as indented JSON."""
    clean = _clean(dict(doc))
    check_schema(clean, str(path))
    atomic_write_text(path, json.dumps(clean, indent=1, sort_keys=False) + "\n")


def read_metrics(path: str | Path) -> dict[str, Any]:
    """Read and check a metrics.json; one clear error line if it is not one."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{p}: not a pfgraph metrics document")
    check_schema(doc, str(p))
    return migrate(doc)


def migrate(doc: dict[str, Any]) -> dict[str, Any]:
    """An older (checked) metrics document brought to :data:`METRICS_VERSION` (new keys null)."""
    version = doc["schema_version"]
    if version < 2:  # migration 1 -> 2: the training section did not exist
        doc["training"] = training_section(None)
    if version < 3:  # 2 -> 3: missed pixels, core flags, matched-jet energy, headline with intervals
        _fill_missing(doc, template(METRICS_VERSION))
        _flag_old_fits(doc)
        doc["headline"] = headline_from_values(doc, f"metrics schema {version} document: no bootstrap intervals")
    if version < 4:  # 3 -> 4: the course of training (history, budget status, wall time)
        _fill_missing(doc, template(METRICS_VERSION))
    if version < 5:  # 4 -> 5: the baselines evaluated beside the model (the oracle image)
        _fill_missing(doc, template(METRICS_VERSION))
    if version < 6:  # 5 -> 6: training FLOPs (total and per epoch) and the training precision
        _fill_missing(doc, template(METRICS_VERSION))
    if version < 7:  # 6 -> 7: the degenerate flag (from the headline, by the one rule), data mismatch unknown
        _fill_missing(doc, template(METRICS_VERSION))
        doc["degenerate"] = degenerate_section(doc)
    if version < 8:  # 7 -> 8: cone energies around the truth (null: not computed)
        _fill_missing(doc, template(METRICS_VERSION))
    doc["schema_version"] = METRICS_VERSION
    return doc


def assemble(energy: Mapping[str, Any], jets: Mapping[str, Any], **sections: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """A full metrics document: the template filled with ``energy``, ``jets`` and the given sections."""
    doc = template()
    doc["energy"] = dict(energy)
    doc["jets"] = dict(jets)
    for name, value in sections.items():
        if name not in doc:
            raise PfgraphError(f"metrics: unknown section '{name}'")
        if isinstance(value, Mapping):
            doc[name] = {**doc[name], **value} if isinstance(doc[name], dict) and name != "extra" else dict(value)
        else:
            doc[name] = value
    doc["degenerate"] = degenerate_section(doc)
    return _clean(doc)


def degenerate_section(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The ``degenerate`` section of a metrics document from its headline figures
    (:func:`pfgraph.utils.degenerate.degenerate_record`, the one rule)."""
    figures = ((doc.get("headline") or {}).get("figures") or {}) if isinstance(doc, Mapping) else {}
    return degenerate_record(figures)


def evaluate_arrays(pred: np.ndarray, truth: np.ndarray, inputs: Any = None, *, target_scale: float | None = None,
                    jets: bool = False, radius: float = DEFAULT_RADIUS, threshold: float = DEFAULT_THRESHOLD,
                    backend: str = "auto", device: str = "cpu", tie_break: float = TIE_BREAK,
                    batch_size: int = 256, model: Mapping[str, Any] | None = None,
                    dataset: Mapping[str, Any] | None = None,
                    training: Mapping[str, Any] | None = None, missed_threshold: float = MISSED_THRESHOLD,
                    train_max: float | None = None,
                    bootstrap: int = N_RESAMPLES, bootstrap_seed: int = SEED) -> dict[str, Any]:
    """Evaluate predictions given as arrays; no checkpoint needed. Returns a metrics document.

    ``pred``, ``truth``: (B, G, G) energies in GeV (de-normalised); ``inputs``: (B, 4, G, G)
    or a mapping channel -> (B, G, G), only used for the out-of-reach share (None: null);
    ``target_scale``: S in GeV for the normalised forms (None: null). With ``jets=True`` both
    images are clustered (anti-kt ``radius``, pixels above ``threshold`` GeV, ``backend``
    torch|fastjet|auto on ``device``) and the jet section is filled; the jet axis is assumed
    at (0, 0) as in the jet test sample. ``model``, ``dataset`` and ``training`` fill those
    sections (keys of :func:`template`). ``missed_threshold``: truth pixels predicted at or
    below it (GeV) are missed; ``train_max``: the largest training truth pixel (GeV; default
    ``target_scale``) for the inside/above-range split; ``bootstrap``: replicas for the headline
    intervals (0: none).
    """
    p = check_images("pred", pred)
    t = check_images("truth", truth)
    if p.shape != t.shape:
        raise PfgraphError(f"pred {p.shape} and truth {t.shape} differ in shape")
    inp = stack_inputs(inputs)
    if batch_size <= 0:
        raise PfgraphError(f"batch size {batch_size}: expected a positive number")
    t0 = time.perf_counter()
    acc = EnergyAccumulator(target_scale, missed_threshold, train_max=train_max,
                            train_max_source="argument" if train_max is not None else None)
    jacc = JetAccumulator(radius, threshold, backend, device, target_scale, tie_break) if jets else None
    cones = ConeAccumulator()
    for s in range(0, len(p), batch_size):
        sl = slice(s, s + batch_size)
        acc.update(p[sl], t[sl], None if inp is None else inp[sl])
        cones.update(p[sl], t[sl])
        if jacc is not None:
            jacc.update(p[sl], t[sl])
    jet_doc = jacc.result() if jacc is not None else empty_jet_metrics(radius, threshold, None, tie_break,
                                                                       "jets not requested")
    head = headline(acc.event_data(), jacc.matches() if jacc is not None else None, bootstrap, bootstrap_seed)
    total = time.perf_counter() - t0
    doc = assemble(
        acc.result(), jet_doc, created_by="evaluate_arrays", headline=head,
        model=dict(model or {}),
        training=dict(training or {}),
        dataset={"n_events": int(len(p)), "has_jet_image": None, **dict(dataset or {})},
        settings={"target_scale": target_scale, "target_scale_source": "argument" if target_scale else None,
                  "batch_size": batch_size, "device": str(device), "missed_threshold_gev": missed_threshold,
                  "bootstrap_resamples": bootstrap, "bootstrap_seed": bootstrap_seed},
        timing={"total_s": total, "jets_s": jet_doc["seconds"], "jets_events_per_s": jet_doc["events_per_s"]},
        cones=cones.result(),
    )
    check_schema(doc, "evaluate_arrays")
    return doc


# ------------------------------------------------------------------------------ one S for a comparison
#: Figures on the paper's normalised scale dE/S (Eq. 1; S: the largest truth pixel of the file the
#: model was trained on). Two models trained on different files have different S, so these figures
#: compare across models only once they are put on one S (:func:`on_norm_scale`).
NORM_FIGURES = ("abs_norm_median", "abs_norm_half_width_68", "jet_energy_norm_half_width_68")
#: Where the normalised summaries stand in a metrics document (fits and robust figures, scaled alike).
NORM_SECTIONS = ("energy.abs_norm.truth_pixels", "energy.abs_norm.all_pixels", "jets.energy_norm")
#: Keys of a fit / robust summary that are values of the normalised variable (they scale with 1/S).
_NORM_VALUE_KEYS = {"fit": ("mu", "mu_err", "sigma", "sigma_err", "window", "hist_range"),
                    "robust": ("mean", "rms", "std", "median", "half_width_68", "q16", "q84", "tail_cut")}


def norm_scale(doc: Mapping[str, Any]) -> float | None:
    """S (GeV): what a metrics document's normalised figures are divided by (None: unknown)."""
    for path in ("energy.abs_norm.target_scale", "settings.target_scale"):
        node: Any = doc
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, (int, float)) and math.isfinite(node) and node > 0:
            return float(node)
    return None


def common_norm_scale(docs: Any, prefer: Any = ()) -> float | None:
    """The S a comparison of ``docs`` puts every normalised figure on: the S most of ``prefer``
    (documents of the models trained on the comparison's own training file) share, else the S most of
    ``docs`` share (the first seen on a tie); None when no document knows its S."""
    for group in (list(prefer), list(docs)):
        counts: dict[float, int] = {}
        for d in group:
            if (s := norm_scale(d)) is not None:
                counts[s] = counts.get(s, 0) + 1
        if counts:
            return max(counts, key=lambda s: counts[s])  # dicts keep insertion order: first wins a tie
    return None


def on_norm_scale(doc: Mapping[str, Any], scale: float | None) -> dict[str, Any]:
    """A copy of metrics document ``doc`` with its normalised figures (:data:`NORM_FIGURES` and the
    summaries in :data:`NORM_SECTIONS`) divided by ``scale`` instead of the document's own S:
    dE/S_own * S_own/scale. The copy records ``settings.norm_scale`` and, when it changed,
    ``settings.norm_rescaled_from`` (the own S). ``scale`` None or equal to S: the document as is."""
    import copy

    own = norm_scale(doc)
    if scale is None or own is None or own == scale:
        return dict(doc)
    factor = own / float(scale)
    out = copy.deepcopy(dict(doc))

    def times(v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return v * factor
        if isinstance(v, list):
            return [times(x) for x in v]
        return v

    figs = (out.get("headline") or {}).get("figures") or {}
    for key in NORM_FIGURES:
        if isinstance(figs.get(key), dict):
            figs[key] = {k: times(v) if k in ("value", "lo", "hi") else v for k, v in figs[key].items()}
    for path in NORM_SECTIONS:
        node: Any = out
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        for part, keys in _NORM_VALUE_KEYS.items():
            if isinstance(node.get(part), dict):
                node[part].update({k: times(node[part][k]) for k in keys if k in node[part]})
    if isinstance((out.get("energy") or {}).get("abs_norm"), dict):
        out["energy"]["abs_norm"]["target_scale"] = float(scale)
    out["settings"] = {**(out.get("settings") or {}), "norm_scale": float(scale), "norm_rescaled_from": own}
    return out


def norm_scale_sentence(scale: float | None, rescaled: Mapping[str, float], whose: str) -> str:
    """The sentence a comparison prints under its dE/S figures: the one S (``whose``: where it comes
    from) and the models rescaled to it (name -> own S); "" without an S."""
    if scale is None:
        return ""
    text = f"The paper's dE/S figures (Eq. 1) of every model are on one S = {scale:.4g} GeV, {whose}"
    if rescaled:
        text += ("; the figures of models trained on a file with another S were rescaled from their own S (dE/S_own x "
                 "S_own / S: " + ", ".join(f"{n} {own:.4g} GeV" for n, own in rescaled.items())
                 + "), because a larger S alone would make their figures smaller")
    return text + "."
