"""Helpers shared by the sub-command modules."""

from __future__ import annotations

import argparse


def add_overrides(parser: argparse.ArgumentParser, example: str, note: str = "") -> None:
    """Positional ``key=value`` config overrides. ``example`` (shown in ``--help``) must be
    overrides the command accepts (tests/utils/test_cli_common.py runs every command's);
    ``note`` is extra help text after it."""
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help=f"dotted config overrides, e.g. {example}{'; ' + note if note else ''}")


def override_example(parser: argparse.ArgumentParser) -> list[str]:
    """The example overrides shown in ``parser``'s help (see :func:`add_overrides`)."""
    for action in parser._actions:
        if action.dest == "overrides" and action.help:
            text = action.help.split("e.g. ", 1)[1].split(";", 1)[0]
            return text.split()
    return []
