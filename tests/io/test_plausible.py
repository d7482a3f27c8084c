"""Implausible values (issue 16, item 1): bounds from the file's own config, one DataError line
naming file, event, branch and value in ``inspect``, the readers and ``train``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pfgraph import geometry
from pfgraph.cli import main
from pfgraph.config import load_config, resolve_config_path, to_dict
from pfgraph.errors import DataError
from pfgraph.io import schema
from pfgraph.io.datasets import read_images
from pfgraph.io.plausible import K_SIGMA, bounds_from_meta, generic_bounds
from pfgraph.io.root import EventFiles, EventWriter, make_meta
from pfgraph.sim.detector import SimConfig
from pfgraph.sim.generate import simulate_batch
from pfgraph.training.trainer import split_indices

N_EVENTS = 40


def _config(*overrides: str) -> SimConfig:
    return load_config(SimConfig, resolve_config_path("gauss_b050", "sim"), [f"events={N_EVENTS}", *overrides])


def _write(path: Path, cfg: SimConfig, tamper: dict[str, tuple[int, float]] | None = None,
           compression: str = "lz4:1") -> Path:
    """A simulated file of ``cfg``; ``tamper`` = {branch: (event, value)} sets one pixel (and its
    point-cloud copy stays as simulated: the dense image is what the readers check first)."""
    batch = simulate_batch(cfg, range(cfg.events))
    for name, (event, value) in (tamper or {}).items():
        img = batch[name][event]
        pix = np.unravel_index(int(np.argmax(img)), img.shape)
        img[pix] = value
    meta = make_meta("events", to_dict(cfg), seed=cfg.seed, events=cfg.events, first_event=0, shard=0, shards=1)
    with EventWriter(path, meta, compression=compression) as w:
        w.write(batch)
    return path


@pytest.fixture(scope="module")
def cfg() -> SimConfig:
    return _config()


@pytest.fixture(scope="module")
def train_event(cfg: SimConfig) -> int:
    """An event of the trainer's training split (default split and seed)."""
    return int(split_indices(cfg.events, [0.8, 0.1, 0.1], 12345)["train"][0])


def test_bounds_follow_the_files_config(cfg: SimConfig) -> None:
    meta = make_meta("events", to_dict(cfg))
    b = bounds_from_meta(meta)
    lo, hi = b.limits("truth")
    sigma = np.hypot(1.0, 2.0)
    mean = 1600 * sigma * np.sqrt(2 / np.pi)
    assert lo == 0 and hi == pytest.approx(mean + K_SIGMA * sigma * 40)
    assert b.limits("pix_truth") == (lo, hi) and b.limits("e_total") == (lo, hi)
    for ch in schema.INPUT_CHANNELS:  # paper mode: no input can be negative
        assert b.limits(ch)[0] == 0 and b.limits(ch)[1] > hi
    assert b.limits("event_id") is None and b.limits("n_particles") is None
    # noise (and resolutions wide enough to flip a smearing gain) allow negative inputs, only so far
    noisy = bounds_from_meta(make_meta("events", to_dict(_config("detector.noise_emcal=0.05"))))
    assert noisy.limits("emcal")[0] == pytest.approx(-K_SIGMA * 0.05) and noisy.limits("hcal")[0] == 0
    wide = bounds_from_meta(make_meta("events", to_dict(_config("detector.res_scale=3"))))
    assert wide.limits("hcal")[0] < 0 and wide.limits("truth")[0] == 0
    # more particles: a higher ceiling; jets add the Pythia event
    assert bounds_from_meta(make_meta("events", to_dict(_config("particles.multiplicity=3200")))).limits("truth")[1] > 1.8 * hi
    jet = bounds_from_meta(make_meta("events", to_dict(_config("jets.enabled=true"))))
    assert jet.limits("jet") == jet.limits("truth") and jet.limits("truth")[1] > hi + 7000
    # no generation record: generic bounds, truth still never negative
    assert bounds_from_meta(make_meta("events", {"name": "synthetic"})) == generic_bounds()
    assert generic_bounds().limits("truth")[0] == 0 and generic_bounds().limits("emcal")[0] < 0


