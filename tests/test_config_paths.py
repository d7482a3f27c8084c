"""pfgraph/config.py: a --config value that looks like a path is a file; bare names are presets (issue 16.3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pfgraph import presets
from pfgraph.config import looks_like_path, resolve_config_path
from pfgraph.errors import ConfigError
from tests.training._helpers import cli


@pytest.mark.parametrize("value, path", [("gauss_b050", False), ("quick", False), ("some/dir/gauss_b000.yaml", True),
                                         ("gauss_b000.yaml", True), ("x.yml", True), ("./gauss_b050", True)])
def test_looks_like_path(value: str, path: bool) -> None:
    assert looks_like_path(value) is path


def test_missing_file_never_falls_back_to_the_preset(tmp_path: Path) -> None:
    for kind, name in (("sim", "gauss_b000"), ("train", "quick")):
        missing = tmp_path / "some" / "dir" / f"{name}.yaml"
        with pytest.raises(ConfigError, match=f"{missing}: no such config file"):
            resolve_config_path(missing, kind)
        with pytest.raises(ConfigError, match="no such config file"):
            resolve_config_path(f"{name}.yaml", kind)  # a .yaml suffix makes it a file, even without a folder


def test_existing_file_and_preset(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("events: 3\n")
    assert resolve_config_path(f, "sim") == f
    assert resolve_config_path("gauss_b050", "sim") == presets.root() / "sim" / "gauss_b050.yaml"
    folder = tmp_path / "sub.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        resolve_config_path(folder, "sim")
    with pytest.raises(ConfigError, match="no such sim preset.*did you mean 'gauss_b050'"):
        resolve_config_path("gauss_b05", "sim")


def test_bare_name_is_a_preset_even_with_a_local_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("myconf").write_text("events: 3\n")
    with pytest.raises(ConfigError, match=r"no such sim preset.*write \./myconf"):
        resolve_config_path("myconf", "sim")
    assert resolve_config_path("./myconf", "sim") == Path("./myconf")


def test_commands_refuse_a_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               events_file: Path) -> None:
    missing = tmp_path / "some" / "dir" / "gauss_b000.yaml"
    rc, _, err = cli(capsys, "simulate", "--config", str(missing), "--events", "2", "--out", str(tmp_path / "x.root"))
    assert rc == 2 and err.strip() == f"pfgraph: error: {missing}: no such config file; or the sim preset " \
                                       "'gauss_b000' (write --config gauss_b000)"
    assert not (tmp_path / "x.root").exists()
    missing = tmp_path / "configs" / "train" / "quick.yaml"
    rc, _, err = cli(capsys, "train", "--model", "cnn", "--config", str(missing), "--data", str(events_file),
                     "--out", str(tmp_path / "run"))
    assert rc == 2 and f"{missing}: no such config file" in err and len(err.strip().splitlines()) == 1
    rc, _, err = cli(capsys, "train", "--model", str(tmp_path / "cnn.yaml"), "--data", str(events_file),
                     "--out", str(tmp_path / "run"))
    assert rc == 2 and f"{tmp_path / 'cnn.yaml'}: no such model config file" in err


@pytest.mark.parametrize("raw, value", [("5e-4", 5e-4), ("1E3", 1000.0), ("-2.5e-1", -0.25), ("0.5", 0.5), ("7", 7),
                                        ("e5", "e5"), ("5e", "5e")])
def test_exponent_numbers_in_overrides(raw: str, value: object) -> None:
    """``train.lr=5e-4`` is a number (YAML 1.1 alone would read a string)."""
    from pfgraph.config import parse_override

    assert parse_override(f"train.lr={raw}") == (["train", "lr"], value)
