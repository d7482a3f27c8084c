"""Bad input gives one clear line (file, event, field, what was expected), through the reader
and through ``pfgraph inspect``; schema versions: newer refused, older read via migrations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pfgraph import cli
from pfgraph.errors import DataError
from pfgraph.io import schema
from pfgraph.io.root import EventFiles, make_meta
from tests.io._files import event_types_and_data, synthetic_batch, write_events, write_tree


def inspect_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``pfgraph inspect``; assert exit 2 and exactly one error line; return it."""
    capsys.readouterr()
    status = cli.main(["inspect", *argv])
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pfgraph: error: "), err
    assert "Traceback" not in out + err
    return lines[0]


def reader_error(path: Path | str, read: list[str] | None = None) -> str:
    with pytest.raises(DataError) as info:
        files = EventFiles(path)
        if read:
            files.read(read)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_events(tmp_path_factory.mktemp("good") / "good.root", synthetic_batch(6, seed=1, empty=(2,)))


# ----------------------------------------------------------------------------- broken files


def test_corrupt_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "corrupt.root"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    for msg in (reader_error(path), inspect_error(capsys, str(path))):
        assert f"{path}: corrupt or unreadable ROOT file" in msg


def test_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.root"
    path.touch()
    assert f"{path}: corrupt or unreadable ROOT file" in inspect_error(capsys, str(path))


