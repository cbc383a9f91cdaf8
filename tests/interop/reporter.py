"""A stand-in agent that only sends state reports (for testing the mechanism driver alone).

It speaks exactly §3 of neutron-wire.md with oslo.messaging, independently of netagent's
own Neutron source, so that binding can be checked against the real server even while
the agent side is in progress.
"""

from __future__ import annotations

import datetime
import threading
import uuid
from typing import Any

import oslo_messaging
from oslo_config import cfg

from netagent.common import constants


class StateReporter:
    """Reports ``configurations`` for ``host`` every ``interval`` seconds from a thread."""

    def __init__(
        self, transport_url: str, host: str, configurations: dict[str, Any], interval: float
    ) -> None:
        self.host = host
        self.configurations = configurations
        self.interval = interval
        self.replies: list[Any] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        oslo_messaging.set_transport_defaults(control_exchange="neutron")
        # The global CONF: oslo.messaging 18.3 registers its tracing options only there.
        self._transport = oslo_messaging.get_rpc_transport(cfg.CONF, url=transport_url)
        target = oslo_messaging.Target(topic="q-reports-plugin", version="1.0")
        self._client = oslo_messaging.get_rpc_client(self._transport, target)

    def report(self, start_flag: bool = False) -> Any:
        """Send one report (a call, as the reference agents do); returns the reply."""
        state = {
            "binary": constants.AGENT_BINARY,
            "host": self.host,
            "topic": "N/A",
            "agent_type": constants.AGENT_TYPE,
            "availability_zone": "nova",
            "configurations": self.configurations,
            "start_flag": start_flag,
            "uuid": str(uuid.uuid4()),
        }
        now = datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        ctxt = {"is_admin": True, "roles": ["admin"], "user_id": None, "project_id": None}
        cctxt = self._client.prepare(version="1.4", timeout=max(self.interval, 5))
        reply = cctxt.call(ctxt, "report_state", agent_state={"agent_state": state}, time=now)
        self.replies.append(reply)
        return reply

    def start(self) -> None:
        """Report once (start_flag) now, then every interval until :meth:`stop`."""
        self.report(start_flag=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"reporter-{self.host}")
        self._thread.daemon = True
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.report()
            except oslo_messaging.MessagingException:
                continue

    def stop(self) -> None:
        """Stop reporting (the server will declare the agent dead after agent_down_time)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 10)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self._transport.cleanup()
