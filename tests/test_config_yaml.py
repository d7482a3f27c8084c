"""The one YAML loader (pfgraph.config.load_yaml / read_yaml) and error quoting (issue 31)."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from pfgraph.config import MAX_YAML_NODES, from_dict, load_config, load_yaml, read_yaml
from pfgraph.errors import ConfigError, cap_line, quote
from pfgraph.sim.detector import SimConfig
from pfgraph.study.config import StudyConfig


def alias_bomb(levels: int = 9) -> str:
    """A small YAML document whose nested aliases stand for 9**levels strings."""
    lines = ['a: &a ["xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]']
    for i in range(1, levels):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    lines.append(f"name: *{chr(96 + levels)}")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_quickly_and_small(tmp_path: Path) -> None:
    text = alias_bomb()
    assert len(text.encode()) < 1000
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConfigError, match=rf"bomb.yaml: YAML aliases expand to more than {MAX_YAML_NODES:,} values"
                                          ) as info:
        read_yaml(path)
    assert len(str(info.value)) < 200
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: no expansion happened
    assert load_yaml("a: &a [1, 2]\nb: [*a, *a]\n", "ok")["b"] == [[1, 2], [1, 2]]  # aliases as such are fine


def test_duplicate_keys_are_refused_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("detector:\n  b_field: 0.5\n  b_field: 0.0\n")
    with pytest.raises(ConfigError, match=r"dup.yaml: line 3 invalid YAML \(duplicate key 'b_field' \(first at line 2\)\)"):
        read_yaml(path)
    with pytest.raises(ConfigError, match="duplicate key"):
        load_config(SimConfig, overrides=["detector={b_field: 1, b_field: 2}"])


def test_errors_quote_at_most_200_characters() -> None:
    huge = ["x" * 1000] * 10_000
    with pytest.raises(ConfigError) as info:
        load_config(SimConfig, base={"name": huge})
    assert len(str(info.value)) < 300 and "expected a string" in str(info.value)
    assert len(quote("y" * 10**6)) <= 200 and len(cap_line("z" * 10**6)) < 2100


def test_empty_and_incomplete_configs_name_the_missing_keys(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml(tmp_path / "empty.yaml") == {}
    with pytest.raises(ConfigError, match="missing config keys 'name', 'datasets', 'train_on', 'evaluate_on', 'models'"):
        from_dict(StudyConfig, {})


@pytest.mark.parametrize("value", ["1e308", "1e309", ".inf", ".nan", "-60"])
def test_impossible_b_fields_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="detector.b_field"):
        load_config(SimConfig, overrides=[f"detector.b_field={value}"])
    assert load_config(SimConfig, overrides=["detector.b_field=4"]).detector.b_field == 4.0
