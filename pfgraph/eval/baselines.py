"""Baselines every evaluation computes beside the model: the ``oracle`` image of the data file.

A file simulated with ``output.oracle`` carries the measured floor (:mod:`pfgraph.sim.showers`,
``oracle_energy``; docs/METRICS.md): every truth particle's energy estimated from its own
measurements alone. :class:`OracleBaseline` evaluates that image against the same truth, on the
same events, with the same code as the model (:class:`~pfgraph.eval.energy.EnergyAccumulator`,
:class:`~pfgraph.eval.jets.JetAccumulator`, the bootstrap headline), so ``metrics.json``'s
``baselines.oracle`` holds figures comparable one for one with the model's. It is evaluated only
when the evaluated target is the file's ``truth`` image (a model trained on ``truth_neutral`` has
no oracle to compare with: ``baselines.oracle`` stays null).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pfgraph.errors import DataError
from pfgraph.eval.bootstrap import headline
from pfgraph.eval.energy import EnergyAccumulator
from pfgraph.eval.jets import JetAccumulator
from pfgraph.io import schema

#: The sections of a ``baselines.oracle`` document (each with the keys of the model's own section).
ORACLE_SECTIONS = ("energy", "jets", "headline")


class OracleBaseline:
    """The oracle image of ``files`` evaluated against the truth, batch by batch beside a model.

    ``reader``: serves entries [start, start + n) of branches ``event_id``, ``truth`` and
    ``oracle`` (:class:`pfgraph.eval.stage._BlockReader`); ``scale``: the model's S (for the
    normalised figures, so they compare with the model's); ``jets``: a
    :class:`~pfgraph.eval.jets.JetAccumulator` to fill (jet samples) or None.
    """

    BRANCHES = ("event_id", "truth", schema.ORACLE_IMAGE)

    def __init__(self, reader: Any, scale: float, missed_threshold: float, jets: JetAccumulator | None) -> None:
        self.reader = reader
        self.energy = EnergyAccumulator(scale, missed_threshold)
        self.jets = jets
        #: Why the oracle is not evaluated (None while it is).
        self.skipped: str | None = None

    def update(self, start: int, event_id: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> None:
        """Add the events [start, start + B) that the model's batch holds (ids ``event_id``, its
        evaluated ``truth`` and input ``mask``)."""
        if self.skipped is not None:
            return
        data = self.reader.take(start, len(event_id))
        have = np.asarray(data["event_id"], dtype=np.int64)
        if not np.array_equal(have, event_id):
            raise DataError(f"oracle baseline: entries {start}-{start + len(event_id)} hold events "
                            f"{have[:3].tolist()}..., the evaluated batch {event_id[:3].tolist()}...")
        if not np.array_equal(np.asarray(data["truth"], dtype=np.float32), truth):
            self.skipped = "the evaluated target is not the file's truth image"
            return
        oracle = np.asarray(data[schema.ORACLE_IMAGE], dtype=np.float32)
        self.energy.update(oracle, truth, mask)
        if self.jets is not None:
            self.jets.update(oracle, truth)

    def result(self, bootstrap: int, seed: int, no_jets: dict[str, Any]) -> dict[str, Any] | None:
        """``{energy, jets, headline}`` of the oracle (None when skipped or empty); ``no_jets``: the
        jet section of a file without jets (the model's own)."""
        if self.skipped is not None or self.energy.n_events == 0:
            return None
        energy = self.energy.result()
        jets = self.jets.result() if self.jets is not None else dict(no_jets)
        head = headline(self.energy.event_data(), self.jets.matches() if self.jets is not None else None,
                        bootstrap, seed)
        return {"energy": energy, "jets": jets, "headline": head}
