"""``pfgraph schema`` and ``docs/SCHEMA.md`` come from pfgraph/io/schema.py and do not drift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pfgraph import cli, geometry
from pfgraph.io import schema
from pfgraph.io.schema_doc import render_markdown, render_text

DOC = Path(__file__).resolve().parents[2] / "docs" / "SCHEMA.md"


def test_docs_schema_md_is_generated_from_schema() -> None:
    assert DOC.read_text() == render_markdown(), (
        "docs/SCHEMA.md differs from pfgraph/io/schema.py: run `pfgraph schema --markdown --out docs/SCHEMA.md`")


def test_schema_command_prints_every_tree_and_branch(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schema"]) == 0
    out = capsys.readouterr().out
    assert out == render_text()
    blocks = {block.splitlines()[0].split("'")[1]: block.splitlines()
              for block in out.split("\n\n") if block.startswith("tree '")}
    assert list(blocks) == [t.name for t in schema.TREES]
    for tree in schema.TREES:
        for b in tree.branches:
            row = next((line for line in blocks[tree.name] if line.split()[:1] == [b.name]), None)
            assert row is not None, b.name
            assert b.root_type in row and b.doc in row, b.name
            if b.unit:
                assert f" {b.unit} " in row, b.name
    for key, _ in schema.META_FIELDS:
        assert key in out


def test_schema_markdown_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schema", "--markdown"]) == 0
    assert capsys.readouterr().out == render_markdown()
    assert cli.main(["schema", "--markdown", "--out", str(tmp_path / "S.md")]) == 0
    assert (tmp_path / "S.md").read_text() == render_markdown()
    md = render_markdown()
    for tree in schema.TREES:
        for b in tree.branches:
            assert f"| `{b.name}` | `{b.root_type}` | `{b.rntuple_type}` |" in md, b.name
    assert "## Schema versions and migration policy" in md
    for version in schema.SCHEMA_HISTORY:
        assert f"| {version} |" in md


def test_branch_specs_are_consistent() -> None:
    for tree in schema.TREES:
        names = [b.name for b in tree.branches]
        assert len(names) == len(set(names)), tree.name
        for b in tree.branches:
            assert b.kind in ("scalar", "image", "jagged", "counter"), b.name
            assert b.doc and np.dtype(b.dtype) == b.np_dtype
            if b.kind == "image":
                assert b.shape == () and b.shape_for(geometry.IMSIZE) == (geometry.IMSIZE, geometry.IMSIZE)
            else:
                assert b.shape == ()
            if b.kind == "jagged":  # the counter is a branch of the same tree, present whenever the field is
                counter = next(c for c in tree.branches if c.name == b.counter_name)
                assert counter.kind == "counter" and counter.dtype == "int32"
                assert b.optional or not counter.optional
    assert schema.MIN_SCHEMA_VERSION <= schema.SCHEMA_VERSION
    assert set(schema.SCHEMA_HISTORY) == set(range(1, schema.SCHEMA_VERSION + 1))
    assert {m.to_version for m in schema.MIGRATIONS} <= set(range(schema.MIN_SCHEMA_VERSION + 1, schema.SCHEMA_VERSION + 1))
