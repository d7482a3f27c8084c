"""pfgraph files read by CERN ROOT itself (RDataFrame, TTree::Draw, TFile) give exactly what
uproot reads: every branch kind (fixed-size arrays, jagged arrays with counters, scalars) and
the metadata string, for events (single, sharded, 1-event, empty point clouds, jet sample,
TTree and RNTuple), predictions and jets files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot

from pfgraph import geometry
from pfgraph.io import datasets, schema
from pfgraph.io.root import EventFiles, is_rntuple
from tests.conftest import make_events
from tests.io._files import synthetic_batch, write_events, write_predictions

pytestmark = pytest.mark.root

#: RDataFrame sees a TTree image as RVecF (3136 values) and an RNTuple one as RVec<RVecF>.
FLATTEN = """
ROOT::RVecF pfgraph_flat(const ROOT::RVecF &image) { return image; }
ROOT::RVecF pfgraph_flat(const ROOT::RVec<ROOT::RVecF> &image) {
   ROOT::RVecF out; out.reserve(56 * 56);
   for (const auto &row : image) out.insert(out.end(), row.begin(), row.end());
   return out;
}
"""


@pytest.fixture(scope="module")
def R(ROOT: ModuleType) -> ModuleType:  # noqa: N802, N803
    if not hasattr(ROOT, "pfgraph_flat"):
        ROOT.gInterpreter.Declare(FLATTEN)
    return ROOT


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, events_file: Path) -> dict[str, list[Path]]:
    """Every kind of pfgraph file, each as the list of files of one dataset."""
    from pfgraph.config import load_config, resolve_config_path
    from pfgraph.sim.detector import SimConfig
    from pfgraph.sim.generate import generate

    d = tmp_path_factory.mktemp("rootfiles")
    cfg = load_config(SimConfig, resolve_config_path("gauss_b050", "sim"), ["events=30", "output.chunk=8", "seed=5"])
    sharded = generate(cfg, d / "sharded.root", shards=3, workers=0)
    # the same events in the sparse-first layout (no image branches), TTree and RNTuple, and dense
    sparse = generate(load_config(SimConfig, resolve_config_path("gauss_b050", "sim"),
                                  ["events=12", "seed=5", "output.dense_images=never", "output.oracle=true"]),
                      d / "sparse.root", workers=0)
    sparse_n = generate(load_config(SimConfig, resolve_config_path("gauss_b050", "sim"),
                                    ["events=12", "seed=5", "output.dense_images=never", "output.format=rntuple"]),
                        d / "sparse_n.root", workers=0)
    dense = generate(load_config(SimConfig, resolve_config_path("gauss_b050", "sim"),
                                 ["events=12", "seed=5", "output.dense_images=always", "output.oracle=true"]),
                     d / "dense.root", workers=0)
    mixed = synthetic_batch(9, seed=11, empty=(0, 4, 8), with_jet=True)
    sim = EventFiles(events_file)
    first = sim.read([b.name for b in schema.EVENT_BRANCHES if not b.optional and b.kind in ("scalar", "image")],
                     stop=20)
    first = {k: v for k, v in first.items() if not k.startswith("_")}
    truth = sim.read(["event_id", "truth", "npix"], stop=40)
    return {
        "sim": [events_file],
        "sharded": sharded,
        "one_event": [make_events(d / "one.root", 1)],
        "empty_clouds": [make_events(d / "empty.root", 4, "gauss_b050", "particles.multiplicity=0")],
        "mixed_ttree": [write_events(d / "mixed_t.root", mixed, chunk=4)],
        "mixed_rntuple": [write_events(d / "mixed_n.root", mixed, fmt="rntuple", chunk=4)],
        "sim_rntuple": [write_events(d / "sim_n.root", first, fmt="rntuple", chunk=7)],
        "sparse": sparse,
        "sparse_rntuple": sparse_n,
        "dense": dense,
        "pred_ttree": [write_predictions(d / "pred_t.root", truth)],
        "pred_rntuple": [write_predictions(d / "pred_n.root", truth, fmt="rntuple")],
    }


def uproot_arrays(paths: Sequence[Path], tree: str) -> tuple[dict[str, Any], bool]:
    """Every branch of ``tree`` over all files with plain uproot (numpy or awkward), and is_rntuple."""
    parts: list[dict[str, Any]] = []
    rntuple = False
    for p in paths:
        t = uproot.open(p)[tree]
        rntuple = is_rntuple(t)
        parts.append({k: t[k].array(library="ak") for k in t.keys()})
    return {k: ak.concatenate([p[k] for p in parts]) for k in parts[0]}, rntuple


def rdf(R: ModuleType, paths: Sequence[Path], tree: str) -> Any:  # noqa: N803
    return R.RDataFrame(tree, R.std.vector["std::string"]([str(p) for p in paths]))


def assert_rdf_equals_uproot(R: ModuleType, paths: Sequence[Path], tree: str) -> dict[str, Any]:  # noqa: N803
    """RDataFrame.AsNumpy of every column == uproot's arrays, element by element, dtype by dtype."""
    ref, _ = uproot_arrays(paths, tree)
    df = rdf(R, paths, tree)
    images = [k for k in ref if ref[k].ndim == 3]
    for k in images:
        df = df.Define(f"{k}__flat", f"pfgraph_flat({k})")
    cols = [k for k in ref if k not in images] + [f"{k}__flat" for k in images]
    got = df.AsNumpy(cols)
    assert df.Count().GetValue() == len(ref[next(iter(ref))])
    for k, want in ref.items():
        if k in images:
            arr = np.stack([np.asarray(v) for v in got[f"{k}__flat"]]) if len(want) else np.zeros((0, 3136))
            np.testing.assert_array_equal(arr.reshape(-1, 56, 56), ak.to_numpy(want), err_msg=k)
            assert arr.dtype == np.float32, k
        elif want.ndim == 2:  # jagged: per-entry lengths and every value
            lengths = [len(v) for v in got[k]]
            assert lengths == ak.to_list(ak.num(want)), k
            flat = np.concatenate([np.asarray(v) for v in got[k]]) if sum(lengths) else np.zeros(0)
            want_flat = ak.to_numpy(ak.flatten(want))
            np.testing.assert_array_equal(flat, want_flat, err_msg=k)
            if flat.size:
                assert flat.dtype == want_flat.dtype, k
        else:
            np.testing.assert_array_equal(got[k], ak.to_numpy(want), err_msg=k)
            assert got[k].dtype == ak.to_numpy(want).dtype, k
    return ref


