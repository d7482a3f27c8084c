"""``pfgraph inspect`` guards (issue 31): --display never over a user's file or the file inspected;
a flipped bit in an uncompressed event_id is caught."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pfgraph.cli import main
from pfgraph.errors import DataError
from pfgraph.io.root import EventFiles, check_event_ids
from tests.conftest import make_events


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_display_never_overwrites_a_text_file_or_the_input(tmp_path: Path, events_file: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("mine")
    rc, _, err = _cli(capsys, "inspect", str(events_file), "--display", str(text))
    assert rc == 2 and "was not written by pfgraph" in err and text.read_text() == "mine"
    size = events_file.stat().st_size
    rc, _, err = _cli(capsys, "inspect", str(events_file), "--display", str(events_file), "--force")
    assert rc == 2 and "the file being inspected" in err and events_file.stat().st_size == size
    png = tmp_path / "ev.png"
    assert _cli(capsys, "inspect", str(events_file), "--display", str(png))[0] == 0
    assert _cli(capsys, "inspect", str(events_file), "--display", str(png))[0] == 0  # its own PNG: replaced


def test_a_bit_flip_in_event_id_is_not_read_silently(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = make_events(tmp_path / "plain.root", 40, "gauss_b050", "output.compression=none")
    ids = EventFiles(plain).read(["event_id"])["event_id"]
    raw = bytearray(plain.read_bytes())
    pos = raw.find(ids.astype(">i8").tobytes())  # the stored event ids, as they are
    assert pos > 0
    raw[pos + 8 * 7 + 7] ^= 0x04  # event 7's id: 7 -> 3 (a duplicate of an earlier id)
    flipped = tmp_path / "flipped.root"
    flipped.write_bytes(bytes(raw))
    rc, _, err = _cli(capsys, "inspect", str(flipped))
    assert rc == 2 and "corrupt or unreadable ROOT file (entry 7: event_id 3 not above" in err
    with pytest.raises(DataError, match="entry 7: event_id 3"):
        EventFiles(flipped).read(["event_id", "truth"])
    raw[pos + 8 * 7 + 7] ^= 0x04
    raw[pos + 8 * 39 + 2] ^= 0x01  # the last id jumps far outside the file's range
    flipped.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"entry 39: event_id \d+ outside the file's range \[0, 40\)"):
        EventFiles(flipped).read(["event_id"])


def test_event_ids_rule() -> None:
    meta = {"first_event": 10, "events": 5}
    check_event_ids(np.arange(10, 15), "f", 0, meta)
    with pytest.raises(DataError, match="entry 2: event_id 11 not above the previous entry's 11"):
        check_event_ids(np.array([10, 11, 11, 13]), "f", 0, meta)
    with pytest.raises(DataError, match=r"entry 0: event_id 9 outside the file's range \[10, 15\)"):
        check_event_ids(np.array([9, 11]), "f", 0, meta)
