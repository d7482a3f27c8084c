"""The user-facing errors (:mod:`pfgraph.errors`): DataError's location attributes and its one line."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from pfgraph.errors import DataError, PfgraphError


def test_the_line_is_built_from_path_entry_and_field() -> None:
    exc = DataError("implausible value 2.9e+29 GeV", path=Path("data/b050.root"), entry=5, field="truth")
    assert str(exc) == "data/b050.root: event 5, branch 'truth': implausible value 2.9e+29 GeV"
    assert (exc.path, exc.entry, exc.field, exc.what) == ("data/b050.root", 5, "truth", "implausible value 2.9e+29 GeV")
    assert isinstance(exc, PfgraphError)


@pytest.mark.parametrize(("kwargs", "line"), [
    ({"path": "f.root"}, "f.root: no tree 'events'"),
    ({"path": "f.root", "field": "pix_ecal"}, "f.root: branch 'pix_ecal': no tree 'events'"),
    ({"entry": 0}, "event 0: no tree 'events'"),  # entry 0 is a location, not a missing one
    ({}, "no tree 'events'"),
])
def test_only_the_known_parts_are_named(kwargs: dict, line: str) -> None:
    assert str(DataError("no tree 'events'", **kwargs)) == line


def test_a_message_alone_is_kept_as_written() -> None:
    """The older form (the location already in the text) still works, attributes unknown."""
    exc = DataError("data/x.root: event 3, branch 'truth': NaN")
    assert str(exc) == "data/x.root: event 3, branch 'truth': NaN" and exc.path is exc.entry is exc.field is None


def test_the_attributes_survive_pickling() -> None:
    """Simulation and loading workers send their errors across processes."""
    back = pickle.loads(pickle.dumps(DataError("bad", path="a.root", entry=7, field="truth")))
    assert isinstance(back, DataError) and (back.path, back.entry, back.field) == ("a.root", 7, "truth")
    assert str(back) == "a.root: event 7, branch 'truth': bad"
