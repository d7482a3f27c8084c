"""Write events from your own simulation (numpy arrays) as a pfgraph input-only file, with plain uproot.

No pfgraph needed: this is what a user converting Geant4, Delphes or real data writes so that
``pfgraph predict`` can apply a trained model (docs/SCHEMA.md, "Input-only files"):

* tree ``events``, one entry per event: ``event_id`` (int64), the four detector channels
  ``emcal``, ``hcal``, ``trk_neg``, ``trk_pos`` as float32[56][56] images in GeV (eta along the
  first axis, pixel centres at -2.5 + (i + 0.5) * 5/56; phi along the second, -pi + (j + 0.5) * 2pi/56),
  and the same deposits as a point cloud (``npix`` and ``pix_ieta``, ``pix_iphi`` int16,
  ``pix_<channel>`` float32 per pixel with any non-zero channel): image models read the images,
  graph models the points;
* the TObjString ``pfgraph_meta``: JSON with ``schema_version`` 1, ``kind`` "events" and, when the
  detector is pfgraph's, ``config.detector`` (predict compares it with the training data's).

    python scripts/examples/write_input_only.py --npz my_events.npz --out my_events.root
    python scripts/examples/write_input_only.py --demo 50 --detector-like data/b050.root --out toy.root

``--npz``: a file with arrays ``emcal``, ``hcal``, ``trk_neg``, ``trk_pos`` of shape (N, 56, 56) in
GeV (and optionally ``event_id`` (N,)). ``--demo N``: N toy events of random deposits instead.
``--detector-like F``: copy the detector config of the pfgraph events file F (``--b-field`` then
overrides its B field); without it the file records no detector config, which predict accepts
with a warning.
"""

from __future__ import annotations

import argparse
import json

import awkward as ak
import numpy as np
import uproot

CHANNELS = ("emcal", "hcal", "trk_neg", "trk_pos")
IMSIZE = 56


def toy_events(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    """N events of random deposits: a few hundred pixels per event, each channel ~40 % occupied."""
    rng = np.random.default_rng(seed)
    out = {c: np.zeros((n, IMSIZE, IMSIZE), np.float32) for c in CHANNELS}
    for i in range(n):
        cells = rng.choice(IMSIZE * IMSIZE, size=int(rng.integers(100, 400)), replace=False)
        for c in CHANNELS:
            hit = cells[rng.random(len(cells)) < 0.4]
            out[c][i].reshape(-1)[hit] = rng.exponential(1.5, size=len(hit)).astype(np.float32)
    return out


def point_cloud(images: dict[str, np.ndarray]) -> ak.Array:
    """The pixels with any non-zero channel, per event, as a record array (uproot writes npix + pix_*)."""
    stack = np.stack([images[c] for c in CHANNELS], axis=1)  # (N, 4, 56, 56)
    occupied = (stack != 0).any(axis=1).reshape(len(stack), -1)  # (N, 3136)
    event, flat = np.nonzero(occupied)  # row-major: events in order, pixels ascending
    counts = np.bincount(event, minlength=len(stack))
    fields = {"ieta": (flat // IMSIZE).astype(np.int16), "iphi": (flat % IMSIZE).astype(np.int16)}
    for k, c in enumerate(CHANNELS):
        fields[c] = stack[event, k].reshape(len(event), -1)[np.arange(len(event)), flat].astype(np.float32)
    return ak.unflatten(ak.zip(fields), counts)


def write(out: str, images: dict[str, np.ndarray], event_id: np.ndarray, detector: dict | None) -> None:
    """Write the input-only file ``out`` (see the module docstring)."""
    meta: dict = {"schema_version": 1, "kind": "events", "imsize": IMSIZE, "max_eta": 2.5,
                  "source": "scripts/examples/write_input_only.py"}
    if detector is not None:
        meta["config"] = {"detector": detector}
    with uproot.recreate(out) as f:
        f["pfgraph_meta"] = json.dumps(meta)
        branches = {"event_id": np.asarray(event_id, dtype=np.int64)}
        branches.update({c: np.ascontiguousarray(images[c], dtype=np.float32) for c in CHANNELS})
        branches["pix"] = point_cloud(images)  # -> branches npix, pix_ieta, pix_iphi, pix_emcal, ...
        types = {k: (v.type.content if isinstance(v, ak.Array) else np.dtype((v.dtype, v.shape[1:])))
                 for k, v in branches.items()}
        f.mktree("events", types).extend(branches)  # a TTree


def main() -> None:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--npz", help="numpy file with emcal, hcal, trk_neg, trk_pos arrays (N, 56, 56) in GeV")
    src.add_argument("--demo", type=int, help="write this many toy events instead")
    ap.add_argument("--out", required=True, help="output ROOT file")
    ap.add_argument("--detector-like", help="copy the detector config of this pfgraph events file")
    ap.add_argument("--b-field", type=float, help="with --detector-like: record this B field instead")
    args = ap.parse_args()
    if args.npz:
        data = np.load(args.npz)
        images = {c: np.asarray(data[c], dtype=np.float32) for c in CHANNELS}
        n = len(images["emcal"])
        event_id = np.asarray(data["event_id"]) if "event_id" in data else np.arange(n)
    else:
        images, event_id = toy_events(args.demo), np.arange(args.demo)
    detector = None
    if args.detector_like:
        with uproot.open(args.detector_like) as f:
            detector = dict(json.loads(str(f["pfgraph_meta"]))["config"]["detector"])
        if args.b_field is not None:
            detector["b_field"] = args.b_field
    write(args.out, images, event_id, detector)
    print(f"wrote {args.out}: {len(event_id)} events, detector config "
          f"{'recorded' if detector is not None else 'not recorded'}")


if __name__ == "__main__":
    main()
