"""Atomic outputs: write to a temporary name in the same folder, fsync, then rename.

An interrupted writer therefore never leaves a file under the final name that looks complete.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
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


#: Lock file inside a private temporary folder: held (POSIX ``lockf``) by the writing process while
#: it lives, so a later run can tell a dead writer's leftovers from a live writer's work.
OWNER = ".owner"
#: Temporary folders this process is writing right now (never opened by the stale-temporary scan:
#: closing any descriptor of a file drops this process's POSIX locks on it).
_LIVE: set[str] = set()
#: What torch.save's C++ archive writer says when a write fails (it does not keep the errno).
_TORCH_WRITE_ERRORS = ("write failed", "inline_container.cc", "PytorchStreamWriter", "iostream error")
#: A write failing with less free space than this is reported as a full disk.
_FULL_BELOW = 64 * 2**20


def _claim(tmp_dir: Path) -> int | None:
    """Create ``tmp_dir/OWNER`` locked by this process (the lock is taken before the name appears).

    On a file system without POSIX locks (some network mounts) there is no owner file: the
    folder is then never taken for a dead writer's, so it is never removed automatically.
    """
    staging = tmp_dir / (OWNER + ".new")
    fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            os.close(fd)
            staging.unlink()
            return None
        os.write(fd, f"{os.getpid()}\n".encode())
        os.rename(staging, tmp_dir / OWNER)
    except BaseException:
        os.close(fd)
        raise
    return fd


#: Longest file name most file systems take (bytes).
NAME_MAX = 255


def temp_prefix(name: str) -> str:
    """The hidden prefix of ``name``'s temporaries (``.NAME.``). A long name is cut and a hash of
    it added, so that prefix plus a random part and ``.tmp`` stay within :data:`NAME_MAX` bytes
    (a legal 245-byte output name must work)."""
    if len(name.encode()) <= NAME_MAX - 60:
        return f".{name}."
    import hashlib

    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    cut = name.encode()[:NAME_MAX - 90].decode("utf-8", "ignore")
    return f".{cut}~{digest}."


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is alive (a pid we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def stale_temporaries(final: str | os.PathLike[str]) -> list[Path]:
    """Temporaries of ``final`` left by writers that no longer run (killed, crashed, power loss).

    A temporary folder counts only when it holds an :data:`OWNER` file whose lock no live process
    holds; a temporary file only when its name carries the pid of a process that has ended
    (``.NAME.<pid>-<random>.tmp``). A temporary being written right now (by this or any other
    process) never counts, nor one whose writer cannot be told.
    """
    final = Path(final)
    parent = final.parent if str(final.parent) else Path(".")
    prefix = temp_prefix(final.name)
    stale = []
    for p in sorted(parent.glob(f"{glob.escape(prefix)}*.tmp")):
        if str(p.resolve()) in _LIVE:
            continue
        if not p.is_dir():
            head = p.name[len(prefix):].split("-", 1)[0]
            if head.isdigit() and int(head) != os.getpid() and not pid_alive(int(head)):
                stale.append(p)
            continue
        try:
            fd = os.open(p / OWNER, os.O_RDWR | os.O_CLOEXEC)
        except OSError:  # no owner file: still being created, or not ours
            continue
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live process holds it
            os.close(fd)
            continue
        try:
            pid = int(os.read(fd, 32).split()[0])
        except (OSError, ValueError, IndexError):
            pid = -1
        os.close(fd)  # releases the probe's lock
        if pid != os.getpid():
            stale.append(p)
    return stale


def clean_stale_temporaries(final: str | os.PathLike[str]) -> tuple[int, int]:
    """Remove :func:`stale_temporaries` of ``final``; returns (folders removed, bytes freed)."""
    n = size = 0
    for p in stale_temporaries(final):
        with contextlib.suppress(OSError):
            size += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()
        n += 0 if p.exists() else 1
    return n, size


def write_failure(exc: BaseException, final: str | os.PathLike[str]) -> PfgraphError | None:
    """A full disk (or a failed write) while writing ``final`` as one PfgraphError line; None for
    anything else. Call it before the partial file is removed (it looks at the free space)."""
    if isinstance(exc, PfgraphError):
        return None
    folder = Path(final).parent if str(Path(final).parent) else Path(".")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return PfgraphError(f"{final}: no space left on device ({exc.strerror or exc})")
    text = str(exc)
    if isinstance(exc, RuntimeError) and any(m in text for m in _TORCH_WRITE_ERRORS):  # torch.save hides the errno
        try:
            st = os.statvfs(folder)
            free = st.f_bavail * st.f_frsize
        except OSError:
            free = None
        detail = " ".join(text.split())[:160]
        if free is not None and free < _FULL_BELOW:
            return PfgraphError(f"{final}: no space left on device ({free // 1024} KiB free; {detail})")
        return PfgraphError(f"{final}: write failed ({detail})")
    return None


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], same_name: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success fsync it and rename it to ``final``.

    With ``same_name`` the temporary file has ``final``'s own name inside a private hidden
    folder beside it (for writers that record their file name, like ROOT's TFile header); the
    folder holds a lock file while this process lives, and temporaries of ``final`` that a dead
    process left behind (kill -9, crash) are removed first (:func:`clean_stale_temporaries`).
    On any exception (or KeyboardInterrupt) the temporary file is removed and ``final`` is
    left untouched; a full disk becomes one PfgraphError line naming ``final``. The new file
    gets the usual permissions (0666 minus umask).
    """
    final = Path(final)
    ensure_writable_dir(final.parent if str(final.parent) else ".")
    tmp_dir: Path | None = None
    owner_fd: int | None = None
    if same_name:
        clean_stale_temporaries(final)
        tmp_dir = Path(tempfile.mkdtemp(prefix=temp_prefix(final.name), suffix=".tmp", dir=final.parent))
        _LIVE.add(str(tmp_dir.resolve()))
        try:
            owner_fd = _claim(tmp_dir)
        except OSError as exc:
            _LIVE.discard(str(tmp_dir.resolve()))
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise write_failure(exc, final) or exc from None
        tmp_path = tmp_dir / final.name
        tmp_path.touch()
    else:
        fd, tmp = tempfile.mkstemp(prefix=f"{temp_prefix(final.name)}{os.getpid()}-", suffix=".tmp", dir=final.parent)
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
    except BaseException as exc:
        failure = write_failure(exc, final)
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if failure is not None:
            raise failure from None
        raise
    finally:
        if tmp_dir is not None:
            with contextlib.suppress(OSError):
                (tmp_dir / OWNER).unlink()
            if owner_fd is not None:
                os.close(owner_fd)
            with contextlib.suppress(OSError):
                tmp_dir.rmdir()
            _LIVE.discard(str(tmp_dir.resolve()))


