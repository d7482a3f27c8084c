"""Where a training run stood when it ended: its budget status, by one stated rule.

A run's status is one of:

* ``stopped early``: early stopping fired (no validation-loss improvement larger than
  ``train.early_stop.min_delta`` for ``train.early_stop.patience`` epochs).
* ``still improving``: the run reached its epoch cap and its validation loss was still falling:
  the best validation loss of the last :data:`WINDOW` epochs is more than
  :data:`MIN_IMPROVEMENT` (1 %) below the best of the epochs before them (for a run of
  :data:`WINDOW` epochs or fewer: below the first epoch's), or the cap was one epoch. More
  epochs would probably have given a better model.
* ``hit its cap``: the run reached its epoch cap and the validation loss had stopped improving
  by that rule (it changed by 1 % or less over the last :data:`WINDOW` epochs).
* ``not finished``: fewer epochs than the cap and no early stop (interrupted, or still
  running; resuming continues it).
* ``not trained``: nothing was optimised (an untrainable baseline, or ``--epochs 0``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: The last epochs a run at its cap is judged on.
WINDOW = 3
#: Relative fall of the best validation loss over the last WINDOW epochs that counts as improving.
MIN_IMPROVEMENT = 0.01
STOPPED_EARLY = "stopped early"
STILL_IMPROVING = "still improving"
HIT_CAP = "hit its cap"
NOT_FINISHED = "not finished"
NOT_TRAINED = "not trained"
STATUSES = (STOPPED_EARLY, STILL_IMPROVING, HIT_CAP, NOT_FINISHED, NOT_TRAINED)
#: The per-epoch series a run records (``train_summary.json`` and ``metrics.json`` ``training.history``),
#: columns of its metrics.csv.
HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "val_half_width", "lr", "wall_s", "train_flops")
#: The rule in one line (recorded with every status).
RULE = (f"'{STOPPED_EARLY}': early stopping fired; at the epoch cap, '{STILL_IMPROVING}' if the best validation "
        f"loss of the last {WINDOW} epochs is more than {100 * MIN_IMPROVEMENT:g} % below the best before them "
        f"(runs of <= {WINDOW} epochs: below the first epoch's; a 1-epoch cap counts as improving), "
        f"else '{HIT_CAP}'; '{NOT_FINISHED}' below the cap without an early stop; '{NOT_TRAINED}' without training")


def still_improving(val_losses: Sequence[float]) -> bool:
    """True when the validation losses (one per epoch, in order) were still falling at the end (module rule)."""
    v = [float(x) for x in val_losses if x is not None and math.isfinite(float(x))]
    if len(v) <= 1:
        return True
    before = min(v[:-WINDOW]) if len(v) > WINDOW else v[0]
    recent = min(v[-WINDOW:]) if len(v) > WINDOW else min(v[1:])
    return recent < before * (1.0 - MIN_IMPROVEMENT)


def budget_status(val_losses: Sequence[float], epochs: int, cap: int, stopped_early: bool, trained: bool = True) -> str:
    """The run's status (one of :data:`STATUSES`) from its per-epoch validation losses, the epochs
    run, the epoch cap and whether early stopping fired (see the module docstring for the rule)."""
    if not trained or epochs <= 0:
        return NOT_TRAINED
    if stopped_early:
        return STOPPED_EARLY
    if epochs < cap:
        return NOT_FINISHED
    return STILL_IMPROVING if still_improving(val_losses) else HIT_CAP
