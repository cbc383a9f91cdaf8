"""One client class per neutron-server API the agent calls (§2, §3, §4.2, §5.1).

Every call carries the admin context and pins its message version; each client has a
``version_cap`` so that a call newer than what netagent was written against fails locally
(``RPCVersionCapError``) instead of reaching the server. Calls time out after
``rpc_response_timeout`` seconds; a method that times out gets its timeout doubled for the
next attempt, up to ``[neutron] rpc_response_max_timeout``, as Neutron's own agents do
(neutron-lib ``rpc.BackingOffClient``). Retrying is the caller's business: the source's
worker retries the whole pass with backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import oslo_messaging

from netagent.rpc import transport as rpc_transport

LOG = logging.getLogger(__name__)

TOPIC_PLUGIN = "q-plugin"
TOPIC_REPORTS = "q-reports-plugin"
TOPIC_L3_PLUGIN = "q-l3-plugin"
#: Reconnection attempts per message before a call fails with MessageDeliveryFailure.
#: Finite, so that a broker outage surfaces as a failed pass (and later a full resync)
#: instead of a worker blocked for as long as the outage lasts.
CALL_RETRY = 3


class _Client:
    """An RPC client with per-method timeouts that double after each timeout.

    :param transport: from :func:`netagent.rpc.transport.build_transport`.
    :param topic: the server topic.
    :param version_cap: highest message version this client may send.
    :param timeout: initial call timeout in seconds; ``None`` takes oslo.messaging's
        ``[DEFAULT] rpc_response_timeout``.
    :param max_timeout: upper bound of the doubled timeout.
    :param retry: connection retries per message (``None``: forever).
    """

    def __init__(
        self,
        transport: Any,
        topic: str,
        version_cap: str,
        timeout: float | None,
        max_timeout: float,
        *,
        retry: int | None = CALL_RETRY,
    ) -> None:
        target = oslo_messaging.Target(topic=topic, version="1.0")
        self.client = oslo_messaging.get_rpc_client(
            transport, target, version_cap=version_cap, retry=retry
        )
        if timeout is None:  # registered by the client constructor above
            timeout = float(transport.conf.rpc_response_timeout)
        self.initial_timeout = timeout
        self.max_timeout = max(max_timeout, timeout)
        self._timeouts: dict[str, float] = {}
        self._lock = threading.Lock()

    def timeout_for(self, method: str) -> float:
        """The timeout the next call of ``method`` will use."""
        with self._lock:
            return self._timeouts.get(method, self.initial_timeout)

    def _call(self, method: str, version: str, **kwargs: Any) -> Any:
        timeout = self.timeout_for(method)
        cctxt = self.client.prepare(version=version, timeout=timeout)
        try:
            return cctxt.call(rpc_transport.admin_context(), method, **kwargs)
        except oslo_messaging.MessagingTimeout:
            self._timed_out(method, timeout)
            raise

    def _timed_out(self, method: str, timeout: float) -> None:
        new = min(timeout * 2, self.max_timeout)
        with self._lock:
            if new > self._timeouts.get(method, self.initial_timeout):
                self._timeouts[method] = new
                LOG.warning(
                    "RPC %s timed out after %.0f s; its next calls wait %.0f s. If the "
                    "server is not down it may be overloaded.",
                    method,
                    timeout,
                    new,
                )
            else:
                LOG.warning("RPC %s timed out after %.0f s", method, timeout)

    def _cast(self, method: str, version: str, **kwargs: Any) -> None:
        self.client.prepare(version=version).cast(rpc_transport.admin_context(), method, **kwargs)


class PluginApi(_Client):
    """ML2's L2 agent API on ``q-plugin`` (server endpoint ``RpcCallbacks``, 1.9).

    Version history of the methods used here (server side):

    - 1.3: ``get_device_details`` takes the host.
    - 1.4: ``tunnel_sync`` takes the host.
    - 1.5: ``get_devices_details_list_and_failed_devices``, ``update_device_list``.
    - 1.6: ``get_network_details``.
    - 1.9: ``update_device_list``/``update_device_up`` take ``refresh_tunnels``; devices
      may be ``[mac, pci_slot]`` lists. The server endpoint is at 1.9 in Neutron 29.

    The client is capped at 1.9: on ``q-plugin`` a 1.10 call would reach the DHCP endpoint
    and fail with ``NoSuchMethod`` (§1.5).
    """

    VERSION_CAP = "1.9"

    def __init__(self, transport: Any, timeout: float | None, max_timeout: float) -> None:
        super().__init__(transport, TOPIC_PLUGIN, self.VERSION_CAP, timeout, max_timeout)

    def get_devices_details_list_and_failed_devices(
        self, devices: Sequence[str], agent_id: str, host: str
    ) -> Any:
        """Details of many devices at once (§4.2).

        :param devices: full port ids or bare id prefixes (no ``tap`` stripping here).
        :returns: ``{"devices": [details...], "failed_devices": [device...]}`` (unchecked).
        """
        return self._call(
            "get_devices_details_list_and_failed_devices",
            "1.5",
            devices=list(devices),
            agent_id=agent_id,
            host=host,
        )

    def update_device_list(
        self,
        devices_up: Sequence[str],
        devices_down: Sequence[str],
        agent_id: str,
        host: str,
        refresh_tunnels: bool = False,
    ) -> Any:
        """Report devices wired (up) and gone or admin-down (down) (§4.2, §4.4).

        :returns: ``{"devices_up", "failed_devices_up", "devices_down",
            "failed_devices_down"}`` (unchecked).
        """
        return self._call(
            "update_device_list",
            "1.9",
            devices_up=list(devices_up),
            devices_down=list(devices_down),
            agent_id=agent_id,
            host=host,
            refresh_tunnels=refresh_tunnels,
        )

    def tunnel_sync(self, tunnel_ip: str, tunnel_type: str, host: str) -> Any:
        """Register this host's tunnel endpoint; returns every endpoint the server knows.

        :returns: ``{"tunnels": [{"ip_address": ..., "host": ...}, ...]}`` (unchecked).
        """
        return self._call(
            "tunnel_sync", "1.4", tunnel_ip=tunnel_ip, tunnel_type=tunnel_type, host=host
        )

    def get_network_details(self, network: str, agent_id: str, host: str) -> Any:
        """The API dict of one network (§4.2)."""
        return self._call(
            "get_network_details", "1.6", network=network, agent_id=agent_id, host=host
        )


class SecurityGroupServerApi(_Client):
    """The security group API on ``q-plugin`` (``SecurityGroupServerRpcCallback``, 1.3).

    Version history (server side):

    - 1.1: ``security_group_rules_for_devices``.
    - 1.2: ``security_group_info_for_devices`` (rules per group plus member IPs).
    - 1.3: member IPs as ``[ip, mac]`` pairs when the caller passes ``call_version``.
    """

    VERSION_CAP = "1.3"

    def __init__(self, transport: Any, timeout: float | None, max_timeout: float) -> None:
        super().__init__(transport, TOPIC_PLUGIN, self.VERSION_CAP, timeout, max_timeout)

    def security_group_info_for_devices(self, devices: Sequence[str]) -> Any:
        """Rules, remote-group members and provider rules for ``devices`` (§5.1).

        :returns: ``{"devices": {...}, "security_groups": {...}, "sg_member_ips": {...}}``
            (unchecked).
        """
        return self._call(
            "security_group_info_for_devices",
            "1.3",
            devices=list(devices),
            call_version="1.3",
        )


class L3PluginApi(_Client):
    """The L3 agent API on ``q-l3-plugin`` (server endpoint ``L3RpcCallback``, §6.2).

    Version history of the methods used here (server side):

    - 1.0: ``sync_routers``.
    - 1.1: ``update_floatingip_statuses``.
    - 1.9: ``get_router_ids``.
    """

    VERSION_CAP = "1.9"

    def __init__(self, transport: Any, timeout: float | None, max_timeout: float) -> None:
        super().__init__(transport, TOPIC_L3_PLUGIN, self.VERSION_CAP, timeout, max_timeout)

    def get_router_ids(self, host: str) -> Any:
        """Ids of the routers scheduled to ``host`` (unhosted ones are scheduled first).

        :returns: a list of router ids (unchecked).
        """
        return self._call("get_router_ids", "1.9", host=host)

    def sync_routers(self, host: str, router_ids: Sequence[str]) -> Any:
        """The router dicts of ``router_ids`` scheduled to ``host`` (§6.4); binds their
        ports to ``host``.

        :returns: a list of router dicts (unchecked).
        """
        return self._call("sync_routers", "1.0", host=host, router_ids=list(router_ids))

    def update_floatingip_statuses(self, router_id: str, fip_statuses: dict[str, str]) -> Any:
        """Set the statuses of a router's floating IPs; the router's other floating IPs
        that left it become DOWN (§6.2)."""
        return self._call(
            "update_floatingip_statuses",
            "1.1",
            router_id=router_id,
            fip_statuses=dict(fip_statuses),
        )


#: The version ``report_state`` is sent with (see :meth:`StateReportApi.report_state`).
REPORT_STATE_VERSION = "1.1"


class StateReportApi(_Client):
    """Agent registration and liveness on ``q-reports-plugin`` (``AgentExtRpcCallback``).

    Version history (server side):

    - 1.0: ``report_state``.
    - 1.1: ``report_state`` returns the agent status (``new``/``alive``/``revived``).
    - 1.2: ``has_alive_neutron_server``.
    - 1.3, 1.4: ``get_agents``, ``delete_agent``.

    ``report_state`` is sent as a call with the report interval as timeout (§3) and no
    doubling: a report that waits longer than an interval is worthless.
    """

    VERSION_CAP = "1.4"

    def __init__(self, transport: Any, timeout: float) -> None:
        super().__init__(transport, TOPIC_REPORTS, self.VERSION_CAP, timeout, timeout)

    def report_state(self, agent_state: dict[str, Any], time: str) -> Any:
        """Send one state report.

        :param agent_state: the inner ``agent_state`` dict (§3); it is nested once more here.
        :param time: UTC, ``%Y-%m-%dT%H:%M:%S.%f``.
        :returns: ``"new"``, ``"alive"``, ``"revived"`` or ``None`` (unchecked).
        """
        # 1.1 (the status reply) is all report_state needs; Neutron 2024.2 (25.x, the
        # takeover's server) serves only up to 1.3 and refuses 1.4 (UnsupportedVersion)
        cctxt = self.client.prepare(version=REPORT_STATE_VERSION, timeout=self.initial_timeout)
        return cctxt.call(
            rpc_transport.admin_context(),
            "report_state",
            agent_state={"agent_state": agent_state},
            time=time,
        )
