"""Helpers shared by the sub-command modules."""

from __future__ import annotations

import argparse


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """Positional ``key=value`` config overrides (e.g. ``detector.b_field=0.5 train.lr=1e-3``)."""
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted config overrides, e.g. detector.b_field=0.5")
