"""One writer per run or study folder: a lock file naming its holder.

``pfgraph train`` and ``pfgraph study`` hold ``FOLDER/.pfgraph.lock`` while they write a folder. The
file names the holder (command, pid, host, start time) and is locked with ``flock`` for as long
as the holder lives, so a second writer is refused with one line naming it, and a lock left by a
crashed or killed process (the kernel dropped its ``flock``; on a file system without locks: its
pid is gone) is taken over. Readers take a shared lock (``shared=True``; e.g. ``pfgraph study
--only STEP`` jobs of a batch array, which may run side by side but not beside a whole-study run).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from pfgraph.errors import PfgraphError
from pfgraph.utils.atomic import pid_alive

LOCK_NAME = ".pfgraph.lock"
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


def _holder(path: Path) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "another process"
    return text[-1][:200] if text else "another process"


def _stale_by_pid(path: Path) -> bool:
    """Without ``flock``: the lock is stale when it names a pid of this host that has ended."""
    try:
        fields = dict(part.split("=", 1) for part in path.read_text().split() if "=" in part)
        return fields.get("host") == socket.gethostname() and not pid_alive(int(fields.get("pid", "-1")))
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], command: str, shared: bool = False) -> Iterator[Path]:
    """Hold the lock of ``folder`` (which must exist) for ``command`` while the block runs.

    Refuses with one PfgraphError line naming the holder when another live process holds it
    (exclusively, or at all when ``shared`` is False). A stale lock is taken over silently.
    """
    folder = Path(folder)
    path = folder / LOCK_NAME
    line = f"pfgraph {command} pid={os.getpid()} host={socket.gethostname()} since={time.strftime('%Y-%m-%dT%H:%M:%S')}\n"
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise PfgraphError(f"{folder}: cannot create its lock file {LOCK_NAME} ({exc.strerror})") from None
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise PfgraphError(f"{folder}: in use by {_holder(path)}; wait for it to finish (a second "
                                   f"{command} into the same folder would mix their outputs)") from None
            if exc.errno not in _NO_LOCKS:
                raise
            if path.stat().st_size and not _stale_by_pid(path):  # no flock here: trust the pid
                raise PfgraphError(f"{folder}: in use by {_holder(path)}; wait for it to finish (or remove "
                                   f"{path} if that process is gone)") from None
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino  # not a file an ending holder just removed
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        break
    else:
        raise PfgraphError(f"{folder}: could not take its lock {LOCK_NAME} (it keeps changing)")
    try:
        if shared:
            with open(path, "a") as f:  # noqa: PTH123 - append one line per shared holder
                f.write(line)
        else:
            os.ftruncate(fd, 0)
            os.pwrite(fd, line.encode(), 0)
        yield path
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # last holder out removes the file
            os.unlink(path)
        os.close(fd)
