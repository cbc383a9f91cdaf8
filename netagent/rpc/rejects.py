"""Malformed input from the wire: each rejection logged exactly once, warnings bounded.

A notification or reply that netagent cannot use is dropped where it is found. The first
rejection of each kind (where it was found, and why) is logged at WARNING with the
offending value (its id when it has one); later ones of the same kind at DEBUG, so a
misbehaving or hostile sender cannot flood the log. Every rejection is counted by kind.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from netagent.model import validate as v

LOG = logging.getLogger(__name__)


class Rejections:
    """Thread-safe rejection log and counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def reject(self, where: str, reason: str, value: object) -> None:
        """Log and count one rejected object.

        :param where: the method or reply it came in (``port_update``...).
        :param reason: why it is unusable (a fixed text: it is the kind's key).
        :param value: the offending value, shown shortened and escaped.
        """
        key = (where, reason)
        with self._lock:
            self._counts[key] += 1
            first = self._counts[key] == 1
        log = LOG.warning if first else LOG.debug
        log(
            "Ignoring %s: %s: %s%s",
            where,
            reason,
            v.show(value),
            " (first of its kind; more are logged at debug level)" if first else "",
        )

    def counts(self) -> dict[str, int]:
        """Rejections so far, by ``"<where>: <reason>"``."""
        with self._lock:
            return {f"{where}: {reason}": n for (where, reason), n in self._counts.items()}

    def total(self) -> int:
        """How many objects were rejected."""
        with self._lock:
            return sum(self._counts.values())


#: The agent's one rejection log (consumers and reply parsers share it).
REJECTIONS = Rejections()
