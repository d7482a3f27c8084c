"""A study is checked whole before its first step, and writes only its own folder (issue 31)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pfgraph.cli import main
from pfgraph.utils.lock import folder_lock

TINY = Path(__file__).with_name("tiny.yaml")


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def _study(tmp_path: Path, edit: object) -> Path:
    doc = yaml.safe_load(TINY.read_text())
    edit(doc)  # type: ignore[operator]
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["models"].append("nosuchmodel"), "models: nosuchmodel: unknown model 'nosuchmodel'"),
    (lambda d: d["datasets"]["test"].update(sim="gauss_b999"), "datasets: test: gauss_b999: no such sim preset"),
    (lambda d: d["datasets"]["test"].update(sim="../../../etc/passwd"), "a path with '..' is refused"),
    (lambda d: d["training"]["overrides"].append("train.nosuch=1"), "unknown config key 'train.nosuch'"),
    (lambda d: d["models"].append({"model": "cnn", "name": "cnn2", "overrides": ["model.encoder=oops"]}),
     "models: cnn2: model 'cnn': encoder: expected a list"),
])
def test_a_bad_entry_fails_before_anything_runs_also_under_dry_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: object, message: str) -> None:
    study = _study(tmp_path, edit)
    out = tmp_path / "out"
    for extra in (["--dry-run"], ["--list"], []):
        rc, _, err = _cli(capsys, "study", str(study), "--out", str(out), *extra)
        assert rc == 2 and err.count("\n") == 1 and message in err, err
        assert not out.exists()


def test_training_on_a_test_set_is_warned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = _study(tmp_path, lambda d: d.update(evaluate_on=["test", "train"]))
    rc, out, err = _cli(capsys, "study", str(study), "--out", str(tmp_path / "out"), "--dry-run")
    assert rc == 0 and "would run evaluate:cnn:1:train" in out
    assert "pfgraph: warning:" in err and "evaluated on 'train', the dataset it trains on" in err


def test_an_empty_or_duplicated_study_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    rc, _, err = _cli(capsys, "study", str(empty), "--dry-run")
    assert rc == 2 and err == f"pfgraph: error: {empty}: missing config keys 'name', 'datasets', 'train_on', " \
                              "'evaluate_on', 'models'\n"
    dup = tmp_path / "dup.yaml"
    dup.write_text(TINY.read_text() + "name: other\n")
    rc, _, err = _cli(capsys, "study", str(dup), "--dry-run")
    assert rc == 2 and "duplicate key 'name'" in err


def test_a_study_never_overwrites_a_users_files_or_the_study_it_reads(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "RESULTS.md").write_text("# my hand-written results\n")
    rc, _, err = _cli(capsys, "study", str(TINY), "--out", str(out), "--only", "simulate:test")
    assert rc == 2 and "RESULTS.md: exists and was not written by pfgraph" in err
    assert (out / "RESULTS.md").read_text() == "# my hand-written results\n"
    (out / "RESULTS.md").unlink()
    (out / "notes.txt").write_text("x")
    rc, _, err = _cli(capsys, "study", str(TINY), "--out", str(out), "--only", "simulate:test")
    assert rc == 2 and "holds files pfgraph study did not write (notes.txt); it is not a study folder" in err
    (out / "notes.txt").unlink()
    own = out / "study.yaml"  # the study file read lies where the resolved copy goes: it stays as it is
    own.write_text("# my study, with comments\n" + TINY.read_text())
    rc, _, _ = _cli(capsys, "study", str(own), "--out", str(out), "--only", "simulate:test")
    assert rc == 0 and own.read_text().startswith("# my study, with comments\n")


def test_a_second_study_on_one_folder_is_refused_naming_the_holder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with folder_lock(out, "study"):
        rc, _, err = _cli(capsys, "study", str(TINY), "--out", str(out), "--only", "simulate:test")
    assert rc == 2 and err.count("\n") == 1 and "in use by pfgraph study pid=" in err
    assert sorted(p.name for p in out.iterdir()) == []