def draw(R: ModuleType, paths: Sequence[Path], tree: str, expr: str, selection: str = "") -> np.ndarray:  # noqa: N803
    """``TChain::Draw(expr, selection, "goff")`` -> the selected values as float64."""
    chain = R.TChain(tree)
    for p in paths:
        chain.Add(str(p))
    chain.SetEstimate(chain.GetEntries() * geometry.IMSIZE * geometry.IMSIZE + 1)
    level, R.gErrorIgnoreLevel = R.gErrorIgnoreLevel, R.kError  # "selected TTree subset is empty" is expected
    try:
        n = chain.Draw(expr, selection, "goff")
    finally:
        R.gErrorIgnoreLevel = level
    assert n >= 0, expr
    if n == 0:
        return np.zeros(0)
    buf = chain.GetV1()
    buf.reshape((n,))
    return np.array(buf, dtype=np.float64, copy=True)


EVENT_SETS = ("sim", "sharded", "one_event", "empty_clouds", "mixed_ttree", "mixed_rntuple", "sim_rntuple", "sparse",
              "sparse_rntuple")


@pytest.mark.parametrize("name", ["sparse", "sparse_rntuple"])
def test_sparse_first_images_from_root_equal_the_dense_branches(R: ModuleType, files: dict[str, list[Path]],  # noqa: N803
                                                                name: str) -> None:
    """A sparse-first file read by ROOT alone (RDataFrame) rebuilds every image of the same events written
    densely, bit for bit: the inputs from the point cloud, the truth side from the sparse truth."""
    assert "emcal" not in uproot.open(files[name][0])["events"].keys()
    dense, _ = uproot_arrays(files["dense"], "events")
    df = rdf(R, files[name], "events")
    cols = ["npix", "pix_ieta", "pix_iphi", *(f"pix_{c}" for c in schema.INPUT_CHANNELS),
            "ntpix", "tpix_ieta", "tpix_iphi", *(f"tpix_{c}" for c in schema.TARGET_CHANNELS)]
    got = df.AsNumpy(cols)
    for c in (*schema.INPUT_CHANNELS, *schema.TARGET_CHANNELS):
        prefix = "pix" if c in schema.INPUT_CHANNELS else "tpix"
        want = ak.to_numpy(dense[c])
        image = np.zeros_like(want)
        for e in range(len(want)):
            image[e, np.asarray(got[f"{prefix}_ieta"][e]), np.asarray(got[f"{prefix}_iphi"][e])] = \
                np.asarray(got[f"{prefix}_{c}"][e])
        assert image.tobytes() == want.tobytes(), c


