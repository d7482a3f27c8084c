"""Writer -> reader round trips (TTree and RNTuple), the plain-uproot layout, point clouds,
sharded reads and reproducible bytes."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from pfgraph import geometry
from pfgraph.errors import PfgraphError
from pfgraph.io import schema
from pfgraph.io.root import EventFiles, RootWriter, check_format, make_meta, point_cloud
from tests.io._files import rebuild_images, synthetic_batch, write_events

ALL_EVENT = [b.name for b in schema.EVENT_BRANCHES if not b.optional]
ORACLE_EVENT = [schema.ORACLE_IMAGE, f"{schema.POINT_PREFIX}_{schema.ORACLE_IMAGE}"]
JET_EVENT = [b.name for b in schema.EVENT_BRANCHES if b.name not in ORACLE_EVENT and b not in schema.SPARSE_TRUTH_BRANCHES]
FORMATS = ("ttree", "rntuple")


def _assert_same(read: dict, batch: dict, names: list[str]) -> None:
    npix, fields = point_cloud(batch)
    for name in names:
        got = read[name]
        if name == schema.POINT_COUNTER:
            want = npix
        elif name.startswith("pix_"):
            assert isinstance(got, ak.Array), name
            assert ak.to_list(ak.num(got, axis=1)) == npix.tolist(), name
            got = ak.to_numpy(ak.flatten(got))
            want = fields[name[4:]]
        else:
            want = batch[name]
        assert isinstance(got, np.ndarray), name
        assert got.dtype == np.asarray(want).dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("fmt", FORMATS)
def test_roundtrip_identical_with_empty_point_clouds(tmp_path: Path, fmt: str) -> None:
    batch = synthetic_batch(11, seed=1, empty=(0, 4, 10))
    path = write_events(tmp_path / "ev.root", batch, fmt=fmt, chunk=4)
    files = EventFiles(path)
    assert files.num_events == 11 and files.formats == [fmt] and not files.has_jet
    read = files.read(ALL_EVENT)
    _assert_same(read, batch, ALL_EVENT)
    assert read["npix"][[0, 4, 10]].tolist() == [0, 0, 0]
    assert (read["npix"][[1, 2, 3]] > 0).all()
    # streaming in odd steps gives the same as one read
    chunks = list(files.iterate(["emcal", "pix_hcal"], step=3, start=2, stop=10))
    assert [c["_entry_start"] for c in chunks] == [2, 5, 8]
    np.testing.assert_array_equal(np.concatenate([c["emcal"] for c in chunks]), batch["emcal"][2:10])
    assert ak.to_list(ak.concatenate([c["pix_hcal"] for c in chunks])) == ak.to_list(read["pix_hcal"][2:10])


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_event_file(tmp_path: Path, fmt: str) -> None:
    for empty in ((), (0,)):
        batch = synthetic_batch(1, seed=2, empty=empty)
        path = write_events(tmp_path / f"one{len(empty)}.root", batch, fmt=fmt)
        files = EventFiles(path)
        assert files.num_events == 1
        _assert_same(files.read(ALL_EVENT), batch, ALL_EVENT)


@pytest.mark.parametrize("fmt", FORMATS)
def test_jet_branches_roundtrip(tmp_path: Path, fmt: str) -> None:
    batch = synthetic_batch(5, seed=3, with_jet=True)
    files = EventFiles(write_events(tmp_path / "jet.root", batch, fmt=fmt))
    assert files.has_jet
    _assert_same(files.read(JET_EVENT), batch, JET_EVENT)


@pytest.mark.parametrize("fmt", FORMATS)
def test_oracle_branches_roundtrip(tmp_path: Path, fmt: str) -> None:
    batch = synthetic_batch(6, seed=5, empty=(2,))
    batch[schema.ORACLE_IMAGE] = batch["truth"] * np.float32(1.03)
    files = EventFiles(write_events(tmp_path / "oracle.root", batch, fmt=fmt))
    assert files.has_oracle and not files.has_jet
    read = files.read([*ALL_EVENT, *ORACLE_EVENT])
    _assert_same(read, batch, ALL_EVENT)
    np.testing.assert_array_equal(read[schema.ORACLE_IMAGE], batch[schema.ORACLE_IMAGE])
    _, fields = point_cloud(batch, with_oracle=True)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(read["pix_oracle"])), fields[schema.ORACLE_IMAGE])
    plain = EventFiles(write_events(tmp_path / "plain.root", {k: v for k, v in batch.items()
                                                              if k != schema.ORACLE_IMAGE}, fmt=fmt))
    assert not plain.has_oracle  # written only when asked: the file without it has no oracle branch


@pytest.mark.parametrize("fmt", FORMATS)
def test_dense_images_rebuilt_from_point_cloud(tmp_path: Path, fmt: str) -> None:
    batch = synthetic_batch(9, seed=4, empty=(3,))
    read = EventFiles(write_events(tmp_path / "ev.root", batch, fmt=fmt)).read(ALL_EVENT)
    counts = read["npix"]
    ieta = ak.to_numpy(ak.flatten(read["pix_ieta"])).astype(np.int64)
    iphi = ak.to_numpy(ak.flatten(read["pix_iphi"])).astype(np.int64)
    values = {c: ak.to_numpy(ak.flatten(read[f"pix_{c}"])) for c in schema.IMAGE_CHANNELS}
    rebuilt = rebuild_images(counts, ieta, iphi, values)
    for c in schema.INPUT_CHANNELS:  # every input pixel is a point: exact equality everywhere
        np.testing.assert_array_equal(rebuilt[c], read[c], err_msg=c)
    has_input = np.zeros_like(read["emcal"], dtype=bool)
    for c in schema.INPUT_CHANNELS:
        has_input |= read[c] != 0
    for c in schema.TARGET_CHANNELS:  # targets: exact where an input exists, zero elsewhere
        np.testing.assert_array_equal(rebuilt[c], np.where(has_input, read[c], 0), err_msg=c)
    assert (read["truth"][3] > 0).any() and counts[3] == 0  # out-of-reach truth stays in the dense image
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(read["pix_eta"])), geometry.ETA_CENTRES[ieta].astype(np.float32))
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(read["pix_phi"])), geometry.PHI_CENTRES[iphi].astype(np.float32))


def test_simulated_file_point_cloud_matches_dense(events_file: Path) -> None:
    read = EventFiles(events_file).read(ALL_EVENT)
    ieta = ak.to_numpy(ak.flatten(read["pix_ieta"])).astype(np.int64)
    iphi = ak.to_numpy(ak.flatten(read["pix_iphi"])).astype(np.int64)
    values = {c: ak.to_numpy(ak.flatten(read[f"pix_{c}"])) for c in schema.IMAGE_CHANNELS}
    rebuilt = rebuild_images(read["npix"], ieta, iphi, values)
    for c in schema.INPUT_CHANNELS:
        np.testing.assert_array_equal(rebuilt[c], read[c], err_msg=c)
    mask = rebuilt["emcal"] != 0
    for c in schema.INPUT_CHANNELS[1:]:
        mask |= rebuilt[c] != 0
    assert int(mask.sum()) == int(read["npix"].sum())  # a point is exactly a pixel with some input
    np.testing.assert_array_equal(rebuilt["truth"][mask], read["truth"][mask])


def test_plain_uproot_layout(events_file: Path) -> None:
    f = uproot.open(events_file)
    assert f.classnames()["events;1"] == "TTree" and f.classnames()["pfgraph_meta;1"] == "TObjString"
    tree = f["events"]
    for ch in schema.IMAGE_CHANNELS:
        assert tree[ch].typename == "float[56][56]", ch
        assert tree[ch].array(entry_stop=2, library="np").shape == (2, 56, 56)
    assert tree["npix"].typename == "int32_t"
    for name in schema.POINT_BRANCHES:
        assert isinstance(tree[name].interpretation, uproot.AsJagged), name
        assert tree[name].count_branch.name == "npix", name
    assert tree["pix_ieta"].typename == "int16_t[]" and tree["pix_eta"].typename == "float[]"
    assert tree["event_id"].typename == "int64_t"
    meta = json.loads(str(f["pfgraph_meta"]))
    assert meta["schema_version"] == schema.SCHEMA_VERSION and meta["kind"] == "events"
    assert meta["config"]["name"] and isinstance(meta["seed"], int)


def test_plain_uproot_reads_rntuple_fields(tmp_path: Path) -> None:
    path = write_events(tmp_path / "nt.root", synthetic_batch(3, seed=5, empty=(1,)), fmt="rntuple")
    f = uproot.open(path)
    assert f.classnames()["events;1"] == "ROOT::RNTuple"
    tree = f["events"]
    assert tree["emcal"].typename == "std::array<std::array<float,56>,56>"
    assert tree["npix"].typename == "std::int32_t" and tree["pix_ieta"].typename == "std::vector<std::int16_t>"
    arrays = tree.arrays(["npix", "pix_emcal"])
    assert ak.to_list(ak.num(arrays.pix_emcal)) == arrays.npix.tolist()
    assert json.loads(str(f["pfgraph_meta"]))["schema_version"] == schema.SCHEMA_VERSION


def test_sharded_dataset_reads_as_one(tmp_path: Path) -> None:
    batch = synthetic_batch(10, seed=6, empty=(7,))
    whole = EventFiles(write_events(tmp_path / "all.root", batch))
    for k, (a, b) in enumerate(((0, 4), (4, 7), (7, 10))):
        write_events(tmp_path / f"ds.shard{k:03d}.root", {n: v[a:b] for n, v in batch.items()},
                     fmt=FORMATS[k % 2])  # a dataset may even mix TTree and RNTuple shards
    sharded = EventFiles(str(tmp_path / "ds.shard*.root"))
    assert sharded.entries == [4, 3, 3] and sharded.offsets.tolist() == [0, 4, 7, 10]
    assert sharded.formats == ["ttree", "rntuple", "ttree"]
    one, many = whole.read(ALL_EVENT), sharded.read(ALL_EVENT)
    for name in ALL_EVENT:
        if isinstance(one[name], ak.Array):
            assert ak.to_list(one[name]) == ak.to_list(many[name]), name
        else:
            np.testing.assert_array_equal(one[name], many[name], err_msg=name)
    window = sharded.read(["event_id", "pix_truth"], start=3, stop=8)
    assert window["event_id"].tolist() == [3, 4, 5, 6, 7]
    assert ak.to_list(window["pix_truth"]) == ak.to_list(one["pix_truth"][3:8])


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_content_same_bytes(tmp_path: Path, fmt: str) -> None:
    batch = synthetic_batch(4, seed=7)
    path = tmp_path / "rep.root"
    first = write_events(path, batch, fmt=fmt).read_bytes()
    second = write_events(path, batch, fmt=fmt).read_bytes()
    assert first == second
    assert write_events(path, synthetic_batch(4, seed=8), fmt=fmt).read_bytes() != first


def test_rntuple_and_ttree_hold_the_same_values(tmp_path: Path) -> None:
    batch = synthetic_batch(6, seed=9, empty=(2,))
    a = EventFiles(write_events(tmp_path / "t.root", batch, fmt="ttree")).read(ALL_EVENT)
    b = EventFiles(write_events(tmp_path / "n.root", batch, fmt="rntuple")).read(ALL_EVENT)
    for name in ALL_EVENT:
        if isinstance(a[name], ak.Array):
            assert ak.to_list(a[name]) == ak.to_list(b[name]), name
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_rootwriter_rntuple_splits_any_jagged_record(tmp_path: Path) -> None:
    from pfgraph.io.root import jagged_record

    rec = ak.types.from_datashape("var * {pt: float32, n: int32}", highlevel=False)
    counts = np.array([2, 0, 1], dtype=np.int32)
    data = jagged_record(counts, {"pt": np.array([1, 2, 3], np.float32), "n": np.array([4, 5, 6], np.int32)})
    with RootWriter(tmp_path / "j.root", make_meta("predictions"), format="rntuple") as w:
        w.tree("jets", {"event_id": np.int64, "jet": rec})
        w.extend("jets", {"event_id": np.arange(3), "jet": data})
    t = uproot.open(tmp_path / "j.root")["jets"]
    assert sorted(t.keys()) == ["event_id", "jet_n", "jet_pt", "njet"]
    arr = t.arrays()
    assert arr.njet.tolist() == [2, 0, 1] and ak.to_list(arr.jet_pt) == [[1, 2], [], [3]]
    assert ak.to_list(arr.jet_n) == [[4, 5], [], [6]]


def test_check_format() -> None:
    assert check_format("TTree") == "ttree" and check_format("rntuple") == "rntuple"
    with pytest.raises(PfgraphError, match="unknown output format 'hdf5': use one of ttree, rntuple"):
        check_format("hdf5")


def test_interrupted_write_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "partial.root"
    batch = synthetic_batch(4, seed=10)
    with pytest.raises(RuntimeError), RootWriter(path, make_meta("events"), format="rntuple") as w:
        w.tree("events", {"event_id": np.int64})
        w.extend("events", {"event_id": batch["event_id"]})
        raise RuntimeError("interrupted")
    assert not path.exists() and list(tmp_path.iterdir()) == []
