"""pfgraph/utils/cli_common.py: the override example each command's --help shows works (issue 16.11)."""

from __future__ import annotations

import argparse

import pytest

from pfgraph.cli import build_parser
from pfgraph.config import load_config, resolve_config_path
from pfgraph.errors import ConfigError
from pfgraph.sim.detector import SimConfig
from pfgraph.training.config import build_run_config, load_model_section, train_preset_data
from pfgraph.utils.cli_common import override_example


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _accepts(command: str, overrides: list[str]) -> None:
    if command == "simulate":
        load_config(SimConfig, resolve_config_path("gauss_b050", "sim"), overrides)
    elif command == "train":
        for model in ("cnn", "edgeconv"):
            build_run_config(load_model_section(model), train_preset_data("default"), overrides)
    else:
        raise AssertionError(f"no config to check {command}'s overrides against")


def test_every_override_example_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    with_overrides = {name: p for name, p in _subparsers().items() if override_example(p)}
    assert set(with_overrides) == {"simulate", "train"}
    for name, parser in with_overrides.items():
        example = override_example(parser)
        assert example and all("=" in e for e in example)
        parser.print_help()
        assert " ".join(example) in " ".join(capsys.readouterr().out.split())  # what --help shows
        _accepts(name, example)


def test_the_old_train_example_is_indeed_rejected_by_train() -> None:
    """The example train --help used to show belongs to simulate: train rejects it."""
    with pytest.raises(ConfigError, match="unknown section 'detector'"):
        _accepts("train", ["detector.b_field=0.5"])
