"""Corrupt header bytes: the file and "corrupt or unreadable", never an internal error or a misleading
"not a pfgraph file" (issue 16.9)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from pfgraph import cli
from pfgraph.errors import DataError
from pfgraph.io import schema
from pfgraph.io.root import EventFiles
from tests.io._files import synthetic_batch, write_events

NAMES = [b.name for b in schema.EVENT_BRANCHES if not b.optional]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_events(tmp_path_factory.mktemp("hdr") / "good.root", synthetic_batch(6, seed=1))


def _flip(src: Path, dst: Path, offset: int) -> Path:
    data = bytearray(src.read_bytes())
    data[offset] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def _same(a: dict, b: dict) -> bool:
    return all(ak.to_list(a[k]) == ak.to_list(b[k]) if isinstance(a[k], ak.Array) else np.array_equal(a[k], b[k])
               for k in NAMES)


def _header_ranges(path: Path) -> list[int]:
    """Every byte of the TFile header's fields and of the top folder's record (keys and offsets)."""
    f = uproot.open(path).file
    top = f.fBEGIN + f.fNbytesName
    return [*range(0, 45), *range(top, top + 42)]


def test_every_header_byte_reads_right_or_says_corrupt(good: Path, tmp_path: Path) -> None:
    ref = EventFiles(good).read(NAMES)
    outcomes: dict[str, list[int]] = {}
    for offset in _header_ranges(good):
        path = _flip(good, tmp_path / "bad.root", offset)
        try:
            same = _same(EventFiles(path).read(NAMES), ref)
            outcome = "read, same data" if same else "read, OTHER DATA"
        except DataError as exc:
            msg = str(exc)
            ok = msg.startswith(f"{path}: corrupt or unreadable ROOT file (") and "\n" not in msg
            outcome = "corrupt or unreadable" if ok else f"OTHER ERROR: {msg}"
        outcomes.setdefault(outcome, []).append(offset)
    assert set(outcomes) <= {"read, same data", "corrupt or unreadable"}, outcomes
    assert len(outcomes["corrupt or unreadable"]) >= 25  # most header fields matter and are checked


@pytest.mark.parametrize("field, offset", [("compression code", 34), ("first record", 11), ("end of file", 14),
                                           ("top folder", None)])
def test_inspect_names_the_file_and_says_corrupt(good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 field: str, offset: int | None) -> None:
    if offset is None:
        f = uproot.open(good).file
        offset = f.fBEGIN + f.fNbytesName + 29  # the top folder's fSeekKeys: where its list of objects is
    path = _flip(good, tmp_path / "bad.root", offset)
    capsys.readouterr()
    assert cli.main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pfgraph: error: {path}: corrupt or unreadable ROOT file (") and err.count("\n") == 1, err
    assert "not a pfgraph file" not in err and "internal error" not in err
