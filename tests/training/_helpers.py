"""Helpers for the trainer tests: tiny models trained through the real command line."""

from __future__ import annotations

from pathlib import Path

import pytest

#: A tiny cnn (same code paths as the paper one) on one thread: a 96-event epoch takes ~1 s.
TINY = ("model.encoder=[4,8]", "model.decoder=[4]", "train.threads=1", "train.batch_size=16")


def train_args(data: Path | str, out: Path | str, *extra: str, model: str = "cnn", tiny: bool = True) -> list[str]:
    """``pfgraph train`` arguments for a tiny run."""
    return ["train", "--model", model, "--data", str(data), "--out", str(out), *extra, *(TINY if tiny else ())]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the ``pfgraph`` command line in-process; (exit status, stdout, stderr)."""
    from pfgraph.cli import main

    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err
