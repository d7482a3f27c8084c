"""Progress bars for long work (tqdm on stderr; quiet when not a terminal unless forced)."""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm.auto import tqdm


def progress(total: int | None, desc: str, unit: str = "ev", **kw: Any) -> tqdm:
    """A tqdm bar on stderr; disabled under ``PFGRAPH_NO_PROGRESS=1``."""
    disable = bool(os.environ.get("PFGRAPH_NO_PROGRESS"))
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=disable, dynamic_ncols=True,
                mininterval=0.5, **kw)
