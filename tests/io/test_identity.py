"""Dataset identity (pfgraph.io.identity): what the data is, independent of where it lies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pfgraph.io.identity import (
    config_hash,
    data_fingerprint,
    dataset_identity,
    describe,
    identity_mismatch,
    same_dataset,
)
from pfgraph.io.root import EventFiles
from tests.io._files import synthetic_batch, write_events


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    d = tmp_path_factory.mktemp("ident")
    a = write_events(d / "a.root", synthetic_batch(6, seed=1))
    b = write_events(d / "b.root", synthetic_batch(9, seed=2, first_id=6))
    copy = d / "moved" / "a.root"
    copy.parent.mkdir()
    shutil.copy(a, copy)
    return a, b, copy


def test_the_identity_does_not_depend_on_where_the_file_lies(files: tuple[Path, Path, Path]) -> None:
    a, b, copy = files
    ia, icopy = dataset_identity(EventFiles(a)), dataset_identity(EventFiles(copy))
    assert ia["fingerprint"] == icopy["fingerprint"] and identity_mismatch(ia, icopy) is None
    assert ia["files"][0]["path"] != icopy["files"][0]["path"]  # recorded for people, not compared
    assert data_fingerprint(EventFiles(a)) == ia["fingerprint"] and len(ia["fingerprint"]) == 16
    assert ia["events"] == 6 and same_dataset([ia, icopy])


def test_different_data_give_a_reason(files: tuple[Path, Path, Path]) -> None:
    a, b, _ = files
    ia, iab = dataset_identity(EventFiles(a)), dataset_identity(EventFiles([a, b]))
    assert iab["events"] == 15 and len(iab["files"]) == 2
    reason = identity_mismatch(ia, iab)
    assert reason is not None and reason.startswith("number of events 6 != 15")
    assert not same_dataset([ia, iab]) and not same_dataset([ia, None]) and not same_dataset([])
    assert identity_mismatch({"fingerprint": "x", "files": [{}]}, {"fingerprint": "y", "files": [{}, {}]}) \
        == "1 file(s) != 2"


def test_config_hash_ignores_the_excluded_keys_and_key_order() -> None:
    assert config_hash({"a": 1, "seed": 2}, ("seed",)) == config_hash({"a": 1, "seed": 3}, ("seed",))
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1}) != config_hash({"a": 1, "b": 3})
    assert config_hash(None) is None


def test_describe_names_the_data_in_one_phrase() -> None:
    assert describe(None) == "unknown data (no identity recorded)"
    ident = {"name": "gauss", "seed": 2, "events": 10, "files": [{"path": f"/x/{i}.root"} for i in range(4)]}
    assert describe(ident) == "gauss (0.root, 1.root, 2.root, ...; seed 2, 10 events)"
