"""Atomic outputs: write to a temporary name in the same folder, fsync, then rename.

An interrupted writer therefore never leaves a file under the final name that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pfgraph.errors import PfgraphError


def ensure_writable_dir(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` if needed and check that files can be created in it."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PfgraphError(f"{path}: cannot create output folder ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise PfgraphError(f"{path}: output folder is not writable")
    return path


def check_creatable_dir(folder: str | os.PathLike[str]) -> Path:
    """Check, without creating anything, that ``folder`` is or can become a writable folder.

    For commands that create their output folder only once their inputs are validated: a
    failure before then must leave nothing behind, yet an unwritable target should still be
    reported before any long work.
    """
    path = Path(folder)
    if path.exists():
        if not path.is_dir():
            raise PfgraphError(f"{path}: exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise PfgraphError(f"{path}: output folder is not writable")
        return path
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise PfgraphError(f"{path}: cannot create output folder ({parent} is not a folder)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PfgraphError(f"{path}: cannot create output folder ({parent} is not writable)")
    return path


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file's content to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], same_name: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success fsync it and rename it to ``final``.

    With ``same_name`` the temporary file has ``final``'s own name inside a private hidden
    folder beside it (for writers that record their file name, like ROOT's TFile header).
    On any exception (or KeyboardInterrupt) the temporary file is removed and ``final`` is
    left untouched. The new file gets the usual permissions (0666 minus umask).
    """
    final = Path(final)
    ensure_writable_dir(final.parent if str(final.parent) else ".")
    tmp_dir: Path | None = None
    if same_name:
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
        tmp_path = tmp_dir / final.name
        tmp_path.touch()
    else:
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        fsync_path(tmp_path)
        os.replace(tmp_path, final)
        with contextlib.suppress(OSError):
            dir_fd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise
    finally:
        if tmp_dir is not None:
            with contextlib.suppress(OSError):
                tmp_dir.rmdir()


def atomic_write_text(final: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(final: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
