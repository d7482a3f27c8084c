"""A small paper-mode run (simulate, train an image and a graph model 1 epoch, evaluate, report) and its digest.

Used by ``tests/test_paper_mode_identity.py``; ``python tests/paper_mode_run.py OUT`` runs it into
``OUT`` and prints the digest as JSON. The digest reads files with uproot, numpy and torch only (no
pfgraph), so the same script run with another pfgraph on ``PYTHONPATH`` (the commit before the grid
became data) gives the reference stored in ``tests/data/paper_mode_digest.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

#: Figures that plot wall-clock time (a panel of seconds): they differ between any two runs, so not compared.
TIMED_FIGURES = ("accuracy_vs_compute.png",)
#: Keys the grid work added to the detector config (files written since carry them; the reference does not).
ADDED_DETECTOR_KEYS = ("grid", "shower_width_emcal", "shower_width_hcal", "cell_threshold_emcal", "cell_threshold_hcal")
#: Keys added to the output config since (files written since carry them; the reference does not).
ADDED_OUTPUT_KEYS = ("dense_images",)
#: Training keys added since (the paper's v2 loss weights, the cone-sum term): their lines are left out of a run's config.yaml hash.
ADDED_TRAIN_KEYS = ("wmse_weight", "ssim_weight", "cone_weight", "cone_radius", "cone_min_gev")

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("simulate", "--config", "gauss_b050", "--events", "48", "--seed", "7", "--out", "data.root"),
    ("simulate", "--config", "gauss_b050", "--events", "16", "--seed", "8", "--out", "test.root"),
    ("train", "--repr", "image", "--model", "unet", "--data", "data.root", "--out", "run_img", "--epochs", "1",
     "--batch-size", "8", "--seed", "3", "--device", "cpu", "model.channels=[8,16]"),
    ("train", "--repr", "graph", "--model", "edgeconv", "--data", "data.root", "--out", "run_gr", "--epochs", "1",
     "--batch-size", "8", "--seed", "3", "--device", "cpu", "model.widths=[16,16]", "model.head=[16]"),
    ("evaluate", "run_img", "--data", "test.root", "--out", "ev_img"),
    ("evaluate", "run_gr", "--data", "test.root", "--out", "ev_gr"),
    ("report", "ev_img", "ev_gr", "--out", "rep"),
)


def run(out: Path) -> None:
    """Run :data:`COMMANDS` in ``out`` with this interpreter (PYTHONPATH inherited)."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MPLBACKEND="Agg")
    for cmd in COMMANDS:
        subprocess.run([sys.executable, "-m", "pfgraph.cli", *cmd], cwd=out, env=env, check=True,
                       stdout=subprocess.DEVNULL)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree_digest(path: Path, tree: str) -> dict[str, str]:
    import awkward as ak
    import numpy as np
    import uproot

    t = uproot.open(path)[tree]
    out = {}
    for name in t.keys():
        arr = t[name].array(library="ak")
        if arr.ndim > 1 and not isinstance(ak.type(arr).content, ak.types.RegularType):
            data = np.asarray(ak.num(arr, axis=1)).tobytes() + np.asarray(ak.flatten(arr, axis=None)).tobytes()
        else:
            data = np.ascontiguousarray(ak.to_numpy(arr)).tobytes()
        out[name] = _sha(data)
    return out


def _meta(path: Path) -> dict[str, Any]:
    import uproot

    meta = json.loads(str(uproot.open(path)["pfgraph_meta"]))
    det = (meta.get("config") or {}).get("detector")
    if isinstance(det, dict):
        for k in ADDED_DETECTOR_KEYS:
            det.pop(k, None)
    out = (meta.get("config") or {}).get("output")
    if isinstance(out, dict):
        for k in ADDED_OUTPUT_KEYS:
            out.pop(k, None)
    meta.pop("pfgraph_version", None)
    return meta


def _untimed(node: Any) -> Any:
    """``node`` without its wall-clock fields (``seconds``)."""
    if isinstance(node, dict):
        return {k: _untimed(v) for k, v in node.items() if k != "seconds"}
    if isinstance(node, list):
        return [_untimed(v) for v in node]
    return node


def _checkpoint(path: Path) -> str:
    import torch

    ck = torch.load(path, weights_only=True, map_location="cpu")
    h = hashlib.sha256()
    for k, v in sorted(ck["model_state"].items()):
        h.update(k.encode())
        h.update(v.cpu().numpy().tobytes())
    h.update(json.dumps(ck["normalisation"], sort_keys=True).encode())
    return h.hexdigest()


def _config_bytes(path: Path) -> bytes:
    """The run's config.yaml without the lines of :data:`ADDED_TRAIN_KEYS` (one ``key: value`` line each)."""
    lines = path.read_bytes().splitlines(keepends=True)
    added = tuple(f"{k}:".encode() for k in ADDED_TRAIN_KEYS)
    return b"".join(line for line in lines if not line.strip().startswith(added))


def digest(out: Path) -> dict[str, Any]:
    """Everything of the run that must not change in paper mode, as hashes and numbers."""
    d: dict[str, Any] = {}
    for f in ("data.root", "test.root"):
        d[f] = {"events": _tree_digest(out / f, "events"), "meta": _meta(out / f)}
    for run_dir in ("run_img", "run_gr"):
        d[run_dir] = {"state": _checkpoint(out / run_dir / "checkpoint_best.pt"),
                      "config.yaml": _sha(_config_bytes(out / run_dir / "config.yaml"))}
    for ev in ("ev_img", "ev_gr"):
        m = json.loads((out / ev / "metrics.json").read_text())
        d[ev] = {"predictions": _tree_digest(out / ev / "predictions.root", "predictions"),
                 "energy": _untimed(m["energy"]), "headline": _untimed(m["headline"])}
    d["figures"] = {str(p.relative_to(out)): _sha(p.read_bytes()) for p in sorted(out.rglob("*.png"))
                    if p.name not in TIMED_FIGURES}
    return d


if __name__ == "__main__":
    target = Path(sys.argv[1])
    if not (target / "rep").exists():
        run(target)
    print(json.dumps(digest(target), indent=1, sort_keys=True, default=str))
