"""An evaluation folder changes as one unit, and says what it holds (``manifest.json``).

``pfgraph evaluate`` writes every output into a private temporary folder beside ``--out``
(``.<name>.evaluate-<pid>-<random>.tmp``), writes ``manifest.json`` last (every file with its
size and SHA-256, the model and the identity of the data, :mod:`pfgraph.io.identity`), and
only then puts the folder in place: a rename when ``--out`` is new, an atomic exchange
(Linux ``renameat2(RENAME_EXCHANGE)``) with the previous evaluation otherwise. A killed
evaluation therefore leaves the previous folder exactly as it was; its temporary folder is
removed by the next evaluation into the same ``--out`` once its process is gone.

Readers (``pfgraph report``) call :func:`verify_folder`: a folder without a manifest (an
older pfgraph, or files put together by hand) or with a file that differs from its manifest
entry (a predictions file copied in from another evaluation) is refused with one line.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pfgraph import __version__
from pfgraph.errors import DataError, PfgraphError
from pfgraph.io.identity import describe, identity_mismatch
from pfgraph.utils.atomic import check_creatable_dir, file_sha256, fsync_path, write_failure

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "pfgraph.evaluation"
MANIFEST_VERSION = 1
#: Names ``pfgraph evaluate`` writes: an existing ``--out`` holding anything else is refused
#: (replacing the folder would lose it).
OUTPUT_PATTERNS = ("metrics.json", "predictions.root", "config.yaml", MANIFEST, "*.png")


def _is_output(name: str) -> bool:
    return any(Path(name).match(p) for p in OUTPUT_PATTERNS)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temporaries(out: Path) -> int:
    """Remove temporary folders of earlier evaluations into ``out`` whose process has ended."""
    n = 0
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        return 0
    for tmp in parent.glob(f".{out.name}.evaluate-*.tmp"):
        try:
            pid = int(tmp.name[len(f".{out.name}.evaluate-"):].split("-")[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)
            n += 1
    return n


def check_target(out: Path) -> None:
    """Refuse an ``--out`` that is not a folder, or a folder holding files evaluate does not write."""
    check_creatable_dir(out)
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if not _is_output(p.name))
        if foreign:
            raise PfgraphError(f"{out}: holds files that are not evaluation outputs ({', '.join(foreign[:3])}"
                               f"{', ...' if len(foreign) > 3 else ''}); evaluate replaces the whole folder: "
                               "choose a new --out or an earlier evaluation folder")


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    return False


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_manifest(folder: Path, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``folder/manifest.json`` listing every file of ``folder`` (size, SHA-256) plus ``extra``."""
    files = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.name != MANIFEST:
            fsync_path(p)
            files[p.name] = {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
    doc = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "pfgraph_version": __version__,
           "files": files, **dict(extra)}
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    fsync_path(tmp)
    os.replace(tmp, folder / MANIFEST)
    return doc


