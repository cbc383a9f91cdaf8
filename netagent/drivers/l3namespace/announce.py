"""Gratuitous ARP / unsolicited NA sent in the background, off the reconciler's pass.

Each announcement is a few packets some 200 ms apart; sending them inline would make a
pass over many routers wait seconds. The pass queues ``(namespace, device, address)`` and
returns; one daemon thread sends them in order.

A new router port carries nothing until the L2 driver has wired its host end (a later
pass; a veth whose peer is down drops what is sent without an error), so the kernel layer
refuses to send before that, and a refused or failed announcement is tried again every
:data:`RETRY_INTERVAL` seconds, at most :data:`ATTEMPTS` times (10 s), then logged and
dropped (the next change of that address announces it again). One whose namespace or
device is gone (the router or its port was deleted meanwhile) is dropped at once.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable

from netagent.drivers.l3namespace.kernel import IPAddress
from netagent.linux.errors import DeviceNotFound, NamespaceNotFound

LOG = logging.getLogger(__name__)

Send = Callable[[str, str, IPAddress], None]
Item = tuple[str, str, IPAddress]

RETRY_INTERVAL = 0.25
ATTEMPTS = 40


class Announcer:
    """A queue of announcements and the thread that sends them (started on first use).

    :param retry_interval: seconds between attempts of an announcement that failed.
    :param attempts: attempts before one is dropped.
    """

    def __init__(
        self, send: Send, retry_interval: float = RETRY_INTERVAL, attempts: int = ATTEMPTS
    ) -> None:
        self._send = send
        self._retry_interval = retry_interval
        self._attempts = attempts
        self._queue: queue.Queue[Item] = queue.Queue()
        self._later: list[tuple[float, int, Item, int]] = []
        self._seq = itertools.count()
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
        """Block until everything queued has been sent or dropped (tests and tools)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            timeout = None
            if self._later:
                timeout = max(self._later[0][0] - time.monotonic(), 0.0)
            try:
                item, attempt = self._queue.get(timeout=timeout), 1
            except queue.Empty:
                _, _, item, attempt = heapq.heappop(self._later)
            self._try(item, attempt)

    def _try(self, item: Item, attempt: int) -> None:
        namespace, device, address = item
        try:
            self._send(namespace, device, address)
        except (NamespaceNotFound, DeviceNotFound) as exc:
            LOG.debug("Not announcing %s on %s in %s: %s", address, device, namespace, exc)
        except Exception as exc:
            if attempt < self._attempts:
                due = time.monotonic() + self._retry_interval
                heapq.heappush(self._later, (due, next(self._seq), item, attempt + 1))
                return
            LOG.warning(
                "Announcing %s on %s in %s failed %d times, last: %s",
                address,
                device,
                namespace,
                attempt,
                exc,
            )
        else:
            LOG.debug("Announced %s on %s in %s", address, device, namespace)
        self._queue.task_done()
