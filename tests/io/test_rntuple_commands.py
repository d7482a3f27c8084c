"""``--format rntuple`` / ``output.format: rntuple`` through ``pfgraph simulate`` and ``pfgraph evaluate``,
read back with ROOT's RDataFrame (issue 16.14)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import awkward as ak
import numpy as np
import pytest
import uproot

from pfgraph.io.root import EventFiles, is_rntuple
from tests.eval.conftest import make_jet_file
from tests.io.test_root_native import FLATTEN, assert_rdf_equals_uproot
from tests.training._helpers import cli, train_args

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def R(ROOT: ModuleType) -> ModuleType:  # noqa: N802, N803
    """PyROOT with the image-flattening helper of test_root_native."""
    if not hasattr(ROOT, "pfgraph_flat"):
        ROOT.gInterpreter.Declare(FLATTEN)
    return ROOT


@pytest.fixture(scope="module")
def sim_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same 30 events simulated by the command as TTree (default) and as RNTuple (--format)."""
    from pfgraph.cli import main

    d = tmp_path_factory.mktemp("rntuple_cmd")
    common = ["simulate", "--events", "30", "--seed", "4", "output.chunk=8"]
    assert main([*common, "--out", str(d / "t.root"), "--workers", "0"]) == 0
    assert main([*common, "--out", str(d / "n.root"), "--format", "rntuple"]) == 0  # one worker + writer
    return d / "t.root", d / "n.root"


def test_simulate_format_rntuple_read_by_rdataframe(sim_pair: tuple[Path, Path], R: ModuleType) -> None:  # noqa: N803
    ttree, rntuple = sim_pair
    assert not is_rntuple(uproot.open(ttree)["events"]) and is_rntuple(uproot.open(rntuple)["events"])
    got = assert_rdf_equals_uproot(R, [rntuple], "events")  # ROOT reads every column as uproot does
    want = uproot.open(ttree)["events"].arrays(library="ak")
    assert len(got["event_id"]) == 30
    for name in ("event_id", "emcal", "truth", "e_total", "npix", "pix_hcal"):
        assert ak.to_list(got[name]) == ak.to_list(want[name]), name  # the same events as the TTree file
    assert EventFiles(rntuple).formats == ["rntuple"]
    assert EventFiles(rntuple).meta["config"]["output"]["format"] == "rntuple"


def test_output_format_key_in_a_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("name: mine\nevents: 5\noutput:\n  format: rntuple\n  chunk: 5\n")
    rc, _, err = cli(capsys, "simulate", "--config", str(cfg), "--out", str(tmp_path / "m.root"), "--workers", "0")
    assert rc == 0, err
    assert is_rntuple(uproot.open(tmp_path / "m.root")["events"])
    rc, _, err = cli(capsys, "simulate", "--config", str(cfg), "--out", str(tmp_path / "b.root"), "output.format=csv")
    assert rc == 2 and "output.format" in err and "'rntuple'" in err


def test_evaluate_format_rntuple_read_by_rdataframe(tmp_path: Path, events_file: Path, R: ModuleType,  # noqa: N803
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    jets = make_jet_file(tmp_path / "jets.root", 12)
    run = tmp_path / "run"
    rc, _, err = cli(capsys, *train_args(events_file, run, "--epochs", "1"))
    assert rc == 0, err
    for fmt in ("ttree", "rntuple"):
        rc, _, err = cli(capsys, "evaluate", str(run), "--data", str(jets), "--out", str(tmp_path / fmt),
                         "--format", fmt, "--no-plots")
        assert rc == 0, err
    pred = tmp_path / "rntuple" / "predictions.root"
    f = uproot.open(pred)
    assert is_rntuple(f["predictions"]) and is_rntuple(f["jets"])
    got = assert_rdf_equals_uproot(R, [pred], "predictions")
    want = uproot.open(tmp_path / "ttree" / "predictions.root")["predictions"].arrays(library="np")
    np.testing.assert_array_equal(ak.to_numpy(got["pred"]), want["pred"])
    jets_got = assert_rdf_equals_uproot(R, [pred], "jets")
    assert len(jets_got["event_id"]) == 12
    # the RNTuple predictions file is a valid input of re-evaluation and of the report
    rc, _, err = cli(capsys, "evaluate", str(pred), "--data", str(jets), "--out", str(tmp_path / "again"), "--no-plots")
    assert rc == 0, err
    rc, out, err = cli(capsys, "inspect", str(pred))
    assert rc == 0 and "RNTuple" in out, err
