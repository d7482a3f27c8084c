"""pfgraph: deep-learning energy reconstruction for particle-flow calorimetry.

Simulate a detector in the eta-phi plane, train image and point-cloud models on the same
events, and compare them on one common evaluation on the G x G truth grid. The four stages
are plain functions (the command line maps its flags onto them)::

    import pfgraph
    pfgraph.simulate("gauss_b050", "data/b050.root", events=2000, seed=1)
    pfgraph.simulate("gauss_b050_jet", "data/b050_jet.root", events=200, seed=2)
    run = pfgraph.train("cnn", "runs/cnn", "data/b050.root", epochs=3)
    ev = pfgraph.evaluate(run.run_dir, "data/b050_jet.root", "evals/cnn")
    pfgraph.report([ev.out], "reports/cnn")
    pfgraph.predict(run.run_dir, "data/b050_jet.root", "b050_jet_pred.root")   # no truth needed
    pfgraph.export(run.run_dir, "cnn.onnx")                                      # GeV in, GeV out

They are imported on first use, so ``import pfgraph`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: The public stage functions and result types, by name -> defining module.
_API = {
    "simulate": "pfgraph.sim.stage",
    "train": "pfgraph.training.stage",
    "TrainResult": "pfgraph.training.trainer",
    "evaluate": "pfgraph.eval.stage",
    "EvaluateSettings": "pfgraph.eval.stage",
    "Evaluation": "pfgraph.eval.stage",
    "predict": "pfgraph.eval.predict",
    "PredictResult": "pfgraph.eval.predict",
    "export": "pfgraph.training.export",
    "ExportResult": "pfgraph.training.export",
    "report": "pfgraph.reporting.stage",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'pfgraph' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
