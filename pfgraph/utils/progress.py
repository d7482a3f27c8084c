"""Progress bars for long work: tqdm on stderr, only when stderr is a terminal.

Redirected to a file or a pipe (logs, CI, ``2> log``), the bars are off, so logs hold the
commands' own lines and no carriage-return residue. ``PFGRAPH_PROGRESS=1`` forces them on,
``PFGRAPH_NO_PROGRESS=1`` forces them off (it wins over both).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

from tqdm.auto import tqdm


def progress_enabled(stream: TextIO | None = None) -> bool:
    """Whether bars are drawn on ``stream`` (default stderr): a terminal, or forced by the environment."""
    if os.environ.get("PFGRAPH_NO_PROGRESS"):
        return False
    if os.environ.get("PFGRAPH_PROGRESS"):
        return True
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def progress(total: int | None, desc: str, unit: str = "ev", **kw: Any) -> tqdm:
    """A tqdm bar on stderr; a silent no-op bar unless :func:`progress_enabled`."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not progress_enabled(sys.stderr),
                dynamic_ncols=True, mininterval=0.5, **kw)


T = TypeVar("T")


class Timed:
    """Iterate ``items`` and add the seconds spent producing each item (including the final, empty
    ``next``) to :attr:`seconds`: the inference time of a prediction stream, without its consumer's."""

    def __init__(self, items: Iterable[T]) -> None:
        self._it = iter(items)
        self.seconds = 0.0

    def __iter__(self) -> Iterator[T]:
        while True:
            t0 = time.perf_counter()
            try:
                item = next(self._it)
            except StopIteration:
                self.seconds += time.perf_counter() - t0
                return
            self.seconds += time.perf_counter() - t0
            yield item
