"""The hard tail of the particle energy spectrum (particles.hard_tail_*; off in paper mode)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from pfgraph.config import load_config, resolve_config_path
from pfgraph.errors import ConfigError
from pfgraph.io.plausible import bounds_from_meta
from pfgraph.io.root import EventFiles
from pfgraph.sim.detector import SimConfig
from pfgraph.sim.particles import power_law, sample_batch, sample_event
from tests.conftest import make_events

TAIL = ("particles.hard_tail_fraction=0.02", "particles.hard_tail_min=5", "particles.hard_tail_max=300")


def _cfg(*overrides: str) -> SimConfig:
    return load_config(SimConfig, resolve_config_path("gauss_b050", "sim"), list(overrides))


@pytest.mark.parametrize("index", [0.0, 1.0, 2.5])
def test_power_law_inverse_cdf_follows_its_density(index: float) -> None:
    v = np.random.default_rng(1).random(200_000)
    e = power_law(v, index, 5.0, 300.0)
    assert e.min() >= 5.0 and e.max() <= 300.0
    grid = np.linspace(5.0, 300.0, 2001)
    pdf = grid**-index
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    assert stats.kstest(e, lambda x: np.interp(x, grid, cdf)).pvalue > 1e-3


def test_the_tail_takes_its_share_of_particles_between_its_bounds() -> None:
    cfg = _cfg(*TAIL)
    p, _ = sample_batch(7, range(20), cfg.particles, cfg.pileup)
    hard = p.energy >= 5.0
    # half-normal energies of width sqrt(5) pass 5 GeV with probability 2.5 %: tail 2 % + 98 % x 2.5 %
    expected = 0.02 + 0.98 * 2 * stats.norm.sf(5.0 / np.sqrt(5.0))
    assert abs(hard.mean() - expected) < 5 * np.sqrt(expected / p.energy.size)
    assert p.energy.max() <= 300.0 and np.log(p.energy[p.energy > 20]).std() > 0.5  # spread over decades


def test_off_by_default_and_the_paper_streams_are_unchanged() -> None:
    paper, tail0 = _cfg(), _cfg("particles.hard_tail_fraction=0")
    assert paper.particles.hard_tail_fraction == 0.0
    a, _ = sample_event(3, 11, 0, paper.particles, paper.pileup)
    b, _ = sample_event(3, 11, 0, tail0.particles, tail0.pileup)
    assert np.array_equal(a.energy, b.energy) and a.energy.max() < 30.0


def test_batched_and_per_event_sampling_agree_with_a_tail() -> None:
    cfg = _cfg(*TAIL)
    p, _ = sample_batch(5, [4, 9, 2], cfg.particles, cfg.pileup)
    for b, eid in enumerate([4, 9, 2]):
        one, _ = sample_event(5, eid, b, cfg.particles, cfg.pileup)
        assert np.array_equal(p.energy[p.event == b], one.energy)


@pytest.mark.parametrize("override, what", [
    ("particles.hard_tail_fraction=1.5", "hard_tail_fraction"),
    ("particles.hard_tail_min=400", "expected 0 < min < max"),
    ("particles.hard_tail_index=-1", "hard_tail_index"),
])
def test_bad_tail_settings_are_one_line(override: str, what: str) -> None:
    with pytest.raises(ConfigError, match=what):
        _cfg(override)


def test_a_tail_file_is_recorded_plausible_and_reproducible(tmp_path: Path) -> None:
    a = make_events(tmp_path / "a.root", 40, "gauss_b050", *TAIL)
    b = make_events(tmp_path / "b.root", 40, "gauss_b050", *TAIL)
    files = EventFiles(a)
    images = ["truth", "emcal", "hcal", "trk_neg", "trk_pos"]
    other = EventFiles(b).read(images, 0, 40)
    for name in images:  # seeds reproduce
        assert np.array_equal(files.read(images, 0, 40)[name], other[name]), name
    assert files.meta["config"]["particles"]["hard_tail_fraction"] == 0.02
    truth = files.read(["truth"], 0, 40)["truth"]  # the reader's plausibility check passes
    paper_hi = bounds_from_meta({"config": {**files.meta["config"], "particles": {"hard_tail_fraction": 0.0}}}).hi
    assert truth.max() > 30.0 and bounds_from_meta(files.meta).hi["truth"] > paper_hi["truth"] + 300.0
