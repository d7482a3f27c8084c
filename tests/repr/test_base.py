"""Representation base (pfgraph.repr.base): the normalisation fitted on the training events only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import uproot

from pfgraph.io.root import EventFiles
from pfgraph.repr.base import Normalisation, fit_normalisation

CHANNELS = ["emcal", "hcal", "trk_neg", "trk_pos", "truth"]


def test_fit_normalisation_uses_only_the_given_events(events_file: Path) -> None:
    files = EventFiles(events_file)
    tree = uproot.open(events_file)["events"]
    ref = tree.arrays([*CHANNELS, "truth_neutral"], library="np")
    idx = np.array([3, 50, 51, 90])
    norm = fit_normalisation(files, idx, "truth_neutral")
    assert norm.input_scale == [float(np.abs(ref[c][idx]).max()) for c in CHANNELS[:4]]
    assert norm.target_scale == float(ref["truth_neutral"][idx].max()) and norm.target == "truth_neutral"
    other = fit_normalisation(files, np.array([0, 1]))
    assert other.target == "truth" and other.target_scale == float(ref["truth"][[0, 1]].max())
    assert Normalisation.from_dict(norm.to_dict()) == norm
