"""The ``pfgraph`` command: simulate, inspect, schema, models, train, evaluate, predict, export, report, demo, study.

Each sub-command lives in its package's ``cmd`` module, which exposes ``register(subparsers)``.
Errors of the user's making (:class:`~pfgraph.errors.PfgraphError`) print one line and exit 2;
set ``PFGRAPH_DEBUG=1`` to see a traceback for anything else.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any

from pfgraph import __version__
from pfgraph.errors import PfgraphError, cap_line

#: Modules providing sub-commands, in help order.
COMMAND_MODULES = (
    "pfgraph.sim.cmd",
    "pfgraph.io.cmd",
    "pfgraph.models.cmd",
    "pfgraph.training.cmd",
    "pfgraph.eval.cmd",
    "pfgraph.eval.deploy_cmd",
    "pfgraph.reporting.cmd",
    "pfgraph.study.cmd",
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


def _raise_interrupt(signum: int, frame: Any) -> None:  # noqa: ARG001
    """SIGTERM handler: unwind like Ctrl-C, so temporaries are removed and one line is printed."""
    raise Interrupted(signum)


class Interrupted(KeyboardInterrupt):
    """A termination signal turned into an interrupt (``signum``: the signal's number)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    ``pfgraph: error: ...`` (exit 2) for errors of the user's making and for a full disk;
    ``pfgraph: interrupted`` (exit 130, or 128 + signal for SIGTERM) on Ctrl-C or SIGTERM;
    a closed output pipe (``pfgraph inspect F | head``) ends quietly with exit 141.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        status = args.func(args)
    except PfgraphError as exc:
        print(f"pfgraph: error: {cap_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", None)
        name = f" ({signal.Signals(signum).name})" if signum else ""
        print(f"pfgraph: interrupted{name}", file=sys.stderr)
        return 128 + signum if signum else 130
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        if exc.errno == errno.ENOSPC:
            print(f"pfgraph: error: {where}no space left on device ({exc.strerror or exc})", file=sys.stderr)
            return 2
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):  # a read-only or foreign folder: the user's to fix
            print(f"pfgraph: error: {where}{exc.strerror or exc}", file=sys.stderr)
            return 2
        return _internal_error(exc)
    except Exception as exc:  # last line of defence: one line, traceback on request
        return _internal_error(exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return int(status or 0)


def _internal_error(exc: BaseException) -> int:
    if os.environ.get("PFGRAPH_DEBUG"):
        traceback.print_exception(exc)
    msg = cap_line(str(exc).splitlines()[0], 500) if str(exc) else ""
    print(f"pfgraph: internal error: {type(exc).__name__}: {msg} (set PFGRAPH_DEBUG=1 for a traceback)", file=sys.stderr)
    return 1


def entry() -> None:
    """Console-script entry point."""
    status = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        status = 141
    sys.exit(status)


if __name__ == "__main__":
    entry()
