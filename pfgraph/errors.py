"""The one exception type the command line turns into a one-line error message."""

from __future__ import annotations


class PfgraphError(Exception):
    """A user-facing error: the message is one line naming file, event and field where known.

    The CLI prints ``pfgraph: error: <message>`` and exits with status 2; no traceback.
    """


class ConfigError(PfgraphError):
    """An invalid configuration: unknown key, wrong type or impossible value."""


class DataError(PfgraphError):
    """Bad input data: unreadable file, missing branch, wrong shape/dtype, NaN/Inf, schema."""


def require(condition: bool, message: str, exc: type[PfgraphError] = PfgraphError) -> None:
    """Raise ``exc(message)`` unless ``condition`` holds."""
    if not condition:
        raise exc(message)
