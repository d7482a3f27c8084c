"""Paper mode stays bit-identical now that the grid is data (issue 28).

The reference ``tests/data/paper_mode_digest.json`` was produced by ``tests/paper_mode_run.py`` with
the code before the change (``PYTHONPATH`` on that checkout). Files written since carry the grid in
their meta (``detector.grid``, ``shower_width_*``, and ``dataset.grid`` of an evaluation), so the
ROOT files' bytes differ legitimately: the digest compares every branch's arrays, the meta without
those keys, the checkpoints' weights and normalisation, the metrics and every figure byte for byte.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import paper_mode_run  # noqa: E402

REFERENCE = Path(__file__).parent / "data" / "paper_mode_digest.json"


def _reference() -> dict:
    return json.loads(REFERENCE.read_text())


def test_paper_mode_event_files_are_identical(tmp_path: Path) -> None:
    for cmd in paper_mode_run.COMMANDS[:2]:
        subprocess.run([sys.executable, "-m", "pfgraph.cli", *cmd], cwd=tmp_path, check=True,
                       stdout=subprocess.DEVNULL)
    want = _reference()
    for f in ("data.root", "test.root"):
        got = json.loads(json.dumps({"events": paper_mode_run._tree_digest(tmp_path / f, "events"),
                                     "meta": paper_mode_run._meta(tmp_path / f)}, default=str))
        assert got["events"] == want[f]["events"], f
        assert got["meta"] == want[f]["meta"], f


@pytest.mark.slow
def test_paper_mode_run_is_identical(tmp_path: Path) -> None:
    paper_mode_run.run(tmp_path)
    got = json.loads(json.dumps(paper_mode_run.digest(tmp_path), default=str))
    want = _reference()
    assert sorted(got) == sorted(want)
    for key in want:
        assert got[key] == want[key], key
