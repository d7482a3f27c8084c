"""pfgraph/utils/atomic.py: stale temporaries of dead writers go, live ones stay; a full disk is one line
(issue 16.6, 16.7)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pfgraph.errors import PfgraphError
from pfgraph.utils.atomic import OWNER, atomic_path, clean_stale_temporaries, stale_temporaries, write_failure

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
from pfgraph.utils.atomic import atomic_path
with atomic_path(sys.argv[1], same_name=True) as tmp:
    tmp.write_bytes(b"x" * 1000)
    print(tmp, flush=True)
    time.sleep(120)
"""


def _holder(final: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(final)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def test_live_writer_kept_dead_writer_cleaned(tmp_path: Path) -> None:
    final = tmp_path / "data.root"
    proc, tmp = _holder(final)
    try:
        assert tmp.exists() and (tmp.parent / OWNER).exists()
        assert stale_temporaries(final) == []  # another process holds it: never touched
        assert clean_stale_temporaries(final) == (0, 0) and tmp.exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert stale_temporaries(final) == [tmp.parent]  # its writer is dead (kill -9)
    other = tmp_path / ".other.root.abc.tmp"  # another output's temporaries are not ours to remove
    other.mkdir()
    (other / OWNER).write_text("1\n")
    n, size = clean_stale_temporaries(final)
    assert n == 1 and 1000 <= size < 1100  # the partial file and the owner record
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.root.abc.tmp"]


def test_own_live_temporary_is_never_stale(tmp_path: Path) -> None:
    final = tmp_path / "x.bin"
    with atomic_path(final, same_name=True) as tmp:
        tmp.write_bytes(b"1")
        assert stale_temporaries(final) == []
        with atomic_path(final, same_name=True) as tmp2:  # a second writer in the same process
            tmp2.write_bytes(b"2")
        assert tmp.exists()
    assert final.read_bytes() == b"1" and [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_folder_without_owner_is_left_alone(tmp_path: Path) -> None:
    legacy = tmp_path / ".x.root.q1w2.tmp"
    legacy.mkdir()
    assert stale_temporaries(tmp_path / "x.root") == []


def test_without_posix_locks_writes_work_and_nothing_is_taken_for_stale(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    def no_locks(fd: int, cmd: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "lockf", no_locks)
    final = tmp_path / "x.root"
    with atomic_path(final, same_name=True) as tmp:
        tmp.write_bytes(b"1")
        assert sorted(p.name for p in tmp.parent.iterdir()) == ["x.root"]  # no owner file
        assert stale_temporaries(final) == []
    assert final.read_bytes() == b"1" and [p.name for p in tmp_path.iterdir()] == ["x.root"]


def test_next_atomic_write_removes_a_dead_writers_temporary(tmp_path: Path) -> None:
    final = tmp_path / "data.root"
    proc, tmp = _holder(final)
    proc.kill()
    proc.wait()
    with atomic_path(final, same_name=True) as new:
        new.write_bytes(b"ok")
    assert final.read_bytes() == b"ok" and [p.name for p in tmp_path.iterdir()] == ["data.root"]


def test_write_failures_become_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    final = tmp_path / "f.root"
    exc = write_failure(OSError(errno.ENOSPC, "No space left on device"), final)
    assert isinstance(exc, PfgraphError) and str(exc) == f"{final}: no space left on device (No space left on device)"
    torch_msg = "[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0: file write failed"

    class _Full:
        f_bavail, f_frsize = 3, 4096

    monkeypatch.setattr(os, "statvfs", lambda _: _Full())
    exc = write_failure(RuntimeError(torch_msg), final)
    assert isinstance(exc, PfgraphError) and str(exc).startswith(f"{final}: no space left on device (12 KiB free;")
    # torch.save's stream can also fail earlier, in its C++ iostream (seen on a full 64 KiB tmpfs)
    exc = write_failure(RuntimeError("basic_ios::clear: iostream error"), final)
    assert isinstance(exc, PfgraphError) and str(exc).startswith(f"{final}: no space left on device (12 KiB free;")
    monkeypatch.undo()
    assert str(write_failure(RuntimeError(torch_msg), final)).startswith(f"{final}: write failed (")
    assert write_failure(ValueError("x"), final) is None
    assert write_failure(OSError(errno.EACCES, "denied"), final) is None

    with pytest.raises(PfgraphError, match="no space left on device"), atomic_path(final, same_name=True) as tmp:
        tmp.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def _unshare_ok() -> bool:
    try:
        return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def run_on_small_disk(tmp_path: Path, size: str, argv: list[str]) -> tuple[int, str, list[str]]:
    """Run ``pfgraph ARGV`` with ``tmp_path/disk`` a tmpfs of ``size`` (a private mount namespace);
    returns (exit status, stderr, what is left on the disk). ``{disk}`` in ARGV is that folder."""
    disk = tmp_path / "disk"
    disk.mkdir(exist_ok=True)
    cmd = " ".join(a.format(disk=disk) for a in argv)
    script = (f"mount -t tmpfs -o size={size} tmpfs {disk} || exit 99; {sys.executable} -m pfgraph.cli {cmd}; "
              f"rc=$?; echo; echo LEFT: $(ls -A {disk}); exit $rc")
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "PFGRAPH_NO_PROGRESS": "1"})
    assert proc.returncode != 99, proc.stderr
    left = proc.stdout.rsplit("LEFT:", 1)[1].split()
    return proc.returncode, proc.stderr, left


needs_unshare = pytest.mark.skipif(not _unshare_ok(), reason="needs user namespaces (unshare) for a small tmpfs")


@needs_unshare
def test_simulate_on_a_full_disk(tmp_path: Path) -> None:
    rc, err, left = run_on_small_disk(tmp_path, "1m", ["simulate", "--events", "300", "--workers", "0",
                                                       "--out", "{disk}/x.root", "output.chunk=50"])
    assert rc == 2 and left == [], (err, left)
    disk = tmp_path / "disk"
    assert err.startswith(f"pfgraph: error: {disk}/x.root: no space left on device") and err.count("\n") == 1, err


@needs_unshare
def test_train_on_a_full_disk(tmp_path: Path, events_file: Path) -> None:
    """The checkpoint does not fit: torch's "file write failed" becomes one line naming it, no partial file."""
    rc, err, left = run_on_small_disk(tmp_path, "300k", ["train", "--model", "cnn", "--data", str(events_file),
                                                         "--out", "{disk}/run", "--epochs", "1", "train.threads=1",
                                                         "train.batch_size=16"])
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith(f"pfgraph: error: {tmp_path / 'disk' / 'run'}/") and "no space left on device" in err, err
    assert not [name for name in left if name.startswith(".")], left  # no hidden temporary left


@needs_unshare
def test_evaluate_on_a_full_disk(tmp_path: Path, events_file: Path) -> None:
    from pfgraph.cli import main

    run = tmp_path / "run"
    assert main(["train", "--model", "cnn", "--data", str(events_file), "--out", str(run), "--epochs", "1",
                 "model.encoder=[4,8]", "model.decoder=[4]", "train.threads=1", "train.batch_size=16"]) == 0
    rc, err, left = run_on_small_disk(tmp_path, "200k", ["evaluate", str(run), "--data", str(events_file),
                                                         "--out", "{disk}/ev", "--no-plots"])
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith(f"pfgraph: error: {tmp_path / 'disk' / 'ev'}/") and "no space left on device" in err, err


def test_a_legal_245_byte_name_works(tmp_path: Path) -> None:
    """Issue 31: the hidden temporary name passed 255 bytes; it is cut and hashed instead."""
    from pfgraph.utils.atomic import NAME_MAX, atomic_folder, temp_prefix

    name = "n" * 240 + ".root"
    assert len(name.encode()) == 245 and len(temp_prefix(name)) < NAME_MAX - 20
    assert temp_prefix("a" * 240) != temp_prefix("a" * 239 + "b")  # the hash keeps long names apart
    for same_name in (False, True):
        with atomic_path(tmp_path / name, same_name=same_name) as tmp:
            tmp.write_bytes(b"x")
        assert (tmp_path / name).read_bytes() == b"x"
    with atomic_folder(tmp_path / ("f" * 245), "report") as work:
        (work / "index.html").write_text("x")
    assert (tmp_path / ("f" * 245) / "index.html").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "f" * 245])


