"""Shared by the benchmarks: replace one ``## Section`` of docs/BENCHMARKS.md atomically."""

from __future__ import annotations

import platform
import re
from pathlib import Path

from pfgraph.utils.atomic import atomic_write_text

DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
HEADER = ("# Benchmarks\n\nEvery figure below was written by the script named in its section, with the command "
          "shown. This machine is shared and noisy, so each benchmark compares against a baseline measured in the "
          "same run and reports the ratio.\n")


def machine() -> str:
    """A one-line description of where a benchmark ran."""
    import os

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {gpu}, Python {platform.python_version()}, torch {torch.__version__}"


def update_section(title: str, body: str) -> None:
    """Replace (or append) the section ``## title`` in docs/BENCHMARKS.md."""
    text = DOC.read_text() if DOC.exists() else HEADER
    block = f"## {title}\n\n{body.strip()}\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    DOC.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(DOC, text)
