"""An interrupted ``pfgraph simulate`` (Ctrl-C, SIGTERM, kill -9) leaves nothing behind for long: one line,
no worker traceback, and the next run removes a killed run's temporaries (issue 16.7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _start(tmp_path: Path, *extra: str, events: int = 100000) -> subprocess.Popen[str]:
    """``pfgraph simulate`` in its own process group (as a shell runs a foreground job)."""
    return subprocess.Popen([sys.executable, "-m", "pfgraph.cli", "simulate", "--events", str(events),
                             "--out", str(tmp_path / "x.root"), "output.chunk=100", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "PFGRAPH_NO_PROGRESS": "1"},
                            start_new_session=True, preexec_fn=_foreground_signals)


def _foreground_signals() -> None:
    """Ctrl-C as a shell's foreground job has it: pytest started in the background of a
    non-interactive shell ignores SIGINT, and a child would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _temporaries(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob(".x*.root.*.tmp"))


def _wait_writing(proc: subprocess.Popen[str], tmp_path: Path, n: int = 1) -> None:
    """Until ``n`` temporary outputs exist and hold data."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        tmps = _temporaries(tmp_path)
        if len(tmps) >= n and all(any(f.stat().st_size > 100_000 for f in t.glob("*.root")) for t in tmps):
            return
        time.sleep(0.05)
    raise AssertionError(f"simulate never wrote (exit {proc.poll()})")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("extra", [(), ("--shards", "2", "--workers", "2")], ids=["one-file", "two-shards"])
def test_ctrl_c_prints_one_line_and_cleans_up(tmp_path: Path, extra: tuple[str, ...]) -> None:
    proc = _start(tmp_path, *extra)
    _wait_writing(proc, tmp_path, 2 if extra else 1)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole foreground group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err == "pfgraph: interrupted\n"  # no worker traceback
    assert list(tmp_path.iterdir()) == []


def test_sigterm_with_workers(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--workers", "2")
    _wait_writing(proc, tmp_path)
    workers = _children(proc.pid)
    assert workers
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and err == "pfgraph: interrupted (SIGTERM)\n"
    assert list(tmp_path.iterdir()) == []
    assert not any(_alive(p) for p in workers)


def test_kill_9_leftovers_removed_by_the_next_run(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    _wait_writing(proc, tmp_path)
    workers = _children(proc.pid)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30  # the workers follow their parent (no orphan keeps simulating)
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)
    left = _temporaries(tmp_path)
    assert len(left) == 1 and not (tmp_path / "x.root").exists()
    again = _start(tmp_path, events=200)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert out.startswith("removed 1 temporary folder(s) of an interrupted run (")
    assert [p.name for p in tmp_path.iterdir()] == ["x.root"]
