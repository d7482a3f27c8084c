"""pfgraph replaces only what it wrote (issue 31): markers, inputs, foreign folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pfgraph.errors import PfgraphError
from pfgraph.utils.ownership import (
    PNG_METADATA,
    check_not_input,
    check_not_inside,
    check_replaceable,
    foreign_entries,
    text_marker,
    written_by_pfgraph,
)


def _png(path: Path, tagged: bool) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    fig.savefig(path, format="png", **({"metadata": PNG_METADATA} if tagged else {}))
    plt.close(fig)
    return path


def test_markers_by_kind(tmp_path: Path, events_file: Path) -> None:
    assert written_by_pfgraph(_png(tmp_path / "ours.png", True))
    assert not written_by_pfgraph(_png(tmp_path / "theirs.png", False))  # matplotlib's own tag is not pfgraph's
    assert written_by_pfgraph(events_file)
    (tmp_path / "fake.root").write_text("not ROOT")
    assert not written_by_pfgraph(tmp_path / "fake.root")
    (tmp_path / "a.json").write_text(json.dumps({"created_by": "pfgraph evaluate"}))
    (tmp_path / "b.json").write_text(json.dumps({"created_by": "me"}))
    assert written_by_pfgraph(tmp_path / "a.json") and not written_by_pfgraph(tmp_path / "b.json")
    (tmp_path / "c.yaml").write_text(text_marker("train") + "\nx: 1\n")
    (tmp_path / "d.yaml").write_text("# my config\nx: 1\n")
    assert written_by_pfgraph(tmp_path / "c.yaml") and not written_by_pfgraph(tmp_path / "d.yaml")
    assert not written_by_pfgraph(tmp_path / "missing.txt") and not written_by_pfgraph(tmp_path)


def test_check_replaceable_refuses_a_users_file_unless_forced(tmp_path: Path) -> None:
    user = tmp_path / "notes.txt"
    user.write_text("mine")
    with pytest.raises(PfgraphError, match=r"notes.txt: exists and was not written by pfgraph.*--force"):
        check_replaceable(user)
    check_replaceable(user, force=True)
    check_replaceable(tmp_path / "new.root")  # nothing there: fine
    check_replaceable(_png(tmp_path / "ours.png", True))
    with pytest.raises(PfgraphError, match="is a folder"):
        check_replaceable(tmp_path, force=True)


def test_an_input_is_never_an_output(tmp_path: Path) -> None:
    cfg = tmp_path / "run" / "config.yaml"
    cfg.parent.mkdir()
    cfg.write_text(text_marker("train") + "\n")
    with pytest.raises(PfgraphError, match="an input is never an output"):
        check_not_input(tmp_path / "run" / ".." / "run" / "config.yaml", [cfg], "the --config being read")
    check_not_input(tmp_path / "run" / "other.yaml", [cfg, None], "x")
    with pytest.raises(PfgraphError, match="holds .*config.yaml"):
        check_not_inside(tmp_path, [cfg])
    check_not_inside(tmp_path / "elsewhere", [cfg])


def test_foreign_entries_skip_pfgraph_temporaries_and_locks(tmp_path: Path) -> None:
    for name in ("a.txt", ".pfgraph.lock", ".x.root.123-abc.tmp", "keep.png"):
        (tmp_path / name).write_text("")
    assert foreign_entries(tmp_path, lambda p: p.name == "keep.png") == ["a.txt"]
