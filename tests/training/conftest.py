"""Trainer tests: keep the session's torch thread count (runs set ``train.threads=1``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def restore_threads() -> Iterator[None]:
    """Give the rest of the session its thread count back after each test."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
