"""scripts/examples run on small generated predictions files and print the numbers numpy gets."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import awkward as ak
import numpy as np
import pytest
import uproot

from pfgraph.io.root import EventFiles
from tests.io._files import write_predictions

EXAMPLES = Path(__file__).resolve().parents[2] / "scripts" / "examples"


@pytest.fixture(scope="module")
def predictions(tmp_path_factory: pytest.TempPathFactory, events_file: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("examples")
    events = EventFiles(events_file).read(["event_id", "truth", "npix"], stop=40)
    return {fmt: write_predictions(d / fmt / "predictions.root", events, fmt=fmt, seed=3) for fmt in ("ttree", "rntuple")}


def expected(path: Path) -> dict[str, tuple[int, float, float]]:
    """(in-range entries, mean, std) of the residual and jet deviation, computed like the examples
    (float32 arithmetic as in ROOT's C++, statistics of the in-range values as TH1 keeps them)."""
    f = uproot.open(path)
    p = f["predictions"].arrays(["pred", "truth"], library="np")
    m = p["truth"] > 0
    r = ((p["pred"][m] - p["truth"][m]) / p["truth"][m]).astype(np.float64)
    j = f["jets"].arrays(["truth_jet_energy", "pred_jet_energy"])
    ok = (ak.num(j.truth_jet_energy) > 0) & (ak.num(j.pred_jet_energy) > 0)
    t0 = ak.to_numpy(j.truth_jet_energy[ok][:, 0])
    d = ((ak.to_numpy(j.pred_jet_energy[ok][:, 0]) - t0) / t0).astype(np.float64)
    out = {}
    for name, v, lo, hi in (("residual", r, -5.0, 2.0), ("jet_energy", d, -1.0, 1.0)):
        v = v[(v >= lo) & (v < hi)]
        out[name] = (len(v), float(v.mean()), float(v.std()))
    return out


def check_output(stdout: str, path: Path) -> None:
    want = expected(path)
    assert want["residual"][0] > 1000 and want["jet_energy"][0] >= 5
    for name, (n, mean, std) in want.items():
        m = re.search(rf"^{name}: entries (\d+) mean (\S+) std (\S+)$", stdout, re.M)
        assert m, (name, stdout)
        assert int(m.group(1)) == n, name
        assert float(m.group(2)) == pytest.approx(mean, rel=1e-4, abs=1e-7), name
        assert float(m.group(3)) == pytest.approx(std, rel=1e-4), name
    assert "pfgraph_meta: {" in stdout


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("fmt", ["ttree", "rntuple"])
def test_uproot_awkward_hist_example(predictions: dict[str, Path], tmp_path: Path, fmt: str) -> None:
    pytest.importorskip("hist", reason="the uproot example needs hist: pip install hist")
    out = tmp_path / "u.png"
    res = subprocess.run([sys.executable, str(EXAMPLES / "read_predictions_uproot.py"), str(predictions[fmt]),
                          "--out", str(out), "--step", "7"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    check_output(res.stdout, predictions[fmt])
    assert is_png(out)


def _root_executable() -> str:
    exe = shutil.which("root") or str(Path(sys.executable).parent / "root")
    if not Path(exe).exists():
        pytest.skip("the 'root' command is not on PATH (pip install '.[root]' provides it)")
    return exe


@pytest.mark.root
def test_cpp_macro(ROOT: ModuleType, predictions: dict[str, Path], tmp_path: Path) -> None:  # noqa: N803
    """The documented command line: root -l -b -q 'scripts/examples/read_predictions.C("...")'."""
    path = predictions["ttree"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    res = subprocess.run([_root_executable(), "-l", "-b", "-q", f'{EXAMPLES / "read_predictions.C"}("{path}")'],
                         capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Error" not in res.stdout + res.stderr.replace("UserWarning", ""), res.stdout + res.stderr
    check_output(res.stdout, path)
    assert is_png(tmp_path / "read_predictions.png")


@pytest.mark.root
def test_python_rdataframe_example_on_rntuple(ROOT: ModuleType, predictions: dict[str, Path], tmp_path: Path) -> None:  # noqa: N803
    path = predictions["rntuple"]
    out = tmp_path / "rdf.png"
    res = subprocess.run([sys.executable, str(EXAMPLES / "read_predictions_rdf.py"), str(path), "--out", str(out)],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    check_output(res.stdout, path)
    assert is_png(out)
