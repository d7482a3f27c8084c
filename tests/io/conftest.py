"""Fixtures of the I/O tests: one shared import of CERN ROOT for every ``root``-marked test."""

from __future__ import annotations

import warnings
from types import ModuleType

import pytest


@pytest.fixture(scope="session")
def ROOT() -> ModuleType:  # noqa: N802 - the module's own name reads best in the tests
    """PyROOT, imported once per session (slow); skips with the install command when absent."""
    try:
        with warnings.catch_warnings():  # the PyPI build warns on import that it is an alpha release
            warnings.simplefilter("ignore")
            import ROOT as root
    except ImportError as exc:
        pytest.skip(f"CERN ROOT is not installed ({exc}); install it with: pip install '.[root]'")
    root.gROOT.SetBatch(True)
    root.gSystem.ResetSignals()  # leave SIGSEGV/SIGINT handling to Python and pytest
    return root
