"""The one rule that calls a model degenerate (issue 31), shared by the evaluation and RESULTS.md.

A model that predicts nothing has every truth pixel missed, r = -1 everywhere and a 68 %
half-width of zero: a spread-only figure would rank it first. The evaluation writes the flag into
``metrics.json`` (top-level ``degenerate``: ``{"flag", "reasons", "rule"}``); RESULTS.md reads that
object, or applies :func:`degenerate_reasons` to the figures of an older ``metrics.json`` that has
none. A degenerate model is shown flagged and never ranked, and never makes a claim "agree".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: Most truth pixels predicted empty (r = -1): the share above which a model is degenerate.
MISSED_PIXEL_MAX = 0.5
#: A bias far from zero: |median r| above which a model is degenerate.
MEDIAN_ABS_MAX = 0.5
#: The same thresholds under the names the evaluation branch of issue 31 gave them.
MAX_MISSED, MAX_ABS_MEDIAN = MISSED_PIXEL_MAX, MEDIAN_ABS_MAX
#: The headline figures the rule reads (``metrics.json`` ``headline.figures`` names).
RULE_KEYS = ("missed_pixel_fraction", "residual_median")

DEGENERATE_RULE = (f"degenerate when more than {MISSED_PIXEL_MAX:g} of the truth pixels are missed "
                   f"(missed_pixel_fraction > {MISSED_PIXEL_MAX:g}) or the median relative residual is far "
                   f"from zero (|residual_median| > {MEDIAN_ABS_MAX:g}), or either figure is not finite")


def _value(fig: Any) -> float | None:
    """A figure's number: a plain number, or the ``value`` of a ``{"value", "lo", "hi"}`` figure."""
    if isinstance(fig, Mapping):
        fig = fig.get("value")
    if isinstance(fig, bool) or not isinstance(fig, (int, float)):
        return None
    return float(fig)


def degenerate_reasons(figures: Mapping[str, Any]) -> list[str]:
    """The reasons :data:`DEGENERATE_RULE` calls a model degenerate (empty: not degenerate).

    ``figures`` maps headline-figure names to a number or to a ``{"value": ...}`` figure
    (``metrics.json`` ``headline.figures``); a figure that is absent is not judged (an old file
    without it gives no reason from it), a non-finite one is a reason. The reasons hold no ``|``
    (they go into Markdown tables).
    """
    reasons: list[str] = []
    missed = _value(figures.get("missed_pixel_fraction"))
    median = _value(figures.get("residual_median"))
    if missed is not None:
        if not math.isfinite(missed):
            reasons.append("missed_pixel_fraction is not finite")
        elif missed > MISSED_PIXEL_MAX:
            reasons.append(f"missed_pixel_fraction {missed:.3g} > {MISSED_PIXEL_MAX:g} (most truth pixels missed)")
    if median is not None:
        if not math.isfinite(median):
            reasons.append("residual_median is not finite")
        elif abs(median) > MEDIAN_ABS_MAX:
            reasons.append(f"residual_median {median:.3g} is more than {MEDIAN_ABS_MAX:g} from 0 (median r far from 0)")
    return reasons


def degenerate_record(figures: Mapping[str, Any]) -> dict[str, Any]:
    """The ``metrics.json`` ``degenerate`` object for ``figures``: ``{"flag", "reasons", "rule"}``."""
    reasons = degenerate_reasons(figures)
    return {"flag": bool(reasons), "reasons": reasons, "rule": DEGENERATE_RULE}
