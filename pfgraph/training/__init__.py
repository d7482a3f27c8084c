"""Training: one trainer for every model and representation.

* :mod:`pfgraph.training.stage` -- :func:`~pfgraph.training.stage.train`, the stage (``pfgraph train`` maps onto it);
* :mod:`pfgraph.training.config` -- the run config and its one resolver
  (:func:`~pfgraph.training.config.resolve_run_config`);
* :mod:`pfgraph.training.trainer` -- the training loop; :mod:`pfgraph.training.run_folder` -- the run
  folder (checkpoints, summaries, device choice); :mod:`pfgraph.training.predict` -- a trained run
  over data; :mod:`pfgraph.training.ddp` -- torchrun process groups.
"""