def test_simulated_data_is_within_its_bounds(events_file: Path) -> None:
    files = EventFiles(events_file)
    data = files.read([*schema.IMAGE_CHANNELS, *schema.POINT_CHANNEL_BRANCHES, "e_total"])  # no error
    b = files.bounds[0]
    assert data["truth"].sum(axis=(1, 2)).max() < 0.9 * b.limits("truth")[1]


@pytest.mark.parametrize(("branch", "value"), [("truth", 1e30), ("truth", -500.0), ("truth_neutral", -1.0),
                                               ("emcal", -3.0), ("hcal", 5e4)])
def test_readers_refuse_implausible_values(tmp_path: Path, cfg: SimConfig, branch: str, value: float) -> None:
    path = _write(tmp_path / "bad.root", cfg, {branch: (7, value)})
    files = EventFiles(path)  # the schema is fine
    with pytest.raises(DataError) as err:
        files.read([branch])
    msg = str(err.value)
    assert f"{path}: event 7, branch '{branch}': implausible value {value:.6g} GeV" in msg and "\n" not in msg
    if value < 0 and branch.startswith("truth"):
        assert "truth is never negative" in msg
    elif value < 0:
        assert "no noise in its config Gauss_S1.00_NL0.30_B0.50 can make an input negative" in msg
    else:
        assert "bounds from its config Gauss_S1.00_NL0.30_B0.50" in msg
    # the fast basket reader of training and prediction says the same, with scaled outputs too
    out = np.empty((N_EVENTS, 1, geometry.IMSIZE, geometry.IMSIZE), np.float32)
    with pytest.raises(DataError) as err:
        read_images(files, [branch], np.arange(N_EVENTS), [16.0], out)
    assert f"{path}: event 7, branch '{branch}': implausible value {value:.6g} GeV" in str(err.value)


def test_nan_keeps_its_own_message(tmp_path: Path, cfg: SimConfig) -> None:
    path = _write(tmp_path / "nan.root", cfg, {"truth": (3, np.nan)})
    out = np.empty((N_EVENTS, 1, geometry.IMSIZE, geometry.IMSIZE), np.float32)
    with pytest.raises(DataError, match="event 3, branch 'truth': NaN or Inf value"):
        read_images(EventFiles(path), ["truth"], np.arange(N_EVENTS), [1.0], out)
    with pytest.raises(DataError, match="event 3, branch 'truth': NaN or Inf value"):
        EventFiles(path).read(["truth"])


def _flip_truth_bytes(src: Path, dst: Path, event: int, value: float) -> None:
    """Overwrite, in an uncompressed file, the bytes of the largest truth pixel of ``event`` (a
    bit flip that no checksum sees): the image is stored as is, so its bytes are found whole."""
    image = EventFiles(src).read(["truth"], event, event + 1)["truth"][0]
    raw = bytearray(src.read_bytes())
    start = raw.find(image.astype(">f4").tobytes())
    assert start > 0 and raw.count(image.astype(">f4").tobytes()) == 1
    pos = start + 4 * int(np.argmax(image))
    raw[pos:pos + 4] = np.array([value], ">f4").tobytes()
    dst.write_bytes(bytes(raw))


def test_inspect_reports_a_bit_flip_in_an_uncompressed_file(tmp_path: Path, cfg: SimConfig,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path / "good.root", cfg, compression="none")
    assert main(["inspect", str(good)]) == 0
    out = capsys.readouterr().out
    assert "schema check: OK" in out and f"value check: OK ({N_EVENTS} events within truth 0.." in out
    bad = tmp_path / "flipped.root"
    _flip_truth_bytes(good, bad, 5, 2.9e29)
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"pfgraph: error: {bad}: event 5, branch '") and "implausible value 2.9e+29 GeV" in err
    assert "\n" not in err


def test_train_refuses_implausible_training_data_and_leaves_no_run_folder(
        tmp_path: Path, cfg: SimConfig, train_event: int, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "bad.root", cfg, {"truth": (train_event, 1e30)})
    run = tmp_path / "runs" / "mlp"
    rc = main(["train", "--model", "cnn", "--data", str(path), "--out", str(run), "--epochs", "1", "--device", "cpu",
               "model.encoder=[4,8]", "model.decoder=[4]", "train.threads=1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and f"{path}: event {train_event}, branch 'truth': implausible value 1e+30 GeV" in err
    assert "best val loss" not in err and not run.exists() and not run.parent.exists()
