"""Which network devices exist, learnt from netlink notifications instead of polling.

:class:`LinkMonitor` opens a notification socket, dumps the current devices, then replays
notifications in a thread of its own and calls back "device X appeared (ifindex N)" or
"device X vanished". Because the socket is subscribed before the dump, nothing is missed;
notifications already reflected in the dump are filtered out by comparing ifindexes. If the
kernel drops notifications (buffer overflow), the monitor dumps again and reports the
difference, so callers always end up with the true picture.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from netagent.privileged import link_events

LOG = logging.getLogger(__name__)

#: ``callback(name, ifindex)`` with ``ifindex=None`` when the device vanished.
DeviceCallback = Callable[[str, "int | None"], None]

_RETRY_S = 1.0


class LinkMonitor:
    """Watches the devices of one network namespace.

    :param namespace: namespace to watch; ``None`` watches the agent's own.
    :param name_filter: only devices whose name passes it are reported (all are tracked,
        so that a rename into a matching name is seen).
    """

    def __init__(
        self,
        namespace: str | None = None,
        name_filter: Callable[[str], bool] | None = None,
    ) -> None:
        self.namespace = namespace
        self._filter = name_filter or (lambda _name: True)
        self._lock = threading.Lock()
        self._by_index: dict[int, str] = {}
        self._callback: DeviceCallback | None = None
        self._socket: link_events.LinkEventSocket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, callback: DeviceCallback) -> dict[str, int]:
        """Subscribe, dump, and start reporting changes to ``callback``.

        :param callback: called from the monitor's thread for each change after the dump;
            it must return quickly.
        :returns: the devices that exist now (name -> ifindex), filtered.
        :raises NamespaceNotFound: the namespace does not exist.
        :raises KernelError: the first dump failed.
        """
        self._callback = callback
        self._socket = link_events.LinkEventSocket(self.namespace)
        try:
            self._resync(notify=False)
        except BaseException:
            self._socket.close()
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"link-monitor-{self.namespace or 'host'}", daemon=True
        )
        self._thread.start()
        return self.devices()

    def stop(self) -> None:
        """Stop the thread and close the socket. Idempotent."""
        self._stop.set()
        if self._socket is not None:
            self._socket.interrupt()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def devices(self) -> dict[str, int]:
        """The devices known now (name -> ifindex), filtered."""
        with self._lock:
            return {name: idx for idx, name in self._by_index.items() if self._filter(name)}

    def _run(self) -> None:
        while not self._stop.is_set():
            sock = self._socket
            if sock is None:
                return
            try:
                events = sock.read()
            except link_events.LinkEventsLostError as exc:
                LOG.warning("%s; dumping the devices again", exc)
                self._resync_logged()
                continue
            except OSError:
                if self._stop.is_set():
                    return
                LOG.exception("Reading link notifications failed; reopening the socket")
                self._reopen()
                continue
            for event in events:
                self._apply(event)

    def _reopen(self) -> None:
        while not self._stop.wait(_RETRY_S):
            try:
                if self._socket is not None:
                    self._socket.close()
                self._socket = link_events.LinkEventSocket(self.namespace)
            except Exception:
                LOG.exception("Cannot reopen the link notification socket")
                continue
            self._resync_logged()
            return

    def _resync_logged(self) -> None:
        while not self._stop.is_set():
            try:
                self._resync(notify=True)
                return
            except Exception:
                LOG.exception("Dumping devices failed; retrying")
                self._stop.wait(_RETRY_S)

    def _resync(self, notify: bool) -> None:
        current = {event.ifindex: event.name for event in link_events.dump_links(self.namespace)}
        with self._lock:
            old = self._by_index
            self._by_index = current
        if not notify:
            return
        old_names = {name: idx for idx, name in old.items()}
        new_names = {name: idx for idx, name in current.items()}
        for name, idx in old_names.items():
            if new_names.get(name) != idx:
                self._notify(name, None)
        for name, idx in new_names.items():
            if old_names.get(name) != idx:
                self._notify(name, idx)

    def _apply(self, event: link_events.LinkEvent) -> None:
        changes: list[tuple[str, int | None]] = []
        with self._lock:
            known = self._by_index.get(event.ifindex)
            if event.present:
                if known == event.name:
                    return
                if known is not None:
                    changes.append((known, None))  # renamed
                for idx, name in list(self._by_index.items()):
                    if name == event.name and idx != event.ifindex:
                        del self._by_index[idx]  # its deletion notification was lost
                self._by_index[event.ifindex] = event.name
                changes.append((event.name, event.ifindex))
            else:
                if known is None:
                    return
                del self._by_index[event.ifindex]
                changes.append((known, None))
        for name, change in changes:
            self._notify(name, change)

    def _notify(self, name: str, ifindex: int | None) -> None:
        if self._callback is None or not self._filter(name):
            return
        LOG.debug("Device %s %s", name, "vanished" if ifindex is None else f"appeared ({ifindex})")
        try:
            self._callback(name, ifindex)
        except Exception:
            LOG.exception("Device callback failed for %s", name)
