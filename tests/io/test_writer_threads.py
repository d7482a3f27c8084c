"""EventWriter(threads=N): a chunk's large baskets compress in threads ahead of uproot; the file is byte for
byte the one the inline writer makes, every large basket is served from the threads, a wrong prediction only
falls back to inline compression, and errors leave nothing behind (issue 16.13)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import uproot

import pfgraph.io.writing as root
from pfgraph.config import load_config, resolve_config_path
from pfgraph.errors import PfgraphError
from pfgraph.io import schema
from pfgraph.io.root import EventFiles, EventWriter, make_meta
from pfgraph.sim.detector import SimConfig
from pfgraph.sim.generate import simulate_batch
from tests.eval.conftest import synthetic_jets

CHUNK = 30  # 30 events: every image and point-cloud basket is above the threads' 64 KiB floor


@pytest.fixture(scope="module")
def batch() -> dict[str, np.ndarray]:
    """90 simulated B=0.5 paper events with synthetic jets (the ``jet`` image and jet scalars too)."""
    cfg = load_config(SimConfig, resolve_config_path("gauss_b050", "sim"), [])
    return simulate_batch(cfg, range(90), synthetic_jets(90, 1))


def _write(path: Path, batch: dict[str, np.ndarray], threads: int, background: bool = False,
           compression: str = "lz4:1", fail_at: int | None = None) -> tuple[Path, int | None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with EventWriter(path, make_meta("events", {"name": "t"}, seed=0), with_jet=True, threads=threads,
                     background=background, compression=compression) as w:
        for i, lo in enumerate(range(0, 90, CHUNK)):
            chunk = {k: v[lo:lo + CHUNK].copy() for k, v in batch.items()}
            if fail_at == i:
                chunk["hcal"] = chunk["hcal"][:, :, :10]  # a wrong shape: uproot refuses it
            w.write(chunk)
            for v in chunk.values():
                v[...] = 0  # the caller reuses its memory as soon as write returns
        w._wait()
        matched = w._ahead.matched if w._ahead is not None else None
    return path, matched


#: Large baskets per chunk: 7 images (with ``jet``) + 10 point-cloud branches.
LARGE_PER_CHUNK = len(schema.IMAGE_CHANNELS) + 1 + 4 + len(schema.IMAGE_CHANNELS)


@pytest.mark.parametrize("threads, background, compression", [(2, False, "lz4:1"), (1, True, "lz4:1"),
                                                             (2, False, "zstd:1")])
def test_threads_give_the_same_bytes_and_serve_every_large_basket(tmp_path: Path, batch: dict[str, np.ndarray],
                                                                  threads: int, background: bool,
                                                                  compression: str) -> None:
    plain, none = _write(tmp_path / "a" / "x.root", batch, 0, compression=compression)
    ahead, matched = _write(tmp_path / "b" / "x.root", batch, threads, background, compression)
    assert none == 0  # threads=0: nothing compressed ahead
    assert plain.read_bytes() == ahead.read_bytes()
    assert matched == 3 * LARGE_PER_CHUNK
    got = EventFiles(ahead).read(["emcal", "pix_hcal", "jet"])
    np.testing.assert_array_equal(got["emcal"], batch["emcal"])
    np.testing.assert_array_equal(got["jet"], batch["jet"])
    assert got["pix_hcal"].tolist() == EventFiles(plain).read(["pix_hcal"])["pix_hcal"].tolist()


def test_a_wrong_prediction_only_falls_back_to_inline_compression(tmp_path: Path, batch: dict[str, np.ndarray],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    plain, _ = _write(tmp_path / "a" / "x.root", batch, 0)
    real = root._basket_key_length
    monkeypatch.setattr(root, "_basket_key_length", lambda branch, tree: real(branch, tree) + 1)
    ahead, matched = _write(tmp_path / "b" / "x.root", batch, 2)
    assert plain.read_bytes() == ahead.read_bytes()
    assert matched == 3 * (len(schema.IMAGE_CHANNELS) + 1)  # the images still; no point-cloud basket


def test_threads_stop_and_the_compression_object_is_uproots_own_again(tmp_path: Path,
                                                                       batch: dict[str, np.ndarray]) -> None:
    before = set(threading.enumerate())
    path = tmp_path / "x.root"
    with EventWriter(path, make_meta("events", {"name": "t"}), with_jet=True, threads=2) as w:
        w.write({k: v[:CHUNK] for k, v in batch.items()})
        compression = w.compression
        assert "compress" in vars(compression)
    assert "compress" not in vars(compression) and type(compression) is uproot.LZ4
    assert not [t for t in threading.enumerate() if t not in before and t.name.startswith("pfgraph-compress")]
    assert uproot.open(path)["events"].num_entries == CHUNK


@pytest.mark.parametrize("compression, fmt", [("none", "ttree"), ("lz4:1", "rntuple")])
def test_no_threads_without_ttree_compression(tmp_path: Path, compression: str, fmt: str,
                                              batch: dict[str, np.ndarray]) -> None:
    with EventWriter(tmp_path / "x.root", make_meta("events", {"name": "t"}), with_jet=True, threads=2,
                     compression=compression, format=fmt) as w:
        w.write({k: v[:CHUNK] for k, v in batch.items()})
        assert w._ahead is None


@pytest.mark.parametrize("fail_at", [0, 2])
def test_error_with_threads_leaves_no_file_and_no_thread(tmp_path: Path, batch: dict[str, np.ndarray],
                                                         fail_at: int) -> None:
    before = set(threading.enumerate())
    with pytest.raises((ValueError, PfgraphError)):
        _write(tmp_path / "out" / "x.root", batch, 2, fail_at=fail_at)
    assert list((tmp_path / "out").iterdir()) == []
    assert not [t for t in threading.enumerate() if t not in before and t.name.startswith("pfgraph-compress")]


def test_baskets_compressed_elsewhere_are_served_once_their_bytes_match(tmp_path: Path,
                                                                        batch: dict[str, np.ndarray]) -> None:
    """``write(batch, compressed=...)``: a simulation worker's compressed basket of a channel is used as is."""
    plain, _ = _write(tmp_path / "a" / "x.root", batch, 0)
    path = tmp_path / "b" / "x.root"
    path.parent.mkdir()
    codec = uproot.LZ4(1)
    with EventWriter(path, make_meta("events", {"name": "t"}, seed=0), with_jet=True) as w:
        for lo in range(0, 90, CHUNK):
            chunk = {k: v[lo:lo + CHUNK] for k, v in batch.items()}
            done = {ch: bytes(codec.compress(chunk[ch].astype(">f4").tobytes())) for ch in ("truth", "jet")}
            w.write(chunk, compressed=done)
        matched = w._ahead.matched
    assert matched == 3 * 2
    assert plain.read_bytes() == path.read_bytes()
