"""Silent mismatches between a run's training data and the data it is evaluated on.

Two are flagged in metrics.json's ``data_mismatch`` section and in the evaluation's summary line
(the evaluation still runs: evaluating on other conditions can be the point of a study, but
never silently):

* the evaluation data was simulated with another **detector** config than the training data
  (a B = 0.5 T model on a B = 0 file): every ``detector.*`` setting that differs is named
  (:func:`pfgraph.io.identity.detector_differences`, the check ``pfgraph predict`` makes too);
* the evaluation data **is** the training data (the same files, or a file of the training set):
  its figures then measure memory, not generalisation.

The training data is what the run folder's ``train_summary.json`` recorded (its files and data
fingerprint); where those files are gone only the fingerprint is compared.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pfgraph.utils.ownership import same_file


def data_mismatch(run_dir: str | os.PathLike[str] | None, files: Any) -> dict[str, Any]:
    """The ``data_mismatch`` section for evaluating the run folder ``run_dir`` on ``files`` (an
    ``EventFiles``): ``{"flag": bool | None, "reasons": [str, ...]}`` (flag None: nothing recorded
    about the training data, so nothing could be compared)."""
    from pfgraph.errors import PfgraphError
    from pfgraph.io.identity import data_fingerprint, detector_config, detector_differences
    from pfgraph.io.root import EventFiles

    if run_dir is None:
        return {"flag": None, "reasons": []}
    try:
        summary = json.loads((Path(run_dir) / "train_summary.json").read_text())
    except (OSError, ValueError):
        summary = None
    if not isinstance(summary, dict):
        return {"flag": None, "reasons": []}
    reasons: list[str] = []
    train_paths = [str(p) for p in summary.get("data") or [] if isinstance(p, str)]
    ours = [p for p in train_paths if Path(p).exists()]
    shared = [str(e) for e in files.paths if any(same_file(e, t) for t in ours)]
    if summary.get("data_fingerprint") == data_fingerprint(files) or shared:
        what = ", ".join(Path(p).name for p in shared[:3]) or "the same events"
        reasons.append(f"evaluated on its own training data ({what})")
    if ours:
        try:
            train_meta = EventFiles(ours[0]).meta
        except PfgraphError:
            train_meta = {}
        trained, new = detector_config(train_meta), detector_config(files.meta)
        diff = detector_differences(trained, new) if trained is not None and new is not None else []
        if diff:
            reasons.append("another detector config (training data -> evaluation data): detector."
                           + "; detector.".join(diff[:3]) + (" ..." if len(diff) > 3 else ""))
    return {"flag": bool(reasons), "reasons": reasons}
