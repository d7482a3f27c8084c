"""The sparse-first layout (output.dense_images; schema version 3): files without image branches whose
point cloud and sparse truth are the data, and every reader rebuilding the images from them bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import uproot

from pfgraph.errors import DataError
from pfgraph.io import schema
from pfgraph.io.datasets import ImageDataset, read_images
from pfgraph.io.root import EventFiles
from pfgraph.repr.base import Normalisation
from pfgraph.repr.graph import load_points
from tests.conftest import make_events
from tests.io._files import synthetic_batch, write_events

IMAGES = (*schema.IMAGE_CHANNELS, schema.ORACLE_IMAGE)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 24 events at 112 x 112 with spreading and cell thresholds, written densely and sparse-first."""
    d = tmp_path_factory.mktemp("layouts")
    common = ("seed=4", "output.oracle=true", "output.chunk=10", "particles.multiplicity=400")
    return {"dense": make_events(d / "dense.root", 24, "gauss_b050_g112", *common, "output.dense_images=always"),
            "sparse": make_events(d / "sparse.root", 24, "gauss_b050_g112", *common, "output.dense_images=never"),
            "auto": make_events(d / "auto.root", 4, "gauss_b050_g112", *common)}


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def test_sparse_file_holds_no_images_and_says_so(both: dict[str, Path]) -> None:
    sparse, dense = uproot.open(both["sparse"]), uproot.open(both["dense"])
    keys = set(sparse["events"].keys())
    assert not keys & set(IMAGES)
    assert {"ntpix", "tpix_ieta", "tpix_iphi", "tpix_truth", "tpix_truth_neutral", "tpix_oracle"} <= keys
    meta = json.loads(str(sparse["pfgraph_meta"]))
    assert meta["layout"] == "sparse" and meta["schema_version"] == schema.SCHEMA_VERSION == 3
    assert "layout" not in json.loads(str(dense["pfgraph_meta"]))
    assert EventFiles(both["sparse"]).layout == "sparse" and EventFiles(both["dense"]).layout == "dense"
    assert EventFiles(both["auto"]).layout == "sparse"  # auto: sparse-first above the paper's grid
    # every branch both layouts hold is the same, bit for bit
    for name in keys - {"ntpix", "tpix_ieta", "tpix_iphi", *(f"tpix_{c}" for c in schema.TRUTH_SIDE_IMAGES)}:
        a, b = sparse["events"][name].array(library="np"), dense["events"][name].array(library="np")
        assert _bits(np.concatenate(a) if a.dtype == object else a) == _bits(np.concatenate(b) if b.dtype == object
                                                                                else b), name


def test_paper_grid_stays_dense_by_default(tmp_path: Path) -> None:
    f = EventFiles(make_events(tmp_path / "p.root", 3))
    assert f.layout == "dense" and "emcal" in uproot.open(f.paths[0])["events"].keys()


def test_images_read_from_a_sparse_file_equal_the_dense_branches(both: dict[str, Path]) -> None:
    """EventFiles.read (any range), read_images (a subset, scaled) and the image dataset rebuild exactly
    the dense file's images from the sparse one."""
    dense, sparse = EventFiles(both["dense"]), EventFiles(both["sparse"])
    for lo, hi in ((0, 24), (7, 19)):
        a, b = dense.read(list(IMAGES), lo, hi), sparse.read(list(IMAGES), lo, hi)
        for name in IMAGES:
            assert b[name].shape == (hi - lo, 112, 112) and b[name].dtype == np.float32
            assert _bits(a[name]) == _bits(b[name]), name
            assert (a[name] != 0).any(), name
    names = [*schema.INPUT_CHANNELS, "truth_neutral"]
    idx = np.array([0, 1, 5, 6, 11, 12, 13, 22])
    scales = [3.0, 7.0, 2.5, 2.25, 11.0]
    out = [np.full((len(idx), 5, 112, 112), np.nan, np.float32) for _ in range(2)]
    read_images(dense, names, idx, scales, out[0])
    read_images(sparse, names, idx, scales, out[1])
    assert _bits(out[0]) == _bits(out[1])
    strided = np.full((len(idx), 5, 112, 224), np.nan, np.float32)[..., ::2]  # a caller's non-contiguous array
    read_images(sparse, names, idx, scales, strided)
    assert _bits(out[0]) == _bits(strided)
    ds = [ImageDataset(f, np.arange(24), [2.0, 3.0, 4.0, 5.0], 9.0) for f in (dense, sparse)]
    items = [d.__getitems__(list(range(24)))[0] for d in ds]
    assert _bits(items[0].x.numpy()) == _bits(items[1].x.numpy()) and _bits(items[0].y.numpy()) == _bits(items[1].y.numpy())


