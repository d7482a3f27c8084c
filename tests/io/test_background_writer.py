"""EventWriter(background=True): compression and writes in a background thread give the same bytes, let the
caller reuse its batch at once, and fail like the plain writer (issue 16.13)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import uproot

from pfgraph.errors import PfgraphError
from pfgraph.io.root import EventWriter, make_meta
from tests.io._files import synthetic_batch


def _write(path: Path, background: bool, fmt: str = "ttree", fail_at: int | None = None) -> Path:
    batch = synthetic_batch(40, seed=3, empty=(5,))
    with EventWriter(path, make_meta("events", {"name": "s"}, seed=0), background=background, format=fmt) as w:
        for i, a in enumerate(range(0, 40, 8)):
            chunk = {k: v[a:a + 8].copy() for k, v in batch.items()}
            if fail_at == i:
                chunk["emcal"] = chunk["emcal"][:, :10]  # a wrong shape: uproot refuses it in the writer thread
            w.write(chunk)
            for v in chunk.values():
                v[...] = 0  # the caller reuses its memory as soon as write returns
    return path


@pytest.mark.parametrize("fmt", ["ttree", "rntuple"])
def test_background_gives_the_same_bytes(tmp_path: Path, fmt: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = _write(tmp_path / "a" / "x.root", False, fmt)
    background = _write(tmp_path / "b" / "x.root", True, fmt)
    assert plain.read_bytes() == background.read_bytes()
    assert uproot.open(background)["events"].num_entries == 40


def test_background_uses_a_thread_and_stops_it(tmp_path: Path) -> None:
    before = {t.name for t in threading.enumerate()}
    _write(tmp_path / "x.root", True)
    assert not [t for t in threading.enumerate() if t.name.startswith("pfgraph-writer") and t.name not in before]


@pytest.mark.parametrize("fail_at", [1, 4])
def test_error_in_the_writer_thread_leaves_no_file(tmp_path: Path, fail_at: int) -> None:
    with pytest.raises((ValueError, PfgraphError)):
        _write(tmp_path / "x.root", True, fail_at=fail_at)
    assert list(tmp_path.iterdir()) == []
