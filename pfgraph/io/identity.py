"""What a dataset is, independent of where it lies: the identity recorded in every output.

Simulation is deterministic, so an events file is identified by its generation record (the
``pfgraph_meta`` JSON: config, seed, event range, schema and package version) and its number
of entries; the identity hashes exactly those. Two files with the same identity hold the same
events; a re-simulated file with another seed or config, or another event range, differs.

``pfgraph evaluate`` writes :func:`dataset_identity` into ``predictions.root`` (meta key
``data_identity``) and into the evaluation folder's ``manifest.json``; re-evaluating a
predictions file against ``--data`` and ``pfgraph report`` compare identities with
:func:`identity_mismatch`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: Meta key of the identity in predictions files.
META_KEY = "data_identity"


def _sha(obj: Any, n: int = 16) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def data_fingerprint(files: Any) -> str:
    """The fingerprint of an :class:`~pfgraph.io.root.EventFiles` set: every file's generation
    record and number of entries, in order (16 hex digits)."""
    return _sha([{"meta": m, "entries": int(e)} for m, e in zip(files.metas, files.entries)])


def config_hash(config: Mapping[str, Any] | None, exclude: tuple[str, ...] = ()) -> str | None:
    """16-hex-digit hash of a resolved config (canonical JSON) without the top-level keys
    ``exclude``; None without a config."""
    if not isinstance(config, Mapping):
        return None
    return _sha({k: v for k, v in config.items() if k not in exclude})


def dataset_identity(files: Any) -> dict[str, Any]:
    """The identity of the data of ``files`` (an ``EventFiles``): fingerprint, name, seed,
    config hash (the generation config without its seed and size), events, and per file its
    path (resolved, for people: not compared), entries and own fingerprint."""
    per_file = []
    for path, meta, entries in zip(files.paths, files.metas, files.entries):
        config = meta.get("config") if isinstance(meta.get("config"), Mapping) else None
        per_file.append({"path": str(Path(path).resolve()), "entries": int(entries),
                         "fingerprint": _sha([{"meta": meta, "entries": int(entries)}]),
                         "seed": meta.get("seed"), "config_sha256": config_hash(config, ("seed", "events")),
                         "name": (config or {}).get("name")})
    seeds = sorted({str(f["seed"]) for f in per_file})
    configs = sorted({str(f["config_sha256"]) for f in per_file})
    return {"fingerprint": data_fingerprint(files), "name": per_file[0]["name"] if per_file else None,
            "seed": per_file[0]["seed"] if len(seeds) == 1 else seeds,
            "config_sha256": per_file[0]["config_sha256"] if len(configs) == 1 else configs,
            "events": int(sum(files.entries)), "files": per_file}


def describe(identity: Mapping[str, Any] | None) -> str:
    """One short phrase naming a dataset: name, files, seed, events."""
    if not identity:
        return "unknown data (no identity recorded)"
    files = identity.get("files") or []
    paths = ", ".join(Path(str(f.get("path"))).name for f in files[:3]) + (", ..." if len(files) > 3 else "")
    name = identity.get("name") or "unnamed"
    return f"{name} ({paths or 'no files'}; seed {identity.get('seed')}, {identity.get('events')} events)"


def identity_mismatch(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> str | None:
    """None when both identities are the same data, else a short reason naming the difference."""
    if recorded.get("fingerprint") == current.get("fingerprint"):
        return None
    for key, what in (("seed", "seed"), ("config_sha256", "config"), ("events", "number of events")):
        if recorded.get(key) != current.get(key):
            return f"{what} {recorded.get(key)} != {current.get(key)}"
    a = [f.get("fingerprint") for f in recorded.get("files") or []]
    b = [f.get("fingerprint") for f in current.get("files") or []]
    if len(a) != len(b):
        return f"{len(a)} file(s) != {len(b)}"
    return "the files' generation records differ (event ranges, shards or pfgraph version)"


def same_dataset(identities: Sequence[Mapping[str, Any] | None]) -> bool:
    """True when every identity is present and all name the same data."""
    if not identities or any(not i for i in identities):
        return False
    first = identities[0]
    return all(identity_mismatch(first, i) is None for i in identities[1:])  # type: ignore[arg-type]


def detector_config(meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The detector section of an events file's generation config (``pfgraph_meta`` ``config.detector``);
    None when the file records none (made by another simulation)."""
    config = (meta or {}).get("config")
    detector = config.get("detector") if isinstance(config, Mapping) else None
    return dict(detector) if isinstance(detector, Mapping) else None


def detector_differences(trained: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: trained -> new`` for every detector setting that differs (keys either side lacks included;
    a setting of :data:`pfgraph.geometry.DETECTOR_DEFAULTS` a config lacks, written before it existed,
    is its default: e.g. ``grid`` the paper's)."""
    from pfgraph.geometry import DETECTOR_DEFAULTS

    out = []
    for key in sorted(set(trained) | set(new)):
        a = trained.get(key, DETECTOR_DEFAULTS.get(key, "absent"))
        b = new.get(key, DETECTOR_DEFAULTS.get(key, "absent"))
        if a != b:
            out.append(f"{key}: {a} -> {b}")
    return out
