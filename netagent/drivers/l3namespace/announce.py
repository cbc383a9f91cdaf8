"""Gratuitous ARP / unsolicited NA sent in the background, off the reconciler's pass.

Each announcement is a few packets some 200 ms apart; sending them inline would make a
pass over many routers wait seconds. The pass queues ``(namespace, device, address)`` and
returns; one daemon thread sends them in order. A failure (the device went away) is
logged and dropped: the next change of that address announces it again.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from netagent.drivers.l3namespace.kernel import IPAddress

LOG = logging.getLogger(__name__)

Send = Callable[[str, str, IPAddress], None]


class Announcer:
    """A queue of announcements and the thread that sends them (started on first use)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._queue: queue.Queue[tuple[str, str, IPAddress]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, namespace: str, device: str, address: IPAddress) -> None:
        """Queue one announcement; never blocks."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="l3-announce", daemon=True)
                self._thread.start()
        self._queue.put((namespace, device, address))

    def wait_idle(self) -> None:
        """Block until everything queued has been sent (tests and tools)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            namespace, device, address = self._queue.get()
            try:
                self._send(namespace, device, address)
                LOG.debug("Announced %s on %s in %s", address, device, namespace)
            except Exception as exc:
                LOG.warning(
                    "Announcing %s on %s in %s failed: %s", address, device, namespace, exc
                )
            finally:
                self._queue.task_done()
