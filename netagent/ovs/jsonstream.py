"""A JSON-RPC stream parser for python-ovs built on the standard library's C scanner.

python-ovs (under ovsdbapp) parses every message from ovsdb-server with ``ovs.json.Parser``.
Unless python-ovs was built against libopenvswitch (the optional ``ovs._json`` extension:
PyPI's sdist builds it only where the library and headers are installed; Debian ships
no ``libopenvswitch-dev``), that parser is pure Python, one method call per character: a
third of a 500-port transaction here went to parsing the monitor update that follows it,
and every (re)connect parses the whole replica.

:class:`StreamParser` has the interface python-ovs's ``jsonrpc.Connection`` uses (``feed``
returns how many characters of its argument belong to the current message, ``is_done``,
``finish`` returns the value or an error string). It finds where a message ends with one
regular expression over strings and brackets (each character is looked at once, in C), then
parses the message with :func:`json.loads`.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

LOG = logging.getLogger(__name__)

_SPACE = " \t\n\r"
#: Brackets, whole strings, or the opening quote of a string not complete yet.
_TOKEN = re.compile(r'[{}\[\]]|"(?:[^"\\]|\\.)*"|"')


class StreamParser:
    """One JSON value read from a stream in pieces (a drop-in for ``ovs.json.Parser``)."""

    def __init__(self, check_trailer: bool = False) -> None:
        self.check_trailer = check_trailer
        self._buffer = ""
        self._scan = 0
        self._depth = 0
        self._done = False
        self._value: Any = None
        self._error: str | None = None

    def feed(self, s: str) -> int:
        """Take text; :returns: how much of ``s`` belongs to this value (all of it until
        the value is complete, then up to its end)."""
        if self._done:
            return 0
        start = len(self._buffer)
        self._buffer += s
        for match in _TOKEN.finditer(self._buffer, self._scan):
            piece = match.group()
            if piece == '"':  # a string continues in the next piece of text
                self._scan = match.start()
                return len(s)
            if piece in ("{", "["):
                self._depth += 1
            elif piece in ("}", "]"):
                self._depth -= 1
                if self._depth <= 0:
                    self._complete(self._buffer[: match.end()])
                    return match.end() - start
        self._scan = len(self._buffer)
        return len(s)

    def _complete(self, text: str) -> None:
        self._done, self._buffer = True, ""
        try:
            self._value = json.loads(text)
        except ValueError as exc:
            self._error = str(exc)

    def is_done(self) -> bool:
        return self._done

    def finish(self) -> Any:
        """The value, or a string describing the error (python-ovs's convention)."""
        if not self._done:
            text = self._buffer.strip(_SPACE)
            if not text:
                return "empty input stream"
            self._complete(text)  # a scalar, or a truncated value (an error)
        if self._error is not None:
            return self._error
        return self._value


def install() -> bool:
    """Make python-ovs parse with :class:`StreamParser` when it has only its pure-Python
    parser (the ``ovs._json`` extension, where present, is as fast and is kept).

    :returns: whether :class:`StreamParser` is in use now.
    """
    import ovs.json  # noqa: PLC0415 - python-ovs comes with ovsdbapp, used only on OVS hosts

    if ovs.json.Parser is StreamParser:
        return True
    if ovs.json.PARSER != ovs.json.PARSER_PY:
        return False
    ovs.json.Parser = StreamParser
    LOG.debug("python-ovs parses JSON with the standard library's decoder")
    return True
