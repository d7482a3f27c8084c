"""The package as a user installs it: a wheel with the presets, installed non-editable into a fresh venv,
runs ``pfgraph simulate --config gauss_b050`` from a folder outside the source tree (issue 17 item 6).

Offline and fast (about 20-40 s): the wheel is built from a copy of the tracked sources with the
build backend already in this environment (``--no-build-isolation --no-index``); the fresh venv has
no pip and sees this environment's dependencies through a ``.pth`` line pointing at its
site-packages (``.pth`` files there, such as the editable install's finder, are not executed for
a directory added that way), and pip from this environment installs the wheel into it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pfgraph import presets

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


def _source_copy(dest: Path) -> Path:
    """The files git tracks plus the new, not-ignored ones (what a checkout holds), copied to ``dest``."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of pfgraph built offline from a copy of the source tree."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know the source files")
    tmp = tmp_path_factory.mktemp("wheel")
    src = _source_copy(tmp / "src")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(tmp / "dist"), str(src)], cwd=tmp, env=env)
    (whl,) = (tmp / "dist").glob("pfgraph-*.whl")
    return whl


def test_the_wheel_contains_every_preset(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in presets.KINDS:
        for name in presets.names(kind):
            assert f"pfgraph/presets/{kind}/{name}.yaml" in names, f"{wheel.name} lacks preset {kind}/{name}"
    assert {"pfgraph/presets/sim/gauss_b050.yaml", "pfgraph/presets/train/default.yaml",
            "pfgraph/presets/model/cnn.yaml"} <= names
    assert not any(n.startswith(("tests/", "scripts/", "configs/")) for n in names)


def test_the_installed_wheel_simulates_with_a_preset_outside_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path, env=dict(os.environ))
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp_path, env=dict(os.environ)).stdout.strip())
    # this environment's dependencies, seen but not installed (its editable pfgraph finder is not run)
    (site / "pfgraph_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
         cwd=tmp_path, env=env)

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([str(py), "-c", "import pfgraph, pfgraph.presets as p; print(pfgraph.__file__); print(p.root())"],
                 cwd=work, env=env).stdout.split()
    assert Path(where[0]).is_relative_to(venv) and Path(where[1]) == Path(where[0]).parent / "presets", where
    assert not Path(where[0]).is_relative_to(ROOT)

    out = _run([str(venv / "bin" / "pfgraph"), "simulate", "--config", "gauss_b050", "--events", "20",
                "--out", "X.root"], cwd=work, env=env)
    assert "20 events" in out.stdout, out.stdout

    from pfgraph.io.root import EventFiles

    files = EventFiles([work / "X.root"])
    assert files.num_events == 20
    assert files.meta["config"]["name"] == "Gauss_S1.00_NL0.30_B0.50" and files.meta["seed"] == 2
    assert files.meta["config"]["detector"]["b_field"] == 0.5
    truth = np.asarray(files.read(["truth"])["truth"])
    assert truth.shape == (20, 56, 56) and np.isfinite(truth).all() and float(truth.sum()) > 0
