"""pfgraph.study.config: the study file is typed, unknown keys and names are refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pfgraph.config import load_config, resolve_config_path
from pfgraph.errors import ConfigError
from pfgraph.sim.detector import SimConfig
from pfgraph.study.config import load_study, study_from_dict

ROOT = Path(__file__).resolve().parents[2]


def _study(**changes: object) -> dict:
    data = {"name": "s", "datasets": {"train": {"sim": "gauss_b050", "events": 60}, "test": {"sim": "gauss_b050"}},
            "train_on": "train", "evaluate_on": ["test"], "models": ["analytic", {"model": "cnn", "epochs": 2}]}
    data.update(changes)
    return data


def test_defaults_and_bare_model_names() -> None:
    cfg = study_from_dict(_study(training={"epochs": 5, "seeds": [1, 2], "overrides": ["train.threads=1"]}))
    analytic, cnn = cfg.models
    assert analytic.label == "analytic" and cfg.epochs(analytic) == 5 and cfg.seeds(cnn) == [1, 2]
    assert cfg.epochs(cnn) == 2 and cfg.overrides(cnn) == ["train.threads=1"]
    assert cfg.train_set(cnn) == "train" and cfg.eval_sets(cnn) == ["test"]


@pytest.mark.parametrize(("changes", "message"), [
    ({"trian_on": "train"}, "unknown config key 'trian_on' (did you mean 'train_on'?)"),
    ({"training": {"epoch": 3}}, "unknown config key 'training.epoch' (did you mean 'epochs'?)"),
    ({"train_on": "trian"}, "train_on: no dataset 'trian' (did you mean 'train'?)"),
    ({"evaluate_on": ["jets"]}, "evaluate_on: no dataset 'jets'"),
    ({"models": ["cnn", "cnn"]}, "models: 'cnn' appears twice"),
    ({"models": [{"model": "cnn", "overrides": ["train.threads"]}]}, "is not of the form key=value"),
    ({"name": "a b"}, "name: 'a b' is not a usable name"),
    ({"training": {"seeds": []}}, "training.seeds: expected at least one seed"),
    ({"report_dirs": {"train": "report"}}, "report_dirs: no evaluated dataset 'train'"),
    ({"report_dirs": {"test": "../elsewhere"}}, "report_dirs: test: '../elsewhere' must be a new folder inside"),
    ({"report_dirs": {"test": "runs"}}, "report_dirs: test: 'runs' must be a new folder inside"),
])
def test_bad_study_is_one_clear_line(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        study_from_dict(_study(**changes))
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["cpu_b050", "paper", "demo", "demo_quick", str(ROOT / "tests" / "study" / "tiny.yaml")])
def test_shipped_studies_load(name: str) -> None:
    cfg, path = load_study(name)
    assert path.exists() and cfg.models


def test_cpu_study_is_the_issue_18_study() -> None:
    """B = 0.5, 10 000-event training file (8000/1000 split), 1000-event test and jet sets, 3 seeds per learned model."""
    cfg, _ = load_study("cpu_b050")
    labels = [m.label for m in cfg.models]
    for want in ("analytic", "cnn", "cnn3d", "unet_attn", "calibrated", "edgeconv", "pfn", "cnn_attn", "cnn_attn_code"):
        assert want in labels
    assert cfg.datasets[cfg.train_on].events == 10000 and cfg.datasets[cfg.train_on].sim == "gauss_b050"
    assert {cfg.datasets[d].events for d in cfg.evaluate_on} == {1000} and cfg.evaluate_on == ["test", "jet", "jet300"]
    # issue 15: the best improved image config (flat-log weights on a hard-tail file) beside its
    # A/B on the paper spectrum without weights, same seeds
    tail = next(m for m in cfg.models if m.label == "calibrated_tail_flat")
    assert tail.train_on == "train_tail" and cfg.datasets["train_tail"].sim == "gauss_b050_tail"
    sim = load_config(SimConfig, resolve_config_path("gauss_b050_tail", "sim"), [])
    assert sim.particles.hard_tail_fraction == 0.005 and sim.events == 10000
    assert "train.reweight=flat_log" in cfg.overrides(tail)
    assert cfg.seeds(tail) == cfg.seeds(next(m for m in cfg.models if m.label == "calibrated"))
    # the point-cloud side: the improved graph config on edgeconv's file and seeds
    gnn = next(m for m in cfg.models if m.label == "calibrated_gnn")
    assert cfg.seeds(gnn) == cfg.seeds(next(m for m in cfg.models if m.label == "edgeconv"))
    assert cfg.train_set(gnn) == cfg.train_on
    for m in cfg.models:
        if m.label not in ("analytic", "cnn_attn", "cnn_attn_code"):
            assert len(cfg.seeds(m)) == 3, m.label


def test_a_report_folder_of_the_studys_choosing() -> None:
    """``report_dirs`` moves a test set's report (the demo's ``report/``); the others stay in reports/<set>."""
    from pfgraph.study.runner import Study

    study = Study(study_from_dict(_study(report_dirs={"test": "report"})), "/s")
    assert study.report_dir("test") == Path("/s/report")
    assert Study(study_from_dict(_study()), "/s").report_dir("test") == Path("/s/reports/test")
