"""The ``pfgraph`` command: simulate, inspect, schema, models, train, evaluate, report, demo.

Each sub-command lives in its package's ``cmd`` module, which exposes ``register(subparsers)``.
Errors of the user's making (:class:`~pfgraph.errors.PfgraphError`) print one line and exit 2;
set ``PFGRAPH_DEBUG=1`` to see a traceback for anything else.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from pfgraph import __version__
from pfgraph.errors import PfgraphError

#: Modules providing sub-commands, in help order.
COMMAND_MODULES = (
    "pfgraph.sim.cmd",
    "pfgraph.io.cmd",
    "pfgraph.models.cmd",
    "pfgraph.train.cmd",
    "pfgraph.eval.cmd",
    "pfgraph.report.cmd",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="pfgraph",
        description="Deep-learning energy reconstruction for particle-flow calorimetry: "
        "simulate, train image and point-cloud models, evaluate them on one common grid.",
    )
    parser.add_argument("--version", action="version", version=f"pfgraph {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a missing dependency inside the module is a real error
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        status = args.func(args)
    except PfgraphError as exc:
        print(f"pfgraph: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pfgraph: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last line of defence: one line, traceback on request
        if os.environ.get("PFGRAPH_DEBUG"):
            traceback.print_exc()
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(f"pfgraph: internal error: {type(exc).__name__}: {msg} (set PFGRAPH_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1
    return int(status or 0)


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