def test_point_clouds_from_both_layouts_are_identical(both: dict[str, Path]) -> None:
    """The graph representation reads the target pixels without a point from the sparse truth: the same
    stores as from the dense target image."""
    norm = Normalisation([2.0, 3.0, 4.0, 5.0], 9.0)
    stores = [load_points(EventFiles(both[k]), np.array([0, 2, 3, 9, 10, 23]), norm, step=7) for k in ("dense", "sparse")]
    assert stores[0].miss_val.size > 0
    for field in ("entries", "offsets", "energy", "pix", "target", "miss_offsets", "miss_pix", "miss_val", "nbr",
                  "event_id"):
        assert _bits(getattr(stores[0], field)) == _bits(getattr(stores[1], field)), field


@pytest.mark.parametrize("fmt", ["ttree", "rntuple"])
def test_jet_samples_and_empty_events_in_both_layouts(tmp_path: Path, fmt: str) -> None:
    """Jet images (the anti-kt evaluation's) and events without any point or truth cell come back exactly."""
    batch = synthetic_batch(9, seed=3, with_jet=True, empty=(0, 4))
    batch["truth"][4] = 0.0
    batch["truth_neutral"][4] = 0.0
    batch["jet"][4] = 0.0
    files = [EventFiles(write_events(tmp_path / f"{k}.root", batch, fmt=fmt, dense=k == "dense")) for k in ("dense", "sparse")]
    assert [f.layout for f in files] == ["dense", "sparse"] and all(f.has_jet for f in files)
    names = [*schema.IMAGE_CHANNELS, schema.JET_IMAGE]
    a, b = (f.read(names) for f in files)
    for name in names:
        assert _bits(a[name]) == _bits(b[name]) and _bits(b[name]) == _bits(batch[name].astype(np.float32)), name
    assert int(files[1].read(["ntpix"])["ntpix"][4]) == 0


def test_one_data_set_one_layout(both: dict[str, Path]) -> None:
    with pytest.raises(DataError, match="sparse layout, but .*dense.root is dense .one data set, one layout"):
        EventFiles([both["dense"], both["sparse"]])


def test_required_branches_per_layout() -> None:
    dense, sparse = schema.required_event_branches("dense"), schema.required_event_branches("sparse")
    assert "truth" in dense and "truth" not in sparse and "emcal" not in sparse
    assert {"ntpix", "tpix_ieta", "tpix_iphi", "tpix_truth", "tpix_truth_neutral"} <= set(sparse)
    assert schema.sparse_source("emcal") == ("npix", "pix_ieta", "pix_iphi", "pix_emcal")
    assert schema.sparse_source("oracle") == ("ntpix", "tpix_ieta", "tpix_iphi", "tpix_oracle")
    assert schema.sparse_source("e_total") is None


def test_inspect_reads_both_layouts_and_says_which(both: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """pfgraph inspect: the layout in the schema check line, and the event print and display of a
    sparse-first file show the same images as the dense file's."""
    from pfgraph.cli import main

    outs = {}
    for k in ("dense", "sparse"):
        assert main(["inspect", str(both[k]), "--event", "3", "--display", str(tmp_path / f"{k}.png")]) == 0
        outs[k] = capsys.readouterr().out
        assert (tmp_path / f"{k}.png").stat().st_size > 0
    assert "dense layout (image branches)" in outs["dense"]
    assert "sparse-first layout (no image branches" in outs["sparse"]
    images = [[line for line in outs[k].splitlines() if " GeV in " in line and "pixels, max" in line] for k in outs]
    assert len(images[0]) == len(IMAGES) and images[0] == images[1]


def test_an_input_only_sparse_file_feeds_image_and_graph_models(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A sparse-first file with the point cloud's inputs only (no truth): its images are the point cloud's,
    so inspect says it feeds both representations, and the reader rebuilds the input images."""
    import awkward as ak

    from pfgraph.cli import main
    from pfgraph.io.writing import jagged_record, make_meta, point_cloud
    from tests.io._files import write_tree

    batch = synthetic_batch(5, seed=2)
    npix, fields = point_cloud(batch)
    keep = ("ieta", "iphi", *schema.INPUT_CHANNELS)
    types = ", ".join(f"{k}: {fields[k].dtype}" for k in keep)
    path = write_tree(tmp_path / "inputs.root",
                      {"event_id": np.int64, "pix": ak.types.from_datashape(f"var * {{{types}}}", highlevel=False)},
                      {"event_id": batch["event_id"].astype(np.int64),
                       "pix": jagged_record(npix, {k: fields[k] for k in keep})},
                      meta={**make_meta("events"), "layout": "sparse"})
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "input-only layout (image, graph inputs, no truth)" in out
    files = EventFiles(path, require=["event_id", *schema.INPUT_CHANNELS])
    got = files.read(list(schema.INPUT_CHANNELS))
    for c in schema.INPUT_CHANNELS:
        assert _bits(got[c]) == _bits(batch[c].astype(np.float32)), c