@pytest.mark.parametrize("name", EVENT_SETS)
def test_events_rdataframe_equals_uproot(R: ModuleType, files: dict[str, list[Path]], name: str) -> None:  # noqa: N803
    paths = files[name]
    ref = assert_rdf_equals_uproot(R, paths, schema.EVENTS_TREE)
    df = rdf(R, paths, schema.EVENTS_TREE)
    npix = ak.to_numpy(ref["npix"])
    assert df.Sum("npix").GetValue() == int(npix.sum())
    assert df.Filter("npix == 0").Count().GetValue() == int((npix == 0).sum())
    # the counter agrees with every jagged branch inside ROOT too
    assert df.Filter("npix != (int)pix_eta.size() || npix != (int)pix_truth.size()").Count().GetValue() == 0
    files_total = EventFiles(paths).num_events
    assert df.Count().GetValue() == files_total
    if name == "empty_clouds":
        assert npix.sum() == 0 and df.Sum("n_particles").GetValue() == 0
    if name.startswith("mixed"):
        assert (npix[[0, 4, 8]] == 0).all() and "jet" in ref


@pytest.mark.parametrize("name", ["sim", "sharded", "one_event", "empty_clouds", "mixed_ttree"])
def test_events_ttree_draw_equals_uproot(R: ModuleType, files: dict[str, list[Path]], name: str) -> None:  # noqa: N803
    paths = files[name]
    ref, rntuple = uproot_arrays(paths, schema.EVENTS_TREE)
    assert not rntuple
    n = len(ref["event_id"])
    np.testing.assert_array_equal(draw(R, paths, "events", "pix_emcal"), ak.to_numpy(ak.flatten(ref["pix_emcal"])))
    np.testing.assert_array_equal(draw(R, paths, "events", "pix_ieta"), ak.to_numpy(ak.flatten(ref["pix_ieta"])))
    np.testing.assert_array_equal(draw(R, paths, "events", "npix"), ak.to_numpy(ref["npix"]))
    np.testing.assert_array_equal(draw(R, paths, "events", "event_id"), ak.to_numpy(ref["event_id"]))
    truth = ak.to_numpy(ref["truth"])
    # [ieta][iphi] indexing in ROOT is the same pixel as uproot's [:, ieta, iphi]
    np.testing.assert_array_equal(draw(R, paths, "events", "truth[3][40]"), truth[:, 3, 40])
    np.testing.assert_array_equal(draw(R, paths, "events", "emcal"), ak.to_numpy(ref["emcal"]).reshape(-1))
    np.testing.assert_allclose(draw(R, paths, "events", "Sum$(truth)"),
                               truth.reshape(n, -1).sum(axis=1, dtype=np.float64), rtol=1e-12)
    sel = draw(R, paths, "events", "pix_truth", "pix_emcal > 1")
    flat_e = ak.to_numpy(ak.flatten(ref["pix_emcal"]))
    np.testing.assert_array_equal(sel, ak.to_numpy(ak.flatten(ref["pix_truth"]))[flat_e > 1])


@pytest.mark.parametrize("name", ["sim", "sharded", "mixed_rntuple", "pred_ttree", "pred_rntuple"])
def test_metadata_string_equals_uproot(R: ModuleType, files: dict[str, list[Path]], name: str) -> None:  # noqa: N803
    for p in files[name]:
        f = R.TFile.Open(str(p))
        text = str(f.Get(schema.META_KEY).GetString().Data())
        f.Close()
        assert text == str(uproot.open(p)[schema.META_KEY])
        assert json.loads(text)["schema_version"] == schema.SCHEMA_VERSION


