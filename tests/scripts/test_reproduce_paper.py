"""scripts/reproduce_paper.sh writes nothing outside its --out unless asked (issue 16.15)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _repo_copy(tmp_path: Path) -> Path:
    """The script in a copy of the repository's layout, with recorded evidence to protect."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("reproduce_paper.sh", "results_table.py", "benchdoc.py", "__init__.py"):
        shutil.copy(ROOT / "scripts" / name, repo / "scripts" / name)
    (repo / "docs" / "results").mkdir(parents=True)
    (repo / "docs" / "RESULTS.md").write_text("recorded\n")
    (repo / "docs" / "results" / "reproduce.log").write_text("recorded log\n")
    return repo


def _stubs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A pfgraph that does nothing and a python that records its arguments."""
    calls = tmp_path / "python_calls.txt"
    pf = tmp_path / "pf_stub.sh"
    pf.write_text("#!/bin/sh\nexit 0\n")
    py = tmp_path / "py_stub.sh"
    py.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    for p in (pf, py):
        p.chmod(0o755)
    return pf, py, calls


def _evidence(repo: Path) -> dict[str, str]:
    return {str(p.relative_to(repo)): p.read_text() for p in sorted((repo / "docs").rglob("*")) if p.is_file()}


def test_results_go_under_out_unless_update_docs(tmp_path: Path) -> None:
    repo = _repo_copy(tmp_path)
    pf, py, calls = _stubs(tmp_path)
    before = _evidence(repo)
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = {**os.environ, "PFGRAPH": str(pf), "PYTHON": str(py)}
    subprocess.run(["bash", str(repo / "scripts" / "reproduce_paper.sh"), "--quick", "--out", "smoke"],
                   cwd=cwd, env=env, check=True, capture_output=True, timeout=120)
    out = cwd / "smoke"  # a relative --out is from the caller's folder
    assert (out / "reproduce.log").exists() and not (repo / "smoke").exists()
    assert _evidence(repo) == before
    assert calls.read_text().split() == ["scripts/results_table.py", str(out), "--out", str(out / "RESULTS.md"),
                                         "--keep", str(out / "results")]
    calls.unlink()
    subprocess.run(["bash", str(repo / "scripts" / "reproduce_paper.sh"), "--quick", "--out", str(out),
                    "--update-docs"], cwd=cwd, env=env, check=True, capture_output=True, timeout=120)
    assert calls.read_text().splitlines()[-1].split() == ["scripts/results_table.py", str(out), "--out",
                                                          "docs/RESULTS.md", "--keep", "docs/results"]


@pytest.mark.slow
@pytest.mark.pythia
def test_smoke_run_leaves_the_recorded_evidence_alone(tmp_path: Path) -> None:
    """A real (tiny) run: every file it writes is under --out, RESULTS.md included."""
    repo = _repo_copy(tmp_path)
    before = _evidence(repo)
    env = {**os.environ, "PFGRAPH": f"{sys.executable} -m pfgraph.cli", "PYTHON": sys.executable,
           "PYTHONPATH": str(ROOT), "PFGRAPH_NO_PROGRESS": "1"}
    out = tmp_path / "smoke"
    proc = subprocess.run(["bash", str(repo / "scripts" / "reproduce_paper.sh"), "--quick", "--out", str(out),
                           "--events", "60", "--test-events", "20", "--jet-events", "8", "--fields", "050",
                           "--models", "analytic", "--device", "cpu"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _evidence(repo) == before
    assert sorted(p.name for p in repo.iterdir()) == ["docs", "scripts"]
    assert (out / "RESULTS.md").read_text().startswith("# ")
    assert (out / "results" / "b050_test" / "analytic.json").exists()
