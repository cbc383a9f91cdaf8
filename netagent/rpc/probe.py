"""Whether the server's notifications may have been lost: the agent's own probe casts.

oslo.messaging tells no one that a connection broke and came back. What it does in public
is deliver casts, so every ``interval`` seconds the agent casts a numbered probe to the
host-specific queue (``<topic>.<host>``) of one of its own consumers, in turn, and checks
at the next tick that it came back. A probe cast that fails, or one that did not come
back, means the broker or the connections to it were away, and notifications cast
meanwhile may be gone: a broker restart loses the queues, and a consumer declares them
again only when it reconnects. From then on each tick probes every consumer; once one
whole round came back, every consumer is consuming again, and the source is asked for a
full resync (``on_recovered``). A failed call (:meth:`ConsumerProbe.note_broken`) does
the same.

An outage shorter than one interval that no probe ran into goes unseen here (a RabbitMQ
restart takes longer than the default interval); the state reporter, whose first report
after failed ones also asks for a full resync, and the periodic full resync remain.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import oslo_messaging

from netagent.rpc import transport as rpc_transport

LOG = logging.getLogger(__name__)

#: The probe's method name; every consumer's endpoints answer it (consumers.py).
METHOD = "netagent_probe"


class ConsumerProbe:
    """Probes the agent's own consumers; calls ``on_recovered`` after they were away.

    :param transport: the RPC transport.
    :param host: this agent's host name (the probes go to ``<topic>.<host>``).
    :param topics: the topics of the consumers to probe.
    :param interval: seconds between ticks; a probe must come back within one.
    :param on_recovered: called with a reason once every consumer answers again.
    """

    def __init__(
        self,
        transport: Any,
        host: str,
        topics: Sequence[str],
        interval: float,
        on_recovered: Callable[[str], None],
    ) -> None:
        self.interval = interval
        self._on_recovered = on_recovered
        #: probes carry it: another process's probes (or anyone's casts) are ignored
        self.token = uuid.uuid4().hex
        self._clients = {
            topic: oslo_messaging.get_rpc_client(
                transport, oslo_messaging.Target(topic=topic, server=host, version="1.0"), retry=0
            )
            for topic in topics
        }
        self._topics = list(topics)
        self._lock = threading.Lock()
        self._seq = 0
        #: topic -> sequence number of the probe cast to it at the last tick
        self._sent: dict[str, int] = {}
        #: topic -> highest sequence number that came back
        self._returned: dict[str, int] = {}
        self._broken = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def broken(self) -> bool:
        """Whether a problem was seen and not every consumer has answered since."""
        with self._lock:
            return bool(self._broken)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rpc-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop probing. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # the probe must never end: it is the resync's trigger
                LOG.exception("RPC probe failed")

    def note_broken(self, reason: str) -> None:
        """Record a problem seen elsewhere (e.g. a failed call)."""
        with self._lock:
            self._broken = self._broken or reason

    def returned(self, topic: str, token: object, seq: object) -> None:
        """A probe arrived on ``topic`` (from the consumer's endpoint; thread-safe)."""
        if token != self.token or not isinstance(seq, int) or isinstance(seq, bool):
            return
        with self._lock:
            if seq > self._returned.get(topic, -1):
                self._returned[topic] = seq

    def tick(self) -> None:
        """Check the last tick's probes, then cast the next ones (public for tests)."""
        recovered = ""
        with self._lock:
            missing = sorted(t for t, s in self._sent.items() if self._returned.get(t, -1) < s)
            if missing:
                self._broken = self._broken or f"probe not back from {', '.join(missing)}"
            elif self._broken and self._sent.keys() == set(self._topics):
                recovered, self._broken = self._broken, ""
            self._seq += 1
            seq = self._seq
            topics = self._topics if self._broken else [self._topics[seq % len(self._topics)]]
            self._sent = {}
        if recovered:
            LOG.warning(
                "Every RPC consumer answers again after %s: notifications may have been "
                "lost meanwhile, full resync",
                recovered,
            )
            self._on_recovered(f"RPC consumers answer again after {recovered}")
        for topic in topics:
            try:
                self._clients[topic].cast(
                    rpc_transport.admin_context(), METHOD, token=self.token, seq=seq
                )
            except Exception as exc:  # oslo.messaging's, or the driver's own underneath
                self.note_broken(f"probe cast to {topic} failed ({type(exc).__name__})")
                continue
            with self._lock:
                self._sent[topic] = seq
