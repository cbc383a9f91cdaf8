"""A JSON-RPC stream parser for python-ovs built on the standard library's C scanner.

python-ovs (under ovsdbapp) parses every message from ovsdb-server with ``ovs.json.Parser``.
Unless python-ovs was built against libopenvswitch (the optional ``ovs._json`` extension:
PyPI's sdist builds it only where the library and headers are installed; Debian ships
no ``libopenvswitch-dev``), that parser is pure Python, one method call per character: a
third of a 500-port transaction here went to parsing the monitor update that follows it,
and every (re)connect parses the whole replica.

:class:`StreamParser` has the interface python-ovs's ``jsonrpc.Connection`` uses (``feed``
returns how many characters of its argument belong to the current message, ``is_done``,
``finish`` returns the value or an error string). It finds where a message ends with a
few regular expressions and ``itertools.accumulate`` (each character is looked at once, in
C), then parses the message with :meth:`json.JSONDecoder.raw_decode`.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from typing import Any

LOG = logging.getLogger(__name__)

_SPACE = " \t\n\r"
#: A whole string, in the "unrolled loop" form (each character can be matched one way only,
#: so a string that does not end yet fails in linear time). No possessive quantifiers:
#: Debian 12's Python 3.11.2 matched them wrongly here (3.11.7 does not).
_STRING_BODY = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_STRING = re.compile(_STRING_BODY)
#: The text before the first string not complete yet: text without quotes, then whole
#: strings each followed by such text; it stops at an unfinished string's quote.
_SCANNED = re.compile(rf'[^"]*(?:{_STRING_BODY}[^"]*)*')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH = {"{": 1, "[": 1, "}": -1, "]": -1}
_DECODER = json.JSONDecoder()


class StreamParser:
    """One JSON value read from a stream in pieces (a drop-in for ``ovs.json.Parser``).

    Each piece is looked at once, by the standard library's C code: regular expressions
    drop the strings and keep the brackets, ``itertools.accumulate`` follows the nesting
    depth, and when it returns to zero the value is decoded with ``raw_decode``, which
    also says where it ends (python-ovs hands over the rest for the next message).
    """

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
        match = _SCANNED.match(self._buffer, self._scan)
        end = match.end() if match else self._scan
        brackets = _NOT_BRACKET.sub("", _STRING.sub("", self._buffer[self._scan : end]))
        self._scan = end
        if not brackets:
            return len(s)
        depths = list(itertools.accumulate(map(_DEPTH.__getitem__, brackets), initial=self._depth))
        self._depth = depths[-1]
        if min(depths[1:]) > 0:
            return len(s)
        self._done = True
        begin = len(self._buffer) - len(self._buffer.lstrip(_SPACE))
        try:
            self._value, used = _DECODER.raw_decode(self._buffer, begin)
        except ValueError as exc:
            self._error, used = str(exc), len(self._buffer)
        self._buffer = ""
        return used - start

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
