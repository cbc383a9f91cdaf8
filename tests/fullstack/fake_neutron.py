"""A stand-in for neutron-server's agent RPC side, driven from a dict.

It serves ``q-plugin`` and ``q-reports-plugin`` with the methods netagent calls, shaped as
neutron-wire.md describes them, records every call, and can misbehave on demand: return
a malformed details entry for one device, fail a method with a remote error, or answer
after a delay longer than the agent's timeout. It also casts the server's notifications.
Works over RabbitMQ (its own vhost) and over oslo.messaging's ``fake://`` transport.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

import oslo_messaging
from oslo_config import cfg

from netagent.rpc import transport as rpc_transport


class FakeError(Exception):
    """Raised by a handler on demand; the agent sees a RemoteError."""


class FakeNeutron:
    """The server side. Ports live in :attr:`ports` as device-details dicts by port id.

    :param transport: a transport of its own (built with :func:`make_transport`), or the
        agent's ``fake://`` transport.
    :ivar ports: port id → details entry (``port_id``, ``network_id``, ... as §4.2).
    :ivar security_groups: port id → list of SG ids; :ivar rules: SG id → rule dicts.
    :ivar members: SG id → ``{"IPv4": [[ip, mac], ...]}``.
    :ivar override: device → the raw details entry to return (malformed payloads).
    :ivar delay: method → seconds to sleep before answering the next call (once, then
        cleared), or a list of such delays for the next calls, one per call.
    :ivar fail: method → number of calls to fail with :class:`FakeError`.
    :ivar tunnels: the ``tunnel_sync`` answer's list.
    :ivar report_replies: answers of the next reports (then ``"alive"``).
    """

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.lock = threading.Lock()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.contexts: list[Any] = []
        self.ports: dict[str, dict[str, Any]] = {}
        self.security_groups: dict[str, list[str]] = {}
        self.rules: dict[str, list[dict[str, Any]]] = {}
        self.members: dict[str, dict[str, list[list[Any]]]] = {}
        self.override: dict[str, Any] = {}
        self.delay: dict[str, float | list[float]] = {}
        self.fail: dict[str, int] = {}
        self.tunnels: list[dict[str, str]] = []
        self.report_replies: list[Any] = []
        self.status: dict[str, str] = {}
        #: router id -> router dict as ``sync_routers`` returns it (§6.4)
        self.routers: dict[str, Any] = {}
        #: answers of the next ``sync_routers`` calls, verbatim (then :attr:`routers`)
        self.sync_routers_replies: list[Any] = []
        #: router id -> {fip id: status} of the last ``update_floatingip_statuses``
        self.fip_statuses: dict[str, dict[str, str]] = {}
        #: method → called with the arguments of each call, before it is answered
        self.hooks: dict[str, Callable[[dict[str, Any]], None]] = {}
        endpoints = [_Plugin(self), _SecurityGroups(self), _Reports(self)]
        self.servers = [
            oslo_messaging.get_rpc_server(
                transport, oslo_messaging.Target(topic=topic, server="fake-neutron"), endpoints
            )
            for topic in ("q-plugin", "q-reports-plugin")
        ]
        self.servers.append(
            oslo_messaging.get_rpc_server(
                transport,
                oslo_messaging.Target(topic="q-l3-plugin", server="fake-neutron"),
                [_L3Plugin(self)],
            )
        )

    def start(self) -> FakeNeutron:
        for server in self.servers:
            server.start()
        return self

    def stop(self) -> None:
        # Stopping a rabbit listener waits for its poll loop (seconds each): in parallel.
        threads = [threading.Thread(target=server.stop) for server in self.servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for server in self.servers:
            server.wait()

    # -- observation ----------------------------------------------------------------------

    def record(self, method: str, kwargs: dict[str, Any]) -> None:
        with self.lock:
            self.calls.append((method, copy.deepcopy(kwargs)))
            hook = self.hooks.get(method)
        if hook is not None:
            hook(kwargs)
        with self.lock:
            failures = self.fail.get(method, 0)
            if failures:
                self.fail[method] = failures - 1
            delay = self._next_delay(method)
        if delay:
            time.sleep(delay)
        if failures:
            raise FakeError(f"{method} failed on purpose")

    def _next_delay(self, method: str) -> float:
        planned = self.delay.get(method)
        if isinstance(planned, list):
            delay = planned.pop(0) if planned else 0.0
            if not planned:
                del self.delay[method]
            return delay
        self.delay.pop(method, None)
        return planned or 0.0

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        with self.lock:
            return [kwargs for name, kwargs in self.calls if name == method]

    def reports(self) -> list[dict[str, Any]]:
        """The inner ``agent_state`` of each report received."""
        return [k["agent_state"]["agent_state"] for k in self.calls_of("report_state")]

    def devices_up(self) -> set[str]:
        return {d for k in self.calls_of("update_device_list") for d in k["devices_up"]}

    def devices_down(self) -> set[str]:
        return {d for k in self.calls_of("update_device_list") for d in k["devices_down"]}

    # -- notifications ----------------------------------------------------------------------

    def cast_to(self, topic: str, host: str, method: str, version: str = "1.0", **kw: Any) -> None:
        """Cast to one agent's direct queue ``<topic>.<host>``."""
        target = oslo_messaging.Target(topic=topic, server=host, version=version)
        client = oslo_messaging.get_rpc_client(self.transport, target)
        client.cast(rpc_transport.admin_context(), method, **kw)

    def call_to(self, topic: str, host: str, method: str, version: str = "1.0", **kw: Any) -> Any:
        """Call one agent (``router_added_to_agent``), waiting at most 5 s."""
        target = oslo_messaging.Target(topic=topic, server=host, version=version)
        client = oslo_messaging.get_rpc_client(self.transport, target, timeout=5)
        return client.call(rpc_transport.admin_context(), method, **kw)

    def cast(self, topic: str, method: str, version: str = "1.0", **kwargs: Any) -> None:
        """Cast a notification to every agent (fanout), as the server's notifiers do."""
        target = oslo_messaging.Target(topic=topic, fanout=True, version=version)
        client = oslo_messaging.get_rpc_client(self.transport, target)
        client.cast(rpc_transport.admin_context(), method, **kwargs)

    # -- answers ------------------------------------------------------------------------------

    def details_for(self, device: str, host: str) -> Any:
        if device in self.override:
            return self.override[device]
        matches = [p for p in self.ports if p.startswith(device)]
        if len(matches) != 1:
            return {"device": device}
        entry = copy.deepcopy(self.ports[matches[0]])
        entry["device"] = device
        self.status[matches[0]] = "BUILD"
        return entry

    def sg_info(self, devices: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = {"devices": {}, "security_groups": {}, "sg_member_ips": {}}
        for device in devices:
            port = self.ports.get(device)
            if port is None or port.get("device_owner", "").startswith("network:"):
                continue
            groups = self.security_groups.get(device, [])
            result["devices"][device] = {
                "device": device,
                "id": device,
                "network_id": port["network_id"],
                "mac_address": port["mac_address"],
                "device_owner": port.get("device_owner", "compute:nova"),
                "fixed_ips": [ip["ip_address"] for ip in port.get("fixed_ips", [])],
                "allowed_address_pairs": [],
                "port_security_enabled": True,
                "security_groups": groups,
                "security_group_source_groups": [],
                "security_group_rules": [],
            }
            for group in groups:
                rules = self.rules.get(group, [])
                result["security_groups"][group] = rules
                for remote in {r.get("remote_group_id") for r in rules} - {None}:
                    result["sg_member_ips"][remote] = self.members.get(remote, {})
        return result


class _Plugin:
    target = oslo_messaging.Target(version="1.9")

    def __init__(self, fake: FakeNeutron) -> None:
        self.fake = fake

    def get_devices_details_list_and_failed_devices(
        self, context: Any, devices: list[str], agent_id: str, host: str
    ) -> Any:
        self.fake.record("get_devices_details_list_and_failed_devices", locals_of(locals()))
        entries = [self.fake.details_for(d, host) for d in devices]
        return {"devices": entries, "failed_devices": []}

    def update_device_list(
        self,
        context: Any,
        devices_up: list[str],
        devices_down: list[str],
        agent_id: str,
        host: str,
        refresh_tunnels: bool = False,
    ) -> Any:
        self.fake.record("update_device_list", locals_of(locals()))
        for device in devices_up:
            self.fake.status[device] = "ACTIVE"
        for device in devices_down:
            self.fake.status[device] = "DOWN"
        return {
            "devices_up": devices_up,
            "failed_devices_up": [],
            "devices_down": [{"device": d, "exists": True} for d in devices_down],
            "failed_devices_down": [],
        }

    def tunnel_sync(self, context: Any, tunnel_ip: str, tunnel_type: str, host: str) -> Any:
        self.fake.record("tunnel_sync", locals_of(locals()))
        return {"tunnels": list(self.fake.tunnels)}


class _L3Plugin:
    target = oslo_messaging.Target(version="1.13")

    def __init__(self, fake: FakeNeutron) -> None:
        self.fake = fake

    def get_router_ids(self, context: Any, host: str) -> Any:
        self.fake.record("get_router_ids", locals_of(locals()))
        return sorted(self.fake.routers)

    def sync_routers(self, context: Any, host: str, router_ids: list[str] | None = None) -> Any:
        self.fake.record("sync_routers", locals_of(locals()))
        with self.fake.lock:
            if self.fake.sync_routers_replies:
                return self.fake.sync_routers_replies.pop(0)
        wanted = self.fake.routers if router_ids is None else router_ids
        return [copy.deepcopy(self.fake.routers[r]) for r in wanted if r in self.fake.routers]

    def update_floatingip_statuses(
        self, context: Any, router_id: str, fip_statuses: dict[str, str]
    ) -> Any:
        self.fake.record("update_floatingip_statuses", locals_of(locals()))
        self.fake.fip_statuses[router_id] = dict(fip_statuses)
        return None


class _SecurityGroups:
    target = oslo_messaging.Target(version="1.3")

    def __init__(self, fake: FakeNeutron) -> None:
        self.fake = fake

    def security_group_info_for_devices(
        self, context: Any, devices: list[str], call_version: str | None = None
    ) -> Any:
        self.fake.record("security_group_info_for_devices", locals_of(locals()))
        return self.fake.sg_info(devices)


class _Reports:
    target = oslo_messaging.Target(version="1.4")

    def __init__(self, fake: FakeNeutron) -> None:
        self.fake = fake

    def report_state(self, context: Any, agent_state: dict[str, Any], time: str) -> Any:
        self.fake.record("report_state", locals_of(locals()))
        with self.fake.lock:
            if self.fake.report_replies:
                return self.fake.report_replies.pop(0)
        return "alive"


def locals_of(values: dict[str, Any]) -> dict[str, Any]:
    """A handler's arguments without ``self`` and ``context``."""
    values["self"].fake.contexts.append(values["context"])
    return {k: v for k, v in values.items() if k not in ("self", "context")}


def make_transport(url: str) -> Any:
    """A transport on its own config object (exchange ``neutron``), for the server side."""
    conf = cfg.ConfigOpts()
    conf([], project="fake-neutron")
    return rpc_transport.build_transport(conf, url=url)
