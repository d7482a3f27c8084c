"""The one exception type the command line turns into a one-line error message."""

from __future__ import annotations

import os
from typing import Any


class PfgraphError(Exception):
    """A user-facing error: the message is one line naming file, event and field where known.

    The CLI prints ``pfgraph: error: <message>`` and exits with status 2; no traceback.
    """


class ConfigError(PfgraphError):
    """An invalid configuration: unknown key, wrong type or impossible value."""


class DataError(PfgraphError):
    """Bad input data: unreadable file, missing branch, wrong shape/dtype, NaN/Inf, schema.

    Like uproot's ``KeyInFileError``, it carries where the problem is as attributes, and its
    one-line message is built from them::

        DataError("implausible value 2.9e+29 GeV", path="data/b050.root", entry=5, field="truth")
        # data/b050.root: event 5, branch 'truth': implausible value 2.9e+29 GeV

    ``path``: the file (None when not known); ``entry``: the event (entry) number; ``field``: the
    branch or field; ``what``: the message without the location. A message given alone (the
    older form, location already in the text) is kept as it is, with the attributes None.
    """

    def __init__(self, what: str = "", *, path: str | os.PathLike[str] | None = None, entry: int | None = None,
                 field: str | None = None) -> None:
        self.what = what
        self.path = None if path is None else os.fspath(path)
        self.entry = entry
        self.field = field
        super().__init__(self.line())

    def line(self) -> str:
        """The one-line message: ``<path>: event <entry>, branch '<field>': <what>`` (known parts only)."""
        at = ", ".join(([f"event {self.entry}"] if self.entry is not None else [])
                       + ([f"branch '{self.field}'"] if self.field is not None else []))
        return ": ".join(part for part in (self.path, at, self.what) if part)

    def __reduce__(self) -> tuple[Any, ...]:  # keeps the attributes across processes (simulation workers)
        return (_data_error, (self.what, self.path, self.entry, self.field))


def _data_error(what: str, path: str | None, entry: int | None, field: str | None) -> DataError:
    return DataError(what, path=path, entry=entry, field=field)


def require(condition: bool, message: str, exc: type[PfgraphError] = PfgraphError) -> None:
    """Raise ``exc(message)`` unless ``condition`` holds."""
    if not condition:
        raise exc(message)


#: The most characters of a user's value an error message quotes (a value can be megabytes long).
QUOTE_LIMIT = 200
#: The most characters of one error line the command line prints.
LINE_LIMIT = 2000


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters (``... (N characters)``).

    A container is cut while it is being written, so quoting a value that YAML aliases blew up
    to gigabytes costs no more than ``limit`` characters."""
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = limit
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 20
    short.maxlevel = 4
    text = short.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def cap_line(text: str, limit: int = LINE_LIMIT) -> str:
    """One line of at most ``limit`` characters (the rest replaced by ``... (N more characters)``)."""
    text = " ".join(str(text).split("\n"))
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"
