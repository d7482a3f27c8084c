"""One writer per run or study folder (issue 31): the lock names its holder; a dead holder's lock is taken over."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pfgraph.errors import PfgraphError
from pfgraph.utils.lock import LOCK_NAME, folder_lock


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    with folder_lock(tmp_path, "train") as path:
        assert f"pid={os.getpid()}" in path.read_text()
        with pytest.raises(PfgraphError, match=rf"in use by pfgraph train pid={os.getpid()} host="):
            with folder_lock(tmp_path, "train"):
                pass
    assert not (tmp_path / LOCK_NAME).exists()  # released and removed
    with folder_lock(tmp_path, "train"):  # free again
        pass


def test_a_lock_held_by_another_process_is_refused(tmp_path: Path) -> None:
    code = ("import sys, time; from pfgraph.utils.lock import folder_lock\n"
            f"with folder_lock({str(tmp_path)!r}, 'study'):\n    print('held', flush=True); time.sleep(30)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(PfgraphError, match=rf"in use by pfgraph study pid={proc.pid}"):
            with folder_lock(tmp_path, "study"):
                pass
    finally:
        proc.kill()
        proc.wait()
    with folder_lock(tmp_path, "study"):  # the killed holder's lock (file left behind) is taken over
        pass


def test_a_stale_lock_file_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text(f"pfgraph train pid=999999 host={socket.gethostname()} since=then\n")
    with folder_lock(tmp_path, "train") as path:
        assert f"pid={os.getpid()}" in path.read_text()


def test_shared_holders_coexist_but_exclude_an_exclusive_one(tmp_path: Path) -> None:
    with folder_lock(tmp_path, "study --only", shared=True), folder_lock(tmp_path, "study --only", shared=True):
        with pytest.raises(PfgraphError, match="in use by pfgraph study --only"):
            with folder_lock(tmp_path, "study"):
                pass
    with folder_lock(tmp_path, "study"):
        with pytest.raises(PfgraphError, match="in use by pfgraph study pid"):
            with folder_lock(tmp_path, "study --only", shared=True):
                pass