def atomic_write_text(final: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(final: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's content (hex), read in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_RENAME_EXCHANGE = 2


def exchange_paths(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd = -100
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries to disk (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def folder_temporaries(out: Path, tag: str) -> str:
    """The glob of the private temporary folders :func:`atomic_folder` makes for ``out``."""
    return f"{glob.escape(temp_prefix(out.name))}{tag}-*.tmp"


def clean_stale_folders(out: Path, tag: str) -> int:
    """Remove temporary folders of earlier ``tag`` writers into ``out`` whose process has ended."""
    n = 0
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        return 0
    head = f"{temp_prefix(out.name)}{tag}-"
    for tmp in parent.glob(folder_temporaries(out, tag)):
        try:
            pid = int(tmp.name[len(head):].split("-")[0])
        except ValueError:
            continue
        if pid != os.getpid() and not pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)
            n += 1
    return n


@contextlib.contextmanager
def atomic_folder(out: str | os.PathLike[str], tag: str,
                  check: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yield a private temporary folder beside ``out`` (``.NAME.<tag>-<pid>-<random>.tmp``); when the
    block ends without an exception put it in place of ``out`` as one step: a rename when ``out`` is
    new, an atomic exchange (Linux ``renameat2``) with the previous folder otherwise, which is then
    removed. ``check(out)`` runs before (and again just before the swap: nothing foreign appeared
    meanwhile); it raises to refuse ``out``. On any exception (or interrupt) ``out`` is left
    untouched and the temporary folder removed; the temporaries of dead earlier writers go first.
    """
    out = Path(out)
    if out.is_symlink():  # replace the folder the link points to, keep the link
        out = out.resolve()
    if check is not None:
        check(out)
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PfgraphError(f"{out}: cannot create output folder ({exc.strerror})") from None
    clean_stale_folders(out, tag)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f"{temp_prefix(out.name)}{tag}-{os.getpid()}-", suffix=".tmp",
                                    dir=parent))
    except OSError as exc:
        raise write_failure(exc, out) or PfgraphError(f"{out}: cannot write beside it ({exc.strerror})") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        yield tmp
        fsync_dir(tmp)
        if check is not None:
            check(out)
        if not out.exists():
            os.rename(tmp, out)
        elif exchange_paths(tmp, out):
            shutil.rmtree(tmp, ignore_errors=True)  # now the previous folder
        else:  # no atomic exchange here: move the old folder aside first (a short window)
            old = Path(tempfile.mkdtemp(prefix=f"{temp_prefix(out.name)}{tag}-{os.getpid()}-old-", suffix=".tmp",
                                        dir=parent))
            os.rename(out, old / "previous")
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        fsync_dir(parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