@pytest.mark.parametrize("fmt", ["ttree", "rntuple"])
def test_truncated_file(tmp_path: Path, good: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    src = write_events(tmp_path / f"src_{fmt}.root", synthetic_batch(6, seed=1), fmt=fmt)
    path = tmp_path / f"truncated_{fmt}.root"
    path.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    for msg in (reader_error(path, ["emcal", "pix_emcal"]), inspect_error(capsys, str(path))):
        assert f"{path}: corrupt or unreadable ROOT file (truncated: " in msg, msg


def test_missing_branch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    types, data = event_types_and_data(synthetic_batch(3, seed=2))
    del types["e_lost"], data["e_lost"]
    path = write_tree(tmp_path / "missing.root", types, data)
    for msg in (reader_error(path), inspect_error(capsys, str(path))):
        assert msg.endswith(f"{path}: branch 'e_lost' missing from tree 'events'"), msg


def test_missing_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_tree(tmp_path / "other.root", {"x": np.float32}, {"x": np.zeros(3, np.float32)}, tree="other")
    assert reader_error(path) == f"{path}: tree 'events' missing"
    assert "no pfgraph tree (expected one of events, predictions, jets), found other" in inspect_error(capsys, str(path))


def test_wrong_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    types, data = event_types_and_data(synthetic_batch(3, seed=3))
    types["hcal"] = np.dtype((np.float32, (28, 28)))
    data["hcal"] = np.zeros((3, 28, 28), np.float32)
    path = write_tree(tmp_path / "shape.root", types, data)
    for msg in (reader_error(path), inspect_error(capsys, str(path))):
        assert msg.endswith(f"{path}: branch 'hcal' is float32[28, 28], expected float[56][56]"), msg


def test_wrong_dtype(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    types, data = event_types_and_data(synthetic_batch(3, seed=4))
    types["emcal"] = np.dtype((np.float64, (56, 56)))
    data["emcal"] = data["emcal"].astype(np.float64)
    path = write_tree(tmp_path / "dtype.root", types, data)
    for msg in (reader_error(path), inspect_error(capsys, str(path))):
        assert msg.endswith(f"{path}: branch 'emcal' is float64[56, 56], expected float[56][56]"), msg


def test_wrong_type_in_rntuple(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    types, data = event_types_and_data(synthetic_batch(3, seed=5))
    types["n_charged"] = np.dtype(np.float32)
    data["n_charged"] = data["n_charged"].astype(np.float32)
    path = write_tree(tmp_path / "nt.root", types, data, fmt="rntuple")
    for msg in (reader_error(path), inspect_error(capsys, str(path))):
        assert msg.endswith(f"{path}: field 'n_charged' of RNTuple 'events' is float, expected std::int32_t"), msg


@pytest.mark.parametrize("fmt", ["ttree", "rntuple"])
@pytest.mark.parametrize(("branch", "bad"), [("hcal", np.nan), ("pix_truth", np.inf), ("e_lost", -np.inf)])
def test_nan_or_inf(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, branch: str, bad: float) -> None:
    batch = synthetic_batch(6, seed=6)
    if branch == "pix_truth":  # a point-cloud value: poison a truth pixel that has an input
        ieta, iphi = np.argwhere(batch["emcal"][4] != 0)[0]
        batch["truth"][4, ieta, iphi] = bad
    elif branch == "hcal":
        batch["hcal"][4, 10, 20] = bad
    else:
        batch[branch][4] = bad
    path = write_events(tmp_path / f"bad_{fmt}.root", batch, fmt=fmt, chunk=3)
    expected = f"{path}: event 4, branch '{branch}': NaN or Inf value, expected finite numbers"
    assert reader_error(path, [branch]) == expected
    first = "truth" if branch == "pix_truth" else branch  # inspect reads in file order: the dense image first
    assert inspect_error(capsys, str(path)).endswith(expected.replace(f"'{branch}'", f"'{first}'"))


def test_no_meta(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import uproot

    path = tmp_path / "plain.root"
    with uproot.recreate(path) as f:
        f["events"] = {"x": np.zeros(3)}
    for msg in (reader_error(path), inspect_error(capsys, str(path))):
        assert msg.endswith(f"{path}: field 'pfgraph_meta' missing: not a pfgraph file"), msg


def test_glob_without_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pattern = str(tmp_path / "nothing*.root")
    assert reader_error(pattern) == f"{pattern}: no files match this pattern"
    assert inspect_error(capsys, pattern).endswith(f"{pattern}: no files match this pattern")
    assert inspect_error(capsys, str(tmp_path / "nope.root")).endswith(f"{tmp_path / 'nope.root'}: no such file")


def test_inspect_bad_arguments(good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert inspect_error(capsys, str(good), "--event", "6").endswith(
        f"{good}: --event 6 out of range: tree 'events' has 6 entries")
    assert "--event -1: expected an entry number >= 0" in inspect_error(capsys, str(good), "--event", "-1")
    assert "--max-events 0" in inspect_error(capsys, str(good), "--max-events", "0")
    blocker = tmp_path / "file"
    blocker.write_text("")
    msg = inspect_error(capsys, str(good), "--display", str(blocker / "d.png"))
    assert str(blocker) in msg
    assert not list(tmp_path.glob("**/*.png"))
    write_events(tmp_path / "a.root", synthetic_batch(1))
    write_events(tmp_path / "b.root", synthetic_batch(1))
    assert "matches 2 files; inspect one file at a time" in inspect_error(capsys, str(tmp_path / "*.root"))


# --------------------------------------------------------------------------- schema versions


def _with_version(path: Path, version: object, batch: dict | None = None) -> Path:
    meta = make_meta("events", {"name": "synthetic"})
    meta["schema_version"] = version
    return write_events(path, batch or synthetic_batch(3, seed=7), meta=meta)


def test_future_schema_version_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _with_version(tmp_path / "future.root", schema.SCHEMA_VERSION + 1)
    expected = (f"{path}: schema version {schema.SCHEMA_VERSION + 1} is newer than this pfgraph supports "
                f"({schema.SCHEMA_VERSION}); upgrade pfgraph")
    assert reader_error(path) == expected
    assert inspect_error(capsys, str(path)).endswith(expected)


@pytest.mark.parametrize("version", [0, -3, "1", True, None])
def test_invalid_schema_versions_refused(tmp_path: Path, version: object) -> None:
    path = _with_version(tmp_path / "v.root", version)
    msg = reader_error(path)
    if isinstance(version, int) and not isinstance(version, bool):
        assert msg == (f"{path}: schema version {version} is older than the oldest this pfgraph reads "
                       f"({schema.MIN_SCHEMA_VERSION}); re-create the file with this pfgraph")
    else:
        assert msg == f"{path}: field 'pfgraph_meta' has no integer schema_version"


def test_older_schema_version_read_through_migration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Pretend this pfgraph is at version 2, which renamed e_lost -> e_out and added n_noise."""
    batch = synthetic_batch(5, seed=8)
    path = _with_version(tmp_path / "v1.root", 1, batch)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(schema, "MIGRATIONS", (schema.Migration(2, "e_lost renamed e_out; n_noise added",
                                                                renamed=(("e_out", "e_lost"),),
                                                                added=(("n_noise", 0.0),)),))
    files = EventFiles(path)
    assert files.migrations[0].version == 1 and files.migrations[0].file_name("e_out") == "e_lost"
    read = files.read(["e_out", "n_noise", "emcal"])
    np.testing.assert_array_equal(read["e_out"], batch["e_lost"])
    np.testing.assert_array_equal(read["n_noise"], np.zeros(5, np.float32))
    np.testing.assert_array_equal(read["emcal"], batch["emcal"])
    assert cli.main(["inspect", str(path)]) == 0
    assert "migrated from schema version 1" in capsys.readouterr().out

    monkeypatch.setattr(schema, "MIGRATIONS", ())  # a version step nobody wrote a migration for
    assert reader_error(path) == (f"{path}: schema version 1 has no migration to version 2 in this pfgraph; "
                                  "re-create the file with this pfgraph")


def test_migration_chain_composes(monkeypatch: pytest.MonkeyPatch) -> None:
    from pfgraph.io.root import migration_for

    monkeypatch.setattr(schema, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(schema, "MIGRATIONS", (
        schema.Migration(2, "a -> b", renamed=(("b", "a"),)),
        schema.Migration(3, "b -> c; x added", renamed=(("c", "b"),), added=(("x", 1.5),)),
    ))
    m1, m2, m3 = migration_for(1), migration_for(2), migration_for(3)
    assert (m1.file_name("c"), m2.file_name("c"), m3.file_name("c")) == ("a", "b", "c")
    assert m1.added_value("x") == 1.5 and m3.added_value("x") is None and m1.added_value("c") is None
    assert m1.file_name("emcal") == "emcal"
