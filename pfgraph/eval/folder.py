"""An evaluation folder changes as one unit, and says what it holds (``manifest.json``).

``pfgraph evaluate`` writes every output into a private temporary folder beside ``--out``
(``.<name>.evaluate-<pid>-<random>.tmp``, :func:`pfgraph.utils.atomic.atomic_folder`), writes ``manifest.json`` last (every file with its
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
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pfgraph import __version__
from pfgraph.errors import DataError, PfgraphError
from pfgraph.io.identity import describe, identity_mismatch
from pfgraph.utils.atomic import atomic_folder, check_creatable_dir, file_sha256, fsync_path, write_failure
from pfgraph.utils.ownership import foreign_entries, refuse_foreign, written_by_pfgraph

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "pfgraph.evaluation"
MANIFEST_VERSION = 1
#: Names ``pfgraph evaluate`` writes: an existing ``--out`` holding anything else is refused
#: (replacing the folder would lose it).
OUTPUT_PATTERNS = ("metrics.json", "predictions.root", "config.yaml", MANIFEST, "*.png")


def _listed(out: Path) -> set[str] | None:
    """The file names ``out``'s own manifest lists (with the manifest itself); None without a readable one."""
    try:
        doc = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("files"), dict):
        return None
    return {*doc["files"], MANIFEST}


def foreign_files(out: Path) -> list[str]:
    """Entries of an existing ``out`` that no evaluation wrote: those its manifest does not list, or
    (a folder without a manifest) those without pfgraph's marker (:mod:`pfgraph.utils.ownership`)."""
    listed = _listed(out)
    if listed is not None:
        return foreign_entries(out, lambda p: p.name in listed and p.is_file())
    return foreign_entries(out, lambda p: any(p.match(pat) for pat in OUTPUT_PATTERNS) and written_by_pfgraph(p))


def check_target(out: Path, force: bool = False) -> None:
    """Refuse an ``--out`` that is not a folder, or a folder holding files evaluate did not write
    (replacing the folder would lose them), unless ``force``."""
    check_creatable_dir(out)
    if out.is_dir():
        refuse_foreign(out, foreign_files(out), "evaluate", force,
                       "evaluate replaces the whole folder and would delete them")


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
def evaluation_folder(out: str | os.PathLike[str], manifest: dict[str, Any], force: bool = False) -> Iterator[Path]:
    """Yield a private temporary folder to write an evaluation into; on success write its
    manifest (with the entries of ``manifest`` as they are when the block ends) and put it in
    place of ``out`` as one step (:func:`pfgraph.utils.atomic.atomic_folder`). On any exception
    (or interrupt) ``out`` is left untouched and the temporary folder removed. ``force``: replace
    an ``out`` holding files evaluate did not write."""
    with atomic_folder(out, "evaluate", lambda o: check_target(o, force)) as tmp:
        try:
            yield tmp
        except (PfgraphError, OSError) as exc:  # name the user's folder, not the private temporary one
            raise _renamed(exc, tmp, Path(out)) from None
        write_manifest(tmp, manifest)


def _renamed(exc: BaseException, tmp: Path, out: Path) -> BaseException:
    """``exc`` with the temporary folder's path in its message replaced by ``out``'s."""
    if isinstance(exc, OSError) and not isinstance(exc, PfgraphError):
        failure = write_failure(exc, out / Path(exc.filename).name if exc.filename else out)
        return failure if failure is not None else exc
    text = str(exc)
    return type(exc)(text.replace(str(tmp), str(out))) if str(tmp) in text else exc


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
