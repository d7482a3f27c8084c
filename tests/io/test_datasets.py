"""ROOT -> tensors: the fast basket reader, the image dataset and the deterministic sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import uproot

from pfgraph.errors import DataError
from pfgraph.io.datasets import BlockBatchSampler, ImageDataset, read_images
from pfgraph.io.root import EventFiles
from pfgraph.repr.base import fit_normalisation
from pfgraph.repr.registry import get_representation
from tests.io._files import event_types_and_data, synthetic_batch, write_events, write_tree

CHANNELS = ["emcal", "hcal", "trk_neg", "trk_pos", "truth"]


@pytest.fixture(scope="module")
def two_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("two")
    return [write_events(d / "a.root", synthetic_batch(23, seed=1), chunk=5),
            write_events(d / "b.root", synthetic_batch(17, seed=2, first_id=23), chunk=7)]


def _reference(paths: list[Path]) -> dict[str, np.ndarray]:
    parts = [uproot.open(p)["events"].arrays(CHANNELS, library="np") for p in paths]
    return {c: np.concatenate([p[c] for p in parts]) for c in CHANNELS}


@pytest.mark.parametrize("indices", [np.arange(40), np.array([0, 4, 5, 6, 22, 23, 24, 39]), np.array([17])])
def test_read_images_matches_uproot_over_several_files(two_files: list[Path], indices: np.ndarray) -> None:
    files = EventFiles(two_files)
    scales = [2.0, 3.0, 4.0, 5.0, 7.0]
    out = np.empty((len(indices), 5, 56, 56), dtype=np.float32)
    read_images(files, CHANNELS, indices, scales, out)
    ref = _reference(two_files)
    for k, c in enumerate(CHANNELS):
        np.testing.assert_array_equal(out[:, k], ref[c][indices] * np.float32(1 / scales[k]))


@pytest.mark.parametrize("compression", ["lz4:1", "zstd:3", "zlib:1", "lzma:1", "none"])
def test_read_images_equals_uproot_for_every_codec(tmp_path: Path, compression: str) -> None:
    path = write_events(tmp_path / "c.root", synthetic_batch(14, seed=3), chunk=5, compression=compression)
    idx = np.array([0, 4, 5, 6, 13])  # across baskets, partial baskets at both ends
    out = np.empty((len(idx), 5, 56, 56), dtype=np.float32)
    read_images(EventFiles(path), CHANNELS, idx, [1.0, 2.0, 3.0, 4.0, 5.0], out)
    ref = _reference([path])
    for k, c in enumerate(CHANNELS):
        np.testing.assert_array_equal(out[:, k], ref[c][idx] * np.float32(1 / (k + 1)))


def test_a_basket_of_several_compression_blocks(tmp_path: Path) -> None:
    n = 1400  # 1400 x 12544 bytes = 17.6 MB per basket: more than one ROOT block (< 16 MiB each)
    path = write_events(tmp_path / "big.root", synthetic_batch(n, seed=6), chunk=n)
    assert len(uproot.open(path)["events"]["hcal"].basket(0).block_compression_info) == 2
    idx = np.concatenate([np.arange(0, 200), [1337, 1338, 1399]])  # several pieces of one basket
    out = np.empty((len(idx), 5, 56, 56), dtype=np.float32)
    read_images(EventFiles(path), CHANNELS, idx, [1.0] * 5, out)
    ref = _reference([path])
    for k, c in enumerate(CHANNELS):
        np.testing.assert_array_equal(out[:, k], ref[c][idx])


def test_a_corrupt_basket_is_one_line_naming_file_entries_and_branch(tmp_path: Path) -> None:
    path = write_events(tmp_path / "bad.root", synthetic_batch(15, seed=8), chunk=5)
    b = uproot.open(path)["events"]["hcal"]
    seek, nbytes = int(b.member("fBasketSeek")[1]), int(b.member("fBasketBytes")[1])
    raw = bytearray(path.read_bytes())
    raw[seek + nbytes - 40] ^= 0xFF  # inside the compressed bytes: the LZ4 checksum no longer matches
    path.write_bytes(bytes(raw))
    out = np.empty((15, 5, 56, 56), dtype=np.float32)
    with pytest.raises(DataError, match=rf"^{path}: corrupt or unreadable ROOT file \(entries 5-10, branch 'hcal': "
                                        "ValueError: computed checksum"):
        read_images(EventFiles(path), CHANNELS, np.arange(15), [1.0] * 5, out)


def test_rntuple_files_go_through_the_reader(tmp_path: Path) -> None:
    batch = synthetic_batch(9, seed=4)
    path = write_events(tmp_path / "r.root", batch, fmt="rntuple")
    out = np.empty((3, 5, 56, 56), dtype=np.float32)
    read_images(EventFiles(path), CHANNELS, np.array([1, 2, 8]), [1.0] * 5, out)
    for k, c in enumerate(CHANNELS):
        np.testing.assert_array_equal(out[:, k], batch[c][[1, 2, 8]])


@pytest.mark.parametrize(("n", "bad", "value"), [(12, 7, np.nan), (150, 130, np.inf)])
def test_nan_is_reported_with_file_event_and_branch(tmp_path: Path, n: int, bad: int, value: float) -> None:
    batch = synthetic_batch(n, seed=5)
    types, data = event_types_and_data(batch)
    data["hcal"] = data["hcal"].copy()
    data["hcal"][bad, 3, 4] = value  # event 130: in a later piece of the one basket than the first
    path = write_tree(tmp_path / "nan.root", types, data)
    files = EventFiles(path)
    out = np.empty((n, 5, 56, 56), dtype=np.float32)
    with pytest.raises(DataError, match=rf"^{path}: event {bad}, branch 'hcal': NaN or Inf value"):
        read_images(files, CHANNELS, np.arange(n), [1.0] * 5, out)


def test_image_dataset_streams_in_blocks_with_the_same_content(events_file: Path) -> None:
    files = EventFiles(events_file)
    idx = np.random.default_rng(0).permutation(120)[:90]
    norm = fit_normalisation(files, idx)
    whole = get_representation("image").make_dataset(files, idx, norm)
    blocks = ImageDataset(files, idx, norm.input_scale, norm.target_scale, block_events=32)
    assert blocks.num_blocks == 3 and whole.num_blocks == 1 and len(blocks) == len(whole) == 90
    assert np.array_equal(whole.indices, np.sort(idx))
    positions = [3, 40, 41, 89, 0]
    a, b = whole.__getitems__(positions)[0], blocks.__getitems__(positions)[0]
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.index, b.index)
    assert a.x.shape == (5, 4, 56, 56) and a.y.shape == (5, 1, 56, 56)
    assert a.index.tolist() == np.sort(idx)[positions].tolist()
    assert float(a.x.amax()) <= 1.0 and float(a.y.amax()) <= 1.0  # training maxima scale to <= 1


def test_sampler_is_deterministic_and_covers_its_subset() -> None:
    s = BlockBatchSampler(100, 16, seed=3, epoch=1, block_size=30)
    batches = list(s)
    assert len(batches) == len(s) == 7
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(100))
    assert batches == list(BlockBatchSampler(100, 16, seed=3, epoch=1, block_size=30))
    assert batches != list(BlockBatchSampler(100, 16, seed=3, epoch=2, block_size=30))
    # Within a block before moving on: one block in memory at a time.
    blocks = [i // 30 for i in flat]
    assert sum(1 for x, y in zip(blocks, blocks[1:]) if x != y) == 3
    sub = BlockBatchSampler(100, 8, seed=0, subset=np.array([5, 1, 70, 33]))
    assert sorted(i for b in sub for i in b) == [1, 5, 33, 70]
    assert [b for b in BlockBatchSampler(5, 2, shuffle=False)] == [[0, 1], [2, 3], [4]]


def test_read_images_refuses_unsorted_indices_and_a_wrong_output_array(two_files: list[Path]) -> None:
    files = EventFiles(two_files)
    with pytest.raises(ValueError, match="strictly increasing"):
        read_images(files, CHANNELS, np.array([3, 2]), [1.0] * 5, np.empty((2, 5, 56, 56), np.float32))
    with pytest.raises(ValueError, match=r"expected \(2, 5, 56, 56\) float32"):
        read_images(files, CHANNELS, np.array([2, 3]), [1.0] * 5, np.empty((2, 5, 56, 56), np.float64))
    empty = read_images(files, CHANNELS, np.zeros(0, np.int64), [1.0] * 5, np.empty((0, 5, 56, 56), np.float32))
    assert empty.shape == (0, 5, 56, 56)


def test_read_images_scales_each_branch(two_files: list[Path]) -> None:
    files = EventFiles(two_files)
    ref = _reference(two_files)
    idx = np.array([1, 22, 23, 30])
    scales = [2.0, 4.0, 0.5, 8.0, 10.0]
    out = read_images(files, CHANNELS, idx, scales, np.empty((4, 5, 56, 56), np.float32))
    for k, c in enumerate(CHANNELS):
        np.testing.assert_allclose(out[:, k], ref[c][idx] * np.float32(1.0 / scales[k]), rtol=1e-7)


def test_image_dataset_positions_and_indices_out_of_range(two_files: list[Path]) -> None:
    files = EventFiles(two_files)
    with pytest.raises(DataError, match="event index 40 out of range: the data has 40 events"):
        ImageDataset(files, np.array([0, 40]), [1.0] * 4, 1.0)
    ds = ImageDataset(files, np.array([30, 2, 2, 7]), [1.0] * 4, 1.0)
    assert len(ds) == 3 and ds.indices.tolist() == [2, 7, 30]  # unique, sorted
    assert ds[2].index.tolist() == [30] and ds[2].x.shape == (1, 4, 56, 56)
    with pytest.raises(IndexError, match="dataset of 3 events"):
        ds.__getitems__([3])


def test_sampler_drop_last_and_bad_batch_size() -> None:
    batches = list(BlockBatchSampler(10, 4, shuffle=False, drop_last=True))
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(ValueError, match="batch_size 0"):
        BlockBatchSampler(10, 0)
