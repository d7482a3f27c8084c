"""Python API type errors are one PfgraphError line naming the argument (issue 31)."""

from __future__ import annotations

from pathlib import Path

import pytest

import pfgraph
from pfgraph.errors import PfgraphError


@pytest.mark.parametrize(("call", "message"), [
    (lambda t: pfgraph.train(model=123, out=t / "r"), r"^train: argument 'model' expects .* got int 123$"),
    (lambda t: pfgraph.train("cnn", t / "r", overrides="train.lr=1e-3"),
     r"^train: argument 'overrides' expects a list of key=value strings, got the string 'train.lr=1e-3'"),
    (lambda t: pfgraph.train("cnn", t / "r", epochs="3"), r"^train: argument 'epochs' expects an integer"),
    (lambda t: pfgraph.simulate(None, t / "x.root"), r"^simulate: argument 'config' expects a path"),
    (lambda t: pfgraph.simulate("gauss_b050", t / "x.root", overrides="events=3"), r"argument 'overrides'"),
    (lambda t: pfgraph.evaluate(t, t / "d.root", t / "e", bootstrap="x"),
     r"^evaluate: argument 'bootstrap' expects int, got str 'x'$"),
    (lambda t: pfgraph.evaluate(t, None, t / "e"), r"^evaluate: argument 'data' expects a path"),
    (lambda t: pfgraph.report([t], 5), r"^report: argument 'out' expects a path"),
])
def test_api_type_errors(tmp_path: Path, call, message: str) -> None:  # noqa: ANN001
    with pytest.raises(PfgraphError, match=message):
        call(tmp_path)
    assert not (tmp_path / "r").exists() and not (tmp_path / "e").exists()