@contextlib.contextmanager
def evaluation_folder(out: str | os.PathLike[str], manifest: dict[str, Any]) -> Iterator[Path]:
    """Yield a private temporary folder to write an evaluation into; on success write its
    manifest (with the entries of ``manifest`` as they are when the block ends) and put it in
    place of ``out`` as one step. On any exception (or interrupt) ``out`` is left untouched and
    the temporary folder removed."""
    out = Path(out)
    if out.is_symlink():  # replace the folder the link points to, keep the link
        out = out.resolve()
    check_target(out)
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PfgraphError(f"{out}: cannot create output folder ({exc.strerror})") from None
    clean_stale_temporaries(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.evaluate-{os.getpid()}-", suffix=".tmp", dir=parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        try:
            yield tmp
        except (PfgraphError, OSError) as exc:  # name the user's folder, not the private temporary one
            raise _renamed(exc, tmp, out) from None
        write_manifest(tmp, manifest)
        _fsync_dir(tmp)
        check_target(out)  # nothing foreign appeared meanwhile
        if not out.exists():
            os.rename(tmp, out)
        elif _exchange(tmp, out):
            shutil.rmtree(tmp, ignore_errors=True)  # now the previous evaluation
        else:  # no atomic exchange here: move the old folder aside first (a short window)
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.evaluate-{os.getpid()}-old-", suffix=".tmp", dir=parent))
            os.rename(out, old / "previous")
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _renamed(exc: BaseException, tmp: Path, out: Path) -> BaseException:
    """``exc`` with the temporary folder's path in its message replaced by ``out``'s."""
    if isinstance(exc, OSError) and not isinstance(exc, PfgraphError):
        failure = write_failure(exc, out / Path(exc.filename).name if exc.filename else out)
        return failure if failure is not None else exc
    text = str(exc)
    return type(exc)(text.replace(str(tmp), str(out))) if str(tmp) in text else exc


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of an evaluation folder; one DataError line if missing or unreadable."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.exists():
        raise DataError(f"{folder}: no {MANIFEST}: an interrupted evaluation, files put together by hand, or a "
                        "folder from an older pfgraph; re-run 'pfgraph evaluate' into it")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({type(exc).__name__}); re-run 'pfgraph evaluate'") from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("files"), dict):
        raise DataError(f"{path}: not a pfgraph evaluation manifest")
    if int(doc.get("version", 0)) > MANIFEST_VERSION:
        raise DataError(f"{path}: manifest version {doc.get('version')} is newer than this pfgraph reads")
    return doc


#: Files of an evaluation a study folder kept in version control leaves out (``.gitignore``): the
#: per-event predictions and the plots. A report reads such a folder from its metrics alone when asked
#: to (``local_only_may_miss``).
LOCAL_ONLY = ("predictions.root", "*.png")


def is_local_only(name: str) -> bool:
    """True for a file name of :data:`LOCAL_ONLY`."""
    import fnmatch

    return any(fnmatch.fnmatch(name, pattern) for pattern in LOCAL_ONLY)


def verify_folder(folder: str | os.PathLike[str], content: bool = True,
                  local_only_may_miss: bool = False) -> dict[str, Any]:
    """Check that every file of an evaluation folder is the one its manifest lists (size and,
    with ``content``, SHA-256); returns the manifest. One DataError line otherwise. With
    ``local_only_may_miss``, files of :data:`LOCAL_ONLY` may be absent (a study folder restored
    from version control); the files present are still checked."""
    folder = Path(folder)
    doc = read_manifest(folder)
    for name, rec in doc["files"].items():
        p = folder / name
        if not p.is_file() and local_only_may_miss and is_local_only(name):
            continue
        if not p.is_file():
            raise DataError(f"{folder}: {name} is missing (listed in {MANIFEST}); re-run 'pfgraph evaluate'")
        if p.stat().st_size != rec.get("bytes") or (content and file_sha256(p) != rec.get("sha256")):
            raise DataError(f"{folder}: {name} is not the file this evaluation wrote ({MANIFEST} differs): the folder "
                            "mixes evaluations; re-run 'pfgraph evaluate' into it")
    for required in ("metrics.json", "predictions.root"):
        if required not in doc["files"]:
            raise DataError(f"{folder}: {MANIFEST} lists no {required}")
    return doc


def check_evaluations(folders: Sequence[str | os.PathLike[str]],
                      local_only_may_miss: bool = False) -> list[dict[str, Any]]:
    """Verify evaluation folders for a report: complete and unmixed, and all of one dataset.

    Returns their manifests. Evaluations of different datasets are refused with one line
    naming each evaluation's dataset. ``local_only_may_miss``: see :func:`verify_folder`.
    """
    docs = [verify_folder(f, local_only_may_miss=local_only_may_miss) for f in folders]
    first = docs[0].get("data_identity") or {}
    for doc in docs[1:]:
        ident = doc.get("data_identity") or {}
        reason = identity_mismatch(first, ident)
        if reason is not None:
            names = "; ".join(f"{f}: {describe(d.get('data_identity'))}" for f, d in zip(folders, docs))
            raise DataError(f"report: the evaluations are of different datasets ({reason}): {names}; "
                            "report each dataset separately")
    return docs