def test_plain_temporaries_are_removed_only_when_their_writer_has_ended(tmp_path: Path) -> None:
    """Issue 31: the run folder's cleanup removed every temporary, a live writer's too."""
    from pfgraph.training.run_folder import clean_stale_temporaries as clean_run

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".metrics.csv.{proc.pid}-abcd1234.tmp"
        dead = tmp_path / ".metrics.csv.999999-abcd1234.tmp"
        unknown = tmp_path / ".metrics.csv.abcd1234.tmp"  # an older pfgraph's: its writer cannot be told
        for p in (live, dead, unknown):
            p.write_text("partial")
        assert clean_run(tmp_path) == 1
        assert live.exists() and unknown.exists() and not dead.exists()
    finally:
        proc.kill()
        proc.wait()


def test_atomic_folder_swaps_as_one_unit(tmp_path: Path) -> None:
    from pfgraph.utils.atomic import atomic_folder

    out = tmp_path / "rep"
    with atomic_folder(out, "report") as work:
        (work / "old.png").write_text("1")
    with pytest.raises(RuntimeError), atomic_folder(out, "report") as work:
        (work / "new.png").write_text("2")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in out.iterdir()) == ["old.png"]  # the previous folder, as it was
    with atomic_folder(out, "report") as work:
        (work / "new.png").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["new.png"]  # no stale file of the earlier one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]