@pytest.mark.parametrize("fmt", ["ttree", "rntuple"])
def test_predictions_and_jets_rdataframe_equals_uproot(R: ModuleType, files: dict[str, list[Path]], fmt: str) -> None:  # noqa: N803
    paths = files[f"pred_{fmt}"]
    pred = assert_rdf_equals_uproot(R, paths, schema.PREDICTIONS_TREE)
    jets = assert_rdf_equals_uproot(R, paths, schema.JETS_TREE)
    assert {b.name for b in schema.JET_BRANCHES if not b.optional} <= set(jets) <= {b.name for b in schema.JET_BRANCHES}
    assert {"npix", "pix_pred"} <= set(pred)
    df = rdf(R, paths, schema.JETS_TREE)
    ntruth = ak.to_numpy(jets["ntruth_jet"])
    assert (ntruth == 0).any() and (ntruth > 1).any()
    assert df.Filter("ntruth_jet == 0").Count().GetValue() == int((ntruth == 0).sum())
    lead = df.Filter("ntruth_jet > 0").Define("e0", "truth_jet_energy[0]").AsNumpy(["e0"])["e0"]
    np.testing.assert_array_equal(lead, ak.to_numpy(jets["truth_jet_energy"][ntruth > 0][:, 0]))


def test_predictions_and_jets_ttree_draw(R: ModuleType, files: dict[str, list[Path]]) -> None:  # noqa: N803
    paths = files["pred_ttree"]
    jets, _ = uproot_arrays(paths, schema.JETS_TREE)
    np.testing.assert_array_equal(draw(R, paths, "jets", "pred_jet_pt"), ak.to_numpy(ak.flatten(jets["pred_jet_pt"])))
    np.testing.assert_array_equal(draw(R, paths, "jets", "truth_jet_nconst"),
                                  ak.to_numpy(ak.flatten(jets["truth_jet_nconst"])))
    pred, _ = uproot_arrays(paths, schema.PREDICTIONS_TREE)
    np.testing.assert_array_equal(draw(R, paths, "predictions", "pred[10][20] - truth[10][20]"),
                                  (ak.to_numpy(pred["pred"])[:, 10, 20] - ak.to_numpy(pred["truth"])[:, 10, 20]))
    np.testing.assert_array_equal(draw(R, paths, "predictions", "pix_pred"), ak.to_numpy(ak.flatten(pred["pix_pred"])))


@pytest.mark.parametrize(("codec", "setting"), [("lz4", 404), ("zstd", 505), ("zlib", 101)])
def test_root_written_baskets_through_read_images(R: ModuleType, events_file: Path, tmp_path: Path,  # noqa: N803
                                                  codec: str, setting: int) -> None:
    """A file ROOT itself re-wrote (TTree::CloneTree into a file of another codec, with ROOT's own
    small baskets) loads through pfgraph's basket reader exactly as uproot reads it."""
    out_path = tmp_path / f"root_{codec}.root"
    src = R.TFile.Open(str(events_file))
    dst = R.TFile(str(out_path), "RECREATE", "", setting)
    dst.cd()
    src.Get(schema.EVENTS_TREE).CloneTree(50).Write()
    src.Get(schema.META_KEY).Write(schema.META_KEY)
    dst.Close()
    src.Close()
    tree = uproot.open(out_path)[schema.EVENTS_TREE]
    assert tree.num_entries == 50 and tree["emcal"].num_baskets > 5
    assert tree["emcal"].basket(1).block_compression_info[0][0] == codec.upper()
    channels = [*schema.INPUT_CHANNELS, "truth"]
    idx = np.array([0, 1, 7, 30, 49])
    out = np.empty((len(idx), len(channels), 56, 56), dtype=np.float32)
    datasets.read_images(EventFiles(out_path), channels, idx, [1.0] * len(channels), out)
    for k, c in enumerate(channels):
        np.testing.assert_array_equal(out[:, k], tree[c].array(library="np")[idx], err_msg=c)
