"""pfgraph/utils/progress.py: bars only on a terminal (issue 16.17)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pfgraph.utils.progress import progress, progress_enabled

ROOT = Path(__file__).resolve().parents[2]


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_enabled_only_on_a_terminal_unless_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PFGRAPH_NO_PROGRESS", raising=False)
    monkeypatch.delenv("PFGRAPH_PROGRESS", raising=False)
    assert progress_enabled(_Stream(True)) and not progress_enabled(_Stream(False))
    monkeypatch.setenv("PFGRAPH_PROGRESS", "1")
    assert progress_enabled(_Stream(False))
    monkeypatch.setenv("PFGRAPH_NO_PROGRESS", "1")
    assert not progress_enabled(_Stream(True))


def test_bar_is_a_no_op_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFGRAPH_NO_PROGRESS", "1")
    with progress(10, "x") as bar:
        bar.update(10)
    assert bar.disable


def test_redirected_stderr_of_a_command_holds_no_bar(tmp_path: Path) -> None:
    """A real ``pfgraph simulate`` with stderr redirected to a file: no bar, no carriage returns."""
    env = {k: v for k, v in os.environ.items() if k not in ("PFGRAPH_NO_PROGRESS", "PFGRAPH_PROGRESS")}
    env["PYTHONPATH"] = str(ROOT)
    log = tmp_path / "err.log"
    with log.open("w") as err:
        proc = subprocess.run([sys.executable, "-m", "pfgraph.cli", "simulate", "--events", "40", "--workers", "0",
                               "--out", str(tmp_path / "x.root"), "output.chunk=10"],
                              stdout=subprocess.PIPE, stderr=err, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, log.read_text()
    text = log.read_text()
    assert "\r" not in text and "ev/s" not in text and "simulate Gauss" not in text, text
    # forced on, the same command draws its bar into the file
    env["PFGRAPH_PROGRESS"] = "1"
    with log.open("w") as err:
        subprocess.run([sys.executable, "-m", "pfgraph.cli", "simulate", "--events", "40", "--workers", "0",
                        "--out", str(tmp_path / "y.root"), "output.chunk=10"],
                       stdout=subprocess.PIPE, stderr=err, text=True, env=env, timeout=300, cwd=tmp_path, check=True)
    assert "simulate Gauss" in log.read_text()


def test_timed_counts_the_producer_not_the_consumer() -> None:
    import time

    from pfgraph.utils.progress import Timed

    def slow():
        for i in range(3):
            time.sleep(0.02)
            yield i

    chunks = Timed(slow())
    got = []
    for item in chunks:
        time.sleep(0.05)  # the consumer's time is not counted
        got.append(item)
    assert got == [0, 1, 2] and 0.06 <= chunks.seconds < 0.15
